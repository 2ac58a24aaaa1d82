"""Cross-validation: patient-grouped folds, out-of-fold predictions pooled with cross-fitted
calibration, ``python -m mammo cv --json`` and ``train --cv`` (both recipes, tiny models, real films)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from app_server import ROOT
from helpers import check_schema, cli_here, script_here

from mammo.calibration import apply_calibration
from mammo.choices import LESION_MAP
from mammo.cv import patient_folds, summarise
from mammo.data import SplitSpec, copy_groups, film_identities, folder_examples, learnt_by, split_by_patient
from mammo.metrics import EVALUATE_KEYS, NESTED_CROSS_FITTING, pick_threshold
from mammo.pipeline import base_splits
from mammo.predict import Predictor

LABELS = ["normal", "benign", "malignant"]


def test_folds_keep_each_patient_in_one_fold_and_hold_every_label(mias: Path) -> None:
    examples = folder_examples(mias)
    fold_of = patient_folds(examples, 5, seed=0)
    folds_of_patient = defaultdict(set)
    for example, fold in zip(examples, fold_of, strict=True):
        folds_of_patient[example.group].add(int(fold))
    assert all(len(folds) == 1 for folds in folds_of_patient.values())
    for fold in range(5):
        labels = {e.label for e, f in zip(examples, fold_of, strict=True) if f == fold}
        assert labels == set(LABELS)
    sizes = np.bincount(fold_of)
    assert sizes.min() >= 0.7 * sizes.max()
    with pytest.raises(ValueError, match="2 folds"):
        patient_folds(examples, 1, seed=0)
    # more folds than patients of a label: folds with none of it (sklearn only warned; a CLI walk)
    fewest = min(len({e.group for e in examples if e.label == label}) for label in LABELS)
    with pytest.raises(ValueError, match=rf"{fewest + 1} folds need at least {fewest + 1} patients of each "
                                         rf"label.*has {fewest}\. Use at most {fewest} folds"):
        patient_folds(examples, fewest + 1, seed=0)


def test_copies_of_one_image_share_a_fold(data_root: Path, mias: Path) -> None:
    """BreastMNIST has no patient ids, and holds copies of one ultrasound image under other names (63
    pairs: a CLI walk; train_0103 and val_0033 are one): a fold held one while another trained. Copies
    are one group; mini-MIAS, which has none, keeps its patients' groups, and so its folds."""
    images = data_root / "breastmnist"
    examples = folder_examples(images / "train") + folder_examples(images / "val")
    groups = copy_groups(examples, min_side=28)
    assert len(set(groups)) < len({e.group for e in examples}) == len(examples)
    names = [e.name for e in examples]
    pair = [names.index("malignant/train_0103.png"), names.index("malignant/val_0033.png")]
    assert groups[pair[0]] == groups[pair[1]]
    fold_of = patient_folds(examples, 5, seed=0, min_side=28)
    assert fold_of[pair[0]] == fold_of[pair[1]]
    by_group = defaultdict(set)
    for group, fold in zip(groups, fold_of, strict=True):
        by_group[group].add(int(fold))
    assert all(len(folds) == 1 for folds in by_group.values())
    films = folder_examples(mias)
    assert copy_groups(films) == [e.group for e in films]


