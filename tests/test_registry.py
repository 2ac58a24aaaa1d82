"""Model registry (local folder and Hub backends), promotion gate and model card.

The Hub tests run the real ``huggingface_hub`` client (and timm's ``hf-hub:`` loader) against
the Hub-protocol server in ``tests/hub_server.py`` on 127.0.0.1. Not covered: Xet transfer (the
fixture disables it, so files go through the legacy LFS protocol), real permissions, CDN
redirects and pagination.
"""

from __future__ import annotations

import dataclasses
import json
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import timm
import torch
import yaml
from helpers import SERVED
from huggingface_hub import ModelCard
from safetensors.torch import load_file
from timm.models import save_for_hf

from mammo.config import DISCLAIMER, settings
from mammo.errors import SettingsError
from mammo.metrics import ece_chance_said
from mammo.model_card import NOT_RECORDED, render_model_card
from mammo.store.gate import (
    ALARMS_REFUSED,
    FLAG_REFUSED,
    LINE_REFUSED,
    flag_kept,
    line_best,
    more_missed_allowed,
    promotion_decision,
)
from mammo.store.registry import (
    HubModelRegistry,
    LocalModelRegistry,
    NewerVersion,
    RegistryError,
    is_newer,
    open_registry,
)

torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]

LABELS = ["normal", "benign", "malignant"]
REPO = "mammo-tester/mammo-model"


def _metrics(auc: float, n: int = 40) -> dict:
    return {
        "n": n,
        "classes": LABELS,
        "accuracy": 0.7,
        "balanced_accuracy": 0.62,
        "auc_macro": 0.74,
        "auc_malignant": auc,
        "auc_malignant_ci95": [round(auc - 0.12, 3), round(min(auc + 0.08, 1.0), 3)],
        "sensitivity": 0.875,
        "specificity": 0.59,
        "threshold": 0.21,
        "confusion_matrix": [[20, 3, 2], [4, 2, 1], [1, 1, 6]],
        "per_class": {
            name: {"precision": 0.5, "recall": 0.6, "f1": 0.55, "support": s}
            for name, s in zip(LABELS, (25, 7, 8), strict=True)
        },
    }


def make_model(folder: Path, seed: int, auc: float = 0.8) -> Path:
    """A tiny real timm model folder in mammo's format (distinct weights per seed)."""
    torch.manual_seed(seed)
    model = timm.create_model("test_efficientnet", num_classes=3, in_chans=1)
    mammo = {
        "version": "v1",
        "parent": None,
        "created_at": f"2025-01-02T03:04:{seed % 60:02d}+00:00",
        "preprocess": {"crop": True, "orient": True, "image_size": 64},
        "threshold": 0.21,
        "metrics": _metrics(auc),
        "split": {"name": "mias-holdout", "description": "patients held out of training"},
        "data": {
            "sources": ["mini-MIAS (mias/)"],
            "n_train": 180,
            "n_val": 40,
            "n_cases": seed,
            "counts": {"normal": 115, "benign": 35, "malignant": 30},
        },
        "command": f"python -m mammo train --data mias --seed {seed} --out {folder.name}",
    }
    save_for_hf(
        model,
        str(folder),
        model_config={"label_names": LABELS, "mammo": mammo},
        model_args={"in_chans": 1},
        safe_serialization=True,
        data_config={"input_size": (1, 64, 64), "mean": (0.5,), "std": (0.5,)},
    )
    return folder


def weights(folder: Path) -> bytes:
    return (Path(folder) / "model.safetensors").read_bytes()


@pytest.fixture
def seed_dir(tmp_path: Path) -> Path:
    return make_model(tmp_path / "seed", seed=1, auc=0.8)


@pytest.fixture
def local_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Settings for the local backend with ``MAMMO_HOME`` in tmp; returns the home."""
    home = tmp_path / "home"
    monkeypatch.setenv("MAMMO_HOME", str(home))
    for key in ("MAMMO_MODEL_REPO", "HF_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    return home


# -- local backend -------------------------------------------------------------------------


def test_empty_registry_seeds_v1_keeping_metrics(local_env: Path, seed_dir: Path) -> None:
    registry = open_registry(settings(), seed=seed_dir)
    assert isinstance(registry, LocalModelRegistry)
    assert registry.latest() == "v1"
    assert weights(local_env / "models" / "v1") == weights(seed_dir)
    [row] = registry.versions()
    seed_metrics = json.loads((seed_dir / "config.json").read_text())["mammo"]["metrics"]
    assert row["version"] == "v1" and row["parent"] is None
    assert row["metrics"]["auc_malignant"] == seed_metrics["auc_malignant"]
    assert row["metrics"]["auc_malignant_ci95"] == seed_metrics["auc_malignant_ci95"]
    assert row["split"]["name"] == "mias-holdout"
    assert "0.800" in registry.card("v1")
    # Opening again does not seed a second time.
    assert open_registry(settings(), seed=seed_dir).latest() == "v1"


def test_packaged_versions_are_seeded_in_order_but_never_over_a_history_of_its_own(
    local_env: Path, seed_dir: Path, tmp_path: Path
) -> None:
    packaged_v2 = make_model(tmp_path / "v2", seed=2, auc=0.85)
    registry = open_registry(settings(), seed=[seed_dir])  # an existing install: v1 only
    assert registry.latest() == "v1"
    registry = open_registry(settings(), seed=[seed_dir, packaged_v2])  # an update ships v2
    assert registry.latest() == "v2" and registry.versions()[1]["parent"] == "v1"
    assert weights(local_env / "models" / "v2") == weights(packaged_v2)
    assert open_registry(settings(), seed=[seed_dir, packaged_v2]).latest() == "v2"  # once only

    other = tmp_path / "other-home"  # v1 + a retrained v2: the packaged v2 is not added
    retrained = make_model(tmp_path / "retrained", seed=3)
    registry = LocalModelRegistry(other)
    registry.seed([seed_dir])
    registry.publish(retrained)
    assert registry.seed([seed_dir, packaged_v2]) is None and registry.latest() == "v2"
    assert weights(other / "models" / "v2") == weights(retrained)
    own = LocalModelRegistry(tmp_path / "own-home")  # its own v1 (not the packaged one)
    own.seed([retrained])
    assert own.seed([seed_dir, packaged_v2]) is None and own.latest() == "v1"


def test_empty_registry_without_seed(local_env: Path, tmp_path: Path) -> None:
    registry = open_registry(settings(), seed=tmp_path / "no-such-seed")
    assert registry.latest() is None
    assert registry.versions() == []
    with pytest.raises(RegistryError, match="empty"):
        registry.load()


def test_publish_v2_with_parent_card_and_report(local_env: Path, seed_dir: Path, tmp_path: Path) -> None:
    registry = open_registry(settings(), seed=seed_dir)
    candidate = make_model(tmp_path / "candidate", seed=2, auc=0.85)
    report = {"promoted": True, "reason": "promoted: candidate auc_malignant 0.85 >= 0.79"}
    assert registry.publish(candidate, report=report) == "v2"

    config = json.loads((registry.load("v2") / "config.json").read_text())
    assert config["mammo"]["version"] == "v2"
    assert config["mammo"]["parent"] == "v1"
    assert config["mammo"]["report"] == report
    card = registry.card("v2")
    assert "— v2" in card and "| Parent version | v1 |" in card and report["reason"] in card
    # The candidate folder itself is not changed by publishing.
    assert json.loads((candidate / "config.json").read_text())["mammo"]["version"] == "v1"

    rows = registry.versions()
    assert [r["version"] for r in rows] == ["v1", "v2"]
    assert [r["metrics"]["auc_malignant"] for r in rows] == [0.8, 0.85]
    assert rows[1]["parent"] == "v1" and rows[1]["metrics"]["n"] == 40
    assert registry.latest() == "v2"
    assert weights(registry.load()) == weights(candidate)
    assert weights(registry.load("v1")) == weights(seed_dir)

    out = registry.pull("v1", tmp_path / "pulled")
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    assert load_file(out / "model.safetensors").keys() == load_file(seed_dir / "model.safetensors").keys()
    assert weights(out) == weights(seed_dir)
    with pytest.raises(RegistryError, match="already holds"):
        registry.pull("v2", out)
    with pytest.raises(RegistryError, match="No version 'v7' in the model registry"):
        registry.load("v7")


def test_publish_refuses_incomplete_folder(local_env: Path, tmp_path: Path) -> None:
    registry = open_registry(settings(), seed=tmp_path / "none")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").write_text("{}")
    with pytest.raises(RegistryError, match="no model.safetensors"):
        registry.publish(tmp_path / "half")
    (tmp_path / "half" / "model.safetensors").write_bytes(b"x")
    with pytest.raises(RegistryError, match="architecture"):
        registry.publish(tmp_path / "half")
    assert registry.latest() is None


_STUCK_PUBLISHER = """
import os, sys, time
from pathlib import Path
from mammo.store.registry import LocalModelRegistry

