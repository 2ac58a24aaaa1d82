"""Helpers shared by the end-to-end test modules (so that no test module imports another)."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import subprocess
import sys
import threading
import traceback
from pathlib import Path
from types import ModuleType

import datasets
import matplotlib
import numpy as np
from app_server import ROOT
from gradio_client.client import Job
from PIL import Image

from mammo.metrics import EVALUATE_KEYS
from mammo.store.registry import packaged_versions

__all__ = ["LABELS", "RETRAIN", "PACKAGED", "SERVED", "NEXT", "Images", "load_cases", "running_job_desc",
           "run_cli", "cli_here", "run_script", "script_here", "check_schema", "PORTRAIT"]

LABELS = ["normal", "benign", "malignant"]
PACKAGED = [folder.name for folder in packaged_versions()]  # the versions shipped: v1, v2, ...
SERVED = PACKAGED[-1]  # what a fresh app serves
# a real colour photograph (a portrait on a dark ground, shipped with matplotlib): no film
PORTRAIT = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
NEXT = f"v{len(PACKAGED) + 1}"  # the version the next publish makes
RETRAIN = (3, 128, True)  # epochs, image size, from the current version: seconds, not minutes


class Images:
    """Distinct small valid PNGs (random noise; nothing derived from real data)."""

    def __init__(self, folder: Path, seed: int) -> None:
        self.folder, self.rng, self.n = folder, np.random.default_rng(seed), 0
        self._lock = threading.Lock()
        folder.mkdir(parents=True, exist_ok=True)

    def next(self) -> str:
        with self._lock:
            self.n += 1
            path = self.folder / f"img-{self.n}.png"
            pixels = self.rng.integers(0, 256, (96, 80), dtype=np.uint8)
        Image.fromarray(pixels).save(path)
        return str(path)


def load_cases(root: Path, cache: Path) -> datasets.Dataset:
    """The case folder as ``datasets`` reads it (what retraining and users see)."""
    return datasets.load_dataset(str(root), split="train", cache_dir=str(cache))


def running_job_desc(job: Job) -> str:
    """The progress text of a running gradio_client job ('' before it reports any)."""
    status = job.status()
    return " ".join(unit.desc or "" for unit in status.progress_data or [])


def run_cli(*args: str, home: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if home is not None:
        env["MAMMO_HOME"] = str(home)
    return subprocess.run([sys.executable, "-m", "mammo", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)


def _in_this_process(name: list[str], main, args: tuple[str, ...]) -> subprocess.CompletedProcess:
    """``main(args)`` run here, reported as a process would report it: its exit status (an uncaught
    exception: 1, its traceback on stderr, as Python prints it), stdout and stderr as text."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exit_:  # argparse's refusals, sys.exit(status or message)
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
            if not isinstance(exit_.code, int | None):
                print(exit_.code, file=sys.stderr)
        except Exception:  # noqa: BLE001 - a process would end with this traceback
            traceback.print_exc()
            code = 1
    return subprocess.CompletedProcess([*name, *args], code, out.getvalue(), err.getvalue())


def cli_here(*args: str, home: Path | None = None) -> subprocess.CompletedProcess:
    """``python -m mammo ARGS`` run in this process, reported as :func:`run_cli` reports it (a new
    process spends 8-17 s here importing torch and the rest before it starts)."""
    from mammo.cli import main

    before = os.environ.get("MAMMO_HOME")
    if home is not None:
        os.environ["MAMMO_HOME"] = str(home)
    try:
        return _in_this_process(["mammo"], main, args)
    finally:
        if before is None:
            os.environ.pop("MAMMO_HOME", None)
        else:
            os.environ["MAMMO_HOME"] = before


def run_script(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """``python ARGS`` in the project root (e.g. ``scripts/x.py ...``), its output captured as text."""
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def load_script(script: str) -> ModuleType:
    """The module of ``scripts/x.py`` (given as that path), loaded in this process."""
    path = ROOT / script
    spec = importlib.util.spec_from_file_location(f"script_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def script_here(script: str, *args: str) -> subprocess.CompletedProcess:
    """``python scripts/x.py ARGS`` run in this process (its ``main(argv)``), reported as
    :func:`run_script` reports it."""
    return _in_this_process([script], load_script(script).main, args)


def check_schema(metrics: dict, n: int) -> None:
    assert EVALUATE_KEYS <= set(metrics)
    assert metrics["n"] == n and metrics["classes"] == ["normal", "benign", "malignant"]
    matrix = metrics["confusion_matrix"]
    assert len(matrix) == 3 and all(len(row) == 3 for row in matrix)
    assert sum(map(sum, matrix)) == n
    assert set(metrics["per_class"]) == set(metrics["classes"])
    assert sum(c["support"] for c in metrics["per_class"].values()) == n
    lo, hi = metrics["auc_malignant_ci95"]
    assert 0 <= lo <= metrics["auc_malignant"] <= hi <= 1
    for key in ("accuracy", "balanced_accuracy", "auc_macro", "sensitivity", "specificity"):
        assert 0 <= metrics[key] <= 1
