"""Training under a 2-process ``accelerate launch`` on CPUs (gloo): it trains, each process trains on
its own share of the data, the main process alone writes one model folder and reports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from accelerate.data_loader import prepare_data_loader
from app_server import ROOT, free_port
from torch.utils.data import DataLoader

from mammo.data import folder_examples
from mammo.predict import Predictor
from mammo.train import TrainConfig, _drop_last, _process_batches, fit

ACCELERATE = Path(sys.executable).parent / "accelerate"


def _launch(out: Path, *train_args: str) -> subprocess.CompletedProcess:
    """``accelerate launch`` two CPU processes of ``python -m mammo train``."""
    command = [str(ACCELERATE), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
               "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(free_port()),
               "-m", "mammo", "train", *train_args, "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def _check_one_folder_and_one_report(done: subprocess.CompletedProcess, out: Path) -> dict:
    assert done.returncode == 0, done.stderr[-3000:]
    assert [p.name for p in out.parent.iterdir()] == [out.name]
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    assert done.stdout.count('"out":') == 1  # the main process reports; the other stays quiet
    return json.loads((out / "config.json").read_text())["mammo"]


def test_film_recipe_trains_on_two_processes_with_different_data(small_mias: Path, tmp_path: Path) -> None:
    out = tmp_path / "launch" / "model"
    done = _launch(out, "--data", str(small_mias), "--val-fraction", "0.2", "--holdout-fraction", "0",
                   "--arch", "test_efficientnet", "--init", "none", "--image-size", "48", "--epochs", "2",
                   "--batch-size", "4", "--seed", "0")
    mammo = _check_one_folder_and_one_report(done, out)
    shares = mammo["training"]["processes"]
    assert shares["processes"] == 2 and shares["device"].startswith("cpu")
    first, second = shares["per_process"]
    assert first == second > 0  # the launcher deals equal numbers of batches
    assert shares["covered"] > max(first, second)  # the two processes trained on different films
    assert shares["shared"] <= 4  # at most one padded batch of 4
    assert mammo["data"]["n_train"] - 4 < shares["covered"] <= mammo["data"]["n_train"]  # drop_last
    history = mammo["training"]["history"]
    assert [log["epoch"] for log in history] == [1, 2]
    assert all(np.isfinite(log["train_loss"]) for log in history)
    image = next(small_mias.glob("*/*.png"))
    result = Predictor(out).predict(image)
    assert np.isclose(sum(result.probabilities.values()), 1)


def test_patch_recipe_processes_stay_in_step(mias: Path, tmp_path: Path) -> None:
    out = tmp_path / "patch" / "model"
    done = _launch(out, "--data", str(mias), "--recipe", "patch", "--val-fraction", "0",
                   "--holdout-fraction", "0", "--arch", "test_efficientnet", "--init", "none",
                   "--image-size", "64", "--patch-size", "32", "--hard-negatives", "1", "--epochs", "2",
                   "--batch-size", "64", "--grad-accum", "2", "--film-epochs", "1", "--film-batch-size", "8",
                   "--seed", "0")
    mammo = _check_one_folder_and_one_report(done, out)
    shares = mammo["training"]["processes"]
    assert shares["processes"] == 2 and shares["grad_accum"] == 2 and shares["shared"] == 0
    assert shares["per_process"][0] == shares["per_process"][1] > 0
    assert shares["covered"] == sum(shares["per_process"])  # patches dealt out, none twice
    # two patch epochs, then one of whole-film fine-tuning (the patch stage's DDP wrapper released)
    assert [log["epoch"] for log in mammo["training"]["history"]] == [1, 2, 3]
    assert all(np.isfinite(log["train_loss"]) for log in mammo["training"]["history"])
    assert mammo["split"]["metrics_on"] is None and mammo["metrics"] is None  # nothing held out
    assert "not measured" in (out / "README.md").read_text()


@pytest.mark.parametrize(("items", "batch", "processes"), [(20, 16, 2), (40, 16, 2), (3, 4, 2), (17, 16, 1),
                                                         (5, 16, 1), (70, 8, 4)])
def test_film_batches_reach_every_process(items: int, batch: int, processes: int) -> None:
    """accelerate's own sharding of the film recipe's loader: every process trains, on full batches
    where there are enough films, and together they cover every film of the epoch but an incomplete
    last batch."""
    drop = _drop_last(items, batch, processes)
    shards = [[b.tolist() for b in prepare_data_loader(DataLoader(list(range(items)), batch_size=batch,
                                                                  drop_last=drop),
                                                       num_processes=processes, process_index=rank,
                                                       put_on_device=False)]
              for rank in range(processes)]
    assert all(shard for shard in shards) and len({len(shard) for shard in shards}) == 1
    covered = {i for shard in shards for b in shard for i in b}
    assert len(covered) >= items - (batch - 1 if drop else 0)
    if items >= batch:
        assert all(len(b) == batch for shard in shards for b in shard)


@pytest.mark.parametrize(("items", "batch", "processes", "accum", "expected"), [
    (10, 4, 1, 1, [[0, 4, 8]]),
    (10, 4, 2, 1, [[0], [4]]),  # the last incomplete round is dropped: equal steps
    (16, 4, 2, 1, [[0, 8], [4, 12]]),
    (3, 4, 2, 1, [[0], [0]]),  # fewer batches than processes: repeated, so no process idles
    (10, 2, 2, 2, [[0, 4], [2, 6]]),  # whole accumulation groups: each epoch ends on a step
    (10, 4, 1, 2, [[0, 4]]),
])
def test_patch_batches_are_dealt_in_equal_rounds(items, batch, processes, accum, expected) -> None:
    assert _process_batches(items, batch, processes, accum) == expected


def test_a_plain_process_records_one_share_and_gradient_accumulation(mias: Path) -> None:
    examples = folder_examples(mias)
    train = [e for e in examples if e.label == "normal"][:4]
    train += [e for e in examples if e.label == "malignant"][:4]
    config = TrainConfig(arch="test_efficientnet", init="none", image_size=32, epochs=1, batch_size=2,
                         grad_accum=2, seed=0)
    shares = fit(train, [], ["normal", "malignant"], config).shares
    assert (shares.processes, shares.per_process, shares.shared, shares.covered, shares.grad_accum) == (
        1, [8], 0, 8, 2)
    with pytest.raises(ValueError, match="gradient accumulation"):
        TrainConfig(grad_accum=0)
