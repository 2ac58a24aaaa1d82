"""Display values for the app: tables, plot frames and short texts built from results (no UI)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

__all__ = [
    "score_text",
    "history_row",
    "HISTORY_COLUMNS",
    "versions_rows",
    "VERSION_COLUMNS",
    "counts_frame",
    "roc_frame",
    "curves_frame",
    "confusion_frame",
    "comparison_frame",
    "reliability_frame",
    "estimate_metrics",
    "estimate_text",
    "metadata_from_fields",
]

HISTORY_COLUMNS = ["file", "label", "malignancy score", "above threshold", "model"]
VERSION_COLUMNS = ["version", "published (UTC)", "parent", "training images", "AUC malignant",
                   "95% CI", "accuracy", "balanced accuracy", "n evaluated"]


def _fmt(value: Any, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def score_text(details: Mapping[str, Any]) -> str:
    """The malignancy score 0-100 and what it means against the operating threshold."""
    score, threshold = details.get("malignancy_score"), details.get("threshold")
    if score is None:
        return "This model has no *malignant* class, so it gives no malignancy score."
    text = f"**Malignancy score: {score:.1f} / 100** (model {details['model_version']})."
    if threshold is None:
        return text + " This model records no operating threshold."
    side = "above" if details.get("above_threshold") else "below"
    low = (" So low a threshold flags most images, normal ones too." if threshold < 0.05 else "")
    kind = ("a calibrated probability (in 100 films scored like this, about that many malignant "
            "in the data it was calibrated on)" if details.get("calibrated") else "not calibrated")
    return (f"{text} The score is {kind}. It is **{side}** the operating threshold of "
            f"{100 * threshold:.1f}, the cut-off that reached 90% malignant sensitivity on patients "
            f"the model had not trained on.{low} Research use only: not a diagnosis.")


def history_row(name: str, details: Mapping[str, Any]) -> list[Any]:
    above = details.get("above_threshold")
    return [name, details["label"], details.get("malignancy_score"),
            "—" if above is None else ("yes" if above else "no"), details["model_version"]]


def versions_rows(versions: Sequence[Mapping[str, Any]]) -> list[list[Any]]:
    """One row per version, newest first."""
    rows = []
    for v in reversed(versions):
        metrics, data = v.get("metrics") or {}, v.get("data") or {}
        ci = metrics.get("auc_malignant_ci95")
        published = f"error: {v['error']}" if v.get("error") else v.get("published_at") or v.get("created_at")
        rows.append([
            v["version"], published or "—", v.get("parent") or "—",
            data.get("n_train", "—"), _fmt(metrics.get("auc_malignant")),
            "—" if not ci else f"{ci[0]:.2f}–{ci[1]:.2f}", _fmt(metrics.get("accuracy")),
            _fmt(metrics.get("balanced_accuracy")), metrics.get("n", "—"),
        ])
    return rows


def counts_frame(summary: Mapping[str, Mapping[str, int]]) -> pd.DataFrame:
    """Images per label and source (base data / submitted cases), long format for a bar plot."""
    return pd.DataFrame(
        [{"label": label, "source": source, "images": n}
         for label, by_source in summary.items() for source, n in by_source.items()],
        columns=["label", "source", "images"],
    )


def roc_frame(named_metrics: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """ROC points (malignant vs rest) of several models, long format for a line plot."""
    rows = []
    for name, metrics in named_metrics.items():
        roc = metrics.get("roc") or {}
        auc = metrics.get("auc_malignant")
        label = f"{name} (AUC {_fmt(auc, 2)})"
        rows += [{"false positive rate": f, "true positive rate": t, "model": label}
                 for f, t in zip(roc.get("fpr", []), roc.get("tpr", []), strict=True)]
    return pd.DataFrame(rows, columns=["false positive rate", "true positive rate", "model"])


def curves_frame(history: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Training curves: train/val loss and val AUC per epoch, long format."""
    series = {"train loss": "train_loss", "validation loss": "val_loss", "validation AUC": "val_auc"}
    rows = [{"epoch": h["epoch"], "value": h[key], "series": name}
            for h in history for name, key in series.items() if h.get(key) is not None]
    return pd.DataFrame(rows, columns=["epoch", "value", "series"])


