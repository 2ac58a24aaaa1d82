"""Calibration: fit film scores to probabilities (Platt / vector scaling) and measure it (ECE).

The calibration map is a multinomial logistic regression (scikit-learn) from a model's
uncalibrated film scores to class logits, fitted on predictions of films the model never trained
on (pooled out-of-fold predictions, or a validation split when retraining).
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression

__all__ = ["fit_calibration", "apply_calibration", "expected_calibration_error", "ece_by_chance",
           "reliability_bins"]


def fit_calibration(scores: np.ndarray, targets: np.ndarray, num_classes: int,
                    strength: float = 1.0) -> tuple[list[list[float]], list[float]]:
    """Weight (classes x scores) and bias (classes) of a multinomial logistic regression.

    ``strength`` is scikit-learn's ``C`` (inverse L2 penalty). Classes absent from ``targets``
    get a bias far below the others (probability ~0) instead of failing.
    """
    x = np.asarray(scores, dtype=np.float64)
    y = np.asarray(targets, dtype=int)
    present = np.unique(y)
    if present.size < 2:
        raise ValueError("calibration needs films of at least two classes")
    fitted = LogisticRegression(C=strength, max_iter=2000).fit(x, y)
    weight = np.zeros((num_classes, x.shape[1]))
    bias = np.full(num_classes, -30.0)
    if present.size == 2:  # scikit-learn returns one row: logit of the second class
        weight[present[1]], bias[present[0]], bias[present[1]] = fitted.coef_[0], 0.0, fitted.intercept_[0]
    else:
        weight[present], bias[present] = fitted.coef_, fitted.intercept_
    return weight.tolist(), bias.tolist()


def apply_calibration(scores: np.ndarray, weight: list, bias: list) -> np.ndarray:
    """Class probabilities (N, C) from scores with a fitted calibration."""
    logits = np.asarray(scores, dtype=np.float64) @ np.asarray(weight).T + np.asarray(bias)
    logits -= logits.max(axis=1, keepdims=True)
    probs = np.exp(logits)
    return probs / probs.sum(axis=1, keepdims=True)


def reliability_bins(is_positive: np.ndarray, probability: np.ndarray, bins: int = 10) -> list[dict]:
    """Equal-width bins of predicted probability: count, mean predicted, observed frequency."""
    y = np.asarray(is_positive, dtype=bool)
    p = np.asarray(probability, dtype=np.float64)
    index = np.minimum((p * bins).astype(int), bins - 1)
    out = []
    for b in range(bins):
        inside = index == b
        if inside.any():
            out.append({"low": b / bins, "high": (b + 1) / bins, "n": int(inside.sum()),
                        "mean_predicted": float(p[inside].mean()), "observed": float(y[inside].mean())})
    return out


def expected_calibration_error(is_positive: np.ndarray, probability: np.ndarray, bins: int = 10) -> float:
    """ECE of a binary probability: bin-size-weighted |observed - predicted| over equal-width bins."""
    table = reliability_bins(is_positive, probability, bins)
    total = sum(row["n"] for row in table)
    return float(sum(row["n"] * abs(row["observed"] - row["mean_predicted"]) for row in table) / total)


def ece_by_chance(probability: np.ndarray, bins: int = 10, draws: int = 1000, seed: int = 0,
                  coverage: float = 0.95) -> list[float]:
    """The central ``coverage`` range of the ECE that a perfectly calibrated model giving these very
    probabilities would show by chance alone, its labels drawn as P(malignant) says (``draws`` times):
    on a few dozen films an ECE inside it says nothing against the calibration."""
    p = np.asarray(probability, dtype=np.float64)
    index = np.minimum((p * bins).astype(int), bins - 1)
    rng, eces = np.random.default_rng(seed), []
    step = max(1, 2_000_000 // max(p.size, 1))  # (draw, film) cells at a time: about 16 MB an array
    for start in range(0, draws, step):
        rows = min(step, draws - start)
        surprise = (rng.random((rows, p.size)) < p) - p  # a drawn label minus its probability
        cell = index + bins * np.arange(rows)[:, None]  # each draw's bins apart
        per_bin = np.bincount(cell.ravel(), weights=surprise.ravel(), minlength=rows * bins)
        eces.append(np.abs(per_bin.reshape(rows, bins)).sum(axis=1) / p.size)  # sum |observed - predicted|
    low, high = np.percentile(np.concatenate(eces), [50 * (1 - coverage), 50 * (1 + coverage)])
    return [float(low), float(high)]
