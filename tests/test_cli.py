"""``python -m mammo``: train a tiny model on real data, evaluate (the JSON schema of
docs/architecture.md), predict."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from helpers import PACKAGED, check_schema, cli_here, run_cli
from PIL import Image

from mammo.config import settings
from mammo.data import folder_examples
from mammo.imaging import encode_png
from mammo.store import CaseStore, open_registry
from mammo.store.audit import AuditLog
from mammo.store.gate import promotion_decision

ROOT = Path(__file__).resolve().parents[1]
V1 = ROOT / "mammo" / "weights" / "v1"


@pytest.fixture(scope="module")
def trained(mias, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "model"
    done = run_cli("train", "--data", str(mias), "--arch", "test_efficientnet", "--init", "none",
                   "--image-size", "48", "--epochs", "2", "--seed", "0", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "epoch 2/2" in done.stderr or "epoch 1/2" in done.stderr
    return out



def test_train_writes_a_complete_model_folder(trained: Path, mias: Path) -> None:
    assert sorted(p.name for p in trained.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    config = json.loads((trained / "config.json").read_text())
    mammo = config["mammo"]
    assert mammo["split"]["metrics_on"] == "holdout" and mammo["data"]["n_holdout"] > 0
    # the split's words (the card, the pages, the audit log) name the data, not this machine's path
    assert mammo["split"]["description"].startswith(f"15% of the patients of {mias.name} (stratified")
    assert str(mias.parent) not in mammo["split"]["description"] and mammo["data"]["sources"] == [str(mias)]
    assert mammo["command"].startswith("python -m mammo train --data")
    assert 0 <= mammo["threshold"] <= 1
    assert "not a medical device" in (trained / "README.md").read_text()


def test_evaluate_json_schema_on_all_and_holdout(trained: Path, mias: Path) -> None:
    done = cli_here("evaluate", "--model", str(trained), "--data", str(mias), "--json")
    assert done.returncode == 0, done.stderr
    check_schema(json.loads(done.stdout), 258)
    holdout = cli_here("evaluate", "--model", str(trained), "--data", str(mias), "--split", "holdout",
                       "--json")
    metrics = json.loads(holdout.stdout)
    mammo = json.loads((trained / "config.json").read_text())["mammo"]
    recorded = mammo["metrics"]
    assert metrics["n"] == recorded["n"]
    assert metrics["auc_malignant"] == pytest.approx(recorded["auc_malignant"], abs=1e-6)
    # the logistic-regression baseline on the same holdout films, as the model folder records it
    baseline = metrics["baseline"]
    check_schema(baseline, recorded["n"])
    assert baseline["model"].startswith("logistic regression")
    assert baseline["auc_malignant"] == pytest.approx(mammo["baseline"]["auc_malignant"], abs=1e-9)
    # the held-out women have two films each: the intervals draw whole patients
    assert metrics["auc_ci_resampled"] == baseline["auc_ci_resampled"] == "patients"
    assert json.loads(done.stdout)["baseline"] is None  # --split all: no films it has not learnt from
    # --split all scores the films it learnt from too: counted, and said to make the figures optimistic
    learnt = mammo["data"]["n_train"] + mammo["data"]["n_val"]
    assert json.loads(done.stdout)["films_learnt"] == learnt and metrics["films_learnt"] == 0
    assert f"warning: {learnt} of the 258 films are films the model learnt from" in done.stderr
    assert "warning" not in holdout.stderr
    # one model: no ensemble, and its own version as before (the folder's name when none is recorded)
    assert "ensemble" not in metrics and metrics["model_version"] == (mammo["version"] or trained.name)
    # per tissue type (mini-MIAS's metadata): every holdout film in exactly one subgroup
    tissue = metrics["subgroups"]["tissue"]
    assert set(tissue) <= {"fatty", "fatty-glandular", "dense-glandular"}
    assert sum(group["n"] for group in tissue.values()) == metrics["n"]


def with_split_seed(model: Path, out: Path, seed: int) -> tuple[Path, dict]:
    """A copy of the model folder ``model`` at ``out`` that records another patient-split seed."""
    out.mkdir()
    for name in ("model.safetensors", "README.md"):
        (out / name).write_bytes((model / name).read_bytes())
    config = json.loads((model / "config.json").read_text())
    config["mammo"]["split"]["seed"] = seed
    (out / "config.json").write_text(json.dumps(config))
    return out, config


def test_evaluate_refuses_a_holdout_of_films_the_model_learnt_from(trained: Path, mias: Path,
                                                                   tmp_path: Path) -> None:
    """A patient split that no longer holds out the films the model held out (here its seed changed,
    as a changed folder would change it) is refused, not scored as "held out"."""
    moved, _ = with_split_seed(trained, tmp_path / "moved", 1)
    refused = cli_here("evaluate", "--model", str(moved), "--data", str(mias), "--split", "holdout",
                       "--json")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert f"held-out films of {mias} are films {moved} was trained or validated on" in refused.stderr


def test_train_from_a_model_refuses_a_holdout_of_films_it_learnt_and_records_its_films(
        trained: Path, mias: Path, tmp_path: Path) -> None:
    """Fine-tuning from a model with another split seed held out films the starting model had trained
    on, and the new model recorded only its own films, so no later check saw it (a review: 34 of 38
    held-out films). Refused now; with the same split the new model records its starting model's films
    too."""
    args = ("train", "--data", str(mias), "--arch", "test_efficientnet", "--init", str(trained),
            "--image-size", "48", "--epochs", "1")
    refused = run_cli(*args, "--seed", "1", "--out", str(tmp_path / "other-split"))
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    said = f"held-out films of {mias} are films the starting model ({trained}) was trained or validated on"
    assert said in refused.stderr
    assert "Split the data as the starting model was split" in refused.stderr
    assert not (tmp_path / "other-split").exists()
    same = run_cli(*args, "--seed", "0", "--out", str(tmp_path / "same-split"))
    assert same.returncode == 0, same.stderr
    learnt = json.loads((trained / "config.json").read_text())["mammo"]["data"]
    data = json.loads((tmp_path / "same-split" / "config.json").read_text())["mammo"]["data"]
    for key in ("image_sha256", "image_fingerprints"):
        assert set(learnt[key]) <= set(data[key])


@pytest.mark.skipif(not V1.is_dir(), reason="mammo/weights/v1 not trained yet")
def test_evaluate_an_ensemble_averages_the_models_probabilities(trained: Path, mias: Path,
                                                                tmp_path: Path) -> None:
    """``evaluate --model A --model B``: each holdout film's probabilities are the mean of the two
    models' (each preparing the film as its own config says: 48 px and v1's 256 px)."""
    from sklearn.metrics import roc_auc_score

    from mammo.data import SplitSpec, split_by_patient
    from mammo.predict import Predictor
    from mammo.train import model_probabilities

    done = cli_here("evaluate", "--model", str(trained), "--model", str(V1), "--data", str(mias),
                    "--split", "holdout", "--json")
    assert done.returncode == 0, done.stderr
    metrics = json.loads(done.stdout)
    check_schema(metrics, metrics["n"])
    members = [Predictor(folder) for folder in (trained, V1)]
    films = split_by_patient(folder_examples(mias), SplitSpec.from_model_config(members[0].config))["holdout"]
    probs = np.mean([model_probabilities(m.model, films, m.labels, m.preprocess, m.min_side)
                     for m in members], axis=0)
    malignant = [film.label == "malignant" for film in films]
    assert metrics["n"] == len(films)
    assert metrics["auc_malignant"] == pytest.approx(roc_auc_score(malignant, probs[:, -1]), abs=1e-6)
    assert metrics["threshold"] == pytest.approx(np.mean([m.threshold for m in members]))
    assert metrics["ensemble"]["members"] == [str(trained), str(V1)]
    assert metrics["model_version"] == f"{members[0].version} + {members[1].version}"
    # models that disagree on their labels, or on their patient split, are refused in one line
    other, config = with_split_seed(trained, tmp_path / "other", 1)
    refused = cli_here("evaluate", "--model", str(trained), "--model", str(other), "--data", str(mias),
                       "--split", "holdout", "--json")
    assert refused.returncode == 2 and "different patient splits" in refused.stderr
    config["label_names"] = config["label_names"][::-1]
    (other / "config.json").write_text(json.dumps(config))
    refused = cli_here("evaluate", "--model", str(trained), "--model", str(other), "--data", str(mias),
                       "--json")
    assert refused.returncode == 2 and "same labels in the same order" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_predict_json_and_heatmaps(trained: Path, mias: Path, tmp_path: Path) -> None:
    image = next((mias / "benign").glob("*.png"))
    done = cli_here("predict", "--model", str(trained), str(image), "--json",
                    "--heatmaps", str(tmp_path))
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert abs(sum(result["probabilities"].values()) - 1) < 1e-5
    with Image.open(tmp_path / f"{image.stem}_heatmap.png") as heat, Image.open(image) as film:
        assert heat.mode.startswith("I;16") and heat.size == film.size  # full resolution, 16-bit
    assert (tmp_path / f"{image.stem}_overlay.png").is_file()
    # text: the review flag first (not the most likely class alone); an unreadable file is named and
    # the others are still predicted; another folder's file of the same name does not overwrite maps
    junk = tmp_path / "junk.png"
    junk.write_text("not an image")
    namesake = tmp_path / "other" / image.name
    namesake.parent.mkdir()
    namesake.write_bytes(next((mias / "normal").glob("*.png")).read_bytes())
    out = tmp_path / "maps"
    both = cli_here("predict", "--model", str(trained), str(junk), str(image), str(namesake),
                    "--heatmaps", str(out))
    assert both.returncode == 1 and f"error: {junk}: " in both.stderr and "Traceback" not in both.stderr
    flag = "Flagged for review" if result["above_threshold"] else "Not flagged"
    assert both.stdout.startswith(f"{image}: {flag}: malignancy score ") and "; most likely " in both.stdout
    assert f"{image.stem}_2_heatmap.png" in both.stderr
    with Image.open(out / f"{image.stem}_heatmap.png") as first, \
            Image.open(out / f"{image.stem}_2_heatmap.png") as second:
        assert first.tobytes() != second.tobytes()


# ``python -m mammo ARGS`` that reports, as it ends, whether torch was imported
WITHOUT_TORCH = """
import runpy, sys
sys.argv = ["mammo", *sys.argv[1:]]
try:
    runpy.run_module("mammo", run_name="__main__")