def stuck_rename(src, dst):  # files written and fsynced; stop just before the rename
    print("READY", flush=True)
    time.sleep(600)

os.rename = stuck_rename
LocalModelRegistry(Path(sys.argv[1])).publish(Path(sys.argv[2]))
"""


def test_publisher_killed_mid_publish_leaves_nothing_that_counts(
    local_env: Path, seed_dir: Path, tmp_path: Path
) -> None:
    registry = open_registry(settings(), seed=seed_dir)
    candidate = make_model(tmp_path / "candidate", seed=2)
    child = subprocess.Popen(
        [sys.executable, "-c", _STUCK_PUBLISHER, str(local_env), str(candidate)],
        cwd=Path(__file__).resolve().parents[1],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "READY"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    [leftover] = (local_env / "models").glob(".tmp-*")
    assert weights(leftover) == weights(candidate)  # complete, but never renamed
    assert registry.latest() == "v1" and [r["version"] for r in registry.versions()] == ["v1"]
    reopened = open_registry(settings(), seed=seed_dir)  # the dead child's lock is gone
    assert not leftover.exists()
    assert reopened.publish(candidate) == "v2"


def at_once(task: Callable[[int], None], count: int) -> None:
    """``task(0)`` .. ``task(count - 1)``, each in a thread, released together; returns when all end."""
    start = threading.Barrier(count)

    def run(i: int) -> None:
        start.wait()
        task(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_concurrent_publishers_get_distinct_consecutive_versions(
    local_env: Path, seed_dir: Path, tmp_path: Path
) -> None:
    registry = open_registry(settings(), seed=seed_dir)
    candidates = [make_model(tmp_path / f"c{i}", seed=10 + i) for i in range(8)]
    results: dict[int, str] = {}
    errors: list[BaseException] = []

    def publish(i: int) -> None:
        try:
            # Each thread opens its own registry object, as separate processes would.
            results[i] = LocalModelRegistry(local_env).publish(candidates[i])
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    at_once(publish, 8)
    assert not errors
    assert sorted(results.values(), key=lambda v: int(v[1:])) == [f"v{n}" for n in range(2, 10)]
    for i, version in results.items():
        assert weights(registry.load(version)) == weights(candidates[i])
    parents = {r["version"]: r["parent"] for r in registry.versions()}
    assert all(parents[f"v{n}"] == f"v{n - 1}" for n in range(2, 10))
    assert not list((local_env / "models").glob(".tmp-*"))


def test_rejected_candidates_are_kept_and_listed(local_env: Path, seed_dir: Path, tmp_path: Path) -> None:
    registry = open_registry(settings(), seed=seed_dir)
    candidate = make_model(tmp_path / "weak", seed=3, auc=0.6)
    report = {"promoted": False, "reason": "not promoted: 0.6000 < 0.7900"}
    rejected_id = registry.record_rejected(candidate, report)
    assert registry.latest() == "v1"
    assert [r["version"] for r in registry.versions()] == ["v1"]
    [row] = registry.rejected()
    assert row["id"] == rejected_id and row["report"] == report
    assert row["metrics"]["auc_malignant"] == 0.6
    assert weights(Path(row["path"])) == weights(candidate)
    assert json.loads((Path(row["path"]) / "report.json").read_text()) == report
    # The next published version is still v2.
    assert registry.publish(make_model(tmp_path / "good", seed=4)) == "v2"


def test_model_repo_without_token_is_refused(local_env: Path, monkeypatch) -> None:
    monkeypatch.setenv("MAMMO_MODEL_REPO", REPO)
    with pytest.raises(RegistryError, match="HF_TOKEN is not"):
        open_registry(settings())


# -- promotion gate -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("candidate", "promoted"),
    [(0.80, True), (0.7999, False), (0.95, True), (0.81, True)],
)
def test_gate_tolerance_boundary(candidate: float, promoted: bool) -> None:
    ok, reason = promotion_decision(
        {"auc_malignant": candidate, "n": 40}, {"auc_malignant": 0.81, "n": 40}, split="holdout"
    )
    assert ok is promoted
    assert f"{candidate:.4f}" in reason and "0.8100" in reason
    assert "auc_malignant" in reason and "holdout (n=40)" in reason
    assert reason.startswith("promoted" if promoted else "not promoted")


def test_gate_other_metric_and_tolerance() -> None:
    ok, reason = promotion_decision(
        {"balanced_accuracy": 0.55}, {"balanced_accuracy": 0.6}, "balanced_accuracy", 0.05
    )
    assert ok and "balanced_accuracy" in reason and "fixed evaluation set" in reason
    assert not promotion_decision(
        {"balanced_accuracy": 0.55}, {"balanced_accuracy": 0.6}, "balanced_accuracy", 0.0
    )[0]


@pytest.mark.parametrize("value", [None, float("nan"), "missing"])
def test_gate_rejects_candidate_without_metric(value) -> None:
    candidate = {} if value == "missing" else {"auc_malignant": value}
    ok, reason = promotion_decision(candidate, {"auc_malignant": 0.5})
    assert not ok and "no auc_malignant" in reason
    ok, _ = promotion_decision(candidate, None)
    assert not ok


def test_gate_never_promotes_a_candidate_that_gives_every_film_the_same_score() -> None:
    """As a whole-film stage collapsed on 128 px films did: AUC 0.50 on 6 films beat the served 0.40."""
    import numpy as np

    from mammo.metrics import evaluate_predictions

    labels, classes = np.array([0, 0, 1, 2, 0, 0]), ["normal", "benign", "malignant"]
    constant = evaluate_predictions(labels, np.tile([0.67, 0.17, 0.16], (6, 1)), classes)
    served = {"auc_malignant": 0.40, "n": 6}
    ok, reason = promotion_decision(constant, served, split="holdout")
    assert constant["auc_malignant"] == 0.5 and not ok
    assert "gives every film the same malignancy score" in reason and reason.endswith("on holdout (n=6)")
    assert not promotion_decision(constant, None)[0]  # not even as a first version
    varied = np.tile([0.67, 0.17, 0.16], (6, 1))
    varied[3, 2] += 1e-7  # one film scored (barely) otherwise: an ordinary comparison again
    ok, reason = promotion_decision(evaluate_predictions(labels, varied, classes), served, min_malignant=1)
    assert ok and reason.startswith("promoted: candidate auc_malignant")


def test_gate_needs_five_malignant_held_out_films_to_compare(monkeypatch: pytest.MonkeyPatch) -> None:
    """A walk retrained on a small base: its held-out set had one malignant film, both models ranked
    it first (AUC 1.00 each), and the candidate was promoted, with a review cut-off set on two films."""
    import numpy as np

    from mammo.metrics import evaluate_predictions

    classes = ["normal", "benign", "malignant"]
    for malignant, promoted in ((1, False), (4, False), (5, True)):
        labels = np.array([2] * malignant + [0] * 6 + [1] * 3)
        ranked = np.eye(3)[labels] * 0.8 + 0.2 / 3  # every malignant film ranked first
        ok, reason = promotion_decision(evaluate_predictions(labels, ranked, classes), {"auc_malignant": 1.0},
                                        split="holdout")
        assert ok is promoted, reason
        if not promoted:
            assert (f"not promoted: holdout (n={len(labels)}) holds {malignant} malignant film"
                    f"{'' if malignant == 1 else 's'}, fewer than the 5 the gate needs") in reason
    monkeypatch.delenv("MAMMO_GATE_MIN_MALIGNANT")  # conftest lowers it for the tests' small bases
    assert settings().gate_min_malignant == 5
    monkeypatch.setenv("MAMMO_GATE_MIN_MALIGNANT", "0")
    with pytest.raises(SettingsError, match="MAMMO_GATE_MIN_MALIGNANT"):
        settings()


def _flagging(auc: float, caught: int, films: int, specificity: float = 0.5) -> dict:
    """Metrics of a model whose review flag caught ``caught`` of ``films`` malignant films."""
    return {"auc_malignant": auc, "n": 38, "sensitivity": caught / films, "specificity": specificity,
            "per_class": {"malignant": {"support": films}}}


@pytest.mark.parametrize(("caught", "promoted"), [(1, False), (3, False), (4, True), (5, True), (6, True)])
def test_gate_refuses_a_candidate_whose_flag_misses_cancers_the_current_one_catches(caught: int,
                                                                                      promoted: bool) -> None:
    """A walk's 1-epoch retrain ranked as well (AUC 0.67 against 0.65) and was promoted, while its review
    flag caught 1 of the 6 held-out malignant films where the served version's caught 5."""
    ok, reason = promotion_decision(_flagging(0.67, caught, 6), _flagging(0.65, 5, 6), split="holdout")
    assert ok is promoted, reason
    said = (f"at its review cut-off the candidate flags {caught} of the 6 malignant films, "
            "the current version 5")
    assert said in reason and reason.endswith("on holdout (n=38)")
    assert reason.startswith(FLAG_REFUSED if not promoted else "promoted: candidate auc_malignant 0.6700")
    assert "candidate auc_malignant 0.6700 >= current 0.6500" in reason
    ok, reason = promotion_decision(_flagging(0.60, caught, 6), _flagging(0.65, 5, 6))
    assert not ok and "candidate auc_malignant 0.6000 < current" in reason  # the ranking is checked first
    assert "review cut-off" not in reason