def test_summary_is_out_of_fold_and_cross_fitted() -> None:
    rng = np.random.default_rng(0)
    targets = np.repeat([0, 1, 2], 40)
    fold_of = np.tile(np.arange(4), 30)
    scores = np.column_stack([(targets == 1) * 2.0, (targets == 2) * 2.0]) + rng.normal(0, 1, (120, 2))
    summary = summarise(scores, targets, fold_of, LABELS, kind="patch")
    assert summary["n"] == 120 and summary["n_folds"] == 4 and len(summary["folds"]) == 4
    assert sum(f["n"] for f in summary["folds"]) == 120
    assert 0.8 < summary["auc_malignant"] <= 1 and summary["ece_malignant"] < 0.2
    assert summary["auc_abnormal"]["auc"] > 0.8
    assert 0 <= summary["sensitivity_cross_fitted"] <= 1
    probs = summary["_probs"]
    assert np.allclose(probs.sum(axis=1), 1)
    # cross-fitted: fold 0's probabilities do not change when fold 0's own labels do
    flipped = targets.copy()
    flipped[fold_of == 0] = 0
    again = summarise(scores, flipped, fold_of, LABELS, kind="patch")
    assert np.allclose(again["_probs"][fold_of == 0], probs[fold_of == 0])
    # nor does its threshold (picked on the other folds through fold 0's own calibration map: picked
    # on their cross-fitted probabilities, whose maps had learnt fold 0's labels, it did; a review)
    assert np.array_equal(again["_thresholds"][fold_of == 0], summary["_thresholds"][fold_of == 0])
    assert len(set(summary["_thresholds"][fold_of == 0])) == 1
    # the shipped threshold's rule holds of what ships: with the shipped calibration, the highest
    # cut-off reaching 90% sensitivity out of fold (a review: it was picked on other probabilities)
    shipped = apply_calibration(scores, summary["calibration"]["weight"], summary["calibration"]["bias"])
    malignant = shipped[targets == 2, 2]
    assert summary["threshold"] == pick_threshold(targets, shipped, LABELS)
    assert summary["sensitivity"] == np.mean(malignant >= summary["threshold"]) >= 0.9
    assert np.mean(malignant > summary["threshold"]) < 0.9
    assert summary["calibration"]["rank_agreement_malignant"] > 0.9
    assert all(f["auc_malignant_uncalibrated"] > 0.8 for f in summary["folds"])


def test_a_calibration_that_reverses_the_networks_ranking_is_said(caplog) -> None:
    """A network that ranks films the wrong way round: its calibration, a regression on every class
    score, turns the ranking over, and the figures looked like the network's (a CLI walk). Each fold's
    network-alone AUC and the rank agreement say it, and a warning in the log."""
    rng = np.random.default_rng(1)
    targets = np.repeat([0, 1, 2], 40)
    fold_of = np.tile(np.arange(4), 30)
    scores = np.column_stack([(targets == 1) * 2.0, (targets != 2) * 2.0]) + rng.normal(0, 1, (120, 2))
    with caplog.at_level(logging.WARNING, logger="mammo.cv"):
        summary = summarise(scores, targets, fold_of, LABELS, kind="patch")
    assert summary["auc_malignant"] > 0.8  # the network with its calibration
    assert all(f["auc_malignant_uncalibrated"] < 0.5 for f in summary["folds"])  # the network alone
    assert summary["calibration"]["rank_agreement_malignant"] < 0
    assert "orders the films against the network's own malignancy score" in caplog.text


def test_cv_cli_json_pools_every_film_once(small_mias: Path, tmp_path: Path) -> None:
    oof = tmp_path / "oof.json"
    done = cli_here("cv", "--data", str(small_mias), "--folds", "2", "--arch", "test_efficientnet",
                    "--init", "none", "--image-size", "48", "--epochs", "1", "--json",
                    "--oof-out", str(oof))
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    n = len(list(small_mias.glob("*/*.png")))
    check_schema(summary, n)
    assert EVALUATE_KEYS | {"folds", "calibration", "ece_malignant", "threshold"} <= set(summary)
    assert summary["split"] == "cross-validation" and len(summary["folds"]) == 2
    for fold in summary["folds"]:
        assert fold["n"] > 0 and (fold["auc_malignant"] is None or 0 <= fold["auc_malignant"] <= 1)
    kept = json.loads(oof.read_text())  # a cv.json as --keep-models writes it: the tools read either
    assert kept["auc_malignant"] == summary["auc_malignant"] and kept["recipe"]["epochs"] == 1
    films = kept["oof"]
    assert sorted(f["name"] for f in films) == sorted(p.relative_to(small_mias).as_posix()
                                                       for p in small_mias.glob("*/*.png"))
    by_patient = defaultdict(set)
    for film in films:
        by_patient[film["group"]].add(film["fold"])
    assert all(len(folds) == 1 for folds in by_patient.values())
    # each film with the threshold it was called at, one per fold, fitted on the other folds alone
    assert summary["cross_fitting"] == NESTED_CROSS_FITTING
    by_fold = defaultdict(set)
    for film in films:
        by_fold[film["fold"]].add(film["threshold"])
    assert sorted(by_fold) == [0, 1] and all(len(cut_offs) == 1 for cut_offs in by_fold.values())
    # a woman's two films are drawn together by the intervals' bootstrap
    assert len(by_patient) < n and summary["auc_ci_resampled"] == "patients"
    assert sum(group["n"] for group in summary["subgroups"]["tissue"].values()) == n
    # the baseline over the same folds: the evaluate keys, every film scored once out of fold
    baseline = summary["baseline"]
    check_schema(baseline, n)
    assert baseline["split"] == "cross-validation" and baseline["model"].startswith("logistic regression")
    assert {"sensitivity_cross_fitted", "specificity_cross_fitted", "auc_abnormal"} <= set(baseline)


