"""Classification metrics for mammo: accuracy, AUC with bootstrap CI, ROC, operating point.

Labels ``y_true`` are class indices into ``classes`` (class names are accepted too);
``probs`` is an ``(n, len(classes))`` array of class probabilities in ``classes`` order.
"Malignant vs rest" uses the column of the class named ``"malignant"`` wherever it is.
Every function returns plain Python values (``json.dumps``-able).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    precision_recall_fscore_support,
    roc_auc_score,
    roc_curve,
)

from .calibration import ece_by_chance, expected_calibration_error, reliability_bins

__all__ = [
    "MALIGNANT",
    "DEFAULT_THRESHOLD",
    "FEWEST_FOR_AN_INTERVAL",
    "too_few_for_an_interval",
    "malignant_index",
    "pick_threshold",
    "roc_points",
    "bootstrap_auc_ci",
    "OUT_OF_FOLD",
    "NESTED_CROSS_FITTING",
    "recorded_estimate",
    "recorded_evaluations",
    "bootstrap_aucs",
    "weighted_auc",
    "paired_auc_difference",
    "evaluate_predictions",
    "auc_abnormal",
    "auc_with_ci",
    "resampled_units",
    "resampled_patients",
    "share",
    "cross_fitted_thresholds",
    "cross_fitted_rates",
    "rates_at",
    "EVALUATE_KEYS",
    "ece_chance_said",
    "recorded_value",
    "malignant_films",
    "flagged_malignant",
]

# The keys `evaluate --json` promises (docs/architecture.md): new keys may be added, none removed or renamed.
EVALUATE_KEYS = frozenset({
    "n", "classes", "accuracy", "balanced_accuracy", "auc_macro", "auc_malignant", "auc_malignant_ci95",
    "sensitivity", "specificity", "confusion_matrix", "per_class",
})

MALIGNANT = "malignant"
DEFAULT_THRESHOLD = 0.5


def malignant_index(classes: Sequence[str]) -> int | None:
    """Index of the class named ``"malignant"`` in ``classes``, or None."""
    names = list(classes)
    return names.index(MALIGNANT) if MALIGNANT in names else None


def pick_threshold(
    y_true: np.ndarray,
    probs: np.ndarray,
    classes: Sequence[str],
    target_sensitivity: float = 0.9,
) -> float:
    """Highest threshold on P(malignant) whose malignant-vs-rest sensitivity on these
    (validation) labels is >= ``target_sensitivity``.

    A case is called malignant when P(malignant) >= threshold. Returns
    ``DEFAULT_THRESHOLD`` (0.5) when ``classes`` has no malignant class or ``y_true`` has no
    malignant case, since no threshold can then be fitted.
    """
    if not 0.0 < target_sensitivity <= 1.0:
        raise ValueError(f"target_sensitivity must be in (0, 1], got {target_sensitivity}")
    index = malignant_index(classes)
    if index is None:
        return DEFAULT_THRESHOLD
    y = _as_indices(y_true, classes)
    positive_scores = np.sort(_check_probs(probs, classes, len(y))[y == index, index])
    if positive_scores.size == 0:
        return DEFAULT_THRESHOLD
    candidates = np.unique(positive_scores)
    # Positives called malignant at each candidate threshold (score >= candidate).
    caught = positive_scores.size - np.searchsorted(positive_scores, candidates, side="left")
    reaching = candidates[caught / positive_scores.size >= target_sensitivity]
    return float(reaching.max())


def roc_points(y_true_binary: np.ndarray, scores: np.ndarray) -> dict:
    """ROC curve as ``{"fpr", "tpr", "thresholds"}`` lists of finite floats.

    sklearn's first threshold (infinite: nothing called positive) is replaced by
    ``max(scores) + 1``. ValueError when ``y_true_binary`` does not hold both classes.
    """
    y = _binary(y_true_binary)
    fpr, tpr, thresholds = roc_curve(y, np.asarray(scores, dtype=float), drop_intermediate=False)
    thresholds = np.where(np.isfinite(thresholds), thresholds, float(np.max(scores)) + 1.0)
    return {"fpr": fpr.tolist(), "tpr": tpr.tolist(), "thresholds": thresholds.tolist()}


# an AUC's bootstrap interval needs this many films of each class: with fewer, the resamples hold
# one or two of the rarer class and the percentiles are degenerate (one malignant film ranked first
# gives "1.00-1.00"), so no interval is given at all
FEWEST_FOR_AN_INTERVAL = 5


OUT_OF_FOLD = "out of fold"  # what a cross-validation's pooled figures are named where they are shown

# how a cross-validation fitted each fold's calibration and threshold (its ``cross_fitting``): both on
# the other folds alone, the threshold through that fold's own calibration map. Versions recorded
# without it (v2, v3) picked a fold's threshold on the other folds' cross-fitted probabilities, whose
# maps had learnt the fold's labels, and called their subgroups at the pooled threshold fitted on
# these same predictions: both somewhat optimistic
NESTED_CROSS_FITTING = "calibration and threshold of each fold fitted on the other folds alone"


def recorded_estimate(record: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]] | None:
    """The estimate a version's record (its config's ``mammo`` block, or a ``versions()`` row) quotes,
    named by what it was computed on: the pooled out-of-fold figures where it was cross-validated,
    else its own split's evaluation; None when it records no malignant-vs-rest AUC."""
    cv = record.get("cv") or {}
    if cv.get("auc_malignant") is not None:
        return OUT_OF_FOLD, cv
    metrics = record.get("metrics") or {}
    if metrics.get("auc_malignant") is not None:
        return (record.get("split") or {}).get("name") or "evaluation", metrics
    return None


