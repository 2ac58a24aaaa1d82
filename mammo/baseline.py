"""A logistic-regression baseline on simple image features, trained and scored on the same films
as the CNN, so a reader sees what the deep model adds.

Features of each film, prepared as the model prepares it (breast crop, breast on the left) at a
fixed 64 px: a 16 x 16 thumbnail (256 values), a 32-bin histogram of the breast's intensities, and
texture statistics (mean, SD, skewness, kurtosis, 90th and 99th percentiles, mean gradient
magnitude, share of the square that is breast). Standardised, then a multinomial logistic
regression with balanced class weights and fixed regularisation (C = 0.1): nothing is tuned.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
from scipy import stats
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from .data import Example
from .metrics import cross_fitted_rates, cross_fitted_thresholds, evaluate_predictions, pick_threshold
from .preprocess import PreprocessConfig, prepare

__all__ = ["BASELINE_NAME", "film_features", "fit_baseline", "evaluate_baseline", "cross_validate_baseline"]

BASELINE_NAME = "logistic regression on a 16 x 16 thumbnail, an intensity histogram and texture statistics"
_SIDE, _THUMB, _BINS = 64, 16, 32
_BREAST = 0.05  # grey level above which a pixel counts as breast (the background is black)


def _square_features(square: np.ndarray) -> np.ndarray:
    """The features of one prepared ``_SIDE`` x ``_SIDE`` film in [0, 1]."""
    block = _SIDE // _THUMB
    thumbnail = square.reshape(_THUMB, block, _THUMB, block).mean(axis=(1, 3)).ravel()
    breast = square[square > _BREAST]
    breast = breast if breast.size else square.ravel()
    histogram = np.histogram(breast, bins=_BINS, range=(0, 1))[0] / breast.size
    gy, gx = np.gradient(square)
    texture = [breast.mean(), breast.std(), stats.skew(breast), stats.kurtosis(breast),
               *np.percentile(breast, [90, 99]), np.hypot(gx, gy).mean(), (square > _BREAST).mean()]
    return np.concatenate([thumbnail, histogram, np.nan_to_num(np.asarray(texture, dtype=np.float64))])


def film_features(examples: Sequence[Example], preprocess: PreprocessConfig, min_side: int) -> np.ndarray:
    """(n, features) for the films, read and prepared as the model reads them (at 64 px)."""
    small = replace(preprocess, image_size=_SIDE)
    return np.stack([_square_features(prepare(e.read(min_side), small)[0])
                     for e in examples])


def fit_baseline(features: np.ndarray, targets: np.ndarray) -> Pipeline:
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, class_weight="balanced", max_iter=5000))
    return model.fit(features, targets)


def _probs(model: Pipeline, features: np.ndarray, n_classes: int) -> np.ndarray:
    """Class probabilities in label order (a class absent from training gets 0)."""
    out = np.zeros((len(features), n_classes))
    out[:, model.classes_] = model.predict_proba(features)
    return out


def _targets(examples: Sequence[Example], labels: Sequence[str]) -> np.ndarray:
    return np.array([list(labels).index(e.label) for e in examples])


def evaluate_baseline(train: Sequence[Example], test: Sequence[Example], labels: Sequence[str],
                      preprocess: PreprocessConfig, min_side: int) -> dict:
    """The baseline trained on ``train`` and scored on ``test``: ``evaluate --json``'s keys.

    Its operating threshold follows the CNN's rule (90% malignant sensitivity), picked on the
    training films' 5-fold out-of-fold predictions, never on ``test``.
    """
    labels = list(labels)
    x_train, y_train = film_features(train, preprocess, min_side), _targets(train, labels)
    inner = np.zeros((len(train), len(labels)))
    groups = np.array([e.group for e in train])
    for held in _group_folds(groups, 5):
        inner[held] = _probs(fit_baseline(x_train[~held], y_train[~held]), x_train[held], len(labels))
    threshold = pick_threshold(y_train, inner, labels)
    model = fit_baseline(x_train, y_train)
    probs = _probs(model, film_features(test, preprocess, min_side), len(labels))
    metrics = evaluate_predictions(_targets(test, labels), probs, labels, threshold=threshold,
                                   groups=[e.group for e in test])
    return {"model": BASELINE_NAME, **metrics}


def _group_folds(groups: np.ndarray, folds: int) -> list[np.ndarray]:
    """Boolean masks of ``folds`` folds that keep each group (patient) in one fold."""
    unique = np.unique(groups)
    order = np.random.default_rng(0).permutation(len(unique))
    fold_of_group = {g: i % folds for i, g in zip(order, unique, strict=True)}
    fold = np.array([fold_of_group[g] for g in groups])
    return [fold == k for k in range(folds) if (fold == k).any()]


def cross_validate_baseline(examples: Sequence[Example], labels: Sequence[str], fold_of: np.ndarray,
                            preprocess: PreprocessConfig, min_side: int) -> dict:
    """The baseline over the CNN's cross-validation folds (``fold_of``): pooled out-of-fold
    metrics with ``evaluate --json``'s keys; the threshold is cross-fitted like the CNN's."""
    labels = list(labels)
    features, targets = film_features(examples, preprocess, min_side), _targets(examples, labels)
    probs = np.zeros((len(examples), len(labels)))
    for k in np.unique(fold_of):
        held = fold_of == k
        probs[held] = _probs(fit_baseline(features[~held], targets[~held]), features[held], len(labels))
    metrics = evaluate_predictions(targets, probs, labels, threshold=pick_threshold(targets, probs, labels),
                                   groups=[e.group for e in examples])
    thresholds = cross_fitted_thresholds(targets, probs, labels, fold_of)
    metrics.update(cross_fitted_rates(targets, probs, labels, thresholds))
    return {"model": BASELINE_NAME, "split": "cross-validation", **metrics}