def confusion_frame(metrics: Mapping[str, Any]) -> pd.DataFrame:
    """Confusion matrix with named rows (true) and columns (predicted)."""
    classes = metrics.get("classes") or []
    matrix = metrics.get("confusion_matrix") or []
    frame = pd.DataFrame(matrix, columns=[f"predicted {c}" for c in classes])
    frame.insert(0, "true", classes[: len(frame)])
    return frame


def comparison_frame(current: Mapping[str, Any], candidate: Mapping[str, Any]) -> pd.DataFrame:
    """Current vs candidate metrics on the same held-out patients."""
    keys = ["n", "auc_malignant", "auc_malignant_ci95", "auc_macro", "accuracy", "balanced_accuracy",
            "sensitivity", "specificity"]

    def show(key: str, value: Any) -> str:
        if isinstance(value, list):
            return f"{value[0]:.3f}–{value[1]:.3f}"
        return str(value) if key == "n" else _fmt(value)  # JSON turns 1.0 into 1: only n is a count

    return pd.DataFrame([[k, show(k, current.get(k)), show(k, candidate.get(k))] for k in keys],
                        columns=["metric", "current", "candidate"])


def metadata_from_fields(**fields: Any) -> dict[str, Any]:
    """Optional metadata fields from the form, empty ones left out."""
    return {k: v for k, v in fields.items() if v not in (None, "", [])}


def reliability_frame(named_metrics: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """Reliability points (mean predicted vs observed malignant share per bin) of several models,
    plus the diagonal of perfect calibration, long format for a line plot."""
    columns = ["mean predicted P(malignant)", "observed malignant share", "model"]
    rows = [[0.0, 0.0, "perfect calibration"], [1.0, 1.0, "perfect calibration"]]
    for name, metrics in named_metrics.items():
        ece = metrics.get("ece_malignant")
        label = f"{name} (ECE {_fmt(ece, 3)})"
        rows += [[b["mean_predicted"], b["observed"], label] for b in metrics.get("reliability") or []]
    return pd.DataFrame(rows, columns=columns)


def estimate_metrics(mammo: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """The served version's estimate to plot: cross-validation if recorded, else its evaluation."""
    version = mammo.get("version") or "served"
    if mammo.get("cv"):
        return {f"{version}, out of fold": mammo["cv"]}
    metrics = mammo.get("metrics") or {}
    return {f"{version}, {(mammo.get('split') or {}).get('name', 'evaluation')}": metrics} if metrics else {}


def estimate_text(mammo: Mapping[str, Any]) -> str:
    """One paragraph: the served version and its estimated performance, named by split."""
    version = mammo.get("version") or "the served model"
    lines = []
    cv = mammo.get("cv")
    if cv:
        ci = cv.get("auc_malignant_ci95") or [None, None]
        abnormal = cv.get("auc_abnormal") or {}
        lines.append(
            f"**Served: {version}.** Estimated by {cv.get('n_folds')}-fold cross-validation by patient "
            f"({cv.get('n')} films, out of fold): malignant-vs-rest AUC {_fmt(cv.get('auc_malignant'), 2)} "
            f"(95% CI {_fmt(ci[0], 2)}–{_fmt(ci[1], 2)}), abnormal-vs-normal AUC "
            f"{_fmt(abnormal.get('auc'), 2)}, calibration error (ECE) {_fmt(cv.get('ece_malignant'), 3)}.")
    metrics = mammo.get("metrics") or {}
    split = (mammo.get("split") or {}).get("name", "evaluation")
    if metrics and (not cv or split != "cross-validation"):
        ci = metrics.get("auc_malignant_ci95") or [None, None]
        lead = "" if cv else f"**Served: {version}.** "
        lines.append(f"{lead}On its {split} set ({metrics.get('n')} films): malignant-vs-rest AUC "
                     f"{_fmt(metrics.get('auc_malignant'), 2)} (95% CI {_fmt(ci[0], 2)}–{_fmt(ci[1], 2)}).")
    return " ".join(lines) or f"**Served: {version}.** No evaluation recorded."
