"""Breast-region crop, laterality normalisation and resizing; the geometry to map heat maps back.

Training and prediction call the same :func:`prepare` with the :class:`PreprocessConfig` recorded
in the model's ``config.json``, so a model always sees images prepared the way it was trained.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from .imaging import colour_doubt

__all__ = [
    "PreprocessConfig",
    "Geometry",
    "BreastMask",
    "find_breast",
    "small_copy",
    "breast_region",
    "whole_film_doubt",
    "prepare",
    "to_tensor",
    "to_original",
    "to_prepared",
    "fit_within",
    "resize",
]

_MASK_SIDE = 256  # the breast mask is found on a copy this size (fast, film labels still separate)


@dataclass(frozen=True)
class PreprocessConfig:
    """How images are prepared for a model.

    Args:
        image_size: side of the square model input, in pixels.
        crop: crop to the breast (largest bright component; drops film labels and background).
        orient: flip so the breast (chest wall) is on the left.
    """

    image_size: int = 256
    crop: bool = True
    orient: bool = True

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> PreprocessConfig:
        return cls(**{k: data[k] for k in ("image_size", "crop", "orient") if k in data})


@dataclass(frozen=True)
class Geometry:
    """Where the model input came from: crop box (top, left, bottom, right), flip, padded side."""

    box: tuple[int, int, int, int]
    flipped: bool
    side: int


def _resize(grey: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize with antialiasing (float32 in, float32 out)."""
    tensor = torch.from_numpy(np.ascontiguousarray(grey, dtype=np.float32))[None, None]
    out = F.interpolate(tensor, size=(height, width), mode="bilinear", antialias=True)
    return out[0, 0].numpy()


def fit_within(grey: np.ndarray, max_side: int) -> np.ndarray:
    """``grey`` scaled down (antialiased) so that its longer side is at most ``max_side``; an
    image already that small is returned as it is."""
    scale = max_side / max(grey.shape)
    if scale >= 1:
        return grey
    return _resize(grey, max(1, round(grey.shape[0] * scale)), max(1, round(grey.shape[1] * scale)))


