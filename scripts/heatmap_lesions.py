"""Does the heat map point at the lesion? A pointing-game check on mini-MIAS lesion annotations.

For every abnormal film with marked lesions (in the chosen patient split of the model), the heat
map's hottest pixel is a hit when it lies within a lesion's radius plus a margin. The chance level
is the share of the breast covered by those discs. Prints hit rate with a Wilson 95% CI, chance,
and the median ratio of mean heat inside the lesions to mean heat over the breast.

    python scripts/heatmap_lesions.py --model mammo/weights/v1 --data ../shared/data/mias --split holdout
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from scipy.stats import binomtest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mammo.cli import resolve_model  # noqa: E402
from mammo.data import SplitSpec, folder_examples, split_by_patient  # noqa: E402
from mammo.imaging import read_image  # noqa: E402
from mammo.predict import Predictor  # noqa: E402
from mammo.preprocess import breast_region  # noqa: E402


def lesions(metadata: dict) -> list[tuple[float, float, float]]:
    """(x, y, radius) of each marked lesion, top-left origin, pixels of the stored image."""
    xs, ys, rs = (str(metadata.get(k) or "") for k in ("lesion_x", "lesion_y", "lesion_radius"))
    if not xs:
        return []
    return [(float(x), float(y), float(r)) for x, y, r in zip(xs.split(";"), ys.split(";"),
                                                             rs.split(";"), strict=True)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", type=Path, required=True, help="mini-MIAS imagefolder with lesion metadata")
    parser.add_argument("--split", choices=("all", "val", "holdout"), default="holdout")
    parser.add_argument("--margin", type=float, default=10.0, help="pixels added to each radius")
    parser.add_argument("--method", default="Grad-CAM")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    folder = resolve_model(args.model)
    predictor = Predictor(folder)
    examples = folder_examples(args.data)
    if args.split != "all":
        spec = SplitSpec.from_model_config(predictor.config)
        if spec is None:
            raise SystemExit(f"{folder} records no patient split; use --split all")
        examples = split_by_patient(examples, spec)[args.split]
    hits, chance, ratios = [], [], []
    for example in examples:
        marks = lesions(example.metadata)
        if example.label == "normal" or not marks:
            continue
        grey = read_image(example.source)
        heat = predictor.predict(grey, method=args.method).heatmap
        yy, xx = np.mgrid[0 : grey.shape[0], 0 : grey.shape[1]]
        discs = np.zeros(grey.shape, dtype=bool)
        for x, y, r in marks:
            discs |= (xx - x) ** 2 + (yy - y) ** 2 <= (r + args.margin) ** 2
        breast = breast_region(grey)[0]
        peak = np.unravel_index(np.argmax(heat), heat.shape)
        hits.append(bool(discs[peak]))
        chance.append(float((discs & breast).sum() / max(1, breast.sum())))
        ratios.append(float(heat[discs & breast].mean() / max(1e-8, heat[breast].mean())))
    if not hits:
        print("no abnormal film with marked lesions in this split")
        return 1
    k, n = sum(hits), len(hits)
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    print(json.dumps({
        "model": predictor.version, "split": args.split, "method": args.method, "films": n,
        "hit_rate": k / n, "hit_rate_ci95": [ci.low, ci.high], "chance_hit_rate": float(np.mean(chance)),
        "median_heat_ratio_inside_lesions": float(np.median(ratios)),
    }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
