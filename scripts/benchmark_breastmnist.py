"""Benchmark the training pipeline on BreastMNIST (breast ultrasound, 28 x 28) with the same CLI.

    python scripts/benchmark_breastmnist.py [--data ../shared/data] [--epochs 30] [--folds 5] [--seeds N]
                                            [--json-out FILE] [any other `python -m mammo train` option]

Pools ``breastmnist/train`` and ``breastmnist/val`` (624 images) and runs ``python -m mammo train
--cv K`` on them: K-fold cross-validation (stratified; BreastMNIST has no patient ids, so images are
the groups, copies of one image one group) for the estimate, then the final model on all 624 images
for the same fixed number of epochs, calibrated on the pooled out-of-fold predictions. Prints the
cross-validation JSON (``evaluate --json`` keys + ``folds``) to stdout and a comparison with the
MedMNIST v2 table to stderr. Ours are CROSS-VALIDATED figures on train+val; MedMNIST v2 reports the
official TEST split, which this project does not have: score the final model on it with ``python -m
mammo evaluate --model OUT --data breastmnist/test --json``.
``--seeds N`` repeats all of it with seeds ``seed`` ... ``seed + N - 1`` (other folds, other training
order) into ``OUT/seed<k>`` (fold models and their ``cv.json`` in ``OUT/seed<k>-folds``), then prints
``scripts/repeated_cv.py``'s report (the runs' spread, and the out-of-fold estimate of averaging
them), the ``evaluate`` command that scores the ensemble of the N final models, and the
``scripts/breastmnist_probe.py`` commands that add the frozen-feature probe to them.
Options this script does not know are passed on to ``train`` unchanged.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import repeated_cv  # noqa: E402

from mammo.config import settings  # noqa: E402

__all__ = ["PUBLISHED", "ULTRASOUND_ARGS", "main"]

# MedMNIST v2 (Yang et al., Scientific Data 10:41, 2023), BreastMNIST official TEST split (n=156)
PUBLISHED = {"ResNet-18 (28)": (0.901, 0.863), "Google AutoML Vision": (0.919, 0.861)}
# Ultrasound: no breast crop, no laterality flip; 28 px images are below the default minimum side;
# each image scored with its left-right mirror (cross-validation: +0.02 AUC, paired CI above 0).
ULTRASOUND_ARGS = ("--no-crop", "--no-orient", "--min-side", "28", "--test-time-mirror", "horizontal")


def _train(*args: str) -> None:
    """``python -m mammo train ARGS`` in this process, its printed summary sent to stderr (the figures
    are read from the model folder); exit clearly when it fails."""
    from mammo.cli import main as mammo_main

    with contextlib.redirect_stdout(sys.stderr):
        code = mammo_main(["train", *args])
    if code != 0:
        raise SystemExit(f"python -m mammo train {' '.join(args)} failed (exit {code}); "
                         "its error is printed above")


def _summary(metrics: dict, model: Path, minutes: float) -> str:
    config = json.loads((model / "config.json").read_text())["mammo"]["training"]
    low, high = metrics["auc_malignant_ci95"]
    folds = ", ".join(f"{f['auc_malignant']:.3f}" for f in metrics["folds"])
    lines = [
        f"final model: {model} ({config['epochs']} epochs on train+val; {minutes:.1f} min in all)",
        f"ours, {metrics['n_folds']}-fold CROSS-VALIDATION over BreastMNIST train+val (n={metrics['n']}, "
        "out of fold, calibration cross-fitted):",
        f"  AUC (malignant vs rest) {metrics['auc_malignant']:.3f} (95% CI {low:.2f}-{high:.2f}; "
        f"folds {folds}), accuracy {metrics['accuracy']:.3f} (argmax, as MedMNIST's ACC), balanced "
        f"accuracy {metrics['balanced_accuracy']:.3f}, ECE {metrics['ece_malignant']:.3f}",
        f"  at the threshold {metrics['threshold']:.3f} (90% sensitivity, fitted on these out-of-fold "
        f"predictions, so optimistic): sensitivity {metrics['sensitivity']:.3f}, specificity "
        f"{metrics['specificity']:.3f}; with cross-fitted thresholds "
        f"{metrics['sensitivity_cross_fitted']:.3f} / {metrics['specificity_cross_fitted']:.3f}",
        "theirs, MedMNIST v2 official TEST split (n=156):",
        *(f"  {name}: AUC {auc:.3f}, accuracy {acc:.3f}" for name, (auc, acc) in PUBLISHED.items()),
        "Different images: not directly comparable. Score the final model on the official test split "
        "with `python -m mammo evaluate --model <final model> --data breastmnist/test --json`.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    default_data = settings().data or ROOT.parent / "shared" / "data"
    parser.add_argument("--data", type=Path, default=default_data,
                        help=f"folder holding breastmnist/ (default: MAMMO_DATA or {default_data})")
    parser.add_argument("--out", type=Path, help="model folder to write (default: a new temporary one)")
    parser.add_argument("--arch", default="tf_efficientnet_lite0", help="timm architecture")
    parser.add_argument("--init", default="imagenet", help="imagenet | none | model folder")
    parser.add_argument("--image-size", type=int, default=64, help="model input side (28 px upsampled)")
    parser.add_argument("--epochs", type=int, default=30, help="epochs (fixed; no early stopping)")
    parser.add_argument("--folds", type=int, default=5, help="cross-validation folds")
    parser.add_argument("--workers", type=int, default=1, help="folds trained at once")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seeds", type=int, default=1,
                        help="runs with seeds --seed, --seed + 1, ... (more than one: spread and ensemble)")
    parser.add_argument("--json-out", type=Path,
                        help="also save the evaluate JSON to this file (FILE-seed<k> for each of --seeds)")
    args, train_extra = parser.parse_known_args(argv)

    data = args.data.resolve()  # absolute: recorded in the models' configs
    train, val = data / "breastmnist" / "train", data / "breastmnist" / "val"
    for folder in (train, val):
        if not folder.is_dir():
            parser.error(f"{folder} not found: point --data (or MAMMO_DATA) at the folder with breastmnist/")
    if args.seeds < 1:
        parser.error("--seeds takes at least 1")
    out = (args.out or Path(tempfile.mkdtemp(prefix="breastmnist-")) / "model").resolve()
    seeds = range(args.seed, args.seed + args.seeds)
    models = [out] if args.seeds == 1 else [out / f"seed{seed}" for seed in seeds]
    for seed, model in zip(seeds, models, strict=True):
        started = time.perf_counter()
        keep = [] if args.seeds == 1 else ["--keep-models", str(out / f"seed{seed}-folds")]
        _train("--data", str(train), "--data", str(val), "--val-fraction", "0", "--holdout-fraction", "0",
               "--cv", str(args.folds), "--workers", str(args.workers), "--arch", args.arch,
               "--init", args.init, "--image-size", str(args.image_size), "--epochs", str(args.epochs),
               "--seed", str(seed), *ULTRASOUND_ARGS, *train_extra, *keep, "--out", str(model))
        metrics = json.loads((model / "config.json").read_text())["mammo"]["cv"]
        print(json.dumps(metrics))
        if args.json_out:
            suffix = "" if args.seeds == 1 else f"-seed{seed}"
            saved = args.json_out.with_stem(args.json_out.stem + suffix)
            saved.write_text(json.dumps(metrics, indent=2) + "\n")
        print(_summary(metrics, model, (time.perf_counter() - started) / 60), file=sys.stderr)
    if args.seeds > 1:
        runs = [str(out / f"seed{seed}-folds" / "cv.json") for seed in seeds]
        repeated_cv.main(runs)
        members = " ".join(f"--model {model}" for model in models)
        test = args.data / "breastmnist" / "test"
        print(f"the {args.seeds} final models as one ensemble on the official test split: python -m mammo "
              f"evaluate {members} --data {test} --json", file=sys.stderr)
        print(f"the frozen-feature probe, cross-validated alone and with these runs, then fitted: python "
              f"scripts/breastmnist_probe.py fit --data {args.data} --out {out / 'probe'} --runs "
              f"{' '.join(runs)}; "
              f"the ensemble and the probe (half each) on the official test split: python "
              f"scripts/breastmnist_probe.py score --probe {out / 'probe'} --images {test} {members}",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