def resize(grey: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``grey`` resized to ``shape`` (height, width): bilinear, antialiased when shrinking."""
    return _resize(grey, *shape)


def small_copy(grey: np.ndarray) -> np.ndarray:
    """The copy of ``grey`` the breast mask is found on: _MASK_SIDE long (a smaller image scaled up)."""
    scale = _MASK_SIDE / max(grey.shape)
    return _resize(grey, max(1, round(grey.shape[0] * scale)), max(1, round(grey.shape[1] * scale)))


@dataclass(frozen=True, eq=False)
class BreastMask:
    """A film's breast mask as found: ``mask`` over ``small``, the film scaled to _MASK_SIDE."""

    small: np.ndarray
    mask: np.ndarray


def find_breast(grey: np.ndarray) -> BreastMask:
    """The breast mask of ``grey``, found once for the crop and the not-like-a-film check."""
    small = small_copy(grey)
    return BreastMask(small, _breast_mask(small))


def _breast_mask(small: np.ndarray) -> np.ndarray:
    """Largest connected bright region of :func:`small_copy`'s copy (threshold, opening, holes filled)."""
    threshold = max(0.05, float(np.percentile(small, 50)) * 0.5 + 0.02)
    mask = ndimage.binary_opening(small > threshold, iterations=2)
    labels, count = ndimage.label(mask)
    if count == 0:
        return np.ones_like(small, dtype=bool)
    sizes = ndimage.sum(mask, labels, index=range(1, count + 1))
    largest = labels == (int(np.argmax(sizes)) + 1)
    return ndimage.binary_dilation(ndimage.binary_fill_holes(largest), iterations=2)


def whole_film_doubt(grey: np.ndarray, found: BreastMask | None = None, coloured: float = 0.0) -> str | None:
    """Why ``grey`` does not look like a whole-breast film, or None when it does: its file was a colour
    picture (``coloured``: :class:`~mammo.imaging.DecodedImage`'s share of coloured pixels), the
    brightest region covers (almost) all of it, or what lies around that region is not a dark film
    background. On the 258 mini-MIAS films here the breast covers 17-89% of the film and at least 45%
    of the rest is near black, at 512 and 1024 px; the eight CBIS-DDSM films pass too. A test
    pattern, noise, a flat image or a bright photograph do not; a colour photograph does not, however
    dark (a heuristic: a dark grey photograph can pass). ``found``: its :func:`find_breast`, when
    known."""
    colour = colour_doubt(coloured)
    if colour:
        return colour
    found = found if found is not None else find_breast(grey)
    small, mask = found.small, found.mask
    if mask.mean() > 0.95:
        return "no background around the breast: its brightest region covers the whole image"
    dark = float(np.mean(small[~mask] < 0.1))
    if dark < 0.35:
        return f"what lies around its brightest region is not a dark film background ({dark:.0%} near black)"
    return None


def breast_region(grey: np.ndarray, found: BreastMask | None = None
                  ) -> tuple[np.ndarray, tuple[int, int, int, int], bool]:
    """Breast mask at full size, its box (top, left, bottom, right), and whether it lies right (its
    mean column past the middle). ``found``: its :func:`find_breast`, when known."""
    found = found if found is not None else find_breast(grey)
    mask = _resize(found.mask.astype(np.float32), *grey.shape) > 0.5
    rows, per_column = np.flatnonzero(mask.any(axis=1)), mask.sum(axis=0)  # projections: no index arrays
    if rows.size == 0:
        return np.ones_like(mask), (0, 0, *grey.shape), False
    cols = np.flatnonzero(per_column)
    box = (int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1)
    mean_column = float(per_column @ np.arange(per_column.size)) / float(per_column.sum())
    return mask, box, mean_column > grey.shape[1] / 2


def prepare(grey: np.ndarray, config: PreprocessConfig, found: BreastMask | None = None
            ) -> tuple[np.ndarray, Geometry]:
    """Crop to the breast (outside zeroed), orient, pad to a top-left square, resize. ``found``: the
    film's :func:`find_breast`, when known."""
    if config.crop or config.orient:
        mask, box, on_right = breast_region(grey, found)
    else:
        mask, box, on_right = None, (0, 0, *grey.shape), False
    flipped = config.orient and on_right
    if config.crop:
        top, left, bottom, right = box
        region = (grey * mask)[top:bottom, left:right]
    else:
        box, region = (0, 0, *grey.shape), grey
    if flipped:
        region = region[:, ::-1]
    side = max(region.shape)
    square = np.zeros((side, side), dtype=np.float32)
    square[: region.shape[0], : region.shape[1]] = region
    size = config.image_size
    return _resize(square, size, size), Geometry(box=box, flipped=flipped, side=side)


def to_tensor(square: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """A prepared square as a normalised (1, S, S) float tensor."""
    tensor = torch.from_numpy(np.ascontiguousarray(square, dtype=np.float32))[None]
    return (tensor - float(mean[0])) / float(std[0])


def to_original(heat: np.ndarray, geometry: Geometry, shape: tuple[int, int]) -> np.ndarray:
    """Map a heat map over the model input back onto the original image (zeros outside the crop)."""
    top, left, bottom, right = geometry.box
    full = _resize(heat, geometry.side, geometry.side)[: bottom - top, : right - left]
    if geometry.flipped:
        full = full[:, ::-1]
    out = np.zeros(shape, dtype=np.float32)
    out[top:bottom, left:right] = full
    return out


def to_prepared(
    points: np.ndarray, geometry: Geometry, size: int
) -> np.ndarray:
    """Map (x, y) points of the original image (pixels, origin top-left) onto the prepared
    ``size`` x ``size`` square: the inverse of :func:`to_original`. Returns float (N, 2)."""
    top, left, bottom, right = geometry.box
    xy = np.asarray(points, dtype=np.float64).reshape(-1, 2) - (left, top)
    if geometry.flipped:
        xy[:, 0] = (right - left) - xy[:, 0]
    return xy * (size / geometry.side)
