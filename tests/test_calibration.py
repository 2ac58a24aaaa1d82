"""Calibration: a fitted map turns over-confident scores into calibrated probabilities (lower ECE);
ECE and reliability bins are computed as defined."""

from __future__ import annotations

import numpy as np
import pytest

from mammo.calibration import (
    apply_calibration,
    expected_calibration_error,
    fit_calibration,
    reliability_bins,
)


def overconfident(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Three classes; scores are 4x the true log-odds (over-confident)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    logits = rng.normal(0, 1, (n, 3)) + 1.5 * np.eye(3)[y]
    return 4 * logits, y


def test_fitted_calibration_lowers_ece_on_new_data() -> None:
    scores, y = overconfident(2000, 0)
    weight, bias = fit_calibration(scores, y, 3)
    test_scores, test_y = overconfident(2000, 1)
    raw = apply_calibration(test_scores, np.eye(3).tolist(), [0, 0, 0])
    calibrated = apply_calibration(test_scores, weight, bias)
    before = expected_calibration_error(test_y == 2, raw[:, 2])
    after = expected_calibration_error(test_y == 2, calibrated[:, 2])
    assert after < 0.05 < before
    assert np.allclose(calibrated.sum(axis=1), 1)


def test_two_classes_and_an_absent_class() -> None:
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 300) * 2  # classes 0 and 2 only
    scores = (y == 2)[:, None] * 2.0 + rng.normal(0, 1, (300, 1))
    weight, bias = fit_calibration(scores, y, 3)
    probs = apply_calibration(scores, weight, bias)
    assert probs[:, 1].max() < 1e-6  # never seen: ~0
    assert probs[y == 2, 2].mean() > probs[y == 0, 2].mean()
    with pytest.raises(ValueError, match="two classes"):
        fit_calibration(scores, np.zeros(300, dtype=int), 3)


def test_ece_and_bins_by_hand() -> None:
    p = np.array([0.05, 0.05, 0.95, 0.95])
    y = np.array([False, True, True, True])
    bins = reliability_bins(y, p)
    assert [(b["n"], b["observed"]) for b in bins] == [(2, 0.5), (2, 1.0)]
    assert expected_calibration_error(y, p) == pytest.approx((2 * 0.45 + 2 * 0.05) / 4)
