"""Does the heat map point at the lesion? A pointing-game check on mini-MIAS lesion marks.

For every abnormal film with marked lesions, the heat map's hottest pixel is a hit when it lies
within a lesion's radius plus a margin (2% of the image's long side: 10 px at 512, 20 px at 1024).
Chance is the share of the breast covered by those discs. Prints, per heat-map method, the hit
rate with a Wilson 95% CI for all marked films and for films with marked masses (CIRC, SPIC,
MISC), chance, and the median ratio of mean heat inside the lesions to mean heat over the breast.

Out of fold (the honest check: each film's map comes from the cross-validation model that never
trained on its patient), with the folder written by ``train --cv K --keep-models DIR`` or
``cv --keep-models DIR``:

    python scripts/heatmap_lesions.py --folds runs/v2-folds --data ../shared/data/mias1024

One model on its recorded patient split:

    python scripts/heatmap_lesions.py --model mammo/weights/v1 --data ../shared/data/mias --split holdout
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from scipy.stats import binomtest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mammo.choices import GRAD_CAM, LESION_MAP  # noqa: E402
from mammo.cli import resolve_model  # noqa: E402
from mammo.data import Example, SplitSpec, folder_examples, split_by_patient  # noqa: E402
from mammo.errors import said_in_one_line  # noqa: E402
from mammo.patches import lesions  # noqa: E402
from mammo.predict import Predictor  # noqa: E402
from mammo.preprocess import breast_region  # noqa: E402

MASSES = frozenset({"CIRC", "SPIC", "MISC"})


def _films_of_folds(folds: Path, examples: list[Example]) -> Iterator[tuple[Example, Predictor]]:
    """Each marked abnormal film with the predictor of the fold that held it out."""
    oof = json.loads((folds / "cv.json").read_text())
    oof = oof["oof"] if isinstance(oof, dict) else oof
    fold_of = {film["name"]: film["fold"] for film in oof}
    predictors: dict[int, Predictor] = {}
    for example in examples:
        if example.name in fold_of:
            fold = fold_of[example.name]
            if fold not in predictors:  # each fold's model loaded once (no uncertainty pass: unused here)
                predictors[fold] = Predictor(folds / f"fold{fold}", uncertainty=False)
            yield example, predictors[fold]


def _films_of_model(model: str, split: str, examples: list[Example]) -> Iterator[tuple[Example, Predictor]]:
    predictor = Predictor(resolve_model(model), uncertainty=False)
    if split != "all":
        spec = SplitSpec.from_model_config(predictor.config)
        if spec is None:
            raise SystemExit(f"{model} records no patient split; use --split all")
        examples = split_by_patient(examples, spec)[split]
    for example in examples:
        yield example, predictor


def _median(values: list[float]) -> float | None:
    return float(np.median(values)) if values else None


def _rate(hits: list[bool]) -> dict:
    if not hits:
        return {"films": 0, "hit_rate": None, "hit_rate_ci95": None}
    k, n = sum(hits), len(hits)
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    return {"films": n, "hits": k, "hit_rate": k / n, "hit_rate_ci95": [ci.low, ci.high]}


def pointing_game(films: Iterator[tuple[Example, Predictor]], methods: list[str],
                  margin_share: float) -> dict:
    """Hit rates per method over the marked abnormal films."""
    results = {m: {"hits": [], "mass_hits": [], "ratios": []} for m in methods}
    chance, mass_chance = [], []
    for example, predictor in films:
        marks = lesions(example.metadata)
        if example.label == "normal" or not marks:
            continue
        grey = example.read()
        margin = margin_share * max(grey.shape)
        yy, xx = np.mgrid[0 : grey.shape[0], 0 : grey.shape[1]]
        discs = np.zeros(grey.shape, dtype=bool)
        for mark in marks:
            discs |= (xx - mark.x) ** 2 + (yy - mark.y) ** 2 <= (mark.radius + margin) ** 2
        breast = breast_region(grey)[0]
        is_mass = bool(MASSES & set(str(example.metadata.get("abnormality") or "").split(";")))
        share = float((discs & breast).sum() / max(1, breast.sum()))
        chance.append(share)
        if is_mass:
            mass_chance.append(share)
        for method in methods:
            result = predictor.predict(grey, method=method)
            if result.method != method:
                raise SystemExit(f"{predictor.version} has no {method!r} heat map")
            heat = result.heatmap
            hit = bool(discs[np.unravel_index(np.argmax(heat), heat.shape)])
            results[method]["hits"].append(hit)
            if is_mass:
                results[method]["mass_hits"].append(hit)
            inside = heat[discs & breast].mean() if (discs & breast).any() else 0.0
            results[method]["ratios"].append(float(inside / max(1e-8, heat[breast].mean())))
    return {
        "chance_hit_rate": float(np.mean(chance)) if chance else None,
        "chance_hit_rate_masses": float(np.mean(mass_chance)) if mass_chance else None,
        "methods": {
            method: {"all_marked": _rate(r["hits"]), "masses": _rate(r["mass_hits"]),
                     "median_heat_ratio_inside_lesions": _median(r["ratios"])}
            for method, r in results.items()
        },
    }


@said_in_one_line
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--folds", type=Path, help="cross-validation folder (fold0.., cv.json)")
    source.add_argument("--model", help="one model folder or version")
    parser.add_argument("--data", type=Path, required=True, help="mini-MIAS imagefolder with lesion metadata")
    parser.add_argument("--split", choices=("all", "val", "holdout"), default="holdout",
                        help="with --model: the model's recorded patient split to check")
    parser.add_argument("--margin", type=float, default=0.02,
                        help="added to each radius, as a share of the image's long side")
    parser.add_argument("--methods", nargs="+", default=None,
                        help=f"heat-map methods (default: {LESION_MAP!r} where the model has it, "
                             f"and {GRAD_CAM!r})")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    examples = folder_examples(args.data)
    films = (_films_of_folds(args.folds, examples) if args.folds
             else _films_of_model(args.model, args.split, examples))
    first = next(films, None)
    if first is None:
        print("no film of this data in the chosen split or folds")
        return 1
    methods = args.methods or ([LESION_MAP, GRAD_CAM] if first[1].has_lesion_map else [GRAD_CAM])
    report = pointing_game(itertools.chain([first], films), methods, args.margin)
    report = {"source": str(args.folds or args.model), "data": str(args.data),
              "split": "out of fold" if args.folds else args.split, **report}
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