finally:
    print("torch loaded:", "torch" in sys.modules, "datasets loaded:", "datasets" in sys.modules,
          file=sys.stderr)
"""


@pytest.mark.parametrize("args", [["--help"], ["train", "--help"], ["cv", "--data", "x", "--recipe", "no"]])
def test_help_and_mistyped_options_are_answered_before_torch_loads(args: list[str]) -> None:
    """In a new process, at once (torch takes seconds to import here), with the choices named."""
    done = subprocess.run([sys.executable, "-c", WITHOUT_TORCH, *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == (0 if "--help" in args else 2), done.stderr
    assert "torch loaded: False" in done.stderr
    answer = done.stdout + done.stderr
    named = ["retrain"] if len(args) == 1 else ["film", "patch"]  # the commands; the recipes
    assert all(name in answer for name in named), answer


def test_the_stores_lazy_names_are_exactly_its_public_ones() -> None:
    import mammo.store as store

    assert sorted(store._MODULE_OF) == sorted(store.__all__)
    for name in store.__all__:  # each loads from the submodule it is mapped to
        assert getattr(store, name).__module__.startswith(f"mammo.store.{store._MODULE_OF[name]}")


def test_store_listings_answer_without_torch(tmp_path: Path) -> None:
    """``models list`` and ``cases list`` (new process, fresh home) load neither torch nor, for the
    registry, the case store's ``datasets``: a second, not eight."""
    env = {**os.environ, "MAMMO_HOME": str(tmp_path / "home")}
    for args, datasets_loaded in ((["models", "list"], False), (["cases", "list"], True)):
        done = subprocess.run([sys.executable, "-c", WITHOUT_TORCH, *args], cwd=ROOT, capture_output=True,
                              text=True, timeout=120, env=env)
        assert done.returncode == 0, done.stderr
        assert f"torch loaded: False datasets loaded: {datasets_loaded}" in done.stderr
        listed = json.loads(done.stdout)
        if args[0] == "models":
            assert [row["version"] for row in listed] == PACKAGED
            # each version's data without its films' hashes and fingerprints: 839 lines were listed
            assert all(row["data"] and not {"image_sha256", "image_fingerprints"} & set(row["data"])
                       for row in listed)
        else:
            assert listed["counts"] == {"normal": 0, "benign": 0, "malignant": 0}