def test_test_time_mirror_is_cross_validated_as_it_is_served(small_mias: Path, tmp_path: Path) -> None:
    """``--test-time-mirror``: the out-of-fold scores are each film's averaged with its mirror image's
    (exactly what scripts/mirror_oof.py computes from the same fold models), and the final model
    records the mirror, so evaluation and the app score films the same way; its card says so."""
    out, folds = tmp_path / "model", tmp_path / "folds"
    done = cli_here("train", "--data", str(small_mias), "--arch", "test_efficientnet", "--init", "none",
                    "--image-size", "48", "--epochs", "1", "--cv", "2", "--test-time-mirror", "horizontal",
                    "--keep-models", str(folds), "--out", str(out))
    assert done.returncode == 0, done.stderr
    mammo = json.loads((out / "config.json").read_text())["mammo"]
    assert mammo["head"]["mirror"] == "horizontal" and mammo["training"]["test_time_mirror"] == "horizontal"
    assert "**Test-time mirror**" in (out / "README.md").read_text()
    kept = json.loads((folds / "cv.json").read_text())
    assert kept["recipe"]["test_time_mirror"] == "horizontal"
    as_is = tmp_path / "as_is.json"
    script = ["scripts/mirror_oof.py", "--folds", str(folds), "--data", str(small_mias),
              "--axis", "horizontal", "--as-is-out", str(as_is)]
    rescored = script_here(*script)
    assert rescored.returncode == 0, rescored.stderr
    report = json.loads(rescored.stdout)
    for key in ("auc_malignant", "auc_macro", "ece_malignant"):
        assert report["mirror_averaged"][key] == pytest.approx(kept[key], abs=1e-6), key
    assert report["as_is"]["ece_malignant"] != pytest.approx(kept["ece_malignant"], abs=1e-9)
    # the films as they are, written as a cv.json of the recipe without the mirror, paired with the kept one
    own = json.loads(as_is.read_text())
    assert own["recipe"] == {**kept["recipe"], "test_time_mirror": None} and own["mirror"] is None
    for key in ("auc_malignant", "ece_malignant"):  # the films' own scores (their ECE is not the mirror's)
        assert own[key] == pytest.approx(report["as_is"][key], abs=1e-9), key
    paired = script_here("scripts/compare_models.py", "--cv", str(as_is),
                         str(folds / "cv.json"), "--resamples", "200")
    assert paired.returncode == 0, paired.stderr
    difference = json.loads(paired.stdout)["malignant_vs_rest"]
    assert difference["n"] == kept["n"]
    assert difference["difference"] == pytest.approx(kept["auc_malignant"] - own["auc_malignant"], abs=1e-9)


@pytest.fixture(scope="module")
def patch_v(small_mias: Path, tmp_path_factory) -> tuple[Path, Path]:
    """A tiny patch-recipe model trained with ``train --cv 2`` on real mini-MIAS films."""
    root = tmp_path_factory.mktemp("patch")
    out, folds = root / "model", root / "folds"
    done = cli_here("train", "--data", str(small_mias), "--recipe", "patch", "--arch", "test_efficientnet",
                    "--init", "none", "--image-size", "128", "--patch-size", "64", "--epochs", "1",
                    "--batch-size", "32", "--top-k", "4", "--cv", "2", "--keep-models", str(folds),
                    "--out", str(out))
    assert done.returncode == 0, done.stderr
    return out, folds


