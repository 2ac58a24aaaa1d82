"""What the Analytics tab shows, from the prediction log, the case store and the registry: plain
tables (pandas) for Gradio's native plots, and a few figures in words."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .metrics import recorded_evaluations
from .timestamps import utc_moment
from .views import auc_and_ci

__all__ = ["NEAR_CUT_OFF", "predictions_per_day", "class_mix", "score_histogram", "low_confidence",
           "low_confidence_text", "scope_text", "latency_text", "case_growth", "VERSION_METRICS_COLUMNS",
           "version_metrics", "nothing_yet_text", "HISTORY_COLUMNS", "HISTORY_HEADERS", "history_frame"]

NEAR_CUT_OFF = 5.0  # points of the 0-100 score: a prediction this close to the cut-off is uncertain
HISTORY_COLUMNS = ["at", "model_version", "label", "malignancy_score", "threshold", "above_threshold",
                   "uncertainty", "heatmap_method", "image_sha256", "latency_s"]
# the same columns in words, for the table a person reads (the CSV keeps the keys)
HISTORY_HEADERS = ["time (UTC)", "model", "most likely", "malignancy score (%)", "review cut-off (%)",
                   "flagged for review", "uncertainty (points)", "heat-map method", "image SHA-256",
                   "seconds"]


def predictions_per_day(records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    days = pd.Series([str(r["at"])[:10] for r in records], dtype=str)
    counts = days.value_counts().sort_index()
    return pd.DataFrame({"day": counts.index.astype(str), "predictions": counts.to_numpy()})


def class_mix(records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Predictions per most likely class."""
    counts = pd.Series([r.get("label") or "?" for r in records], dtype=str).value_counts()
    return pd.DataFrame({"most likely class": counts.index.astype(str), "predictions": counts.to_numpy()})


