"""Heat maps: the patch network's lesion map, class activation maps (package ``grad-cam``), overlay.

Grad-CAM on the final activation of a global-average-pool + linear head needs no backward pass:
the gradient of class k's logit w.r.t. every position of the last feature map is W[k] / (h*w), so
Grad-CAM's channel weights are the classifier's weights (CAM). :func:`one_pass_cam` computes it
from the features of the same forward pass that gave the probabilities; the other methods run
``pytorch_grad_cam`` on a :class:`FeatureTap` wrapper of the model.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytorch_grad_cam
import torch
import torch.nn.functional as F
from pytorch_grad_cam.utils.image import scale_cam_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn

from .choices import CAM_CLASSES, DEFAULT_OPACITY
from .errors import BadRequest
from .values import echoed

__all__ = [
    "CAM_METHODS",
    "FeatureTap",
    "has_linear_head",
    "one_pass_cam",
    "package_cam",
    "within_cells",
    "overlay",
]

CAM_METHODS: dict[str, type] = {name: getattr(pytorch_grad_cam, cls) for name, cls in CAM_CLASSES.items()}


class FeatureTap(nn.Module):
    """A timm model run as features -> ``tap`` (identity) -> head, so CAM hooks the last activation."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.tap = nn.Identity()

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        features = self.model.forward_features(inputs)
        positions = getattr(self.model, "positions", None)  # a FilmModel pools the breast only
        pooled = None if positions is None else positions(inputs, features)
        if pooled is None:
            return self.model.forward_head(self.tap(features))
        # the cells the score does not read are 0 for the CAM (the output stays the model's)
        read = self.model.read_cells(pooled)[:, None].to(features.dtype)
        return self.model.forward_head(self.tap(features * read), pooled)


def has_linear_head(model: nn.Module) -> bool:
    """True when the head is global average pooling followed by one linear layer (CAM applies)."""
    pool_type = getattr(getattr(model, "global_pool", None), "pool_type", None)
    classifier = getattr(model, "get_classifier", None)  # a FilmModel has none: pooled + calibrated
    return classifier is not None and isinstance(classifier(), nn.Linear) and pool_type == "avg"


def one_pass_cam(
    features: torch.Tensor, classifier: nn.Linear, classes: torch.Tensor, size: tuple[int, int]
) -> np.ndarray:
    """Grad-CAM of ``classes`` from final features (N, C, h, w); ``size`` is (height, width).

    Normalised as the package does (min-max, resize, min-max again). Returns (N, H, W) in [0, 1].
    """
    weights = classifier.weight[classes]  # (N, C)
    cam = torch.einsum("nc,nchw->nhw", weights, features).clamp_min(0)
    return scale_cam_image(scale_cam_image(cam.detach().float().numpy(), (size[1], size[0])))


def package_cam(
    model: nn.Module, inputs: torch.Tensor, classes: list[int], method: str
) -> np.ndarray:
    """A ``pytorch_grad_cam`` method on the last feature map: (N, H, W) in [0, 1]."""
    if method not in CAM_METHODS:
        raise BadRequest(f"Unknown heat-map method {echoed(method)}; choose one of {', '.join(CAM_METHODS)}.")
    tapped = FeatureTap(model).eval()
    targets = [ClassifierOutputTarget(index) for index in classes]
    with CAM_METHODS[method](model=tapped, target_layers=[tapped.tap]) as cam:
        return cam(input_tensor=inputs, targets=targets)


def within_cells(cams: np.ndarray, cells: torch.Tensor) -> np.ndarray:
    """CAMs (N, H, W) kept to the feature ``cells`` (N, h, w) a film model's score reads and rescaled
    to [0, 1]: 0 elsewhere, the mask upsampled as the lesion map is (bilinear). (EigenCAM's
    projection is not 0 on the zeroed cells, so the tap alone does not do this.)"""
    mask = F.interpolate(cells[:, None].float(), size=cams.shape[-2:], mode="bilinear", align_corners=False)
    return scale_cam_image(cams * mask[:, 0].numpy())


def overlay(grey: np.ndarray, heat: np.ndarray, opacity: float = DEFAULT_OPACITY) -> np.ndarray:
    """The heat map (jet colours) blended over the grey image: (H, W, 3) uint8."""
    if not 0.0 <= opacity <= 1.0:
        raise BadRequest("opacity must be between 0 and 1")
    # not pytorch_grad_cam's show_cam_on_image: it tints every pixel and rescales the blend to its
    # maximum, which hides the mammogram; here colour is blended in proportion to the heat, so
    # cold regions show the image unchanged
    heat = np.clip(heat, 0, 1).astype(np.float32)
    colours = cv2.applyColorMap(np.uint8(255 * heat), cv2.COLORMAP_JET)
    colours = cv2.cvtColor(colours, cv2.COLOR_BGR2RGB).astype(np.float32) / 255
    rgb = np.repeat(np.clip(grey, 0, 1)[..., None], 3, axis=2).astype(np.float32)
    alpha = opacity * heat[..., None]
    return np.uint8(np.round(255 * ((1 - alpha) * rgb + alpha * colours)))