def test_folds_never_start_from_weights_that_learnt_their_films(patch_v, mias: Path, small_mias: Path,
                                                                tmp_path: Path) -> None:
    """``--init MODEL --cv K`` without ``--init-folds``: every fold would fine-tune MODEL, which
    trained on these films, and score them "out of fold": refused before any training; so is a
    starting folder that records no films (a fold model). The films held out of MODEL count as new.
    The same films at 1024 px (other pixels) are known as MODEL's by their fingerprints."""
    model, folds = patch_v
    parts = base_splits([small_mias], None, SplitSpec())
    assert learnt_by(model, film_identities(parts["holdout"])) == 0
    assert learnt_by("imagenet", film_identities(parts["train"])) == 0
    n = len(parts["train"]) + len(parts["val"])
    assert learnt_by(model, film_identities([*parts["train"], *parts["val"]])) == n
    larger = [replace(film, source=str(mias.parent / "mias1024" / film.label / Path(film.source).name))
              for film in [*parts["train"][:5], *parts["holdout"][:5]]]
    assert learnt_by(model, film_identities(larger)) == 5
    recipe = ["cv", "--data", str(small_mias), "--recipe", "patch", "--arch", "test_efficientnet",
              "--image-size", "128", "--patch-size", "64", "--top-k", "4", "--epochs", "1", "--folds", "2"]
    seen = cli_here(*recipe, "--init", str(model))
    total = n + len(parts["holdout"])  # `cv` cross-validates every film of the folder
    assert seen.returncode == 2, seen.stderr
    assert f"which learnt from {n} of these {total} films" in seen.stderr
    unknown = cli_here(*recipe, "--init", str(folds / "fold0"))
    assert unknown.returncode == 2 and "records no list of the films it learnt from" in unknown.stderr


def test_mirror_script_rescores_the_kept_folds_out_of_fold(patch_v, small_mias: Path, tmp_path: Path) -> None:
    """scripts/mirror_oof.py: each film scored again by the fold model that never saw it reproduces the
    cross-validation's figures exactly; the mirror-averaged predictions are a cv.json that
    compare_models reads."""
    _, folds = patch_v
    out = tmp_path / "mirror.json"
    done = script_here("scripts/mirror_oof.py", "--folds", str(folds), "--data",
                       str(small_mias), "--axis", "vertical", "--out", str(out))
    assert done.returncode == 0, done.stderr
    report, kept = json.loads(done.stdout), json.loads((folds / "cv.json").read_text())
    for key in ("auc_malignant", "auc_macro", "balanced_accuracy", "ece_malignant"):
        assert report["as_is"][key] == pytest.approx(kept[key], abs=1e-6), key
    assert report["as_is"]["auc_abnormal"]["auc"] == pytest.approx(kept["auc_abnormal"]["auc"], abs=1e-6)
    mirrored = json.loads(out.read_text())
    assert mirrored["mirror"] == "vertical" and mirrored["n"] == kept["n"]
    # the recipe that would score this way: `train --cv-from` accepts it only with --test-time-mirror
    assert mirrored["recipe"] == {**kept["recipe"], "test_time_mirror": "vertical"}
    assert [f["name"] for f in mirrored["oof"]] == [f["name"] for f in kept["oof"]]
    pairs = zip(mirrored["oof"], kept["oof"], strict=True)
    assert any(a["probabilities"] != b["probabilities"] for a, b in pairs)
    paired = script_here("scripts/compare_models.py", "--cv", str(folds / "cv.json"),
                         str(out), "--resamples", "200")
    assert paired.returncode == 0, paired.stderr
    assert json.loads(paired.stdout)["malignant_vs_rest"]["n"] == kept["n"]


