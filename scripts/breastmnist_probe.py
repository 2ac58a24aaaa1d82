"""A linear probe on frozen ImageNet features for BreastMNIST, alone and averaged with fine-tuned models.

    python scripts/breastmnist_probe.py fit --out DIR [--data ../shared/data] [--runs RUN.json ...]
    python scripts/breastmnist_probe.py score --probe DIR --images breastmnist/test [--model M ...]

``fit`` pools ``breastmnist/train`` and ``breastmnist/val`` (624 images) and reads each image through
the offline ImageNet backbones (EfficientNet-Lite0/1/2, frozen: nothing of them is trained). Each
backbone's feature maps after each stage but the first (its 16 channels add little), and its head's
pooled features, are averaged over the image, then over the image and its left-right mirror, and
concatenated: 5 376 numbers per image with the default backbones. A logistic regression on them (features
standardised on the training images; its L2 strength chosen by an inner 5-fold cross-validation of
the training images only) is the probe. Its estimate is K-fold cross-validation (stratified, by
group: BreastMNIST's images are their own groups, copies of one image one group), out of fold;
then it is fitted on all 624 images into ``DIR/probe.json``. With ``--runs`` (the ``cv.json`` of
fine-tuned cross-validations of the same images, e.g. ``benchmark_breastmnist.py --seeds 3``'s
``DIR/seed<k>-folds/cv.json``), it also reports the runs averaged and the **runs averaged, then
averaged with the probe** (half each), out of fold, with the paired difference, and their calls at
the threshold ``score`` would use (fitted on these same predictions: optimistic).

``score`` scores a folder of labelled images (the official test split) with the fitted probe, or with
the probe and an ensemble of fine-tuned models (``--model``, each image's probabilities averaged over
them, as ``python -m mammo evaluate``), half each (:data:`RULE`); prints the ``evaluate --json`` keys
and, as ``evaluate`` does, how many of the images the models learnt from (``films_learnt``), and the
probe (``images_the_probe_learnt``: the same pixels as one of its training images).
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import repeated_cv  # noqa: E402

from mammo.cli import resolve_model  # noqa: E402
from mammo.config import settings  # noqa: E402
from mammo.data import Example, copy_groups, folder_examples, label_order  # noqa: E402
from mammo.errors import said_in_one_line  # noqa: E402
from mammo.imaging import sha256_of_pixels  # noqa: E402
from mammo.metrics import evaluate_predictions, malignant_index, pick_threshold  # noqa: E402
from mammo.model import OFFLINE_IMAGENET, build  # noqa: E402
from mammo.predict import Predictor  # noqa: E402
from mammo.preprocess import PreprocessConfig, prepare, to_tensor  # noqa: E402
from mammo.train import (  # noqa: E402
    ensemble_probabilities,
    ensemble_threshold,
    evaluate_probabilities,
    films_learnt,
)

__all__ = ["BACKBONES", "RULE", "read_greys", "features", "with_probe", "combined_threshold", "main"]

# Each backbone at the input side its probe alone cross-validated best at (of 64-224 px; seed 0-2 folds)
BACKBONES: tuple[tuple[str, int], ...] = (
    ("tf_efficientnet_lite0", 224), ("tf_efficientnet_lite1", 224), ("tf_efficientnet_lite2", 96))
STRENGTHS = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0)  # inverse L2 strengths; an inner cross-validation picks one
MIN_SIDE = 28  # BreastMNIST's images
BATCH = 32
RULE = ("the fine-tuned models' probabilities averaged, then averaged with the probe's (half each); "
        "threshold: the mean of the probe's and the models' mean threshold")


def _backbone_features(model: torch.nn.Module, batch: torch.Tensor) -> torch.Tensor:
    """Each stage's feature map averaged over the image, and the head's pooled features, concatenated."""
    final, stages = model.forward_intermediates(batch)
    # the stem's level (16 channels) is left out; its edges and contrasts are what later stages build on
    return torch.cat([stage.mean(dim=(2, 3)) for stage in stages[1:]]
                     + [model.forward_head(final, pre_logits=True)], dim=1)


def read_greys(examples: list[Example]) -> list[np.ndarray]:
    """Each image as the app reads it (grey, 0-1), decoded once for its features and its pixel hash."""
    return [example.read(min_side=MIN_SIDE) for example in examples]


def features(greys: list[np.ndarray], backbones: tuple[tuple[str, int], ...] = BACKBONES) -> np.ndarray:
    """The probe's input (N, F): every backbone's pooled stages, each the mean of the image's and its
    left-right mirror's."""
    columns = []
    for arch, side in backbones:
        model, weights = build(arch, num_classes=0).eval(), OFFLINE_IMAGENET[arch]
        config = PreprocessConfig(image_size=side, crop=False, orient=False)
        inputs = torch.stack([to_tensor(prepare(grey, config)[0], weights.mean, weights.std)
                              for grey in greys])
        with torch.inference_mode():
            columns.append(torch.cat([
                (_backbone_features(model, batch) + _backbone_features(model, batch.flip(dims=[3]))) / 2
                for batch in inputs.split(BATCH)]).numpy())
    return np.concatenate(columns, axis=1)


