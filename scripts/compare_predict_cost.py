"""CPU time per film of two model versions' predictions (one torch thread), side by side.

    python scripts/compare_predict_cost.py --models mammo/weights/v1 mammo/weights/v2 \
        --images ../shared/data/mias1024/malignant/*.png [--repeat 3]

Each image is read once; the timed part is ``Predictor.predict`` on the grey array with each
model's default heat map (v1: Grad-CAM; a patch-recipe model: its lesion map) and the overlay.
Prints, for each model, the median wall-clock milliseconds per film and the median CPU milliseconds
(all the process's threads: ONNX Runtime may use several cores for one film), and the ratio of CPU
time to the first model's. Add
``--full-size`` to also time a synthetic 4600 x 2600 film (the size of a full-field mammogram),
``--without-uncertainty`` to also time each model without its uncertainty pass (the film's
mirror image scored again), so the price of the uncertainty shows, and ``--pytorch`` to also time
each model with its backbone in PyTorch instead of ONNX Runtime (listed first: the ratios are then
to the first model as served before ONNX Runtime).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mammo.choices import DEFAULT_METHOD  # noqa: E402
from mammo.errors import MammoError, said_in_one_line  # noqa: E402
from mammo.imaging import read_image  # noqa: E402
from mammo.predict import Predictor  # noqa: E402


def _synthetic_full_field() -> np.ndarray:
    """A 4600 x 2600 grey film: a bright half-disc breast on the left, noise (16-bit-like)."""
    yy, xx = np.mgrid[0:4600, 0:2600]
    breast = ((yy - 2300) ** 2 + xx**2) < 2200**2
    rng = np.random.default_rng(0)
    return np.clip(np.where(breast, 0.55, 0.02) + rng.normal(0, 0.02, breast.shape), 0, 1).astype(np.float32)


def _read(path: Path) -> np.ndarray:
    """``path``'s pixels; an unreadable file is named in the error."""
    try:
        return read_image(path)
    except MammoError as error:
        raise MammoError(f"{path}: {error}") from error


@said_in_one_line
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--models", nargs="+", type=Path, required=True)
    parser.add_argument("--images", nargs="+", type=Path, required=True)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--full-size", action="store_true", help="also time a 4600 x 2600 synthetic film")
    parser.add_argument("--without-uncertainty", action="store_true",
                        help="also time each model without the uncertainty pass")
    parser.add_argument("--pytorch", action="store_true",
                        help="also time each model with its backbone in PyTorch (listed first)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    greys = {"images": [_read(path) for path in args.images]}
    if args.full_size:
        greys["4600x2600"] = [_synthetic_full_field()]
    predictors = [Predictor(folder) for folder in args.models]
    if args.pytorch:
        predictors = [Predictor(folder, fast=False) for folder in args.models] + predictors
    if args.without_uncertainty:
        predictors += [Predictor(folder, uncertainty=False) for folder in args.models]
    for predictor in predictors:  # warm up
        predictor.predict(greys["images"][0], method=DEFAULT_METHOD)
    for name, films in greys.items():
        medians = []
        for predictor in predictors:
            walls, cpus = [], []
            for _ in range(args.repeat):
                for grey in films:
                    wall, cpu = time.perf_counter(), time.process_time()
                    result = predictor.predict(grey, method=DEFAULT_METHOD)
                    cpus.append(1000 * (time.process_time() - cpu))
                    walls.append(1000 * (time.perf_counter() - wall))
            medians.append(statistics.median(cpus))
            spread = "with" if predictor.uncertainty else "without"
            print(f"{name}: {predictor.version} ({result.method}, {spread} uncertainty, "
                  f"{predictor.runtime}): median {statistics.median(walls):.0f} ms wall, "
                  f"{medians[-1]:.0f} ms CPU per film over {len(cpus)} predictions, CPU ratio to "
                  f"{predictors[0].version} {medians[-1] / medians[0]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