def test_train_cv_ships_the_out_of_fold_calibration(patch_v) -> None:
    out, folds = patch_v
    mammo = json.loads((out / "config.json").read_text())["mammo"]
    assert mammo["head"]["kind"] == "patch"
    assert mammo["head"]["weight"] == mammo["cv"]["calibration"]["weight"]
    assert mammo["threshold"] == mammo["cv"]["threshold"] and mammo["cv"]["n_folds"] == 2
    assert mammo["split"]["metrics_on"] == "holdout" and mammo["metrics"]["n"] == mammo["data"]["n_holdout"]
    card = (out / "README.md").read_text()
    assert "## Cross-validation (the estimate to quote)" in card and "Reliability diagram" in card
    assert "Recipe: lesion-aware, two stages" in card
    # its figures as a table, not ASCII art (read out character by character)
    first = mammo["cv"]["reliability"][0]
    assert (f"| {first['low']:.1f}–{first['high']:.1f} | {first['n']} | {first['mean_predicted']:.3f} | "
            f"{first['observed']:.3f} |") in card and "####" not in card
    # the estimate's rates are at thresholds fitted on the other folds; those at the threshold fitted on
    # these very predictions (90% sensitivity by construction) are said to be optimistic
    cv_section = card.split("## Cross-validation")[1].split("\n## ")[0]
    for rate in ("sensitivity", "specificity"):
        assert (f"| {rate.capitalize()} (malignant, each film at the threshold fitted on the other folds) | "
                f"{mammo['cv'][f'{rate}_cross_fitted']:.3f} |") in cv_section
        assert (f"| {rate.capitalize()} at the threshold fitted on these same predictions (optimistic) | "
                f"{mammo['cv'][rate]:.3f} |") in cv_section
    assert sorted(p.name for p in folds.iterdir()) == ["cv.json", "fold0", "fold1"]
    kept = json.loads((folds / "cv.json").read_text())
    assert len(kept["oof"]) == mammo["cv"]["n"]


def test_patch_model_predicts_with_a_lesion_map(patch_v, small_mias: Path, tmp_path: Path) -> None:
    out, _ = patch_v
    image = next((small_mias / "malignant").glob("*.png"))
    result = Predictor(out).predict(str(image))
    assert result.method == LESION_MAP and result.heatmap.shape == result.overlay.shape[:2]
    done = cli_here("predict", "--model", str(out), str(image), "--json", "--heatmaps", str(tmp_path))
    assert done.returncode == 0, done.stderr
    details = json.loads(done.stdout)
    assert details["heatmap_method"] == LESION_MAP and details["calibrated"] is True
    assert (tmp_path / f"{image.stem}_heatmap.png").is_file()


def test_patch_recipe_refuses_data_without_lesion_marks(tmp_path: Path, small_mias: Path) -> None:
    import shutil

    bare = tmp_path / "bare"
    for label in ("normal", "malignant"):
        shutil.copytree(small_mias / label, bare / label)
    done = cli_here("train", "--data", str(bare), "--recipe", "patch", "--arch", "test_efficientnet",
                    "--init", "none", "--image-size", "128", "--patch-size", "64", "--epochs", "1",
                    "--out", str(tmp_path / "m"))
    assert done.returncode == 2 and "lesion" in done.stderr and "Traceback" not in done.stderr


def test_pointing_game_script_runs_out_of_fold(patch_v, small_mias: Path) -> None:
    _, folds = patch_v
    done = script_here("scripts/heatmap_lesions.py", "--folds", str(folds), "--data",
                       str(small_mias))
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["split"] == "out of fold" and set(report["methods"]) == {LESION_MAP, "Grad-CAM"}
    scored = {film["name"] for film in json.loads((folds / "cv.json").read_text())["oof"]}
    marked = sum(1 for row in folder_examples(small_mias)
                 if row.name in scored and row.label != "normal" and row.metadata.get("lesion_x"))
    for result in report["methods"].values():
        assert result["all_marked"]["films"] == marked
        assert 0 <= result["all_marked"]["hit_rate"] <= 1 and result["masses"]["films"] <= marked
    assert 0 < report["chance_hit_rate"] < 1


def test_pooling_variants_are_rescored_out_of_fold(patch_v, small_mias: Path) -> None:
    _, folds = patch_v
    done = script_here("scripts/cv_pooling.py", "--folds", str(folds), "--data",
                       str(small_mias), "--top-k", "4", "--flip")
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(r["top_k"], r["flip"]) for r in rows] == [(4, False), (4, True)]
    kept = json.loads((folds / "cv.json").read_text())
    top_k = kept["recipe"]["top_k"]  # the variant the recipe used reproduces the cv figures
    same = next(r for r in rows if (r["top_k"], r["flip"]) == (top_k, False))
    assert np.isclose(same["auc_malignant"], kept["auc_malignant"])