def test_the_flag_keeps_to_the_most_malignant_films_a_flag_of_the_line_caught() -> None:
    """One fewer cancer flagged at every retrain would otherwise pass: 6, 5, 4, ... of 6."""
    most = line_best(None, "sensitivity", "films", "v2", flag_kept(_flagging(0.7, 6, 6)))
    served = _flagging(0.7, 5, 6)  # v3, promoted with one fewer
    most = line_best(most, "sensitivity", "films", "v3", flag_kept(served))
    assert most["version"] == "v2" and most["value"] == 1.0
    ok, reason = promotion_decision(_flagging(0.7, 4, 6), served, best_flag=most, split="holdout")
    assert not ok and reason.startswith(FLAG_REFUSED), reason
    assert ("the candidate flags 4 of the 6 malignant films, v2, the most of the served line, 6 (at most 1 "
            "fewer allowed)") in reason
    assert promotion_decision(_flagging(0.7, 5, 6), served, best_flag=most)[0]
    # a flag that flags every film tells nothing: it is not the line's to keep, and the line's is kept
    assert flag_kept(_flagging(0.7, 6, 6, specificity=0.0)) is None
    ok, reason = promotion_decision(_flagging(0.7, 4, 6), _flagging(0.69, 6, 6, 0.0), best_flag=most)
    assert not ok and "v2, the most of the served line, 6" in reason
    # a served version with no cut-off records no flag: the line's is kept all the same (a review)
    no_cut_off = {**_flagging(0.69, 6, 6), "sensitivity": None}
    assert not promotion_decision(_flagging(0.7, 1, 6), no_cut_off, best_flag=most)[0]
    assert promotion_decision(_flagging(0.7, 1, 6), no_cut_off)[0]  # nothing to keep
    # a flag that catches more than the served one's is never refused for the line
    assert promotion_decision(_flagging(0.7, 3, 6), _flagging(0.7, 2, 6), best_flag=most)[0]