def _probe(seed: int) -> Pipeline:
    """Standardised features, then a logistic regression whose L2 strength an inner cross-validation
    of the images it is fitted on picks from :data:`STRENGTHS` (by AUC)."""
    inner = StratifiedKFold(5, shuffle=True, random_state=seed)
    return make_pipeline(StandardScaler(), LogisticRegressionCV(
        Cs=list(STRENGTHS), cv=inner, scoring="roc_auc", max_iter=5000))


def _out_of_fold(x: np.ndarray, y: np.ndarray, groups: list[str], folds: int, seed: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Each image's class probabilities from a probe fitted on the other folds' groups, and its fold."""
    probs, fold_of = np.zeros((len(y), 2)), np.zeros(len(y), dtype=int)
    splits = StratifiedGroupKFold(folds, shuffle=True, random_state=seed).split(x, y, groups)
    for fold, (train, test) in enumerate(splits):
        probs[test] = _probe(seed).fit(x[train], y[train]).predict_proba(x[test])
        fold_of[test] = fold
    return probs, fold_of


def _saved(pipeline: Pipeline, backbones: tuple[tuple[str, int], ...], classes: list[str], threshold: float,
           estimate: dict) -> dict:
    """A fitted probe as JSON: its backbones, classes, threshold, scaling and regression."""
    scaler, regression = pipeline[0], pipeline[1]
    return {"backbones": [list(b) for b in backbones], "classes": classes, "threshold": threshold,
            "strength": float(np.ravel(regression.C_)[0]),
            "mean": scaler.mean_.tolist(), "scale": scaler.scale_.tolist(),
            "coef": regression.coef_[0].tolist(), "intercept": float(regression.intercept_[0]),
            "cv": estimate}


def _pixel_hashes(greys: list[np.ndarray]) -> list[str]:
    return [sha256_of_pixels(grey) for grey in greys]


def with_probe(ensemble: np.ndarray, probe: np.ndarray) -> np.ndarray:
    """Class probabilities of fine-tuned models (averaged) and the probe's, averaged half each."""
    return (ensemble + probe) / 2


def combined_threshold(probe_threshold: float, model_thresholds: list[float | None]) -> float | None:
    """The threshold of the models averaged with the probe (:data:`RULE`): the mean of the probe's and
    the models' mean threshold; None when a model records none (or there is no model)."""
    return ensemble_threshold([probe_threshold, ensemble_threshold(model_thresholds)])


def _probe_probabilities(saved: dict, x: np.ndarray) -> np.ndarray:
    """Class probabilities (N, 2) of a saved probe, in its classes' order (the second is the positive)."""
    regression = LogisticRegression()
    regression.classes_, regression.coef_ = np.array([0, 1]), np.array([saved["coef"]])
    regression.intercept_ = np.array([saved["intercept"]])
    return regression.predict_proba((x - np.array(saved["mean"])) / np.array(saved["scale"]))


def _fit(args: argparse.Namespace) -> dict:
    data = args.data.resolve() / "breastmnist"
    examples = folder_examples(data / "train") + folder_examples(data / "val")
    classes = label_order(e.label for e in examples)
    if len(classes) != 2:
        raise SystemExit(f"the probe is binary; these images hold the classes {classes}")
    if len({e.name for e in examples}) != len(examples):
        raise SystemExit("two images of train and val have one name: their predictions cannot be told apart")
    groups = copy_groups(examples, MIN_SIDE)
    runs = _runs_of(args.runs, examples, classes, groups) if args.runs else None  # refused before any feature
    args.out.mkdir(parents=True, exist_ok=True)
    y = np.array([classes.index(e.label) for e in examples])
    labels = np.array([e.label for e in examples])
    greys = read_greys(examples)
    x = features(greys, args.backbones)
    probs, fold_of = _out_of_fold(x, y, groups, args.folds, args.seed)
    estimate = {"split": f"{args.folds}-fold cross-validation over breastmnist train+val, out of fold",
                **evaluate_predictions(labels, probs, classes, groups=groups)}
    threshold = pick_threshold(labels, probs, classes)
    saved = _saved(_probe(args.seed).fit(x, y), args.backbones, classes, threshold, estimate)
    # the out-of-fold predictions as `cv.json` keeps them: scripts/repeated_cv.py reads the probe as a run
    saved["oof"] = [{"name": e.name, "group": e.group, "label": e.label, "fold": int(fold),
                     "probabilities": row.tolist()}
                    for e, fold, row in zip(examples, fold_of, probs, strict=True)]
    saved["image_sha256"] = _pixel_hashes(greys)  # what it learnt: `score` says so of these images
    (args.out / "probe.json").write_text(json.dumps(saved) + "\n")
    report = {"probe": estimate, "probe_folder": str(args.out)}
    if runs is not None:
        report |= _with_runs(args.runs, *runs, probs, threshold, labels, groups, classes)
    return report


def _runs_of(runs: list[Path], examples: list[Example], classes: list[str], groups: list[str]
             ) -> tuple[np.ndarray, list[float] | None]:
    """The runs' out-of-fold probabilities (runs, images, classes) in the examples' order and their
    thresholds; SystemExit unless they scored these very images, with the same labels and classes, in
    folds that kept copies of one image together (``groups``: :func:`copy_groups`)."""
    group_of = {e.name: group for e, group in zip(examples, groups, strict=True)}
    for path in runs:
        record = json.loads(Path(path).read_text())
        folds: dict[str | None, set[int]] = {}
        for film in record["oof"] if isinstance(record, dict) else record:
            folds.setdefault(group_of.get(film["name"]), set()).add(film["fold"])
        if any(len(kept) > 1 for kept in folds.values()):
            raise SystemExit(f"{path}: its folds split copies of one image (cross-validated before folds "
                             "kept copies together, so its out-of-fold figures are optimistic): run it again")
    films, probs, run_classes, thresholds = repeated_cv.read_runs(runs)
    if run_classes != classes:
        raise SystemExit(f"the runs' classes {run_classes} are not the probe's {classes}")
    by_name = {film["name"]: (i, film) for i, film in enumerate(films)}
    same = sorted(by_name) == sorted(e.name for e in examples) and all(
        (by_name[e.name][1]["label"], by_name[e.name][1]["group"]) == (e.label, e.group) for e in examples)
    if not same:
        raise SystemExit("the runs scored other images (or gave them other labels or groups) than train+val")
    return probs[:, [by_name[e.name][0] for e in examples]], thresholds


def _with_runs(runs: list[Path], run_probs: np.ndarray, run_thresholds: list[float] | None, probe: np.ndarray,
               probe_threshold: float, labels: np.ndarray, groups: list[str], classes: list[str]) -> dict:
    """The fine-tuned runs averaged, and that averaged with the probe, out of fold (paired on images),
    and the latter's calls at the threshold ``score`` would use."""
    ensemble = run_probs.mean(axis=0)
    combined = with_probe(ensemble, probe)
    column = malignant_index(classes)
    threshold = combined_threshold(probe_threshold, run_thresholds or [])
    return {
        "runs": [str(run) for run in runs],
        "runs_averaged": evaluate_predictions(labels, ensemble, classes, groups=groups),
        "runs_averaged_with_probe": evaluate_predictions(labels, combined, classes, groups=groups),
        "with_probe_vs_runs_averaged": repeated_cv.paired_or_why(
            labels == classes[column], ensemble[:, column], combined[:, column], groups, 2000),
        "with_probe_at_threshold": (None if threshold is None
                                    else repeated_cv.calls_at(labels, combined, classes, threshold)),
    }


def _score(args: argparse.Namespace) -> dict:
    saved = json.loads((args.probe / "probe.json").read_text())
    examples = folder_examples(args.images.resolve())
    classes = saved["classes"]
    members = [Predictor(resolve_model(model), uncertainty=False) for model in args.model]
    others = [f"{member.model_dir}: {member.labels}" for member in members if member.labels != classes]
    if others or not {e.label for e in examples} <= set(classes):
        raise SystemExit(f"the probe's classes are {classes}; "
                         + ("; ".join(others) or f"the images hold {sorted({e.label for e in examples})}"))
    greys = read_greys(examples)
    probs = _probe_probabilities(saved, features(greys, tuple(map(tuple, saved["backbones"]))))
    threshold, learnt = saved["threshold"], None
    learnt_by_probe = set(saved["image_sha256"])
    probe_learnt = sum(sha in learnt_by_probe for sha in _pixel_hashes(greys))
    if members:
        probs = with_probe(ensemble_probabilities(members, examples), probs)
        threshold = combined_threshold(threshold, [m.threshold for m in members])
        learnt = films_learnt(members, examples)
        if threshold is None:
            print("warning: a model records no threshold: malignant is called at P >= 0.5", file=sys.stderr)
    for what, count in (("the probe", probe_learnt), ("the models", learnt)):
        if count:
            print(f"warning: {what} learnt from {count} of the {len(examples)} images: these figures are "
                  "optimistic, not an estimate for new images", file=sys.stderr)
    return {"model": "probe" + "".join(f" + {m}" for m in args.model), "rule": RULE if members else None,
            **evaluate_probabilities(examples, probs, classes, threshold), "films_learnt": learnt,
            "images_the_probe_learnt": probe_learnt}


def _backbone(text: str) -> tuple[str, int]:
    arch, _, side = text.partition(":")
    if arch not in OFFLINE_IMAGENET or not side.isdigit() or int(side) < MIN_SIDE:
        raise argparse.ArgumentTypeError(f"ARCH:SIDE, ARCH one of {sorted(OFFLINE_IMAGENET)}, SIDE at least "
                                         f"{MIN_SIDE}; got {text!r}")
    return arch, int(side)


@said_in_one_line
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    fit = commands.add_parser("fit", help="cross-validate the probe on train+val, then fit it on all of them")
    default_data = settings().data or ROOT.parent / "shared" / "data"
    fit.add_argument("--data", type=Path, default=default_data, help="folder holding breastmnist/")
    fit.add_argument("--out", type=Path, required=True, help="folder for probe.json")
    fit.add_argument("--runs", type=Path, nargs="*", default=[],
                     help="cv.json of fine-tuned cross-validations of the same images")
    fit.add_argument("--folds", type=int, default=5)
    fit.add_argument("--seed", type=int, default=0)
    fit.add_argument("--backbone", dest="backbones", type=_backbone, action="append",
                     help=f"ARCH:SIDE, repeatable (default: {' '.join(f'{a}:{s}' for a, s in BACKBONES)})")
    score = commands.add_parser("score", help="score labelled images with a fitted probe (and models)")
    score.add_argument("--probe", type=Path, required=True, help="folder of probe.json")
    score.add_argument("--images", type=Path, required=True, help="imagefolder, e.g. breastmnist/test")
    score.add_argument("--model", action="append", default=[], help="a fine-tuned model folder, repeatable")
    args = parser.parse_args(argv)
    # scikit-learn 1.8+ announces LogisticRegressionCV's coming defaults; the ones used here do not change
    warnings.filterwarnings("ignore", category=FutureWarning, module="sklearn.linear_model")
    if args.command == "fit":
        args.backbones = tuple(args.backbones or BACKBONES)
    print(json.dumps(_fit(args) if args.command == "fit" else _score(args), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