def test_train_can_take_a_finished_cross_validation(patch_v, small_mias: Path, tmp_path: Path) -> None:
    _, folds = patch_v
    recipe = ["train", "--data", str(small_mias), "--recipe", "patch", "--arch", "test_efficientnet",
              "--init", "none", "--image-size", "128", "--patch-size", "64", "--epochs", "1",
              "--batch-size", "32", "--cv-from", str(folds / "cv.json")]
    done = cli_here(*recipe, "--top-k", "4", "--out", str(tmp_path / "m"))
    assert done.returncode == 0, done.stderr
    mammo = json.loads((tmp_path / "m" / "config.json").read_text())["mammo"]
    kept = json.loads((folds / "cv.json").read_text())
    assert mammo["head"]["weight"] == kept["calibration"]["weight"] and mammo["cv"]["n"] == kept["n"]
    other = cli_here(*recipe, "--top-k", "2", "--out", str(tmp_path / "other"))
    assert other.returncode == 2 and "another recipe (differs in top_k)" in other.stderr
    typo = cli_here(*recipe[:-1], str(folds.parent / "fodls" / "cv.json"), "--out", str(tmp_path / "typo"))
    assert typo.returncode == 2 and "there is no folder" in typo.stderr  # at once, not after an hour
    assert not (tmp_path / "typo").exists()


def test_a_reused_cross_validation_must_match_every_setting_that_changes_the_model() -> None:
    """``--cv-from`` compares the recorded recipe on every training setting but those that change no
    weight (early-stopping patience, which has no validation set in cross-validation, and the smallest
    accepted image side): a new setting must join the comparison."""
    from mammo.pipeline import _RECIPE_KEYS
    from mammo.train import TrainConfig

    assert set(_RECIPE_KEYS) == set(TrainConfig().to_dict()) - {"patience", "min_side"}


def _weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(folder / "model.safetensors")


