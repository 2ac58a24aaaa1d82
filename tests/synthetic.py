"""Synthetic images for tests that need no real data."""

from __future__ import annotations

import numpy as np


def synthetic_mammogram(height: int = 300, width: int = 200, right: bool = True) -> np.ndarray:
    """A bright half-disc 'breast' against one side, plus a film-label square in a far corner."""
    yy, xx = np.mgrid[0:height, 0:width]
    edge = width - 1 if right else 0
    breast = ((yy - height / 2) ** 2 + (xx - edge) ** 2) < (0.45 * height) ** 2
    grey = np.where(breast, 0.6, 0.02).astype(np.float32)
    grey += np.random.default_rng(0).normal(0, 0.01, grey.shape).astype(np.float32)
    label_x = 5 if right else width - 25
    grey[5:25, label_x : label_x + 20] = 1.0
    return np.clip(grey, 0, 1)