def test_gate_allows_more_missed_films_in_proportion_to_the_set() -> None:
    assert [more_missed_allowed(films) for films in (1, 6, 19, 20, 40, 100)] == [1, 1, 1, 1, 2, 5]
    assert promotion_decision(_flagging(0.8, 36, 40), _flagging(0.8, 38, 40))[0]
    assert not promotion_decision(_flagging(0.8, 35, 40), _flagging(0.8, 38, 40))[0]
    # a version that records no review cut-off (no sensitivity) is compared by its ranking alone
    assert promotion_decision(_flagging(0.8, 0, 40), {"auc_malignant": 0.8})[0]


def test_gate_keeps_no_flag_that_flags_every_film() -> None:
    """v2's cut-off flags every held-out film (sensitivity 1, specificity 0): served again, it would
    otherwise refuse every candidate whose cut-off tells films apart."""
    ok, reason = promotion_decision(_flagging(0.7, 4, 6, 0.6), _flagging(0.69, 6, 6, 0.0))
    assert ok and "the current version's flag flags every film, so there is no flag to compare" in reason
    assert not promotion_decision(_flagging(0.7, 4, 6, 0.6), _flagging(0.69, 6, 6, 0.03))[0]


def test_gate_keeps_to_the_best_version_of_the_line_less_the_tolerance() -> None:
    """Served 0.80, then 0.79, 0.78, ...: each within 0.01 of the last, the line would drift down."""
    best = line_best(None, "auc_malignant", "films", "v2", 0.80)
    assert best == {"metric": "auc_malignant", "films": "films", "version": "v2", "value": 0.80}
    ok, _ = promotion_decision({"auc_malignant": 0.79}, {"auc_malignant": 0.80}, best=best)
    assert ok  # v3 at 0.79 is promoted; its report keeps v2's 0.80 as the best of the line
    best = line_best(best, "auc_malignant", "films", "v3", 0.79)
    assert best["version"] == "v2" and best["value"] == 0.80
    ok, reason = promotion_decision({"auc_malignant": 0.785, "n": 40}, {"auc_malignant": 0.79}, best=best,
                                    split="holdout")
    assert not ok and reason.startswith(LINE_REFUSED), reason
    assert ("candidate auc_malignant 0.7850 >= current 0.7900 - tolerance 0.01 = 0.7800, but < v2's 0.8000 "
            "- tolerance 0.01 = 0.7900") in reason and reason.endswith("on holdout (n=40)")
    assert promotion_decision({"auc_malignant": 0.79}, {"auc_malignant": 0.79}, best=best)[0]  # boundary
    # a best on other films or by another metric is another line's: the served version's score alone counts
    for films, metric in (("other films", "auc_malignant"), ("films", "accuracy")):
        assert line_best(best, metric, films, "v3", 0.79)["version"] == "v3"
    assert line_best({"metric": "auc_malignant", "films": "films", "version": "v2", "value": None},
                     "auc_malignant", "films", "v3", None) is None
    # the line's best rises with a served version that scores higher than the best it was held to
    assert line_best(best, "auc_malignant", "films", "v4", 0.83) == {**best, "version": "v4", "value": 0.83}
    for damaged in ({"metric": "auc_malignant", "films": "films", "value": 0.9}, "0.9", [0.9]):  # no version
        assert line_best(damaged, "auc_malignant", "films", "v4", 0.7)["version"] == "v4"
    # a served version below the line's bar (a tolerance lowered since): a candidate that beats it is
    # never refused for the line, one that does not is (a review found the better one refused)
    high = line_best({"metric": "auc_malignant", "films": "films", "version": "v1", "value": 0.90},
                     "auc_malignant", "films", "v5", 0.80)
    assert promotion_decision({"auc_malignant": 0.85}, {"auc_malignant": 0.80}, best=high)[0]
    ok, reason = promotion_decision({"auc_malignant": 0.795}, {"auc_malignant": 0.80}, best=high)
    assert not ok and reason.startswith(LINE_REFUSED)
    # a candidate below the served version is refused by that comparison, as before
    ok, reason = promotion_decision({"auc_malignant": 0.70}, {"auc_malignant": 0.79}, best=best)
    assert not ok and reason.startswith("not promoted: candidate auc_malignant 0.7000 < current")


