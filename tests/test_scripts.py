"""The example phantoms are reproducible and readable; the BreastMNIST benchmark runs end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from mammo.imaging import read_image, sha256_of_pixels

ROOT = Path(__file__).resolve().parents[1]


def test_examples_are_synthetic_reproducible_and_readable(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "scripts/make_examples.py", "--out", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    committed = sorted(p.name for p in (ROOT / "examples").iterdir() if p.name != "README.md")
    assert committed == sorted(p.name for p in tmp_path.iterdir())
    for name in committed:
        fresh, shipped = read_image(tmp_path / name), read_image(ROOT / "examples" / name)
        assert sha256_of_pixels(fresh) == sha256_of_pixels(shipped)


def test_breastmnist_benchmark_smoke(data_root: Path, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "scripts/benchmark_breastmnist.py", "--data", str(data_root), "--epochs", "1",
         "--arch", "test_efficientnet", "--init", "none", "--image-size", "32", "--out", str(tmp_path / "m")],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    metrics = json.loads(done.stdout.splitlines()[0])
    val = data_root / "breastmnist" / "val"
    assert metrics["n"] == len(list(val.glob("*/*.png")))
    assert metrics["classes"] == ["normal_or_benign", "malignant"]
    assert {"auc_malignant", "auc_malignant_ci95", "confusion_matrix", "per_class"} <= set(metrics)
    assert "official TEST split" in done.stderr