def test_film_stage_fine_tunes_each_kept_fold_model_on_whole_films(patch_v, small_mias: Path,
                                                                     tmp_path: Path) -> None:
    """The patch recipe's second stage, cross-validated from the kept fold models of its first: each
    fold starts from its own fold model, trains the deeper layers on whole films, and leaves the stem,
    the first blocks and every batch-norm statistic as they were; fold models kept from other folds
    are refused."""
    model, folds = patch_v
    recipe = ["train", "--data", str(small_mias), "--recipe", "patch", "--arch", "test_efficientnet",
              "--image-size", "128", "--patch-size", "64", "--top-k", "4", "--epochs", "0",
              "--film-epochs", "2", "--film-batch-size", "4", "--film-lr", "1e-3", "--init", str(model),
              "--cv", "2"]
    out, kept = tmp_path / "stage2", tmp_path / "stage2-folds"
    done = cli_here(*recipe, "--init-folds", str(folds), "--keep-models", str(kept), "--out", str(out))
    assert done.returncode == 0, done.stderr
    mammo = json.loads((out / "config.json").read_text())["mammo"]
    assert mammo["training"]["film_epochs"] == 2 and mammo["cv"]["init_folds"] == str(folds)
    assert [log["epoch"] for log in mammo["training"]["history"]] == [1, 2]
    assert all(log["epochs"] == 2 and np.isfinite(log["train_loss"]) for log in mammo["training"]["history"])
    assert mammo["head"]["weight"] == mammo["cv"]["calibration"]["weight"]  # the new CV's, shipped
    # no contrast jitter on whole films (it would lift the background into the breast mask): recorded
    assert mammo["training"]["film_augmentation"] == "vertical flips, rotation up to 10 degrees, brightness"
    assert "4 films per batch; vertical flips, rotation up to 10 degrees, brightness)" in \
        (out / "README.md").read_text()
    first, second = json.loads((folds / "cv.json").read_text()), json.loads((kept / "cv.json").read_text())
    assert [(f["name"], f["fold"]) for f in first["oof"]] == [(f["name"], f["fold"]) for f in second["oof"]]
    for start, tuned in [(model, out), *((folds / f"fold{k}", kept / f"fold{k}") for k in range(2))]:
        before, after = _weights(start), _weights(tuned)
        assert before.keys() == after.keys()
        fixed = [k for k in before if k.startswith(("conv_stem", "bn1", "blocks.0", "blocks.3"))]
        assert fixed and all(np.array_equal(before[k], after[k]) for k in fixed)
        statistics = [k for k in before if k.endswith(("running_mean", "running_var"))]
        assert statistics and all(np.array_equal(before[k], after[k]) for k in statistics)
        deep = [k for k in before if k.startswith(("blocks.4", "conv_head")) and k.endswith("weight")]
        assert deep and all(not np.array_equal(before[k], after[k]) for k in deep)
    # another seed splits and folds the films otherwise: the starting model's films would be held out,
    # and (from ImageNet) the kept fold models' films scored out of fold
    other = cli_here(*recipe, "--seed", "1", "--init-folds", str(folds), "--out", str(tmp_path / "other"))
    assert other.returncode == 2 and f"are films the starting model ({model}) was trained" in other.stderr
    imagenet = [*recipe[:recipe.index("--init")], "--init", "imagenet", *recipe[recipe.index("--init") + 2:]]
    other = cli_here(*imagenet, "--seed", "1", "--init-folds", str(folds), "--out", str(tmp_path / "other"))
    assert other.returncode == 2 and "other films or folds" in other.stderr
    assert not (tmp_path / "other").exists()
    over = cli_here(*recipe, "--init-folds", str(folds), "--keep-models", str(folds),
                    "--out", str(tmp_path / "over"))
    assert over.returncode == 2 and "another folder" in over.stderr  # the fold models it starts from stay
    without_cv = cli_here(*recipe[:-2], "--init-folds", str(folds), "--out", str(tmp_path / "no-cv"))
    assert without_cv.returncode == 2 and "for a cross-validation" in without_cv.stderr
    older = tmp_path / "older-cv.json"  # a film stage cross-validated before its augmentation was recorded
    older.write_text(json.dumps({**second, "recipe": {k: v for k, v in second["recipe"].items()
                                                      if k != "film_augmentation"}}))
    refused = cli_here(*recipe[:-2], "--cv-from", str(older), "--out", str(tmp_path / "older"))
    assert refused.returncode == 2 and "differs in film_augmentation" in refused.stderr
    # is the second stage better? paired out of fold, and on the held-out patients of the same split
    for mode, pair in (("--cv", [folds / "cv.json", kept / "cv.json"]), ("--holdout", [model, out])):
        extra = ["--data", str(small_mias)] if mode == "--holdout" else []
        done = script_here("scripts/compare_models.py", mode, *map(str, pair), *extra,
                           "--resamples", "200")
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        films = second["n"] if mode == "--cv" else mammo["metrics"]["n"]
        for split in ("malignant_vs_rest", "abnormal_vs_normal"):
            low, high = report[split]["ci95"]
            assert report[split]["n"] == films and -1 <= low <= high <= 1
    foreign = tmp_path / "foreign.json"  # one film fewer: not the same films
    foreign.write_text(json.dumps({"classes": first["classes"], "oof": first["oof"][1:]}))
    refused = script_here("scripts/compare_models.py", "--cv", str(folds / "cv.json"),
                          str(foreign))
    assert refused.returncode == 1 and "other films or folds" in refused.stderr
    reordered = tmp_path / "reordered.json"  # the same films, the classes listed in another order
    reordered.write_text(json.dumps({**first, "classes": first["classes"][::-1]}))
    refused = script_here("scripts/compare_models.py", "--cv", str(folds / "cv.json"),
                          str(reordered))
    assert refused.returncode == 1 and "severity order" in refused.stderr


