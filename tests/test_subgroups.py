"""Figures per subgroup (tissue type, density, age band): counts, AUCs with CIs, flags."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from mammo.data import Example
from mammo.model_card import render_model_card
from mammo.subgroups import subgroup_metrics

LABELS = ["normal", "benign", "malignant"]


def _films(n: int, seed: int = 0) -> tuple[list[Example], np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    targets = rng.integers(0, 3, n)
    logits = rng.normal(size=(n, 3))
    logits[np.arange(n), targets] += 1.0
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    tissue = rng.choice(["F", "G", "D"], n)
    examples = [Example(b"", LABELS[t], str(i), f"f{i}", {"tissue": tis, "age": 40 + (i % 45)})
                for i, (t, tis) in enumerate(zip(targets, tissue, strict=True))]
    return examples, targets, probs


def test_each_tissue_type_and_age_band_gets_its_own_figures() -> None:
    examples, targets, probs = _films(240)
    out = subgroup_metrics(examples, targets, probs, LABELS, threshold=0.3, n_resamples=200)
    assert set(out) == {"tissue", "age band"}  # no film carries a density
    assert all(type(name) is str for groups in out.values() for name in groups)  # orjson (gr.JSON) needs str
    import orjson

    orjson.dumps(out)  # what Gradio does with a retrain summary that holds these figures
    assert set(out["tissue"]) == {"fatty", "fatty-glandular", "dense-glandular"}
    assert set(out["age band"]) == {"under 50", "50-69", "70 and over"}
    for grouping in out.values():
        assert sum(g["n"] for g in grouping.values()) == 240
    dense = np.array([e.metadata["tissue"] == "D" for e in examples])
    figures = out["tissue"]["dense-glandular"]
    assert figures["counts"] == {label: int((targets[dense] == i).sum()) for i, label in enumerate(LABELS)}
    malignant = targets[dense] == 2
    assert figures["auc_malignant"]["auc"] == pytest.approx(roc_auc_score(malignant, probs[dense, 2]))
    low, high = figures["auc_malignant"]["ci95"]
    assert low <= figures["auc_malignant"]["auc"] <= high
    assert figures["sensitivity"] == pytest.approx(np.mean(probs[dense][malignant, 2] >= 0.3))
    assert figures["auc_abnormal"]["auc"] == pytest.approx(roc_auc_score(targets[dense] != 0,
                                                                         1 - probs[dense, 0]))


def test_a_subgroup_without_both_classes_says_so_and_the_card_shows_it() -> None:
    examples, targets, probs = _films(60, seed=1)
    for e in examples[:5]:
        e.metadata["density"] = "D"
    targets[:5] = 0  # only normal films have a density
    out = subgroup_metrics(examples, targets, probs, LABELS, n_resamples=100)
    assert out["density"]["ACR D"]["auc_malignant"] is None and out["density"]["ACR D"]["n"] == 5
    card = render_model_card({"mammo": {"metrics": {"n": 60, "classes": LABELS, "subgroups": out},
                                        "split": {"name": "holdout"}}})
    assert "## Subgroups: where it does worse" in card
    assert "| density | ACR D | 5 (5/0/0) | n/a (one class only) |" in card
