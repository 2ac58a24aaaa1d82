"""Figures added to mammo after a model was trained, computed for that model on exactly its films:
the logistic-regression baseline (on its cross-validation folds and its held-out patients), and
the abnormal-vs-normal AUC and subgroup figures (tissue type, density, age band) of the model.

    python scripts/model_figures.py --model mammo/weights/v2 --data ../shared/data/mias1024 \
        [--oof runs/v2-folds/cv.json] [--write]

Rebuilds the model's patient split and fold assignment from its ``config.json`` (split seed and
fractions, cross-validation folds and seed) over ``--data``, trains the baseline of
``mammo/baseline.py`` on the same training films, scores the model on its holdout again, and
prints the CNN's and the baseline's figures side by side as JSON. ``--oof`` (the ``cv.json`` a
``--keep-models`` cross-validation wrote: every film's out-of-fold probabilities) adds the
cross-validated subgroup figures. ``--write`` adds what the model's ``config.json`` lacks
(``mammo.baseline``, ``mammo.cv.baseline``, ``auc_abnormal`` and ``subgroups`` of ``mammo.metrics``
and ``mammo.cv``) and rewrites its card; nothing recorded is changed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mammo.baseline import cross_validate_baseline, evaluate_baseline  # noqa: E402
from mammo.cv import patient_folds  # noqa: E402
from mammo.data import SplitSpec, folder_examples, split_by_patient  # noqa: E402
from mammo.errors import said_in_one_line  # noqa: E402
from mammo.pipeline import write_card  # noqa: E402
from mammo.predict import Predictor  # noqa: E402
from mammo.preprocess import PreprocessConfig  # noqa: E402
from mammo.subgroups import subgroup_metrics  # noqa: E402
from mammo.train import evaluate_examples  # noqa: E402

__all__ = ["model_figures", "main"]

_SHOWN = ("n", "auc_malignant", "auc_malignant_ci95", "balanced_accuracy")


def model_figures(model: Path, data: Path, oof: Path | None = None) -> dict:
    """The baseline's ``holdout`` and ``cv`` metrics, and the model's holdout ``cnn_holdout``
    (``auc_abnormal``, ``subgroups``) and, with ``oof``, ``cnn_cv_subgroups``."""
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
    predictor = Predictor(model)
    scored = evaluate_examples(predictor.model, parts["holdout"], labels, predictor.preprocess,
                               predictor.threshold, predictor.min_side)
    figures = {"holdout": holdout, "cv": None, "cnn_cv_subgroups": None,
               "cnn_holdout": {k: scored[k] for k in ("auc_abnormal", "subgroups")}}
    cv = mammo.get("cv")
    if cv:
        fold_of = patient_folds(learn, cv["n_folds"], (cv.get("recipe") or {}).get("seed", 0), min_side)
        figures["cv"] = cross_validate_baseline(learn, labels, fold_of, preprocess, min_side)
        if oof is not None:
            figures["cnn_cv_subgroups"] = _oof_subgroups(oof, learn, labels, cv)
    return figures


def _oof_subgroups(oof: Path, films: list, labels: list[str], cv: dict) -> dict:
    """Subgroup figures of a cross-validation's pooled out-of-fold probabilities, each film called at
    the threshold fitted on the other folds (recorded with it)."""
    run = json.loads(oof.read_text())
    if run.get("recipe") != cv.get("recipe") or run.get("threshold") != cv.get("threshold"):
        raise SystemExit(f"{oof} is another cross-validation (its recipe or threshold differs from the "
                         "model's recorded one)")
    scored = {row["name"]: row for row in run["oof"]}
    missing = [e.name for e in films if e.name not in scored]
    if missing:
        raise SystemExit(f"{oof} does not score {len(missing)} of the model's films (e.g. {missing[0]}): "
                         "not this model's cross-validation")
    if any("threshold" not in scored[e.name] for e in films):
        raise SystemExit(f"{oof} records no cross-fitted threshold per film (made before they were kept): "
                         "cross-validate again")
    probs = np.array([scored[e.name]["probabilities"] for e in films])
    thresholds = np.array([scored[e.name]["threshold"] for e in films])
    targets = np.array([labels.index(e.label) for e in films])
    return subgroup_metrics(films, targets, probs, labels, thresholds)


@said_in_one_line
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="a model folder (config.json)")
    parser.add_argument("--data", type=Path, required=True, help="the base imagefolder it was trained on")
    parser.add_argument("--oof", type=Path, help="cv.json of the model's cross-validation (--keep-models)")
    parser.add_argument("--write", action="store_true", help="record the missing figures in the model folder")
    args = parser.parse_args(argv)
    figures = model_figures(args.model, args.data, args.oof)
    config = json.loads((args.model / "config.json").read_text())
    mammo = config["mammo"]
    shown = {"holdout": {"cnn": {k: mammo["metrics"].get(k) for k in _SHOWN},
                         "baseline": {k: figures["holdout"].get(k) for k in _SHOWN}}}
    if figures["cv"]:
        shown["cv"] = {name: {k: metrics.get(k) for k in (*_SHOWN, "auc_abnormal")}
                       for name, metrics in (("cnn", mammo["cv"]), ("baseline", figures["cv"]))}
    shown["cnn_holdout"] = figures["cnn_holdout"]
    shown["cnn_cv_subgroups"] = figures["cnn_cv_subgroups"]
    print(json.dumps(shown, indent=2))
    if args.write:
        mammo.setdefault("baseline", figures["holdout"])
        for key, value in figures["cnn_holdout"].items():
            mammo["metrics"].setdefault(key, value)
        if figures["cv"]:
            mammo["cv"].setdefault("baseline", figures["cv"])
        if figures["cnn_cv_subgroups"]:
            mammo["cv"].setdefault("subgroups", figures["cnn_cv_subgroups"])
        (args.model / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        write_card(args.model)
        print(f"recorded in {args.model / 'config.json'} and its card", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