def test_bad_arguments_give_one_clear_line(tmp_path: Path, small_mias: Path) -> None:
    (tmp_path / "junk.png").write_text("not an image")
    done = cli_here("predict", "--model", str(tmp_path), str(tmp_path / "junk.png"))
    assert done.returncode == 2 and done.stderr.startswith("error:")
    assert "Traceback" not in done.stderr
    # each of these was a traceback, or sklearn's words (a CLI walk)
    training = ("--data", str(small_mias), "--arch", "test_efficientnet", "--init", "none", "--epochs", "1")
    for args, said in ((("train", *training, "--image-size", "0", "--out", str(tmp_path / "m")),
                        "error: image size must be at least 32 px (the backbone's stride), got 0"),
                       (("train", *training, "--min-side", "-4", "--out", str(tmp_path / "m")),
                        "error: the smallest image side accepted (min side) must be at least 1 px, got -4"),
                       (("cv", *training, "--folds", "1000"), "error: 1000 folds need at least 1000 patients "
                                                              "of each label"),
                       (("predict", "--heatmaps", str(tmp_path / "junk.png"), str(tmp_path / "junk.png")),
                        "error: --heatmaps names a folder to write the heat maps into; "
                        f"{tmp_path / 'junk.png'} is a file")):
        done = cli_here(*args)
        assert done.returncode == 2 and done.stderr.startswith(said), done.stderr
    image = next((small_mias / "benign").glob("*.png"))
    ignored = cli_here("predict", "--model", "v1", "--method", "Grad-CAM", str(image))
    assert ignored.returncode == 0 and "note: --method chooses the heat map written with --heatmaps" in \
        ignored.stderr


