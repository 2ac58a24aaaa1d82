"""Benchmark the training pipeline on BreastMNIST (breast ultrasound, 28 x 28) with the same CLI.

    python scripts/benchmark_breastmnist.py [--data ../shared/data] [--epochs 30] [--json-out FILE]

Trains with ``python -m mammo train`` on ``breastmnist/train`` (validation: ``breastmnist/val``),
then prints ``python -m mammo evaluate --json`` on ``val``. These are VALIDATION figures (val also
chose the epoch and the threshold, so they are optimistic); MedMNIST v2 reports TEST figures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# MedMNIST v2 (Yang et al., Scientific Data 10:41, 2023), BreastMNIST official TEST split
PUBLISHED = {"ResNet-18 (28)": (0.901, 0.863), "Google AutoML Vision": (0.919, 0.861)}


def mammo(*args: str) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "mammo", *args], cwd=ROOT, env=env, text=True,
                          stdout=subprocess.PIPE)
    if done.returncode != 0:
        raise SystemExit(f"python -m mammo {' '.join(args)} failed ({done.returncode})")
    return done.stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    default_data = Path(os.environ.get("MAMMO_DATA", ROOT.parent / "shared" / "data"))
    parser.add_argument("--data", type=Path, default=default_data, help="folder holding breastmnist/")
    parser.add_argument("--out", type=Path, help="model folder (default: a temporary one)")
    parser.add_argument("--arch", default="tf_efficientnet_lite0")
    parser.add_argument("--image-size", type=int, default=64, help="28 px images are upsampled")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--init", default="imagenet")
    parser.add_argument("--json-out", type=Path, help="also save the evaluate JSON here")
    args = parser.parse_args(argv)

    train, val = args.data / "breastmnist" / "train", args.data / "breastmnist" / "val"
    out = args.out or Path(tempfile.mkdtemp(prefix="breastmnist-")) / "model"
    # ultrasound: no breast crop or laterality flip; 28 px images are below the default minimum side
    mammo("train", "--data", str(train), "--val", str(val), "--arch", args.arch, "--init", args.init,
          "--image-size", str(args.image_size), "--epochs", str(args.epochs), "--seed", str(args.seed),
          "--no-crop", "--no-orient", "--min-side", "28", "--out", str(out))
    metrics = json.loads(mammo("evaluate", "--model", str(out), "--data", str(val), "--json"))
    print(json.dumps(metrics))
    if args.json_out:
        args.json_out.write_text(json.dumps(metrics, indent=2))
    print(f"\nBreastMNIST val (n={metrics['n']}; VALIDATION, also used for early stopping and the threshold):"
          f" AUC {metrics['auc_macro']:.3f}, accuracy {metrics['accuracy']:.3f}, "
          f"AUC 95% CI {metrics['auc_malignant_ci95']}", file=sys.stderr)
    for name, (auc, acc) in PUBLISHED.items():
        print(f"MedMNIST v2 {name} (official TEST split): AUC {auc:.3f}, accuracy {acc:.3f}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
