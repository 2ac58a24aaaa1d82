"""Tests of mammo.metrics against scikit-learn computed directly on seeded random data."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    precision_recall_fscore_support,
    roc_auc_score,
)

from mammo.metrics import (
    bootstrap_auc_ci,
    evaluate_predictions,
    malignant_index,
    paired_auc_difference,
    pick_threshold,
    recorded_estimate,
    roc_points,
    weighted_auc,
)

THREE = ["benign", "malignant", "normal"]
TWO = ["malignant", "normal_or_benign"]  # BreastMNIST order: malignant is column 0
KEYS = {
    "n", "classes", "accuracy", "balanced_accuracy", "auc_macro", "auc_malignant",
    "auc_malignant_ci95", "sensitivity", "specificity", "threshold", "confusion_matrix",
    "per_class", "roc", "ece_malignant", "ece_malignant_by_chance95", "reliability", "auc_abnormal",
    "auc_ci_resampled",
}


def noisy(n: int, k: int, seed: int, signal: float = 1.5) -> tuple[np.ndarray, np.ndarray]:
    """Labels and informative-but-imperfect softmax probabilities."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), y] += signal
    p = np.exp(logits)
    return y, p / p.sum(axis=1, keepdims=True)


def test_malignant_index():
    assert malignant_index(THREE) == 1
    assert malignant_index(TWO) == 0
    assert malignant_index(["benign", "normal"]) is None


def test_three_classes_match_sklearn():
    y, p = noisy(300, 3, seed=0)
    out = evaluate_predictions(y, p, THREE, threshold=0.4, n_resamples=200)
    pred = p.argmax(axis=1)
    m = y == 1
    assert set(out) == KEYS
    assert out["n"] == 300 and out["classes"] == THREE
    assert out["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert out["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, pred))
    assert out["auc_macro"] == pytest.approx(roc_auc_score(y, p, multi_class="ovr"))
    assert out["auc_malignant"] == pytest.approx(roc_auc_score(m, p[:, 1]))
    normal = y == 2  # abnormal (benign or malignant) vs normal, scored by 1 - P(normal)
    assert out["auc_abnormal"]["auc"] == pytest.approx(roc_auc_score(~normal, 1 - p[:, 2]))
    low, high = out["auc_abnormal"]["ci95"]
    assert low <= out["auc_abnormal"]["auc"] <= high
    assert out["threshold"] == 0.4
    assert out["sensitivity"] == pytest.approx(np.mean(p[m, 1] >= 0.4))
    assert out["specificity"] == pytest.approx(np.mean(p[~m, 1] < 0.4))
    assert out["confusion_matrix"] == confusion_matrix(y, pred).tolist()
    prec, rec, f1, sup = precision_recall_fscore_support(y, pred, zero_division=0)
    for i, name in enumerate(THREE):
        got = out["per_class"][name]
        assert got["precision"] == pytest.approx(prec[i])
        assert got["recall"] == pytest.approx(rec[i])
        assert got["f1"] == pytest.approx(f1[i])
        assert got["support"] == sup[i]
    lo, hi = out["auc_malignant_ci95"]
    assert lo < out["auc_malignant"] < hi
    chance_low, chance_high = out["ece_malignant_by_chance95"]  # 300 films: a calibrated model's is small
    assert 0 < chance_low < chance_high < 0.1
    # a per-epoch validation (no resamples): no interval, nor a chance range
    quick = evaluate_predictions(y, p, THREE, threshold=0.4, n_resamples=0)
    assert quick["auc_malignant_ci95"] is None and quick["ece_malignant_by_chance95"] is None


def test_two_classes_malignant_in_column_zero():
    y, p = noisy(200, 2, seed=3)
    out = evaluate_predictions(y, p, TWO)
    m = y == 0
    assert out["auc_malignant"] == pytest.approx(roc_auc_score(m, p[:, 0]))
    assert out["auc_malignant"] > 0.7  # the column-1 score would give 1 - AUC < 0.3
    assert out["auc_macro"] == pytest.approx(roc_auc_score(y, p[:, 1]))
    assert out["threshold"] == 0.5
    assert out["sensitivity"] == pytest.approx(np.mean(p[m, 0] >= 0.5))
    assert out["specificity"] == pytest.approx(np.mean(p[~m, 0] < 0.5))
    assert out["roc"]["tpr"][-1] == 1.0 and out["roc"]["fpr"][-1] == 1.0


