"""Lesion-centred and background patches from films, for the patch stage of the lesion-aware recipe.

Stage 1 of the two-stage recipe (Shen et al. 2019, Sci Rep 9:12495): a classifier of small
patches — normal tissue, benign lesion, malignant lesion — trained on patches cut from prepared
films (same crop, orientation and scale as whole-film prediction). Lesion patches are centred on
the marked lesion with jitter, scale and any rotation; background patches are centred inside the
breast of normal films and away from every marked lesion of abnormal films. Films with a finding
but no coordinates (diffuse findings) give no patches: they count only as whole-film examples.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .choices import TRAINING_DEFAULTS
from .data import Example, PreparedImages
from .imaging import MIN_SIDE
from .preprocess import PreprocessConfig, to_prepared

__all__ = ["Lesion", "PatchConfig", "lesions", "PatchFilms"]

NORMAL = "normal"


@dataclass(frozen=True)
class Lesion:
    """A marked finding: centre and radius in pixels (origin top-left)."""

    x: float
    y: float
    radius: float


@dataclass(frozen=True)
class PatchConfig:
    """How patches are sampled.

    Args:
        size: patch side in pixels of the prepared film (the network's input side).
        per_lesion: lesion-centred patches per marked lesion per epoch.
        background_per_film: background patches per film per epoch.
        scale: range of the random zoom (the cut square is ``size * scale`` before resizing).
        jitter: largest shift of a lesion patch's centre, as a fraction of the patch side.
    """

    size: int = TRAINING_DEFAULTS["patch_size"]
    per_lesion: int = 8
    background_per_film: int = 4
    scale: tuple[float, float] = (0.8, 1.25)
    jitter: float = 0.25


def lesions(metadata: dict) -> list[Lesion]:
    """The marked lesions in a metadata row (``lesion_x``/``lesion_y``/``lesion_radius``, several
    joined by ';'); empty when the row has none."""
    xs, ys, rs = (str(metadata.get(k) or "") for k in ("lesion_x", "lesion_y", "lesion_radius"))
    if not xs.strip():
        return []
    return [Lesion(float(x), float(y), float(r))
            for x, y, r in zip(xs.split(";"), ys.split(";"), rs.split(";"), strict=True)]


class PatchFilms:
    """Films prepared as for prediction (:class:`~mammo.data.PreparedImages`: in memory while they
    fit, else prepared when a batch needs them) with their lesions in prepared pixels.

    Args:
        examples: labelled films; lesion marks come from their metadata.
        labels: class names in model order (must hold ``normal``).
        preprocess: crop/orient/film size, as for whole-film prediction.
        patch: patch sampling settings.
        min_side: smallest accepted image side.
    """

    def __init__(self, examples: Sequence[Example], labels: Sequence[str], preprocess: PreprocessConfig,
                 patch: PatchConfig, min_side: int = MIN_SIDE) -> None:
        if not labels or labels[0] != NORMAL:
            raise ValueError(f"the patch recipe needs {NORMAL!r} as the first class (background "
                             f"patches); labels are {list(labels)}")
        self.labels, self.patch, self.size = list(labels), patch, preprocess.image_size
        self.films = PreparedImages(examples, labels, preprocess, (0.0,), (1.0,), min_side=min_side)
        self.targets = self.films.targets.tolist()
        self.marks: list[list[Lesion]] = []
        for index, example in enumerate(examples):
            found = lesions(example.metadata)
            if not found:  # nothing to place: the film need not be read here
                self.marks.append([])
                continue
            geometry = self.films.geometry(index)  # kept with the prepared film, or read again
            scale = self.size / geometry.side
            centres = to_prepared(np.array([(m.x, m.y) for m in found]), geometry, self.size)
            self.marks.append([Lesion(float(x), float(y), m.radius * scale)
                               for (x, y), m in zip(centres, found, strict=True)])

    def squares(self, films: Sequence[int]) -> torch.Tensor:
        """The prepared films ``films`` as (B, 1, S, S) in [0, 1] (zero outside the breast)."""
        return self.films.stack(films)

    def breast(self, film: int) -> torch.Tensor:
        """(S, S) bool: where the prepared film is breast (it is zero outside)."""
        return self.films.square(film)[0] > 0.02

    def away_from_marks(self, film: int, x: float, y: float) -> bool:
        """True when a patch centred at (x, y) holds none of the film's marked lesions' centres."""
        half = self.patch.size / 2
        return all(math.hypot(x - m.x, y - m.y) > m.radius + half for m in self.marks[film])

    def may_hold_background(self, film: int) -> bool:
        """Normal films, and abnormal films whose lesions are marked (unmarked findings could be
        anywhere)."""
        return self.targets[film] == self.labels.index(NORMAL) or bool(self.marks[film])

    def _background_centres(self, film: int, count: int, rng: np.random.Generator) -> list[tuple]:
        """Up to ``count`` random centres inside the breast, away from every marked lesion."""
        rows, cols = np.nonzero(self.breast(film).numpy())
        if rows.size == 0:
            return []
        out = []
        for index in rng.integers(0, rows.size, count * 4):
            x, y = float(cols[index]), float(rows[index])
            if self.away_from_marks(film, x, y):
                out.append((x, y))
            if len(out) == count:
                break
        return out

    def sample(self, rng: np.random.Generator, hard: Sequence[tuple[int, float, float]] = ()) -> np.ndarray:
        """One epoch's patch plan: rows of (film, x, y, scale, angle, target). ``hard`` adds
        background patches at (film, x, y): hard negatives mined by the network being trained."""
        normal, p = self.labels.index(NORMAL), self.patch
        plan = []
        for film, target in enumerate(self.targets):
            for mark in self.marks[film]:
                for _ in range(p.per_lesion):
                    shift = rng.uniform(-1, 1, 2) * min(mark.radius, p.jitter * p.size)
                    plan.append((film, mark.x + shift[0], mark.y + shift[1], target))
            if self.may_hold_background(film):
                plan += [(film, x, y, normal)
                         for x, y in self._background_centres(film, p.background_per_film, rng)]
        plan += [(film, x, y, normal) for film, x, y in hard]
        plan = np.array(plan, dtype=np.float64).reshape(-1, 4)
        scales = rng.uniform(*p.scale, len(plan))
        angles = rng.uniform(0, 2 * math.pi, len(plan))
        return np.column_stack([plan[:, :3], scales, angles, plan[:, 3]])

    def cut(self, rows: np.ndarray, flip: np.ndarray | None = None) -> torch.Tensor:
        """The patches of plan ``rows`` as a (B, 1, P, P) tensor in [0, 1] (zeros off the film).

        ``flip`` (B,) bool mirrors patches (random augmentation; mammogram patches have no side).
        """
        size, p = self.size, self.patch.size
        film = torch.as_tensor(rows[:, 0], dtype=torch.long)
        x, y, scale, angle = (torch.as_tensor(rows[:, i], dtype=torch.float32) for i in (1, 2, 3, 4))
        half = scale * p / size  # half-side of the cut square in normalised film coordinates
        mirror = torch.ones_like(half) if flip is None else 1 - 2 * torch.as_tensor(flip).float()
        theta = torch.stack([
            torch.stack([half * torch.cos(angle) * mirror, -half * torch.sin(angle),
                         x / size * 2 - 1], dim=1),
            torch.stack([half * torch.sin(angle) * mirror, half * torch.cos(angle),
                         y / size * 2 - 1], dim=1),
        ], dim=1)
        grid = F.affine_grid(theta, [len(rows), 1, p, p], align_corners=False)
        return F.grid_sample(self.squares(film.tolist()), grid, mode="bilinear", padding_mode="zeros",
                             align_corners=False)
