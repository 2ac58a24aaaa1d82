"""The logistic-regression baseline beside a trained model, on exactly its films: its
cross-validation folds (when it was cross-validated) and its held-out patients.

    python scripts/baseline_figures.py --model mammo/weights/v2 --data ../shared/data/mias1024 [--write]

Rebuilds the model's patient split and fold assignment from its ``config.json`` (split seed and
fractions, cross-validation folds and seed) over ``--data``, trains the baseline of
``mammo/baseline.py`` on the same training films, and prints the CNN's and the baseline's figures
side by side as JSON. ``--write`` adds them to the model's ``config.json`` (``mammo.baseline`` and
``mammo.cv.baseline``, and the CNN's own holdout ``auc_abnormal`` when it predates that key) and
rewrites its card; nothing else in the folder changes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mammo.baseline import cross_validate_baseline, evaluate_baseline  # noqa: E402
from mammo.cv import patient_folds  # noqa: E402
from mammo.data import SplitSpec, folder_examples, split_by_patient  # noqa: E402
from mammo.pipeline import write_card  # noqa: E402
from mammo.predict import Predictor  # noqa: E402
from mammo.preprocess import PreprocessConfig  # noqa: E402
from mammo.train import evaluate_examples  # noqa: E402

__all__ = ["baseline_figures", "main"]

_SHOWN = ("n", "auc_malignant", "auc_malignant_ci95", "balanced_accuracy")


def baseline_figures(model: Path, data: Path) -> dict:
    """``{"holdout": baseline metrics, "cv": baseline metrics or None}`` for ``model`` on ``data``."""
    config = json.loads((model / "config.json").read_text())
    mammo, labels = config["mammo"], config["label_names"]
    spec = SplitSpec.from_model_config(config)
    if spec is None:
        raise SystemExit(f"{model} records no patient split: no held-out films to score a baseline on")
    preprocess = PreprocessConfig.from_dict(mammo["preprocess"])
    min_side = mammo["preprocess"].get("min_side", 64)
    parts = split_by_patient(folder_examples(data), spec)
    learn = [*parts["train"], *parts["val"]]  # every film before the holdout, in the pipeline's order
    holdout = evaluate_baseline(learn, parts["holdout"], labels, preprocess, min_side)
    figures = {"holdout": holdout, "cv": None, "cnn_auc_abnormal": None}
    if "auc_abnormal" not in mammo["metrics"]:  # recorded before evaluate had the key: score it now
        predictor = Predictor(model)
        figures["cnn_auc_abnormal"] = evaluate_examples(
            predictor.model, parts["holdout"], labels, predictor.preprocess, predictor.threshold,
            predictor.min_side)["auc_abnormal"]
    cv = mammo.get("cv")
    if cv:
        fold_of = patient_folds(learn, cv["n_folds"], (cv.get("recipe") or {}).get("seed", 0))
        figures["cv"] = cross_validate_baseline(learn, labels, fold_of, preprocess, min_side)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="a model folder (config.json)")
    parser.add_argument("--data", type=Path, required=True, help="the base imagefolder it was trained on")
    parser.add_argument("--write", action="store_true", help="record the figures in the model folder")
    args = parser.parse_args(argv)
    figures = baseline_figures(args.model, args.data)
    config = json.loads((args.model / "config.json").read_text())
    mammo = config["mammo"]
    shown = {"holdout": {"cnn": {k: mammo["metrics"].get(k) for k in _SHOWN},
                         "baseline": {k: figures["holdout"].get(k) for k in _SHOWN}}}
    if figures["cv"]:
        shown["cv"] = {name: {k: metrics.get(k) for k in (*_SHOWN, "auc_abnormal")}
                       for name, metrics in (("cnn", mammo["cv"]), ("baseline", figures["cv"]))}
    print(json.dumps(shown, indent=2))
    if args.write:
        mammo["baseline"] = figures["holdout"]
        if figures["cnn_auc_abnormal"] is not None:
            mammo["metrics"]["auc_abnormal"] = figures["cnn_auc_abnormal"]
        if figures["cv"]:
            mammo["cv"]["baseline"] = figures["cv"]
        (args.model / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        write_card(args.model)
        print(f"recorded in {args.model / 'config.json'} and its card", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