@pytest.mark.parametrize("command", ["train", "cv"])
def test_images_too_small_to_train_on_name_the_option_that_takes_them(mias: Path, tmp_path: Path,
                                                                      command: str) -> None:
    for label in ("normal", "malignant"):  # mini-MIAS films shrunk to BreastMNIST's 28 px
        (tmp_path / label).mkdir()
        for film in sorted((mias / label).glob("*.png"))[:3]:
            Image.open(film).resize((28, 28)).save(tmp_path / label / film.name)
    folds = (["--folds", "2"] if command == "cv" else  # 6 films: half of them for validation, no holdout
             ["--out", str(tmp_path / "model"), "--holdout-fraction", "0", "--val-fraction", "0.5"])
    done = cli_here(command, "--data", str(tmp_path), "--arch", "test_efficientnet", "--init", "none",
                    "--epochs", "1", *folds)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "too small to be a mammogram (each side must be at least 32 pixels). To train on images this " \
           "small, pass --min-side with their smallest side" in done.stderr


@pytest.mark.skipif(not V1.is_dir(), reason="mammo/weights/v1 not trained yet")
def test_packaged_v1_evaluates_with_the_design_schema(mias: Path) -> None:
    done = cli_here("evaluate", "--model", str(V1), "--data", str(mias), "--split", "holdout", "--json")
    assert done.returncode == 0, done.stderr
    metrics = json.loads(done.stdout)
    check_schema(metrics, metrics["n"])
    recorded = json.loads((V1 / "config.json").read_text())["mammo"]["metrics"]
    assert metrics["auc_malignant"] == pytest.approx(recorded["auc_malignant"], abs=1e-6)