def test_string_labels_equal_indices():
    y, p = noisy(60, 3, seed=4)
    by_name = evaluate_predictions(np.array(THREE)[y], p, THREE, n_resamples=50)
    assert by_name == evaluate_predictions(y, p, THREE, n_resamples=50)
    with pytest.raises(ValueError, match="not in classes"):
        evaluate_predictions(np.array(["cancer"] * 60), p, THREE)


def test_perfect_classifier():
    y = np.array([0, 1, 2, 1, 0, 2, 1, 1] * 3)  # 6 malignant films: enough for an interval
    p = np.eye(3)[y] * 0.9 + 0.1 / 3
    out = evaluate_predictions(y, p, THREE, n_resamples=100)
    assert out["accuracy"] == 1.0 and out["balanced_accuracy"] == 1.0
    assert out["auc_macro"] == 1.0 and out["auc_malignant"] == 1.0
    assert out["auc_malignant_ci95"] == pytest.approx([1.0, 1.0])
    assert out["sensitivity"] == 1.0 and out["specificity"] == 1.0


def test_bootstrap_ci_contains_auc_and_narrows_with_n():
    widths = []
    for n in (80, 2000):
        y, p = noisy(n, 2, seed=5, signal=1.0)
        auc = roc_auc_score(y == 0, p[:, 0])
        lo, hi = bootstrap_auc_ci(y == 0, p[:, 0], n_resamples=300, seed=1)
        assert lo < auc < hi
        widths.append(hi - lo)
    assert widths[1] < widths[0] / 2
    y, p = noisy(80, 2, seed=5)
    assert bootstrap_auc_ci(y == 0, p[:, 0], n_resamples=100, seed=7) == bootstrap_auc_ci(
        y == 0, p[:, 0], n_resamples=100, seed=7
    )


def test_bootstrap_ci_undefined_for_one_class():
    assert bootstrap_auc_ci(np.ones(10, bool), np.linspace(0, 1, 10)) is None


def test_bootstrap_ci_needs_five_films_of_each_class():
    """One malignant film ranked first gave the degenerate "1.00-1.00"; now no interval below five
    of either class, and five give one (resamples that miss them all are skipped)."""
    scores = np.linspace(0, 1, 30)[::-1]
    for positives, interval in ((1, None), (4, None), (5, (1.0, 1.0)), (26, None)):
        y = np.arange(30) < positives  # ranked first: every resample's AUC is 1
        ci = bootstrap_auc_ci(y, scores, n_resamples=200)
        assert ci == (interval if interval is None else pytest.approx(interval)), positives
    y = np.array([0, 1, 2, 1, 0, 1, 1, 1])  # one malignant film: an AUC, no interval
    out = evaluate_predictions(y, np.eye(3)[y] * 0.9 + 0.1 / 3, THREE, n_resamples=50)
    assert out["auc_malignant"] == 1.0 and out["auc_malignant_ci95"] is None


@pytest.mark.parametrize("target", [0.5, 0.8, 0.9, 1.0])
def test_pick_threshold_is_highest_reaching_target(target):
    y, p = noisy(250, 3, seed=6)
    t = pick_threshold(y, p, THREE, target_sensitivity=target)
    scores = p[y == 1, 1]
    assert np.mean(scores >= t) >= target
    assert np.mean(scores >= np.nextafter(t, np.inf)) < target
    at_t = evaluate_predictions(y, p, THREE, threshold=t, n_resamples=10)
    assert at_t["sensitivity"] >= target and at_t["threshold"] == t


def test_pick_threshold_defaults_without_malignant_cases():
    y, p = noisy(40, 3, seed=7)
    assert pick_threshold(np.where(y == 1, 0, y), p, THREE) == 0.5
    assert pick_threshold(y, p, ["benign", "normal", "other"]) == 0.5
    with pytest.raises(ValueError, match="target_sensitivity"):
        pick_threshold(y, p, THREE, target_sensitivity=0.0)


def test_no_malignant_class():
    y, p = noisy(120, 3, seed=8)
    classes = ["benign", "normal", "other"]
    out = evaluate_predictions(y, p, classes)
    assert out["auc_malignant"] is None and out["auc_malignant_ci95"] is None
    assert out["sensitivity"] is None and out["specificity"] is None and out["roc"] is None
    assert out["accuracy"] == pytest.approx(accuracy_score(y, p.argmax(axis=1)))
    assert out["auc_macro"] == pytest.approx(roc_auc_score(y, p, multi_class="ovr"))