def test_a_sensitivity_gate_refuses_a_flag_that_flags_every_film() -> None:
    """Sensitivity at each model's own cut-off: a cut-off of 0 flags every film and scores 1."""
    served = _flagging(0.7, 4, 6, specificity=0.75)  # 38 films, 6 malignant: 8 of the other 32 flagged
    everything = _flagging(0.7, 6, 6, specificity=0.0)
    assert promotion_decision(everything, served, "auc_malignant")[0]  # the ranking gate does not look
    almost = _flagging(0.7, 6, 6, specificity=2 / 32)
    ok, reason = promotion_decision(almost, served, "sensitivity", split="holdout")
    assert not ok and reason.startswith(ALARMS_REFUSED), reason
    assert ("at its review cut-off the candidate flags 30 of the 32 films that are not malignant, the "
            "current version 8 (at most 1 more allowed)") in reason
    ok, reason = promotion_decision(_flagging(0.7, 6, 6, specificity=23 / 32), served, "sensitivity")
    assert ok and "the candidate flags 9 of the 32 films that are not malignant" in reason
    assert "the candidate flags 6 of the 6 malignant films" in reason  # both checks said
    assert not promotion_decision(_flagging(0.7, 6, 6, specificity=22 / 32), served, "sensitivity")[0]
    # one more false alarm at every retrain would reach "flag everything": the line's fewest holds
    fewest = line_best(None, "specificity", "films", "v2", 0.75)
    worse_served = _flagging(0.7, 6, 6, specificity=23 / 32)  # v3 flags 9, v2 flagged 8
    fewest = line_best(fewest, "specificity", "films", "v3", 23 / 32)
    ok, reason = promotion_decision(_flagging(0.7, 6, 6, specificity=22 / 32), worse_served, "sensitivity",
                                    best_specificity=fewest)
    assert not ok and ("flags 10 of the 32 films that are not malignant, v2, the fewest of the served "
                       "line, 8 (at most 1 more allowed)") in reason
    assert promotion_decision(_flagging(0.7, 6, 6, specificity=23 / 32), worse_served, "sensitivity",
                              best_specificity=fewest)[0]
    # a candidate that flags every film is refused whatever the served flag: one without a cut-off, one
    # that flags every film or all but one, or one with no specificity recorded (reviews found each
    # promoted it)
    for unflagged in ({"auc_malignant": 0.7, "n": 38}, everything, _flagging(0.7, 6, 6, specificity=1 / 32),
                      {**served, "specificity": None}, served):
        ok, reason = promotion_decision(everything, unflagged, "sensitivity", split="holdout")
        assert not ok and reason == (f"{ALARMS_REFUSED}: at its review cut-off the candidate flags every "
                                     "film that is not malignant (specificity 0), so its sensitivity 1.0000 "
                                     "tells nothing; evaluated on holdout (n=38)"), reason
    assert promotion_decision(_flagging(0.7, 6, 6, specificity=0.5), {"auc_malignant": 0.7}, "sensitivity")[0]


def test_gate_without_current_version_or_current_metric() -> None:
    ok, reason = promotion_decision({"auc_malignant": 0.3}, None)
    assert ok and "no current version" in reason and "0.3000" in reason
    ok, reason = promotion_decision({"auc_malignant": 0.3}, {"auc_malignant": None})
    assert ok and "current version has no auc_malignant" in reason
    with pytest.raises(ValueError):
        promotion_decision({"auc_malignant": 0.3}, None, tolerance=-0.1)


# -- model card -------------------------------------------------------------------------------


def test_model_card_from_full_config(seed_dir: Path) -> None:
    config = json.loads((seed_dir / "config.json").read_text())
    config["mammo"]["published_at"] = "2025-02-03T00:00:00+00:00"
    roc = {"fpr": [0.0, 0.5, 1.0], "tpr": [0.0, 0.9, 1.0], "thresholds": [1.9, 0.4, 0.0]}
    config["mammo"]["report"] = {
        "reason": "promoted: candidate auc_malignant 0.8000 >= ...",
        "candidate_metrics": {"auc_malignant": 0.8, "roc": roc},
    }
    config["mammo"]["metrics"]["auc_abnormal"] = {"auc": 0.71, "ci95": [0.6, 0.8]}
    config["mammo"]["metrics"].update(ece_malignant=0.073, ece_malignant_by_chance95=[0.0813, 0.1774])
    config["mammo"]["baseline"] = {**config["mammo"]["metrics"], "model": "logistic regression on X",
                                   "auc_malignant": 0.61, "auc_abnormal": {"auc": 0.52, "ci95": None}}
    card = render_model_card(config)
    front = yaml.safe_load(card.split("---")[1])
    assert front["library_name"] == "timm" and front["license"] == "apache-2.0"
    assert "## Baseline beside the CNN" in card and "a logistic regression on X (fixed settings" in card
    row = "| mias-holdout: patients held out of training | baseline | 40 | 0.610 | 0.680–0.880 | 0.520 |"
    assert row in card
    assert front["pipeline_tag"] == "image-classification"
    assert {"mammography", "research-only", "medical-imaging"} <= set(front["tags"])
    assert DISCLAIMER in card
    assert "| AUC, malignant vs rest | 0.800 |" in card
    assert "| AUC malignant vs rest, 95% CI | 0.680–0.880 |" in card
    assert "| Cases (n) | 40 |" in card and "n = 40" in card and "bootstrap" in card
    # an ECE on 40 films beside what a perfectly calibrated model shows there by chance
    assert ("| Calibration error (ECE) of P(malignant) | 0.073 (a perfectly calibrated model giving these "
            "same scores shows 0.08–0.18 on these films by chance, 95% of the time) |") in card
    assert ece_chance_said({}) == ""  # a model made before the range was recorded: the ECE alone
    assert "mias-holdout: patients held out of training" in card
    assert "P(malignant) >= **0.210**" in card
    assert "| **malignant** | 1 | 1 | 6 |" in card
    assert "`test_efficientnet`" in card and "`normal`, `benign`, `malignant`" in card
    assert "python -m mammo train --data mias --seed 1" in card
    assert "| Parent version | none (first version) |" in card
    assert "| Crop to the breast region | yes |" in card
    assert "promoted: candidate auc_malignant 0.8000 >= ..." in card
    assert '"auc_malignant": 0.8' in card and "fpr" not in card  # curves left out of the card
    assert "Excerpta Medica, International Congress Series 1069, pp375-378" in card
    assert NOT_RECORDED not in card


@pytest.mark.parametrize(("training", "steps"), [
    ({"epochs": 12, "patch_size": 96, "image_size": 512}, ["Patch classifier", "Whole film", "Calibration"]),
    ({"epochs": 0, "init": "mammo/weights/v2", "film_epochs": 6, "film_lr": 1e-4, "film_batch_size": 8},
     ["Patch classifier", "Whole film", "Whole-film fine-tuning", "Calibration"]),
])
def test_the_card_describes_the_patch_recipes_stages(training: dict, steps: list[str]) -> None:
    mammo = {"head": {"kind": "patch", "top_k": 4}, "training": training,
             "cv": {"init_folds": "runs/v2-folds"} if not training["epochs"] else {}}
    card = render_model_card({"mammo": mammo})
    assert [line.split("**")[1].rstrip(".") for line in card.splitlines()
            if re.match(r"^\d\. \*\*", line)] == steps
    if training["epochs"]:
        assert "12 epochs (fixed; no early stopping)" in card
    else:  # the patch network came with v2; its folds started from v2's own fold models
        assert "started from (`mammo/weights/v2`" in card and "no further patch epochs" in card
        assert "(`runs/v2-folds`)" in card and "6 epochs (fixed; learning rate 0.0001, 8 films" in card
        assert "8 films per batch; vertical flips, rotation up to 10 degrees, brightness/contrast)" in card
        said = "rotation up to 10 degrees, brightness"
        recorded = {**mammo, "training": {**training, "film_augmentation": said}}
        assert f"8 films per batch; {said})" in render_model_card({"mammo": recorded})