def test_store_commands_import_list_and_pull(small_mias: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    listed = cli_here("models", "list", home=home)
    assert listed.returncode == 0, listed.stderr
    assert [v["version"] for v in json.loads(listed.stdout)] == PACKAGED
    pulled = cli_here("models", "pull", "v1", "--out", str(tmp_path / "v1"), home=home)
    assert pulled.returncode == 0, pulled.stderr
    files = sorted(p.name for p in (tmp_path / "v1").iterdir())
    assert files == ["README.md", "config.json", "model.safetensors"]
    assert (tmp_path / "v1" / "model.safetensors").read_bytes() == (V1 / "model.safetensors").read_bytes()
    newest = cli_here("models", "pull", "latest", "--out", str(tmp_path / "newest"), home=home)
    assert newest.returncode == 0 and json.loads((tmp_path / "newest" / "config.json").read_text())[
        "mammo"]["version"] == PACKAGED[-1]
    (tmp_path / "a_file").write_text("not a folder")  # where a folder should be: one clear line
    clash = cli_here("models", "pull", "v1", "--out", str(tmp_path / "a_file"), home=home)
    assert clash.returncode == 2 and clash.stderr.startswith("error:") and "Traceback" not in clash.stderr
    imported = cli_here("cases", "import", str(small_mias), home=home)
    assert imported.returncode == 0, imported.stderr
    n = len(list(small_mias.glob("*/*.png")))
    assert json.loads(imported.stdout)["total_cases"] == n
    counts = json.loads(cli_here("cases", "list", home=home).stdout)["counts"]
    assert sum(counts.values()) == n and counts["malignant"] == len(list(small_mias.glob("malignant/*.png")))
    again = cli_here("cases", "import", str(small_mias), home=home)  # the same images: refused, clearly
    assert again.returncode == 2 and f"all {n} images in this upload were submitted before" in again.stderr
    # a withdrawn case's film, at another size, is not taken back (the command line stored it: a walk)
    withdrawn = json.loads(imported.stdout)["case_ids"][0]
    assert cli_here("cases", "withdraw", withdrawn, "consent withdrawn", home=home).returncode == 0
    copy = tmp_path / "copy" / "benign" / "smaller.png"
    copy.parent.mkdir(parents=True)
    with CaseStore(["normal", "benign", "malignant"], home / "cases") as store:
        Image.open(BytesIO(store.case_png(withdrawn, withdrawn_too=True))).resize((200, 200)).save(copy)
    taken_back = cli_here("cases", "import", str(copy.parent.parent), home=home)
    assert taken_back.returncode == 2 and "submitted before (stored, or withdrawn)" in taken_back.stderr
    # a folder with one new image (and case fields in its metadata.csv) adds that one and names the rest
    grown = tmp_path / "grown"
    shutil.copytree(small_mias / "benign", grown / "benign")
    new = grown / "benign" / "new.png"
    new.write_bytes(encode_png(np.random.default_rng(5).random((80, 64), dtype=np.float32)))
    stored = sorted(p.relative_to(grown).as_posix() for p in grown.glob("benign/mdb*.png"))
    rows = [{"file_name": name, "patient_id": "P1", "density": "", "age": ""} for name in stored]
    rows.append({"file_name": "benign/new.png", "patient_id": "P2", "density": "c", "age": "61"})
    with (grown / "metadata.csv").open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    added = cli_here("cases", "import", str(grown), home=home)
    assert added.returncode == 0, added.stderr
    receipt = json.loads(added.stdout)
    assert len(receipt["case_ids"]) == 1 and sorted(s["name"] for s in receipt["skipped"]) == stored
    recent = json.loads(cli_here("cases", "list", "-n", "1", home=home).stdout)["recent"][0]
    assert recent["metadata"]["density"] == "C" and recent["metadata"]["age"] == 61
    assert "P2" not in json.dumps(recent)  # the patient id column is not stored
    n += 1

    with CaseStore(["normal", "benign", "malignant"], home / "cases") as store:  # two Submit-tab cases
        for seed in (1, 2):
            store.append(np.random.default_rng(seed).random((64, 64), dtype=np.float32), "benign")
    compacted = cli_here("cases", "compact", "--small", str(n + 1), home=home)
    assert compacted.returncode == 0, compacted.stderr
    assert json.loads(compacted.stdout) == {"shards_merged": 4, "shards_written": 1, "cases": n + 2}
    assert len(list((home / "cases" / "data").glob("*.parquet"))) == 1
    with CaseStore(["normal", "benign", "malignant"], home / "cases") as store:
        assert sum(store.counts().values()) == n + 1  # the withdrawn case kept in its shard, not counted
    # a wrong label corrected from the shell: the case's label now, audited; a refusal is one clear line
    relabelled = cli_here("cases", "relabel", recent["case_id"], "malignant", home=home)
    assert relabelled.returncode == 0, relabelled.stderr
    receipt = json.loads(relabelled.stdout)
    assert (receipt["label"], receipt["was"]) == ("malignant", "benign")
    listed = json.loads(cli_here("cases", "list", "-n", str(n + 2), home=home).stdout)["recent"]
    assert {c["case_id"]: c["label"] for c in listed}[recent["case_id"]] == "malignant"
    audit = [json.loads(p.read_text()) for p in sorted((home / "audit").glob("*.json"))]
    assert (audit[-1]["action"], audit[-1]["user"]) == ("label corrected", "command line (cases relabel)")
    again = cli_here("cases", "relabel", recent["case_id"], "malignant", home=home)
    assert again.returncode == 2 and "already labelled malignant" in again.stderr
    assert "Traceback" not in again.stderr
    # a case withdrawn from the shell: left out of the counts and lists, audited with its reason
    unlisted = cli_here("cases", "withdraw", recent["case_id"], "a reason of my own", home=home)
    assert unlisted.returncode == 2 and "is not one of: identifier" in unlisted.stderr  # a listed reason
    withdrawn = cli_here("cases", "withdraw", recent["case_id"], "Consent withdrawn", home=home)
    assert withdrawn.returncode == 0, withdrawn.stderr
    assert json.loads(withdrawn.stdout)["was"] == "malignant"
    listed = json.loads(cli_here("cases", "list", "-n", str(n + 2), home=home).stdout)
    assert recent["case_id"] not in {c["case_id"] for c in listed["recent"]}
    assert sum(listed["counts"].values()) == n  # two withdrawn
    audit = json.loads(sorted((home / "audit").glob("*.json"))[-1].read_text())
    assert (audit["action"], audit["details"]["reason"]) == ("case withdrawn", "consent withdrawn")


def test_retrain_command_runs_the_apps_retrain_and_gate(small_mias: Path, tiny_model_dir: Path,
                                                        tmp_path: Path, monkeypatch) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("MAMMO_BASE_DATA", str(small_mias))
    for name in ("MAMMO_TRAINERS", "MAMMO_DATASET_REPO", "MAMMO_MODEL_REPO", "HF_TOKEN", "SPACE_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MAMMO_HOME", str(home))
    open_registry(settings(), seed=tiny_model_dir)  # the tiny model is v1, served
    monkeypatch.setenv("MAMMO_TRAINERS", "alice")
    refused = cli_here("retrain", "--epochs", "1", home=home)
    assert refused.returncode == 2 and "limited to the trainers" in refused.stderr
    monkeypatch.delenv("MAMMO_TRAINERS")
    done = cli_here("retrain", "--epochs", "1", "--image-size", "64", home=home)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert "evaluating the current version and the candidate" in done.stderr  # progress reported as it goes
    decision, _ = promotion_decision(summary["candidate"], summary["current"], settings().gate_metric,
                                     settings().gate_tolerance, min_malignant=settings().gate_min_malignant)
    assert summary["promoted"] == decision and summary["current_version"] == "v1"
    assert summary["cases_used"] == summary["cases_left_out"] == 0
    assert summary["film_size_warning"] is None and "warning:" not in done.stderr  # whole films: any size
    registry = open_registry(settings())
    assert [v["version"] for v in registry.versions()] == (["v1", "v2"] if decision else ["v1"])
    expected = ("v2", True) if decision else ("v1", False)
    assert (summary["version"], summary["rejected_id"] is None) == expected
    events = AuditLog(home / "audit").events()
    assert [e["action"] for e in events][-2:] == ["retrain started", "promotion" if decision else "rejection"]
    assert done.stdout.count('"promoted"') == 1