def score_histogram(records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Malignancy scores (0-100) in ten bins of 10 points; no rows without a score (an empty plot, not
    ten bars of zero on an axis from 0 to 0)."""
    scores = np.array([r["malignancy_score"] for r in records if r.get("malignancy_score") is not None])
    counts, edges = np.histogram(scores, bins=10, range=(0, 100))
    bins = [f"{int(a)}-{int(b)}" for a, b in zip(edges[:-1], edges[1:], strict=True)]
    frame = pd.DataFrame({"malignancy score": bins, "predictions": counts})
    return frame if len(scores) else frame.iloc[:0]


def low_confidence(records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Predictions within NEAR_CUT_OFF points of their review cut-off or with a high uncertainty,
    newest first."""
    rows = []
    for r in reversed(records):
        score, cut = r.get("malignancy_score"), r.get("threshold")
        near = score is not None and cut is not None and abs(score - cut) <= NEAR_CUT_OFF
        if near or r.get("uncertainty_high"):
            reason = " and ".join(filter(None, ["near the cut-off" if near else "",
                                                "high uncertainty" if r.get("uncertainty_high") else ""]))
            rows.append([str(r["at"])[:19].replace("T", " "), r.get("model_version"), _one(score), _one(cut),
                         _one(r.get("uncertainty")), reason, (r.get("image_sha256") or "")[:12]])
    return pd.DataFrame(rows, columns=["when (UTC)", "version", "score", "cut-off", "uncertainty", "why",
                                       "image (SHA-256, start)"])


def low_confidence_text(records: Sequence[Mapping[str, Any]], low: pd.DataFrame) -> str:
    """How many of ``records`` the low-confidence table (``low``) holds, so that an empty table reads
    as "none", not as a table that failed to load; nothing without records."""
    n, near = len(records), f"within {NEAR_CUT_OFF:.0f} points of its review cut-off"
    if n == 0:
        return ""
    if low.empty:
        return (f"The one prediction is not {near}, nor highly uncertain" if n == 1 else
                f"None of the {n} predictions is {near} or highly uncertain") + \
            ": the low-confidence table is empty."
    if n == 1:
        return "The one prediction is in the low-confidence table."
    verb = "is" if len(low) == 1 else "are"
    return f"{len(low)} of the {n} predictions {verb} in the low-confidence table."


def scope_text(user: str | None, sees_everyone: bool) -> str:
    """Whose predictions the tab shows, and that no image is logged."""
    scope = ("every visitor's predictions (you may retrain here)" if sees_everyone
             else f"your own predictions ({user})" if user else
             "nothing: sign in with Hugging Face to see your own predictions (trainers see everyone's)")
    return f"Showing {scope}. No image, file name or DICOM tag is ever logged."


def _one(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def latency_text(records: Sequence[Mapping[str, Any]]) -> str:
    latencies = np.array([r["latency_s"] for r in records if r.get("latency_s") is not None])
    if latencies.size == 0:
        return "No prediction recorded yet."
    p50, p95 = np.percentile(latencies, [50, 95]) * 1000
    return (f"**{len(records)} prediction{'s' if len(records) != 1 else ''}.** Latency inside the app "
            "(reading, model, heat map, uncertainty): "
            f"p50 {p50:.0f} ms, p95 {p95:.0f} ms.")


def case_growth(cases: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Submitted cases per label, cumulative by day (data growth): a row for each label on each day a
    case came in (0 before its first case), so that stacked bars add up to all cases by that day."""
    frame = pd.DataFrame([{"day": str(c["submitted_at"])[:10], "label": c["label"]} for c in cases],
                         columns=["day", "label"])
    if frame.empty:
        return pd.DataFrame(columns=["day", "cases", "label"])
    daily = frame.groupby(["day", "label"]).size().unstack("label", fill_value=0).sort_index().cumsum()
    return daily.stack().rename("cases").reset_index()[["day", "cases", "label"]]


VERSION_METRICS_COLUMNS = ["trained", "AUC malignant vs rest", "estimate", "version", "films", "AUC (95% CI)"]


def version_metrics(versions: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Each version's malignant-vs-rest AUC against when it was trained, once for each evaluation it
    records (:func:`~mammo.metrics.recorded_evaluations`): ``estimate`` names what it was computed on
    (out of fold, the held-out patients, validation), so that a plot coloured by it sets like against
    like, not a cross-validation against six malignant held-out films (the packaged versions are all
    published in a store the day the app first starts there). A rollback's copy is left out: its point
    would lie on its original's."""
    rows = []
    for v in versions:
        if v.get("rollback_of"):  # a copy served again: its original's figures, at its original's time
            continue
        trained = _minute(v.get("created_at") or v.get("published_at"))
        for estimate, metrics in recorded_evaluations(v):
            if metrics.get("auc_malignant") is not None:
                rows.append([trained, round(metrics["auc_malignant"], 3), estimate, v["version"],
                             metrics.get("n"), auc_and_ci(metrics, label="")])
    return pd.DataFrame(rows, columns=VERSION_METRICS_COLUMNS)


def _minute(stamp: str | None) -> str:
    """An ISO 8601 timestamp to the minute in UTC ('2026-12-02 15:30'), so that versions trained on the
    same day stand apart and the text sorts as time does; the input as it is when it is not one."""
    moment = utc_moment(stamp)
    return str(stamp or "") if moment is None else f"{moment:%Y-%m-%d %H:%M}"


def nothing_yet_text(cases: pd.DataFrame, versions: pd.DataFrame, withdrawn: int = 0) -> str:
    """What the Analytics tab's hidden plots would show: no case growth (``case_growth``) or no
    version AUC (``version_metrics``) yet; "" when both have rows. ``withdrawn``: the number of
    withdrawn cases, which the growth chart leaves out."""
    # "none submitted yet" misread two withdrawn cases (a walk); "(withdrawn cases are left out)" with none
    # withdrawn hinted at some (another walk)
    left_out = f" ({withdrawn} withdrawn case{'' if withdrawn == 1 else 's'} left out)" if withdrawn else ""
    return " ".join(text for frame, text in ((cases, f"No stored case yet{left_out}."),
                                             (versions, "No version records an AUC yet.")) if frame.empty)


def history_frame(records: Sequence[Mapping[str, Any]], readable: bool = False) -> pd.DataFrame:
    """A user's predictions, newest first: the columns the CSV export has, named by their keys (or,
    ``readable``, in words)."""
    rows = [[r.get(column) for column in HISTORY_COLUMNS] for r in reversed(records)]
    return pd.DataFrame(rows, columns=HISTORY_HEADERS if readable else HISTORY_COLUMNS)