def test_one_class_present_gives_none_aucs():
    y = np.ones(20, dtype=int)
    _, p = noisy(20, 3, seed=9)
    out = evaluate_predictions(y, p, THREE)
    assert out["auc_macro"] is None and out["auc_malignant"] is None
    assert out["auc_malignant_ci95"] is None and out["roc"] is None
    assert out["specificity"] is None
    assert out["sensitivity"] == pytest.approx(np.mean(p[:, 1] >= 0.5))


def test_absent_class_in_confusion_matrix_and_json_safe():
    y, p = noisy(90, 3, seed=10)
    y = np.where(y == 2, 0, y)  # class "normal" never occurs
    out = evaluate_predictions(y, p, THREE, n_resamples=50)
    cm = np.array(out["confusion_matrix"])
    assert cm.shape == (3, 3) and cm[2].sum() == 0 and cm.sum() == 90
    assert cm[:, 2].sum() == np.sum(p.argmax(axis=1) == 2)
    assert out["per_class"]["normal"]["support"] == 0
    # two present classes: OvR macro over those
    expected = np.mean([roc_auc_score(y == c, p[:, c]) for c in (0, 1)])
    assert out["auc_macro"] == pytest.approx(expected)
    assert json.loads(json.dumps(out, allow_nan=False)) == out


def test_roc_points_finite_and_monotone():
    y, p = noisy(100, 2, seed=11)
    roc = roc_points(y == 0, p[:, 0])
    assert len(roc["fpr"]) == len(roc["tpr"]) == len(roc["thresholds"])
    assert all(np.isfinite(roc["thresholds"]))
    assert roc["thresholds"][0] > p[:, 0].max()
    assert np.all(np.diff(roc["fpr"]) >= 0) and np.all(np.diff(roc["tpr"]) >= 0)
    json.dumps(roc, allow_nan=False)
    with pytest.raises(ValueError, match="both"):
        roc_points(np.zeros(5), np.arange(5.0))


def test_bad_shapes_are_rejected():
    y, p = noisy(10, 3, seed=12)
    with pytest.raises(ValueError, match="shape"):
        evaluate_predictions(y, p[:, :2], THREE)
    with pytest.raises(ValueError, match="shape"):
        evaluate_predictions(y[:5], p, THREE)
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        evaluate_predictions(y + 3, p, THREE)
    with pytest.raises(ValueError, match="NaN"):
        evaluate_predictions(y, np.full_like(p, np.nan), THREE)


def test_weighted_auc_is_sklearns_auc_with_sample_weights_and_ties() -> None:
    rng = np.random.default_rng(3)
    labels = rng.random(40) < 0.3
    labels[:2] = [True, False]
    values = np.round(rng.random(40), 1)  # one decimal: many ties
    weights = rng.integers(0, 4, (20, 40))
    weights[:, :2] = 1  # every row weighs both classes
    expected = [roc_auc_score(labels, values, sample_weight=w) for w in weights]
    assert weighted_auc(labels, values, weights) == pytest.approx(expected, abs=1e-12)
    assert weighted_auc(labels, values, np.ones(40)) == pytest.approx([roc_auc_score(labels, values)])
    for bad in (np.nan, np.inf):  # no rank: refused, as sklearn refuses it, not a made-up number
        broken = values.copy()
        broken[5] = bad
        with pytest.raises(ValueError, match="finite"):
            weighted_auc(labels, broken, weights)
        with pytest.raises(ValueError):
            roc_auc_score(labels, broken)


def test_an_interval_needs_five_patients_of_each_class_and_a_name_for_each_film() -> None:
    """Six malignant films of one woman drawn together never vary: their "interval" would be narrow
    and mean nothing (a review found one given)."""
    positive = np.arange(66) < 6
    scores = np.random.default_rng(0).random(66)
    patients = np.array(["P"] * 6 + [f"n{i}" for i in range(60)])
    assert bootstrap_auc_ci(positive, scores, n_resamples=200) is not None  # six films, one each
    assert bootstrap_auc_ci(positive, scores, n_resamples=200, groups=patients) is None
    with pytest.raises(ValueError, match="groups must name each of the 66 cases, got 65"):
        bootstrap_auc_ci(positive, scores, groups=patients[1:])