def recorded_evaluations(record: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """Every evaluation a version's record holds, each named by what it was computed on: its own
    split's metrics (``OUT_OF_FOLD`` where that split was the cross-validation itself), then the
    pooled out-of-fold figures when it was cross-validated besides."""
    split = (record.get("split") or {}).get("name") or "evaluation"
    named = []
    if record.get("metrics"):
        named.append((OUT_OF_FOLD if split == "cross-validation" else split, record["metrics"]))
    if record.get("cv") and split != "cross-validation":
        named.append((OUT_OF_FOLD, record["cv"]))
    return named


def bootstrap_auc_ci(
    y_true_binary: np.ndarray,
    scores: np.ndarray,
    n_resamples: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    groups: Sequence[str] | None = None,
) -> tuple[float, float] | None:
    """Percentile bootstrap ``(1 - alpha)`` CI of the AUC, resampling cases with replacement; with
    ``groups`` (each case's patient), whole patients: one woman's films are not independent cases.

    Resamples holding one class only are skipped. None when either class has cases of fewer than
    ``FEWEST_FOR_AN_INTERVAL`` patients (cases, without ``groups``; the AUC itself may exist) or no
    resample holds both classes.
    """
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    y = np.asarray(y_true_binary).astype(bool)
    s = np.asarray(scores, dtype=float)
    if y.shape != s.shape or y.ndim != 1:
        raise ValueError(f"labels {y.shape} and scores {s.shape} must be 1-D of equal length")
    group_of = _group_of(np.arange(y.size) if groups is None else groups, y.size)
    if min(np.unique(group_of[y]).size, np.unique(group_of[~y]).size) < FEWEST_FOR_AN_INTERVAL:
        return None
    aucs = bootstrap_aucs(y, [s], group_of, n_resamples, seed)
    if not aucs.size:
        return None
    lo, hi = np.percentile(aucs[:, 0], [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(lo), float(hi)


# a bootstrap works on this many (resample, case) cells at a time: about 16 MB per array it makes
_BOOTSTRAP_BLOCK = 2_000_000


def _group_of(groups: Sequence, cases: int) -> np.ndarray:
    """Each case's group as a number from 0 (``groups``: one name per case)."""
    names = np.asarray(groups)
    if names.shape != (cases,):
        raise ValueError(f"groups must name each of the {cases} cases, got {names.shape[0]} names")
    return np.unique(names, return_inverse=True)[1].reshape(-1)


def bootstrap_aucs(positive: np.ndarray, scores: Sequence[np.ndarray], group_of: np.ndarray,
                   n_resamples: int, seed: int = 0) -> np.ndarray:
    """The AUC of each of ``scores`` (columns) in each of ``n_resamples`` bootstrap resamples (rows)
    that draws cases of both classes: whole groups (``group_of``: each case's, from 0) drawn with
    replacement, a group's cases together. A block of resamples at a time, so memory stays small."""
    count = int(group_of.max()) + 1
    has_positive = np.bincount(group_of, weights=positive, minlength=count) > 0
    has_negative = np.bincount(group_of, weights=~positive, minlength=count) > 0
    rng, step, aucs = np.random.default_rng(seed), max(1, _BOOTSTRAP_BLOCK // max(count, positive.size)), []
    for start in range(0, n_resamples, step):
        rows = min(step, n_resamples - start)
        draws = rng.integers(0, count, (rows, count)) + count * np.arange(rows)[:, None]  # rows apart
        drawn = np.bincount(draws.ravel(), minlength=rows * count).reshape(rows, count)
        drawn = drawn[(drawn[:, has_positive].sum(axis=1) > 0) & (drawn[:, has_negative].sum(axis=1) > 0)]
        if len(drawn):
            weights = drawn[:, group_of]  # each case drawn as often as its group
            aucs.append(np.column_stack([weighted_auc(positive, s, weights) for s in scores]))
    return np.concatenate(aucs) if aucs else np.empty((0, len(scores)))


def weighted_auc(positive: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The AUC of each row of ``weights`` (each case counted that many times; ties count half), as
    sklearn's ``roc_auc_score(positive, scores, sample_weight=row)`` gives it, for many bootstrap
    resamples at once. Each row must weigh cases of both classes; a score that is not a number is
    refused, as sklearn refuses it (it has no rank)."""
    if not np.isfinite(np.asarray(scores, dtype=float)).all():
        raise ValueError("scores must be finite numbers: a model that gave NaN or infinity has no AUC")
    order = np.argsort(scores, kind="stable")
    ranked, is_positive = np.asarray(scores, dtype=float)[order], np.asarray(positive, dtype=bool)[order]
    first = np.searchsorted(ranked, ranked, side="left")  # where each case's tied scores start and end
    last = np.searchsorted(ranked, ranked, side="right")
    w = np.atleast_2d(weights)[:, order].astype(float)
    negatives = np.concatenate([np.zeros((len(w), 1)), np.cumsum(w * ~is_positive, axis=1)], axis=1)
    below = negatives[:, first] + 0.5 * (negatives[:, last] - negatives[:, first])  # ties count half
    return (w * is_positive * below).sum(axis=1) / ((w * is_positive).sum(axis=1) * negatives[:, -1])


def paired_auc_difference(positive: np.ndarray, score_a: np.ndarray, score_b: np.ndarray,
                          groups: Sequence[str], n_resamples: int = 2000, seed: int = 0) -> dict | None:
    """AUC(b) - AUC(a) on the same cases, with a percentile bootstrap 95% CI that resamples whole
    groups (patients) with replacement, and the share of resamples where b is not better. None when
    the AUC is undefined (one class) or fewer than half the resamples hold both classes."""
    y = np.asarray(positive).astype(bool)
    a, b = np.asarray(score_a, dtype=float), np.asarray(score_b, dtype=float)
    if y.all() or not y.any():
        return None
    group_of = _group_of(groups, y.size)
    aucs = bootstrap_aucs(y, [a, b], group_of, n_resamples, seed)
    if len(aucs) < n_resamples / 2:  # too few resamples hold both classes: no interval
        return None
    differences = aucs[:, 1] - aucs[:, 0]
    low, high = np.percentile(differences, [2.5, 97.5])
    return {"difference": float(roc_auc_score(y, b) - roc_auc_score(y, a)), "ci95": [float(low), float(high)],
            "share_not_better": float(np.mean(differences <= 0)), "n": int(y.size), "positives": int(y.sum()),
            "groups": int(group_of.max()) + 1, "positive_groups": int(np.unique(group_of[y]).size),
            "resamples": len(aucs)}


def evaluate_predictions(
    y_true: np.ndarray,
    probs: np.ndarray,
    classes: Sequence[str],
    threshold: float | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
    groups: Sequence[str] | None = None,
) -> dict:
    """All metrics of ``evaluate --json`` (docs/architecture.md) for these labels and probabilities.

    Accuracy, balanced accuracy, the confusion matrix and per-class P/R/F1 use argmax
    predictions; sensitivity and specificity are malignant vs rest with malignant called when
    P(malignant) >= ``threshold`` (``DEFAULT_THRESHOLD`` when None). ``ece_malignant`` and
    ``reliability`` describe how well P(malignant) is calibrated, ``ece_malignant_by_chance95`` the
    range of ECE a perfectly calibrated model of the same scores shows on this few films by chance
    (none with ``n_resamples`` 0, as no interval then). Undefined values are None. The
    AUCs' intervals resample whole patients when ``groups`` names each case's (``auc_ci_resampled``
    says "patients" when some patient has several cases, else "films"; said also where no interval is
    given, since too few patients of a class is then why).
    """
    names = list(classes)
    y = _as_indices(y_true, names)
    p = _check_probs(probs, names, len(y))
    if y.size == 0:
        raise ValueError("no cases to evaluate")
    pred = p.argmax(axis=1)
    labels = list(range(len(names)))
    used_threshold = DEFAULT_THRESHOLD if threshold is None else float(threshold)

    precision, recall, f1, support = precision_recall_fscore_support(
        y, pred, labels=labels, zero_division=0
    )
    with warnings.catch_warnings():
        # Predicted classes absent from y_true are expected on small sets; recall is over y_true.
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        balanced = balanced_accuracy_score(y, pred)

    index = malignant_index(names)
    auc_malignant = ci = roc = sensitivity = specificity = ece = ece_chance = reliability = None
    if index is not None:
        is_malignant = y == index
        scores = p[:, index]
        called = scores >= used_threshold
        if is_malignant.any():
            sensitivity = float(called[is_malignant].mean())
        if not is_malignant.all():
            specificity = float((~called[~is_malignant]).mean())
        ece = expected_calibration_error(is_malignant, scores)
        ece_chance = ece_by_chance(scores, seed=seed) if n_resamples else None
        reliability = reliability_bins(is_malignant, scores)
        found = auc_with_ci(is_malignant, scores, n_resamples, seed, groups)  # 0: per-epoch validation
        if found is not None:
            auc_malignant, ci, roc = found["auc"], found["ci95"], roc_points(is_malignant, scores)

    return {
        "n": int(y.size),
        "classes": names,
        "accuracy": float(accuracy_score(y, pred)),
        "balanced_accuracy": float(balanced),
        "auc_macro": _auc_macro(y, p),
        "auc_malignant": auc_malignant,
        "auc_malignant_ci95": list(ci) if ci is not None else None,
        "sensitivity": sensitivity,
        "specificity": specificity,
        "threshold": used_threshold,
        "confusion_matrix": confusion_matrix(y, pred, labels=labels).tolist(),
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(names)
        },
        "roc": roc,
        "ece_malignant": ece,
        "ece_malignant_by_chance95": ece_chance,
        "reliability": reliability,
        "auc_abnormal": auc_abnormal(y, p, names, n_resamples, groups),
        "auc_ci_resampled": resampled_units(groups),
    }


def resampled_units(groups: Sequence[str] | None) -> str:
    """What a bootstrap over cases of these ``groups`` resamples: "patients" when one holds several
    cases, else "films"."""
    return "patients" if groups is not None and len(set(groups)) < len(groups) else "films"


def resampled_patients(metrics: Mapping[str, Any]) -> bool:
    """Whether the AUC intervals of an ``evaluate --json`` dict resample whole patients (its
    ``auc_ci_resampled``; v1-v3 recorded intervals over films, and no such key)."""
    return metrics.get("auc_ci_resampled") == "patients"


def too_few_for_an_interval(metrics: Mapping[str, Any]) -> str:
    """Why the AUC of an ``evaluate --json`` dict has no interval: 'fewer than 5 films (or patients,
    where whole patients are resampled) of a class'."""
    whose = " or patients" if resampled_patients(metrics) else ""
    return f"fewer than {FEWEST_FOR_AN_INTERVAL} films{whose} of a class"


def ece_chance_said(metrics: Mapping[str, Any]) -> str:
    """The range of ECE a perfectly calibrated model shows by chance on the films of an ``evaluate
    --json`` dict, in words to put after its ECE ('' where not recorded: models made before it was)."""
    chance = metrics.get("ece_malignant_by_chance95")
    if not (isinstance(chance, list | tuple) and len(chance) == 2):
        return ""
    return (f" (a perfectly calibrated model giving these same scores shows {chance[0]:.2f}–{chance[1]:.2f} "
            "on these films by chance, 95% of the time)")


def auc_with_ci(positive: np.ndarray, score: np.ndarray, n_resamples: int = 1000,
                seed: int = 0, groups: Sequence[str] | None = None) -> dict | None:
    """``{"auc", "ci95"}`` of a binary split (bootstrap CI, resampling ``groups`` when given; None
    with ``n_resamples`` 0), or None when only one class is present."""
    positive = np.asarray(positive, dtype=bool)
    if positive.all() or not positive.any():
        return None
    ci = bootstrap_auc_ci(positive, score, n_resamples, seed, groups=groups) if n_resamples else None
    return {"auc": float(roc_auc_score(positive, score)), "ci95": list(ci) if ci else None}


def auc_abnormal(targets: np.ndarray, probs: np.ndarray, labels: Sequence[str],
                 n_resamples: int = 1000, groups: Sequence[str] | None = None) -> dict | None:
    """Abnormal (any non-normal class) vs normal AUC with its bootstrap CI, when ``normal`` exists."""
    labels = list(labels)
    if "normal" not in labels or len(labels) < 3:
        return None
    return auc_with_ci(targets != labels.index("normal"), 1 - probs[:, labels.index("normal")], n_resamples,
                       groups=groups)


def share(flags: np.ndarray) -> float | None:
    """The share of True flags (None for none)."""
    return float(flags.mean()) if flags.size else None


def cross_fitted_thresholds(targets: np.ndarray, probs: np.ndarray, labels: Sequence[str],
                            fold_of: np.ndarray) -> np.ndarray:
    """Each film's operating threshold, picked (:func:`pick_threshold`) on the other folds' films."""
    thresholds = np.zeros(len(targets))
    for k in np.unique(fold_of):
        other = fold_of != k
        thresholds[fold_of == k] = pick_threshold(targets[other], probs[other], labels)
    return thresholds


def cross_fitted_rates(targets: np.ndarray, probs: np.ndarray, labels: Sequence[str],
                       thresholds: np.ndarray) -> dict:
    """Malignant sensitivity and specificity with each film called at its own cross-fitted
    threshold (``sensitivity_cross_fitted``, ``specificity_cross_fitted``); {} without malignant."""
    return {f"{key}_cross_fitted": rate for key, rate in rates_at(targets, probs, labels, thresholds).items()}


def rates_at(targets: np.ndarray, probs: np.ndarray, labels: Sequence[str],
             threshold: float | np.ndarray) -> dict:
    """Malignant ``sensitivity`` and ``specificity`` calling P(malignant) >= ``threshold`` (one, or
    each film's); {} without a malignant class."""
    malignant = malignant_index(labels)
    if malignant is None:
        return {}
    is_malignant = targets == malignant
    called = probs[:, malignant] >= threshold
    return {"sensitivity": share(called[is_malignant]), "specificity": share(~called[~is_malignant])}


def _auc_macro(y: np.ndarray, p: np.ndarray) -> float | None:
    """One-vs-rest macro AUC over the classes present; for 2 classes the AUC of column 1."""
    present = np.unique(y)
    if present.size < 2:
        return None
    if p.shape[1] == 2:
        return float(roc_auc_score(y == 1, p[:, 1]))
    return float(np.mean([roc_auc_score(y == c, p[:, c]) for c in present]))


def _as_indices(y_true: np.ndarray, classes: Sequence[str]) -> np.ndarray:
    """Labels as class indices; class names are mapped through ``classes``."""
    names = list(classes)
    y = np.asarray(y_true)
    if y.ndim != 1:
        raise ValueError(f"y_true must be 1-D, got shape {y.shape}")
    if y.dtype.kind in "UO":
        unknown = sorted({str(v) for v in y} - set(names))
        if unknown:
            raise ValueError(f"labels {unknown} are not in classes {names}")
        return np.array([names.index(v) for v in y], dtype=int)
    if y.size and y.dtype.kind not in "iu":
        raise ValueError(f"y_true must hold class indices or names, got dtype {y.dtype}")
    y = y.astype(int)
    if y.size and (y.min() < 0 or y.max() >= len(names)):
        raise ValueError(f"class indices must be in [0, {len(names)}), got {y.min()}..{y.max()}")
    return y


def _check_probs(probs: np.ndarray, classes: Sequence[str], n: int | None = None) -> np.ndarray:
    """``probs`` as a float ``(n, len(classes))`` array of finite values, or ValueError."""
    p = np.asarray(probs, dtype=float)
    k = len(list(classes))
    if p.ndim != 2 or p.shape[1] != k or (n is not None and p.shape[0] != n):
        rows = "n" if n is None else n
        raise ValueError(f"probs must have shape ({rows}, {k}) (cases, classes), got {p.shape}")
    if not np.isfinite(p).all():
        raise ValueError("probs contain NaN or infinite values")
    return p


def _binary(y_true_binary: np.ndarray) -> np.ndarray:
    y = np.asarray(y_true_binary).astype(bool)
    if y.all() or not y.any():
        raise ValueError("ROC needs both positive and negative cases")
    return y


def recorded_value(metrics: Mapping[str, Any], key: str) -> float | None:
    """``metrics[key]`` (an ``evaluate --json`` dict) as a float; None when missing, null or NaN."""
    value = metrics.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or np.isnan(value):
        return None
    return float(value)


def malignant_films(metrics: Mapping[str, Any]) -> int | None:
    """How many malignant films the evaluated set held (its ``per_class`` support); None when not
    recorded."""
    support = ((metrics.get("per_class") or {}).get("malignant") or {}).get("support")
    return support if isinstance(support, int) else None


def flagged_malignant(metrics: Mapping[str, Any]) -> int | None:
    """How many of the set's malignant films the model flagged at its review cut-off (its
    ``sensitivity`` times the malignant films); None when either is not recorded."""
    sensitivity, films = recorded_value(metrics, "sensitivity"), malignant_films(metrics)
    return None if sensitivity is None or films is None else round(sensitivity * films)