def test_model_card_carries_a_model_index_the_hub_reads() -> None:
    config = json.loads((ROOT / "mammo" / "weights" / SERVED / "config.json").read_text())
    mammo = config["mammo"]
    results = ModelCard(render_model_card(config)).data.eval_results  # parsed as the Hub parses it
    figures = {(r.dataset_split, r.metric_name): r.metric_value for r in results}
    assert figures[("cross-validation", "AUC malignant vs rest")] == round(mammo["cv"]["auc_malignant"], 4)
    abnormal = mammo["cv"]["auc_abnormal"]["auc"]
    assert figures[("cross-validation", "AUC abnormal vs normal")] == round(abnormal, 4)
    assert figures[("holdout", "AUC malignant vs rest")] == round(mammo["metrics"]["auc_malignant"], 4)
    assert figures[("holdout", "expected calibration error of P(malignant)")] == round(
        mammo["metrics"]["ece_malignant"], 4)
    assert results[0].dataset_split == "cross-validation"  # the estimate to quote comes first
    assert {r.dataset_name for r in results} == {"mias1024 (cross-validation)", "mias1024 (holdout)"}
    assert not any(r.verified for r in results)
    assert ModelCard(render_model_card({})).data.eval_results is None  # nothing measured: no index
    snapshot = "/home/u/.cache/huggingface/hub/datasets--owner--mias/snapshots/ab12"  # a Hub base repo
    hub_data = {"mammo": {"metrics": {"auc_malignant": 0.7, "accuracy": float("nan")},
                          "split": {"name": "holdout"}, "data": {"sources": [snapshot]}}}
    (only,) = ModelCard(render_model_card(hub_data)).data.eval_results  # NaN left out
    assert (only.dataset_type, only.metric_value) == ("owner/mias", 0.7)  # the repo, not the commit
    hub_data["mammo"]["data"]["sources"] = ["hf://datasets/owner/mias@ab12"]  # as a retrain records it
    (only,) = ModelCard(render_model_card(hub_data)).data.eval_results
    assert only.dataset_type == "owner/mias" and only.dataset_name == "owner/mias (holdout)"


def test_model_card_says_whether_the_interval_resampled_patients_or_films() -> None:
    def card(**metrics) -> str:
        return render_model_card({"mammo": {"metrics": {"n": 38, "auc_malignant": 0.7,
                                                        "auc_malignant_ci95": [0.5, 0.9], **metrics}}})

    assert "a percentile bootstrap over patients (n = 38 films): whole patients are resampled" in card(
        auc_ci_resampled="patients")
    for older in (card(), card(auc_ci_resampled="films")):  # v1-v3 recorded intervals over films
        assert "a percentile bootstrap over cases (n = 38): cases are resampled" in older
    # the fold, baseline and subgroup tables name the unit of their intervals too (a review found them
    # silent), from the evaluation each row belongs to
    subgroup = {"n": 20, "auc_malignant": {"auc": 0.6, "ci95": [0.4, 0.8]}}
    by_patient = {"n": 40, "auc_malignant": 0.7, "auc_malignant_ci95": [0.5, 0.9],
                  "auc_ci_resampled": "patients", "subgroups": {"tissue": {"F": subgroup}}}
    folds = [{"fold": 0, "n": 20, "auc_malignant": 0.6, "auc_malignant_ci95": [0.4, 0.8]}]
    mammo = {"metrics": by_patient, "baseline": {**by_patient, "model": "logistic regression"},
             "cv": {**by_patient, "n_folds": 2, "folds": folds}}
    patients = render_model_card({"mammo": mammo})
    assert "| fold | films | AUC malignant | 95% CI, by patient | AUC macro |" in patients
    assert "| this model (CNN) | 40 | 0.700 | 0.500–0.900, by patient |" in patients
    assert "| tissue | F | 20 () | 0.600 (0.400–0.800, by patient) |" in patients
    films = {**by_patient, "auc_ci_resampled": "films"}
    over_films = render_model_card({"mammo": {"metrics": films, "baseline": films,
                                              "cv": {**films, "n_folds": 2, "folds": folds}}})
    assert "| fold | films | AUC malignant | 95% CI | AUC macro |" in over_films
    assert "0.500–0.900 |" in over_films and "(0.400–0.800) |" in over_films


def test_model_card_names_how_each_fold_was_called_and_drops_intervals_on_too_few_films() -> None:
    """An out-of-fold threshold picked through maps that had learnt the fold's labels (v2, v3), and
    subgroups called at the pooled threshold, are said to be optimistic; a cross-validation that fits
    both on the other folds alone is not. An interval recorded on fewer than 5 films of a class (v3's
    "1.000 (1.000–1.000)" on 2 malignant films) is not shown (a review)."""
    from mammo.metrics import FEWEST_FOR_AN_INTERVAL, NESTED_CROSS_FITTING

    few = {"n": 10, "counts": {"normal": 5, "benign": 3, "malignant": 2},
           "auc_malignant": {"auc": 1.0, "ci95": [1.0, 1.0]},
           "auc_abnormal": {"auc": 0.8, "ci95": [0.4, 1.0]}}  # 5 normal, 5 abnormal: enough
    enough = {"n": 30, "counts": {"normal": 15, "benign": 5, "malignant": 10},
              "auc_malignant": {"auc": 0.7, "ci95": [0.5, 0.9]}, "auc_abnormal": None}
    cv = {"n": 40, "n_folds": 2, "auc_malignant": 0.7, "sensitivity": 0.9, "specificity": 0.3,
          "sensitivity_cross_fitted": 0.85, "specificity_cross_fitted": 0.25,
          "subgroups": {"tissue": {"fatty": few, "dense": enough}}}
    older = render_model_card({"mammo": {"cv": cv}})
    assert ("| tissue | fatty | 10 (5/3/2) | 1.000 (no interval: 2 films of a class) | 0.800 (0.400–1.000) |"
            in older)
    assert "| tissue | dense | 30 (15/5/10) | 0.700 (0.500–0.900) | n/a (one class only) |" in older
    assert f"no interval is given on fewer than {FEWEST_FOR_AN_INTERVAL} films of a class" in older
    assert "at the one threshold fitted on these same out-of-fold predictions (optimistic" in older
    assert "whose calibration had learnt this fold's labels (somewhat optimistic" in older
    assert "each film at a threshold picked on the other folds, slightly optimistic" in older
    nested = render_model_card({"mammo": {"cv": {**cv, "cross_fitting": NESTED_CROSS_FITTING}}})
    assert "its calibration and its threshold fitted on the other folds alone" in nested
    assert "out of fold, each film is called at the threshold fitted on the other folds." in nested
    assert ("| Sensitivity (malignant, each film at the threshold fitted on the other folds) | 0.850 |"
            in nested)
    assert "optimistic: it was picked on them" not in nested and "had learnt" not in nested
    rule = {"threshold": 0.088, "threshold_rule": "cut-off reaching 90% sensitivity"}
    not_on_served = "not on those of the calibration this model serves"
    v3_like = render_model_card({"mammo": {"cv": cv, **rule}})  # v2's and v3's rule
    assert not_on_served in v3_like and '("cut-off reaching 90% sensitivity") need not hold' in v3_like
    assert not_on_served not in render_model_card(
        {"mammo": {"cv": {**cv, "cross_fitting": NESTED_CROSS_FITTING}, **rule}})
    assert not_on_served not in render_model_card({"mammo": rule})  # no cross-validation: no such pick