def test_model_figures_script_rebuilds_the_models_folds_and_holdout(patch_v, small_mias: Path) -> None:
    model, folds = patch_v
    done = script_here("scripts/model_figures.py", "--model", str(model), "--data",
                       str(small_mias), "--oof", str(folds / "cv.json"))
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    mammo = json.loads((model / "config.json").read_text())["mammo"]
    # the same films as the model's own figures, and the same baseline the training recorded
    assert shown["holdout"]["baseline"]["n"] == mammo["metrics"]["n"] == mammo["baseline"]["n"]
    assert shown["holdout"]["baseline"]["auc_malignant"] == mammo["baseline"]["auc_malignant"]
    assert shown["cv"]["baseline"]["n"] == mammo["cv"]["n"]
    assert shown["cv"]["baseline"]["auc_malignant"] == mammo["cv"]["baseline"]["auc_malignant"]
    # the model's own subgroup figures, as training recorded them (holdout) and out of fold
    for again, recorded in ((shown["cnn_holdout"]["subgroups"], mammo["metrics"]["subgroups"]),
                            (shown["cnn_cv_subgroups"], mammo["cv"]["subgroups"])):
        assert {k: {g: f["counts"] for g, f in v.items()} for k, v in again.items()} == \
            {k: {g: f["counts"] for g, f in v.items()} for k, v in recorded.items()}
        for grouping, groups in recorded.items():
            for name, figures in groups.items():
                auc = (figures["auc_malignant"] or {}).get("auc")
                again_auc = (again[grouping][name]["auc_malignant"] or {}).get("auc")
                assert again_auc == (None if auc is None else pytest.approx(auc))


def _still_running(process) -> bool:
    """Whether ``process`` still runs: a zombie has ended (a worker orphaned by the killed ``cv`` waits
    for init to reap it, which a slow machine did after the test's wait: psutil counts it as alive)."""
    import psutil

    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_fold_workers_end_when_the_cross_validation_is_killed(small_mias: Path) -> None:
    """``cv --workers 2`` killed with SIGTERM (a job scheduler's cancel; no clean-up runs): its fold
    workers end too, instead of training on as orphans."""
    import signal
    import time

    import psutil

    command = [sys.executable, "-m", "mammo", "cv", "--data", str(small_mias), "--arch", "test_efficientnet",
               "--init", "none", "--image-size", "48", "--epochs", "500", "--folds", "2", "--workers", "2"]
    cv = subprocess.Popen(command, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"},
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers: list[psutil.Process] = []
    try:
        parent, deadline = psutil.Process(cv.pid), time.monotonic() + 180
        while time.monotonic() < deadline:  # both workers started and past their imports: training
            workers = [w for w in parent.children() if "spawn_main" in " ".join(w.cmdline())]
            if len(workers) == 2 and all(sum(w.cpu_times()[:2]) > 8 for w in workers):
                break
            time.sleep(0.5)
        assert len(workers) == 2 and cv.poll() is None
        cv.send_signal(signal.SIGTERM)
        cv.wait(timeout=30)
        _, alive = psutil.wait_procs(workers, timeout=20)
        assert [w for w in alive if _still_running(w)] == []
    finally:  # whatever happened, nothing of this test trains on
        cv.kill()
        for worker in workers:
            if worker.is_running():
                worker.kill()


def test_cv_can_leave_out_the_held_out_patients_and_feed_train(small_mias: Path, tmp_path: Path) -> None:
    """`cv --leave-out-holdout` cross-validates the films `train --cv` would (training and validation
    patients; the held-out ones unseen), so `train --cv-from` takes its summary."""
    recipe = ["--data", str(small_mias), "--arch", "test_efficientnet", "--init", "none",
              "--image-size", "48", "--epochs", "1", "--seed", "0"]
    apart = cli_here("cv", *recipe, "--folds", "2", "--leave-out-holdout",
                     "--oof-out", str(tmp_path / "cv.json"))
    assert apart.returncode == 0, apart.stderr
    parts = split_by_patient(folder_examples(small_mias), SplitSpec(seed=0))
    films = sorted(e.name for e in [*parts["train"], *parts["val"]])
    assert sorted(f["name"] for f in json.loads((tmp_path / "cv.json").read_text())["oof"]) == films
    assert f"the {len(parts['holdout'])} films of the held-out patients stay unseen" in apart.stderr
    kept = json.loads((tmp_path / "cv.json").read_text())  # printed to 3 decimals; the JSON keeps all
    assert f"     auc_malignant: {round(kept['auc_malignant'], 3)}\n" in apart.stdout
    done = cli_here("train", *recipe, "--cv-from", str(tmp_path / "cv.json"), "--out", str(tmp_path / "m"))
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "m" / "config.json").read_text())["mammo"]["cv"]["n"] == len(films)
