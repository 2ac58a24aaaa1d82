"""Patches for the lesion-aware recipe: lesion marks follow the film's crop and flip; lesion patches
are centred on the lesion, background patches lie in the breast away from it; cutting is exact."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from synthetic import synthetic_mammogram

from mammo.data import Example
from mammo.patches import Lesion, PatchConfig, PatchFilms, lesions
from mammo.preprocess import PreprocessConfig

LABELS = ["normal", "benign", "malignant"]


def film_with_lesion(tmp_path, right: bool, x: int, y: int) -> Example:
    """A synthetic film with a bright disc (radius 12) at (x, y), saved as a 16-bit PNG."""
    from PIL import Image

    grey = synthetic_mammogram(400, 300, right=right)
    yy, xx = np.mgrid[0:400, 0:300]
    grey[(yy - y) ** 2 + (xx - x) ** 2 <= 12**2] = 1.0
    path = tmp_path / f"film_{int(right)}_{x}_{y}.png"
    Image.fromarray(np.uint16(grey * 65535)).save(path)
    meta = {"lesion_x": str(x), "lesion_y": str(y), "lesion_radius": "12"}
    return Example(str(path), "malignant", "p1", path.name, meta)


def test_lesions_parse_several_and_none() -> None:
    assert lesions({"lesion_x": "1;2", "lesion_y": "3;4", "lesion_radius": "5;6"}) == [
        Lesion(1.0, 3.0, 5.0), Lesion(2.0, 4.0, 6.0)]
    assert lesions({"lesion_x": "", "lesion_y": None}) == []
    assert lesions({}) == []


@pytest.mark.parametrize("right", [True, False])
def test_marks_follow_crop_flip_and_resize(tmp_path, right: bool) -> None:
    x = 250 if right else 50
    example = film_with_lesion(tmp_path, right, x, 200)
    films = PatchFilms([example], LABELS, PreprocessConfig(image_size=128), PatchConfig(size=32))
    (mark,) = films.marks[0]
    square = films.squares([0])[0, 0].numpy()
    assert square[round(mark.y), round(mark.x)] > 0.95  # the disc is where the mark says
    assert 2 < mark.radius < 12  # scaled down with the film
    assert mark.x < 64  # oriented: the breast (and this lesion near its chest wall) is on the left


def test_plan_centres_lesion_and_background_patches(tmp_path) -> None:
    example = film_with_lesion(tmp_path, True, 250, 200)
    films = PatchFilms([example], LABELS, PreprocessConfig(image_size=128),
                       PatchConfig(size=32, per_lesion=6, background_per_film=5))
    plan = films.sample(np.random.default_rng(0))
    (mark,) = films.marks[0]
    lesion, background = plan[plan[:, 5] == 2], plan[plan[:, 5] == 0]
    assert len(lesion) == 6 and len(background) == 5
    assert all(math.hypot(r[1] - mark.x, r[2] - mark.y) <= mark.radius * math.sqrt(2) + 1e-6 for r in lesion)
    assert all(math.hypot(r[1] - mark.x, r[2] - mark.y) > mark.radius + 16 for r in background)
    assert all(films.breast(0)[int(r[2]), int(r[1])] for r in background)
    assert ((plan[:, 3] >= 0.8) & (plan[:, 3] <= 1.25)).all()


def test_cut_is_exact_without_zoom_or_rotation(tmp_path) -> None:
    example = film_with_lesion(tmp_path, True, 250, 200)
    films = PatchFilms([example], LABELS, PreprocessConfig(image_size=128), PatchConfig(size=32))
    rows = np.array([[0, 40.0, 50.0, 1.0, 0.0, 2]])
    patch = films.cut(rows)
    assert patch.shape == (1, 1, 32, 32)
    # centre (40, 50): the patch's pixels are the film's pixels 24..55 x 34..65
    assert torch.allclose(patch[0, 0], films.squares([0])[0, 0, 34:66, 24:56], atol=1e-5)
    mirrored = films.cut(rows, flip=np.array([True]))
    assert torch.allclose(mirrored[0, 0], patch[0, 0].flip(-1), atol=1e-5)


def test_labels_must_start_with_normal(tmp_path) -> None:
    example = film_with_lesion(tmp_path, True, 250, 200)
    with pytest.raises(ValueError, match="normal"):
        PatchFilms([example], ["benign", "malignant"], PreprocessConfig(image_size=64), PatchConfig(size=32))


def test_hard_negatives_are_the_most_lesion_like_places_away_from_the_marks(tmp_path) -> None:
    from mammo.film import FilmModel, HeadConfig
    from mammo.model import build
    from mammo.train import _hard_negatives

    example = film_with_lesion(tmp_path, True, 250, 200)
    films = PatchFilms([example], LABELS, PreprocessConfig(image_size=128), PatchConfig(size=64))
    torch.manual_seed(0)
    model = FilmModel(build("test_efficientnet", 3, init="none"),
                      HeadConfig(kind="patch", patch_cells=2, min_coverage=0.5))
    found = _hard_negatives(model, films, 3, (0.5, 0.5))
    assert 1 <= len(found) <= 3 and all(film == 0 for film, _, _ in found)
    assert all(films.away_from_marks(0, x, y) for _, x, y in found)
    plan = films.sample(np.random.default_rng(0), hard=found)
    assert (plan[-len(found):, 5] == 0).all() and np.allclose(plan[-len(found):, 1:3], [f[1:] for f in found])
