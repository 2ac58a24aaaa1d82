"""Is the second model better than the first on the same films? Paired AUC differences.

    python scripts/compare_models.py --cv runs/v2-folds/cv.json runs/v3-folds/cv.json
    python scripts/compare_models.py --holdout mammo/weights/v2 mammo/weights/v3 \
        --data ../shared/data/mias1024

``--cv``: the out-of-fold predictions of two cross-validations (the ``cv.json`` that ``--keep-models``
writes) of the same films in the same folds. ``--holdout``: two models scored on the held-out
patients of their recorded split of ``--data`` (both must record the same split). Prints one JSON
object: for malignant vs rest and abnormal vs normal, AUC(second) - AUC(first), a 95% CI from a
bootstrap over patients (paired: both models' scores on every resample) and the share of resamples
in which the second is not better. A CI that holds 0 means these films cannot tell the two apart.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mammo.data import PreparedImages, SplitSpec, label_order  # noqa: E402
from mammo.errors import said_in_one_line  # noqa: E402
from mammo.metrics import paired_auc_difference  # noqa: E402
from mammo.model import load  # noqa: E402
from mammo.pipeline import base_splits  # noqa: E402
from mammo.preprocess import PreprocessConfig  # noqa: E402
from mammo.train import infer_probs  # noqa: E402


def _check_severity_order(classes: list[str] | None) -> None:
    """Malignant and normal are read by position: the classes must be in severity order."""
    if not classes or label_order(classes) != classes:
        raise SystemExit(f"{classes}: not in severity order (normal first, malignant last)")


def _out_of_fold(first: Path, second: Path) -> tuple[list[str], list[str], np.ndarray, np.ndarray]:
    """Labels, patients and both runs' out-of-fold probabilities, film by film."""
    reports = [json.loads(Path(p).read_text()) for p in (first, second)]
    classes = [report.get("classes") for report in reports]
    if classes[0] != classes[1]:
        raise SystemExit(f"the two cross-validations' classes {classes[0]} and {classes[1]} are not the same "
                         "list in severity order (normal first, malignant last)")
    _check_severity_order(classes[0])
    runs = [{film["name"]: film for film in report["oof"]} for report in reports]
    if runs[0].keys() != runs[1].keys() or any(runs[0][n]["fold"] != runs[1][n]["fold"] for n in runs[0]):
        raise SystemExit("the two cross-validations scored other films or folds: not a paired comparison")
    names = sorted(runs[0])
    return ([runs[0][n]["label"] for n in names], [runs[0][n]["group"] for n in names],
            *(np.array([run[n]["probabilities"] for n in names]) for run in runs))


def _holdout(first: Path, second: Path, data: Path) -> tuple[list[str], list[str], np.ndarray, np.ndarray]:
    """Labels, patients and both models' probabilities on the held-out patients of their split."""
    torch.set_num_threads(1)
    loaded = [load(folder) for folder in (first, second)]
    splits = [SplitSpec.from_model_config(config) for _, config in loaded]
    if splits[0] != splits[1]:
        raise SystemExit("the two models record different patient splits: their holdouts differ")
    films = base_splits([data], None, splits[0])["holdout"]
    if not films:
        raise SystemExit("the models' split holds no patient out of this data")
    probs = []
    for model, config in loaded:
        _check_severity_order(config["label_names"])
        preprocess = PreprocessConfig.from_dict(config["mammo"]["preprocess"])
        images = PreparedImages(films, config["label_names"], preprocess, tuple(model.pretrained_cfg["mean"]),
                                tuple(model.pretrained_cfg["std"]),
                                min_side=config["mammo"]["preprocess"].get("min_side", 32))
        probs.append(infer_probs(model, images))
    return [e.label for e in films], [e.group for e in films], *probs


@said_in_one_line
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--cv", nargs=2, type=Path, metavar=("FIRST_CV_JSON", "SECOND_CV_JSON"))
    which.add_argument("--holdout", nargs=2, type=Path, metavar=("FIRST_MODEL", "SECOND_MODEL"))
    parser.add_argument("--data", type=Path, help="with --holdout: the imagefolder the models split")
    parser.add_argument("--resamples", type=int, default=2000)
    args = parser.parse_args(argv)
    if args.holdout and args.data is None:
        parser.error("--holdout needs --data")
    pair = args.cv or args.holdout
    labels, groups, first, second = _out_of_fold(*pair) if args.cv else _holdout(*pair, args.data)
    labels = np.array(labels)  # classes in severity order: normal first, malignant last
    malignant = paired_auc_difference(labels == "malignant", first[:, -1], second[:, -1], groups,
                                      args.resamples)
    abnormal = paired_auc_difference(labels != "normal", 1 - first[:, 0], 1 - second[:, 0], groups,
                                     args.resamples)
    report = {"films": "out of fold" if args.cv else "held-out patients", "first": str(pair[0]),
              "second": str(pair[1]), "malignant_vs_rest": malignant, "abnormal_vs_normal": abnormal}
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