def test_model_card_missing_fields_say_not_recorded() -> None:
    card = render_model_card({"architecture": "x", "mammo": {"metrics": {"auc_malignant": 0.7}}})
    assert DISCLAIMER in card
    assert "| AUC, malignant vs rest | 0.700 |" in card
    assert f"| AUC malignant vs rest, 95% CI | {NOT_RECORDED} |" in card
    assert f"| Cases (n) | {NOT_RECORDED} |" in card and "n not recorded" in card
    assert f"Evaluation split: {NOT_RECORDED}." in card
    assert f"The operating threshold was {NOT_RECORDED}." in card
    assert f"| Parent version | {NOT_RECORDED} |" in card
    assert not re.search(r"\b(None|nan|null)\b", card)
    assert render_model_card({}).count(NOT_RECORDED) > 10
    # recorded, as None: too few films of a class for an interval (not "not recorded")
    eight = {"n": 8, "auc_malignant": 1.0, "auc_malignant_ci95": None}
    few = render_model_card({"mammo": {"metrics": eight}})
    assert "| AUC malignant vs rest, 95% CI | none (fewer than 5 films of a class) |" in few
    few = render_model_card({"mammo": {"metrics": {**eight, "auc_ci_resampled": "patients"}}})
    assert "| AUC malignant vs rest, 95% CI | none (fewer than 5 films or patients of a class) |" in few


# -- Hub backend ------------------------------------------------------------------------------


