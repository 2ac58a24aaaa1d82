"""Whole-film scores from a timm network: patch maps pooled over the film, then calibrated.

A :class:`FilmModel` wraps a timm classifier and adds what its ``config.json`` records under
``mammo.head``:

- ``kind: "patch"``: the network is a *patch* classifier (normal tissue / benign / malignant). It
  runs fully convolutionally over the film: its last feature map is averaged over windows the size
  of a training patch and its classifier applied at every position, giving a dense map of patch
  probabilities. Each abnormal class's film score is the mean of its ``top_k`` highest patch
  probabilities (Shen et al. 2019 pool a patch network the same way).
- ``kind: "film"``: the network classifies the whole film; its scores are its log-probabilities.

``mirror`` (``"horizontal"`` or ``"vertical"``; None: off) is test-time mirror averaging: in eval mode
a film's scores are the mean of its own and its mirror image's (cross-validation chose it for
ultrasound, where left and right are alike). Training runs the film as it is.

``calibration`` (weight, bias) is a multinomial logistic regression from those scores to the
film's class logits, fitted on out-of-fold (or validation) predictions: Platt / vector scaling.
The safetensors file holds only the timm network, so ``timm.create_model("hf-hub:...")`` still
loads it (as the patch or film classifier it is).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["HeadConfig", "FilmModel", "MIRROR_DIMS", "check_mirror", "uncalibrated", "pool_scores",
           "raw_scores"]

_SCORE_CLIP = 12.0  # scores are log-odds / log-probabilities clipped to +-12 (p ~ 6e-6)
MIRROR_DIMS = {"horizontal": -1, "vertical": -2}  # the input dimension each mirror flips


def check_mirror(axis: str | None) -> None:
    """Refuse a test-time mirror other than None or one of :data:`MIRROR_DIMS`."""
    if axis is not None and axis not in MIRROR_DIMS:
        raise ValueError(f"unknown test-time mirror {axis!r}; choose one of {list(MIRROR_DIMS)}")


@dataclass(frozen=True)
class HeadConfig:
    """How a network's output becomes calibrated film logits.

    Args:
        kind: ``"patch"`` (dense patch map, top-k pooled) or ``"film"`` (whole-film classifier).
        patch_cells: patch side in cells of the last feature map (patch pixels / 32).
        top_k: patch positions averaged per class for the film score.
        min_coverage: share of a patch window that must lie inside the breast for its position
            to be pooled (0: every position; patches mostly off the breast were never trained on).
        weight: calibration weight (classes x scores); None = not fitted (identity for ``film``).
        bias: calibration bias (classes).
        mirror: test-time mirror averaging (``"horizontal"``, ``"vertical"``; None: off).
    """

    kind: str = "film"
    patch_cells: int = 3
    top_k: int = 4
    min_coverage: float = 0.0
    weight: list[list[float]] | None = field(default=None)
    bias: list[float] | None = field(default=None)
    mirror: str | None = None

    def __post_init__(self) -> None:
        check_mirror(self.mirror)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> HeadConfig:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


def uncalibrated(kind: str, num_classes: int, num_scores: int | None = None
                 ) -> tuple[list[list[float]], list[float]]:
    """The calibration before any is fitted: identity on log-probabilities (``film``); for
    ``patch``, each abnormal class's logit is its pooled log-odds, normal's their negated sum.
    Scores beyond those (``num_scores``) get zero weight."""
    if kind == "film":
        weight = np.eye(num_classes)
    else:
        weight = np.vstack([-np.ones((1, num_classes - 1)), np.eye(num_classes - 1)])
    extra = max(0, (num_scores or weight.shape[1]) - weight.shape[1])
    return np.hstack([weight, np.zeros((num_classes, extra))]).tolist(), [0.0] * num_classes


class FilmModel(nn.Module):
    """A timm network with film pooling and calibration; ``forward`` gives film logits.

    Args:
        net: the timm classifier (patch or film).
        head: pooling and calibration settings.
    """

    def __init__(self, net: nn.Module, head: HeadConfig) -> None:
        super().__init__()
        self.net, self.head = net, head
        self.num_classes = net.num_classes
        self.pretrained_cfg = net.pretrained_cfg
        weight, bias = (head.weight, head.bias) if head.weight is not None else \
            uncalibrated(head.kind, self.num_classes)
        self.calibration = nn.Linear(len(weight[0]), self.num_classes)
        with torch.no_grad():
            self.calibration.weight.copy_(torch.tensor(weight))
            self.calibration.bias.copy_(torch.tensor(bias))

    def set_calibration(self, weight: list[list[float]], bias: list[float]) -> None:
        """Use a fitted calibration (see :func:`mammo.calibration.fit_calibration`)."""
        with torch.no_grad():
            self.calibration.weight.copy_(torch.tensor(weight))
            self.calibration.bias.copy_(torch.tensor(bias))
        self.head = replace(self.head, weight=[list(map(float, row)) for row in weight],
                            bias=[float(b) for b in bias])

    @property
    def has_lesion_map(self) -> bool:
        return self.head.kind == "patch"

    def forward_features(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.net.forward_features(inputs)

    def _windows(self, grid: torch.Tensor, include_pad: bool) -> torch.Tensor:
        """Means over patch-sized windows of a (N, C, h, w) grid, one per position."""
        cells = self.head.patch_cells
        pooled = F.avg_pool2d(grid, cells, stride=1, padding=cells // 2, count_include_pad=include_pad)
        return pooled[..., : grid.shape[-2], : grid.shape[-1]]  # even windows: keep the grid's size

    def read_cells(self, pooled: torch.Tensor) -> torch.Tensor:
        """(N, h, w) bool: the feature cells the score reads when it pools the ``pooled`` positions
        (N, h, w): those inside one of their patch windows (the windows of :meth:`_windows`)."""
        cells = self.head.patch_cells
        before, after = cells - 1 - cells // 2, cells // 2  # position i averages cells i - cells//2 ...
        padded = F.pad(pooled[:, None].float(), (before, after, before, after))
        return F.max_pool2d(padded, cells, stride=1)[:, 0] > 0

    def patch_probabilities(self, features: torch.Tensor) -> torch.Tensor:
        """Dense patch class probabilities (N, C, h, w) from the last feature map (patch kind)."""
        pooled = self._windows(features, include_pad=False)
        classifier = self.net.get_classifier()
        logits = torch.einsum("nchw,kc->nkhw", pooled, classifier.weight) + classifier.bias[:, None, None]
        return logits.softmax(dim=1)

    def lesion_map(self, features: torch.Tensor, pooled: torch.Tensor | None) -> torch.Tensor:
        """(N, h, w) P(lesion) = 1 - P(normal tissue) per position, 0 where not ``pooled``."""
        lesion = 1 - self.patch_probabilities(features)[:, 0]
        return lesion if pooled is None else lesion * pooled.to(lesion.dtype)

    def pooled_positions(self, inputs: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """(N, h, w) bool: positions whose patch window lies inside the breast by at least
        ``min_coverage`` (prepared films are zero outside the breast; the part of a window past
        the film's edge counts as outside)."""
        mean, std = float(self.pretrained_cfg["mean"][0]), float(self.pretrained_cfg["std"][0])
        breast = (inputs[:, :1] * std + mean > 0.02).float()
        cells = F.adaptive_avg_pool2d(breast, features.shape[-2:])
        return self._windows(cells, include_pad=True)[:, 0] >= self.head.min_coverage - 1e-6

    def scores(self, features: torch.Tensor, pooled: torch.Tensor | None = None) -> torch.Tensor:
        """Uncalibrated film scores (N, S): top-k pooled log-odds (patch; over the ``pooled``
        positions when given) or log-probabilities (film)."""
        if self.head.kind == "film":
            return self.net.forward_head(features).log_softmax(dim=1).clamp_min(-_SCORE_CLIP)
        return pool_scores(self.patch_probabilities(features), self.head.top_k, pooled)

    def forward_head(self, features: torch.Tensor, pooled: torch.Tensor | None = None) -> torch.Tensor:
        return self.calibration(self.scores(features, pooled))

    def film_scores(self, inputs: torch.Tensor) -> torch.Tensor:
        """Uncalibrated film scores (N, S) of inputs; in eval mode averaged with their mirror
        images' when the head says so (calibration is linear, so this equals averaging logits)."""
        scores = self._scores_as_is(inputs)
        if self.head.mirror and not self.training:
            scores = (scores + self._scores_as_is(inputs.flip(MIRROR_DIMS[self.head.mirror]))) / 2
        return scores

    def _scores_as_is(self, inputs: torch.Tensor) -> torch.Tensor:
        features = self.forward_features(inputs)
        return self.scores(features, self.positions(inputs, features))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.calibration(self.film_scores(inputs))

    def positions(self, inputs: torch.Tensor, features: torch.Tensor) -> torch.Tensor | None:
        """The positions to pool for these inputs (None: all, or a whole-film classifier)."""
        if self.head.kind != "patch" or self.head.min_coverage <= 0:
            return None
        return self.pooled_positions(inputs, features)


def pool_scores(maps: torch.Tensor, top_k: int, pooled: torch.Tensor | None = None) -> torch.Tensor:
    """Film scores (N, C-1) from dense patch probabilities (N, C, h, w): for each abnormal class,
    the log-odds of the mean of its ``top_k`` highest patch probabilities (over the ``pooled``
    positions (N, h, w) when given; the others count as 0)."""
    if pooled is not None:
        maps = maps * pooled[:, None].to(maps.dtype)
    flat = maps[:, 1:].flatten(2)
    pooled = flat.topk(min(top_k, flat.shape[-1]), dim=-1).values.mean(dim=-1).clamp(1e-6, 1 - 1e-6)
    return torch.logit(pooled).clamp(-_SCORE_CLIP, _SCORE_CLIP)


def raw_scores(model: FilmModel, batches) -> np.ndarray:
    """Uncalibrated film scores (N, S) of a model over an iterable of input batches."""
    model.eval()
    with torch.inference_mode():
        return torch.cat([model.film_scores(x) for x in batches]).numpy()
