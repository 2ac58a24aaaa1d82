"""Re-score a cross-validation's out-of-fold films under other film-pooling settings (inference only).

    python scripts/cv_pooling.py --folds runs/v2-folds --data ../shared/data/mias1024 \
        [--top-k 1 2 4 8 16] [--flip]

Each film's dense patch map comes from the fold model that never trained on its patient (pooled
over the positions the recipe pools: inside the breast); the film score is re-pooled with each
``top_k`` (and, with ``--flip``, also averaged with the map of the
vertically flipped film: test-time augmentation). Every variant is summarised exactly as
``python -m mammo cv`` does (cross-fitted calibration). Choosing a variant here selects on these
same out-of-fold films: say so when quoting the chosen variant's figures.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mammo.cv import summarise  # noqa: E402
from mammo.data import PreparedImages, folder_examples, label_order  # noqa: E402
from mammo.errors import said_in_one_line  # noqa: E402
from mammo.film import pool_scores  # noqa: E402
from mammo.model import load  # noqa: E402
from mammo.preprocess import PreprocessConfig  # noqa: E402


@said_in_one_line
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--folds", type=Path, required=True, help="folder with fold0.. and cv.json")
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--top-k", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--flip", action="store_true", help="also try vertical-flip averaging")
    parser.add_argument("--abnormal", action="store_true",
                        help="also try a third film score: the top-k pooled P(lesion) = 1 - P(normal)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    oof = json.loads((args.folds / "cv.json").read_text())["oof"]
    by_name = {e.name: e for e in folder_examples(args.data)}
    examples = [by_name[film["name"]] for film in oof]
    fold_of = np.array([film["fold"] for film in oof])
    labels = label_order(e.label for e in examples)
    targets = np.array([labels.index(e.label) for e in examples])
    patients = [e.group for e in examples]  # the intervals resample whole patients
    maps: list[torch.Tensor] = [None] * len(examples)
    flipped: list[torch.Tensor] = [None] * len(examples)
    pooled: list[torch.Tensor | None] = [None] * len(examples)
    for fold in sorted(set(fold_of.tolist())):
        model, config = load(args.folds / f"fold{fold}")
        preprocess = PreprocessConfig.from_dict(config["mammo"]["preprocess"])
        mean, std = tuple(model.pretrained_cfg["mean"]), tuple(model.pretrained_cfg["std"])
        index = np.flatnonzero(fold_of == fold)
        images = PreparedImages([examples[i] for i in index], labels, preprocess, mean, std)
        with torch.inference_mode():
            for i, (x, _) in zip(index, images, strict=True):
                features = model.forward_features(x[None])
                maps[i] = model.patch_probabilities(features)
                pooled[i] = model.positions(x[None], features)  # the recipe's breast-only positions
                if args.flip:
                    flipped[i] = model.patch_probabilities(model.forward_features(x[None].flip(-2))).flip(-2)
    rows = []
    variants = [(k, f, a) for k in args.top_k for f in ([False, True] if args.flip else [False])
                for a in ([False, True] if args.abnormal else [False])]
    for top_k, flip, abnormal in variants:
        stacked = torch.cat([(m + f) / 2 if flip else m for m, f in zip(maps, flipped, strict=True)])
        positions = None if pooled[0] is None else torch.cat(pooled)
        scores = pool_scores(stacked, top_k, positions).numpy()
        if abnormal:
            lesion = torch.stack([1 - stacked[:, 0], stacked[:, 0]], dim=1)  # (N, 2, h, w)
            scores = np.column_stack([scores, pool_scores(lesion, top_k, positions).numpy()])
        summary = summarise(scores, targets, fold_of, labels, kind="patch", groups=patients)
        rows.append({"top_k": top_k, "flip": flip, "abnormal_score": abnormal,
                     "auc_malignant": summary["auc_malignant"],
                     "auc_malignant_ci95": summary["auc_malignant_ci95"],
                     "auc_abnormal": summary["auc_abnormal"]["auc"] if summary["auc_abnormal"] else None,
                     "auc_macro": summary["auc_macro"], "ece_malignant": summary["ece_malignant"]})
        print(json.dumps(rows[-1]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