def test_a_patients_films_are_resampled_together() -> None:
    """Three copies of each woman's film are one woman, not three: resampling films would narrow the
    interval as if there were three times as many women; resampling patients gives the one-film interval."""
    y, p = noisy(60, 2, seed=5, signal=1.0)
    once = bootstrap_auc_ci(y == 0, p[:, 0], n_resamples=400, seed=1)
    tripled, scores = np.repeat(y == 0, 3), np.repeat(p[:, 0], 3)
    patients = np.repeat(np.arange(60), 3)
    assert bootstrap_auc_ci(tripled, scores, n_resamples=400, seed=1, groups=patients) == pytest.approx(once)
    films = bootstrap_auc_ci(tripled, scores, n_resamples=400, seed=1)
    assert films[1] - films[0] < 0.75 * (once[1] - once[0])
    three, probs, two = np.repeat(y, 3), np.repeat(p, 3, axis=0), ["benign", "malignant"]
    by_patient = evaluate_predictions(three, probs, two, n_resamples=400, seed=1, groups=patients)
    assert by_patient["auc_ci_resampled"] == "patients"
    by_film = evaluate_predictions(three, probs, two, n_resamples=400, seed=1)
    assert by_film["auc_ci_resampled"] == "films"
    low, high = by_patient["auc_malignant_ci95"]
    assert by_film["auc_malignant_ci95"][1] - by_film["auc_malignant_ci95"][0] < 0.75 * (high - low)
    assert evaluate_predictions(y, p, ["benign", "malignant"], groups=[str(i) for i in range(60)],
                                n_resamples=10)["auc_ci_resampled"] == "films"  # one film each


def test_paired_auc_difference_resamples_patients_and_sees_a_better_score() -> None:
    rng = np.random.default_rng(0)
    groups = np.repeat([f"p{i}" for i in range(60)], 2)  # two films per patient, one label each
    positive = np.repeat(rng.random(60) < 0.3, 2)
    noise = rng.normal(size=positive.size)
    weak, strong = positive + 2.0 * noise, positive + 0.3 * noise
    better = paired_auc_difference(positive, weak, strong, groups, n_resamples=500)
    expected = roc_auc_score(positive, strong) - roc_auc_score(positive, weak)
    assert better["difference"] == pytest.approx(expected)
    assert 0 < better["ci95"][0] < better["difference"] < better["ci95"][1]
    assert better["share_not_better"] < 0.05
    assert (better["n"], better["groups"], better["positives"]) == (120, 60, int(positive.sum()))
    assert better["positive_groups"] == int(positive.sum()) // 2  # two films a patient
    same = paired_auc_difference(positive, weak, weak, groups, n_resamples=100)
    assert same["difference"] == 0 and same["ci95"] == [0, 0] and same["share_not_better"] == 1
    assert paired_auc_difference(np.zeros(4), weak[:4], strong[:4], groups[:4]) is None  # one class only
    # two patients, one with each label: half the resamples hold one patient twice and are skipped
    answers = [paired_auc_difference(np.array([True, False]), weak[:2], strong[:2], ["a", "b"], n_resamples=1,
                                     seed=seed) for seed in range(10)]
    assert None in answers and all(a is None or a["resamples"] == 1 for a in answers)
    assert better["resamples"] == 500 and same["resamples"] == 100


@pytest.mark.parametrize("record, expected", [
    ({"cv": {"auc_malignant": 0.7}, "metrics": {"auc_malignant": 0.8}, "split": {"name": "holdout"}},
     ("out of fold", 0.7)),  # cross-validated: the figure its card quotes
    ({"cv": {"auc_malignant": None}, "metrics": {"auc_malignant": 0.8}, "split": {"name": "holdout"}},
     ("holdout", 0.8)),  # a cross-validation with no malignant AUC is no estimate of it
    ({"cv": None, "metrics": {"auc_malignant": 0.8}}, ("evaluation", 0.8)),
    ({"metrics": {"n": 3}}, None),
])
def test_a_versions_estimate_is_its_cross_validation_else_its_own_split(record, expected) -> None:
    estimate = recorded_estimate(record)
    assert (estimate and (estimate[0], estimate[1]["auc_malignant"])) == expected
