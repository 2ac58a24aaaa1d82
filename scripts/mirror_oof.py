"""Does averaging each film's scores with its mirror image's help? Out of fold, from kept fold models.

    python scripts/mirror_oof.py --folds runs/v3-folds --data ../shared/data/mias1024 --axis vertical \
        --out runs/v3-mirror.json
    python scripts/compare_models.py --cv runs/v3-folds/cv.json runs/v3-mirror.json

Every film of a cross-validation whose fold models were kept (``--keep-models DIR``: ``fold<k>/`` and
``cv.json``) is scored by the fold model that never saw its patient, as it is and mirrored (``--axis``:
``vertical`` flips top and bottom, the plausible mirror of a film turned breast-left; ``horizontal``
flips left and right, the plausible one for ultrasound). Both are summarised as ``cv`` summarises
(calibration and threshold cross-fitted over the same folds) and printed as one JSON object:
``as_is`` and ``mirror_averaged`` (the mean of the two uncalibrated scores); the one matching the
cross-validation's ``--test-time-mirror`` (none, or this axis) reproduces its figures exactly.
``--out`` writes the mirror-averaged predictions as a ``cv.json``, and ``--as-is-out`` the films'
own (for a cross-validation run with the mirror, whose ``cv.json`` is the mirror-averaged one), so
``compare_models.py --cv`` gives the paired difference with its interval.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mammo.cv import summarise  # noqa: E402
from mammo.data import Example, PreparedImages, folder_examples  # noqa: E402
from mammo.errors import said_in_one_line  # noqa: E402
from mammo.film import MIRROR_DIMS, raw_scores  # noqa: E402
from mammo.imaging import MIN_SIDE  # noqa: E402
from mammo.model import load  # noqa: E402
from mammo.preprocess import PreprocessConfig  # noqa: E402

__all__ = ["fold_scores", "main"]
_REPORTED = ("n", "auc_malignant", "auc_malignant_ci95", "auc_abnormal", "auc_macro", "balanced_accuracy",
             "ece_malignant", "sensitivity_cross_fitted", "specificity_cross_fitted")


def fold_scores(model_dir: Path, examples: list[Example], classes: list[str],
                axis: str) -> tuple[np.ndarray, ...]:
    """Uncalibrated scores of one fold model over its out-of-fold films: as they are, and mirrored."""
    model, config = load(model_dir)
    model.head = replace(model.head, mirror=None)  # as it is, even if the model records a mirror
    mammo = config["mammo"]
    preprocess = PreprocessConfig.from_dict(mammo["preprocess"])
    mean, std = tuple(model.pretrained_cfg["mean"]), tuple(model.pretrained_cfg["std"])
    images = PreparedImages(examples, classes, preprocess, mean, std,
                            min_side=int(mammo["preprocess"].get("min_side", MIN_SIDE)))
    batches = [x for x, _ in DataLoader(images, batch_size=8, shuffle=False)]
    return raw_scores(model, batches), raw_scores(model, (x.flip(MIRROR_DIMS[axis]) for x in batches))


def _write_cv(path: Path, summary: dict, films: list[dict], classes: list[str], recipe: dict) -> None:
    """Write rescored out-of-fold predictions as a ``cv.json``; ``recipe`` records the mirror as
    ``--test-time-mirror`` would (``train --cv-from`` takes it for that recipe only)."""
    summary = dict(summary)
    oof = [{**film, "probabilities": [float(p) for p in row], "threshold": float(threshold)}
           for film, row, threshold in zip(films, summary.pop("_probs"), summary.pop("_thresholds"),
                                           strict=True)]
    record = {**summary, "classes": classes, "oof": oof, "mirror": recipe["test_time_mirror"],
              "recipe": recipe}
    path.write_text(json.dumps(record) + "\n")


@said_in_one_line
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folds", type=Path, required=True, help="the kept fold models (with cv.json)")
    parser.add_argument("--data", type=Path, action="append", required=True,
                        help="the cross-validation's imagefolder(s); repeatable")
    parser.add_argument("--axis", choices=sorted(MIRROR_DIMS), default="vertical")
    parser.add_argument("--out", type=Path, help="write the mirror-averaged predictions as a cv.json")
    parser.add_argument("--as-is-out", type=Path, help="write the predictions as they are as a cv.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    cv = json.loads((args.folds / "cv.json").read_text())
    classes, films = cv["classes"], cv["oof"]
    by_name = {e.name: e for folder in args.data for e in folder_examples(folder)}
    missing = [f["name"] for f in films if f["name"] not in by_name]
    if missing:
        raise SystemExit(f"{len(missing)} films of {args.folds / 'cv.json'} are not in --data "
                         f"(e.g. {missing[0]}): give the cross-validation's own data folders")
    fold_of = np.array([f["fold"] for f in films])
    head = json.loads((args.folds / "fold0" / "config.json").read_text())["mammo"]["head"]["kind"]
    as_is: list[np.ndarray] = [np.empty(0)] * len(films)
    mirrored: list[np.ndarray] = [np.empty(0)] * len(films)
    for k in range(int(fold_of.max()) + 1):
        members = np.flatnonzero(fold_of == k)
        plain, flipped = fold_scores(args.folds / f"fold{k}", [by_name[films[i]["name"]] for i in members],
                                     classes, args.axis)
        for i, row, other in zip(members, plain, flipped, strict=True):
            as_is[i], mirrored[i] = row, (row + other) / 2
    targets = np.array([classes.index(f["label"]) for f in films])
    groups = [f["group"] for f in films]
    summaries = {name: summarise(np.stack(scores), targets, fold_of, classes, head, groups)
                 for name, scores in (("as_is", as_is), ("mirror_averaged", mirrored))}
    recipe = cv.get("recipe") or {}
    for path, name, mirror in ((args.out, "mirror_averaged", args.axis), (args.as_is_out, "as_is", None)):
        if path:
            _write_cv(path, summaries[name], films, classes, {**recipe, "test_time_mirror": mirror})
    report = {name: {key: summary.get(key) for key in _REPORTED} for name, summary in summaries.items()}
    print(json.dumps({"folds": str(args.folds), "axis": args.axis, **report}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