@pytest.fixture
def hub_env(hub_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Settings for the Hub backend against the test server (token set by the fixture)."""
    monkeypatch.setenv("MAMMO_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MAMMO_MODEL_REPO", REPO)
    return hub_server


def test_hub_publish_keeps_every_version_and_timm_loads_latest(
    hub_env, seed_dir: Path, tmp_path: Path
) -> None:
    from huggingface_hub import HfApi, hf_hub_download

    registry = open_registry(settings(), seed=seed_dir)
    assert isinstance(registry, HubModelRegistry)
    assert registry.latest() == "v1"
    candidate = make_model(tmp_path / "candidate", seed=2, auc=0.85)
    assert registry.publish(candidate, report={"promoted": True}) == "v2"

    v1 = hf_hub_download(REPO, "model.safetensors", revision="v1")
    assert Path(v1).read_bytes() == weights(seed_dir)
    v2 = hf_hub_download(REPO, "model.safetensors", revision="v2")
    assert Path(v2).read_bytes() == weights(candidate)
    tags = {t.name for t in HfApi().list_repo_refs(REPO).tags}
    assert tags == {"v1", "v2"}
    config = json.loads(hub_env.read(REPO, "config.json", "model", "v2"))
    assert config["mammo"]["version"] == "v2" and config["mammo"]["parent"] == "v1"
    assert "— v2" in hub_env.read(REPO, "README.md", "model").decode()

    model = timm.create_model(f"hf-hub:{REPO}", pretrained=True)
    expected = load_file(candidate / "model.safetensors")
    loaded = model.state_dict()
    assert all(torch.equal(loaded[key], value) for key, value in expected.items())

    assert [r["version"] for r in registry.versions()] == ["v1", "v2"]
    assert registry.versions()[1]["metrics"]["auc_malignant"] == 0.85
    assert weights(registry.load("v1")) == weights(seed_dir)
    assert weights(registry.pull("v2", tmp_path / "pulled")) == weights(candidate)
    assert "0.850" in registry.card("v2")


def test_hub_backend_never_uses_the_local_folder(
    hub_env, local_env: Path, seed_dir: Path, tmp_path: Path, monkeypatch
) -> None:
    # A local registry with three versions in the same MAMMO_HOME ...
    local = LocalModelRegistry(local_env)
    for i in range(3):
        local.publish(make_model(tmp_path / f"local{i}", seed=20 + i))
    assert local.latest() == "v3"
    # ... must not be what the Hub backend reports or serves.
    monkeypatch.setenv("HF_TOKEN", hub_env.token)
    monkeypatch.setenv("MAMMO_MODEL_REPO", REPO)
    registry = open_registry(settings(), seed=seed_dir)
    assert registry.latest() == "v1"
    assert weights(registry.load()) == weights(seed_dir)
    assert hub_env.files(REPO, "model") == [
        ".gitattributes",
        "README.md",
        "config.json",
        "model.safetensors",
    ]
    calls_before = len(hub_env.calls)
    registry.latest()
    assert len(hub_env.calls) > calls_before, "latest() must ask the Hub"


def test_hub_bad_token_is_a_clear_error(hub_env, seed_dir: Path, monkeypatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_not_the_right_token_123")
    with pytest.raises(RegistryError, match="token rejected"):
        open_registry(settings(), seed=seed_dir)


def test_hub_down_serves_cached_versions_and_refuses_to_publish(
    hub_env, seed_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    registry = open_registry(settings(), seed=seed_dir)
    registry.load("v1")  # cached
    hub_env.stop()
    with caplog.at_level("WARNING", logger="mammo.store.registry.hub"):
        assert [registry.latest() for _ in range(3)] == ["v1"] * 3  # as the app checks every 30 s
    assert len([r for r in caplog.records if "cached at" in r.getMessage()]) == 1  # once per outage
    reopened = open_registry(settings(), seed=seed_dir)  # a restart during the outage
    assert reopened.latest() == "v1"
    assert weights(reopened.load("v1")) == weights(seed_dir)
    with pytest.raises(RegistryError, match="unreachable"):
        reopened.publish(make_model(tmp_path / "c", seed=2))
    fresh = dataclasses.replace(settings(), home=tmp_path / "fresh")
    with pytest.raises(RegistryError, match="unreachable.*No model versions are cached"):
        open_registry(fresh, seed=seed_dir)


def test_hub_down_a_version_whose_config_alone_is_cached_is_said_unreachable(
    hub_env, seed_dir: Path, tmp_path: Path
) -> None:
    """The Models tab reads a version's config alone; with the Hub down, loading that version gave
    the cached snapshot as it was, and a rollback said it "has no model.safetensors" (a Hub probe)."""
    registry = open_registry(settings(), seed=seed_dir)
    registry.publish(make_model(tmp_path / "c", seed=2))
    assert registry.config("v1")["architecture"]  # read, as the Models tab reads it
    registry.load("v2")  # served: cached whole
    hub_env.stop()
    started = time.monotonic()
    with pytest.raises(RegistryError, match=r"unreachable.*downloading v1"):
        registry.load("v1")
    assert time.monotonic() - started < 5  # said at once (a rollback waited 23 s in the retry loop)
    assert weights(registry.load("v2")) == weights(tmp_path / "c")  # a version wholly cached is served
    hub_env.restart()
    assert weights(registry.load("v1")) == weights(seed_dir)  # whole once the Hub answers


def test_hub_untagged_version_commit_is_tagged_at_the_next_listing(hub_env, seed_dir: Path,
                                                                    tmp_path: Path) -> None:
    """A version committed just before its publisher lost the Hub stayed untagged: unlisted and unserved
    by every app (following every few seconds) until the next publish or a restart (a Hub probe)."""
    from huggingface_hub import HfApi

    registry = open_registry(settings(), seed=seed_dir)
    registry.publish(make_model(tmp_path / "c", seed=2))
    HfApi().delete_tag(REPO, tag="v2")  # as if tagging had failed after the commit
    follower = open_registry(settings(), seed=seed_dir)
    HfApi().delete_tag(REPO, tag="v2")  # (the open tagged it): untagged again
    assert follower.latest() == "v2"  # the app's follow tick lists it, tagged
    assert "v2" in [t.name for t in HfApi().list_repo_refs(REPO, repo_type="model").tags]
    hub_env.stop()
    assert registry.latest() == "v2"  # from the refs cached here: no tagging while the Hub is down
    hub_env.restart()
    assert registry.publish(make_model(tmp_path / "d", seed=3)) == "v3"


def test_hub_lost_commit_answer_publishes_once(hub_env, seed_dir: Path, tmp_path: Path) -> None:
    registry = open_registry(settings(), seed=seed_dir)
    commits = hub_env.commit_count(REPO, "model")
    hub_env.lose_commit_responses = 1
    assert registry.publish(make_model(tmp_path / "c", seed=2)) == "v2"
    assert hub_env.commit_count(REPO, "model") == commits + 1
    assert registry.latest() == "v2"


def test_hub_concurrent_publishers_renumber(hub_env, seed_dir: Path, tmp_path: Path) -> None:
    registry = open_registry(settings(), seed=seed_dir)
    candidates = [make_model(tmp_path / f"c{i}", seed=30 + i) for i in range(3)]
    results: dict[int, str] = {}

    def publish(i: int) -> None:
        results[i] = registry.publish(candidates[i])

    at_once(publish, 3)
    assert sorted(results.values()) == ["v2", "v3", "v4"]
    for i, version in results.items():
        assert weights(registry.load(version)) == weights(candidates[i])
    parents = [r["parent"] for r in registry.versions()]
    assert parents == [None, "v1", "v2", "v3"]


def publishes_only_after_the_version_it_names(seed_dir: Path, tmp_path: Path) -> None:
    """``publish(after=...)``: refused once another publisher came first (one that looked before, or
    one racing it), and nothing of it published."""
    registry, other = open_registry(settings(), seed=seed_dir), open_registry(settings(), seed=seed_dir)
    assert other.publish(make_model(tmp_path / "first", seed=3), after="v1") == "v2"
    with pytest.raises(NewerVersion, match="v2 was published meanwhile") as refused:
        registry.publish(make_model(tmp_path / "stale", seed=4), after="v1")
    assert refused.value.latest == "v2" and registry.latest() == "v2"
    for unknown in ("v9", "latest"):  # not a version it holds: an error of the caller, not "newer"
        with pytest.raises(RegistryError, match=f"cannot publish after '{unknown}': the newest .* is v2"):
            registry.publish(make_model(tmp_path / "stale", seed=4), after=unknown)
    candidates = [make_model(tmp_path / f"racing{i}", seed=10 + i) for i in range(3)]
    outcomes: dict[int, str] = {}

    def publish(i: int) -> None:
        try:
            outcomes[i] = registry.publish(candidates[i], after="v2")
        except NewerVersion as error:
            outcomes[i] = f"refused: {error.latest}"

    at_once(publish, 3)
    assert sorted(outcomes.values()) == ["refused: v3", "refused: v3", "v3"]
    assert registry.latest() == "v3"
    [winner] = [i for i, outcome in outcomes.items() if outcome == "v3"]
    assert weights(registry.load("v3")) == weights(candidates[winner])


def test_publish_after_a_version_refuses_when_another_came_first(local_env: Path, seed_dir: Path,
                                                                 tmp_path: Path) -> None:
    publishes_only_after_the_version_it_names(seed_dir, tmp_path)


def test_hub_publish_after_a_version_refuses_when_another_came_first(hub_env, seed_dir: Path,
                                                                     tmp_path: Path) -> None:
    publishes_only_after_the_version_it_names(seed_dir, tmp_path)


@pytest.mark.parametrize("version, than, newer", [
    ("v10", "v9", True), ("v9", "v10", False), ("v3", "v3", False), ("v1", None, True),
    (None, "v1", False), ("latest", "v1", False), ("v2", "not a version", True),
])
def test_is_newer_compares_version_numbers_not_names(version, than, newer: bool) -> None:
    assert is_newer(version, than) is newer
