"""Shared fixtures: the real data (from MAMMO_DATA), tiny model folders, one torch thread."""

from __future__ import annotations

import gc
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)  # 2-core machine: more threads spin and slow everything down
# the tests' small bases hold one or two malignant held-out films: below the gate's default of 5 it
# promotes nothing, so the tests' apps, services and CLI runs (which read it from the environment)
# let one film do; test_registry checks the default rule itself
os.environ["MAMMO_GATE_MIN_MALIGNANT"] = "1"

# the Hub-protocol test server's ``hub_server`` fixture, for every test module
pytest_plugins = ["hub_server"]


# the slowest test files first (seconds of work each, measured with --durations on this 2-core
# machine), the rest after them in their usual order: `make test`'s two workers take files as they
# free up, so they then end together on quick files instead of one running a slow file alone
# (`--no-loadscope-reorder` keeps this order: by default pytest-xdist puts the files with the most
# tests first)
SLOWEST_FIRST = ("test_browser.py",  # 180 s
                 "test_faults.py",  # 136
                 "test_cv.py",  # 82
                 "test_service.py",  # 76
                 "test_concurrency.py",  # 76
                 "test_app.py",  # 66
                 "test_scripts.py",  # 57
                 "test_cli.py",  # 47
                 "test_distributed.py",  # 41
                 "test_security.py",  # 29
                 "test_bad_inputs.py",  # 25
                 "test_api_access.py")  # 23


_RUN_CACHE = pytest.StashKey[str]()  # the run's ONNX export folder, when this run made it


def pytest_configure(config: pytest.Config) -> None:
    """One folder of ONNX exports (``MAMMO_CACHE``, :mod:`mammo.onnx_cache`) for the whole run, made
    before the workers start so that they and the apps they run share it; never the user's own."""
    if not hasattr(config, "workerinput") and not os.environ.get("MAMMO_CACHE"):
        config.stash[_RUN_CACHE] = os.environ["MAMMO_CACHE"] = tempfile.mkdtemp(prefix="mammo-test-cache-")


def pytest_unconfigure(config: pytest.Config) -> None:
    if _RUN_CACHE in config.stash:
        shutil.rmtree(config.stash[_RUN_CACHE], ignore_errors=True)
        del os.environ["MAMMO_CACHE"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the files of SLOWEST_FIRST first (a stable sort: each file's tests keep their order)."""
    rank = {name: place for place, name in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """With MAMMO_NO_SKIPS=1 (``.ci/run``, where the real data and every dev requirement are present)
    a skipped test fails the run: a test that did not run cannot have passed."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if os.environ.get("MAMMO_NO_SKIPS") == "1" and skipped and session.exitstatus == 0:
        reporter.write_line(f"MAMMO_NO_SKIPS=1: {len(skipped)} test(s) skipped; this run fails:", red=True)
        for report in skipped:
            reporter.write_line(f"  {report.nodeid}: {report.longrepr[-1] if report.longrepr else ''}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = os.environ.get("MAMMO_DATA")
    if not root or not Path(root).is_dir():
        pytest.skip("MAMMO_DATA not set (point it at shared/data; .ci/run does): real-data test")
    return Path(root)


@pytest.fixture(scope="session")
def mias(data_root: Path) -> Path:
    path = data_root / "mias"
    if not path.is_dir():
        pytest.skip(f"{path} missing")
    return path


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained ``test_efficientnet`` model folder with the three mammo labels."""
    from mammo.model import build, save

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny_model")
    model = build("test_efficientnet", 3, init="none")
    mammo = {
        "version": "vtest",
        "preprocess": {"image_size": 64, "crop": True, "orient": True},
        "threshold": 0.3,
    }
    return save(model, folder, ["normal", "benign", "malignant"], 64, mammo)


@pytest.fixture(scope="session")
def small_mias(mias: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A patient-grouped subset of mini-MIAS (60 images of 30 patients, 10 with each label) in a temp
    folder, fit to be the app's base data: its own patient split (the served version's spec) holds out
    only patients the served version held out too, since a retrain refuses base data whose holdout
    holds films the served version learnt from (recognised at 512 px by their fingerprints). So it
    holds every patient the newest packaged version (the one a fresh app serves) held out, and others
    drawn until that is so."""
    import csv
    import json
    import random

    from mammo.data import Example, SplitSpec, split_by_patient
    from mammo.store.registry import packaged_versions

    rows = list(csv.DictReader((mias / "metadata.csv").open(newline="")))
    patients: dict[str, list[dict]] = {}
    for row in rows:
        patients.setdefault(row["patient_id"], []).append(row)
    severity = ("malignant", "benign", "normal")
    label_of = {p: next(label for label in severity if any(r["label"] == label for r in rs))
                for p, rs in patients.items()}
    spec = SplitSpec.from_model_config(json.loads((packaged_versions()[-1] / "config.json").read_text()))

    def held_out(chosen: list[str]) -> set[str]:
        films = [Example(r["file_name"], r["label"], p, r["file_name"]) for p in chosen for r in patients[p]]
        return {film.group for film in split_by_patient(films, spec)["holdout"]}

    served_held_out = held_out(sorted(patients))
    for seed in range(1000):
        rng, chosen = random.Random(seed), sorted(served_held_out)
        for label in severity:
            others = sorted(p for p in patients if p not in served_held_out and label_of[p] == label)
            chosen += rng.sample(others, max(0, 10 - sum(label_of[p] == label for p in chosen)))
        if held_out(chosen) <= served_held_out:
            break
    else:
        raise AssertionError("no subset of mini-MIAS holds out only the served version's held-out patients")
    chosen = [r for p in chosen for r in patients[p]]
    root = tmp_path_factory.mktemp("small_mias")
    for row in chosen:
        (root / row["label"]).mkdir(exist_ok=True)
        shutil.copy(mias / row["file_name"], root / row["file_name"])
    with (root / "metadata.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(chosen)
    return root


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 300 kB tmpfs (needs root and mount permission; skipped otherwise)."""
    if shutil.which("mount") is None:
        pytest.skip("no mount command to make a small tmpfs with")
    folder = tmp_path / "disk"
    folder.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", str(folder)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill up (needs root): {done.stderr.strip()}")
    try:
        yield folder
    finally:
        gc.collect()  # a dataset memory-mapped from it, not yet collected, keeps it busy
        subprocess.run(["umount", str(folder)], check=True)
