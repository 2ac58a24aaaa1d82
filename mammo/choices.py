"""The names offered on the command line and in the app: training recipes, heat-map methods and the
reasons a case may be withdrawn.

Data only, without heavy imports, so that ``python -m mammo --help`` and a mistyped option are
answered at once (the modules that use them import torch and the rest).
"""

from __future__ import annotations

__all__ = ["RECIPES", "PATCH_STAGE", "FILM_STAGE", "GRAD_CAM", "LESION_MAP", "DEFAULT_METHOD",
           "DEFAULT_OPACITY", "CAM_CLASSES", "HEATMAP_METHODS", "WITHDRAWAL_REASONS", "listed_reason",
           "listed_method", "TRAINING_DEFAULTS"]

RECIPES = ("film", "patch")
# a training recipe's defaults, as ``TrainConfig``, ``python -m mammo train``/``cv`` and the pages take
# them (one table: the command line repeated them by hand)
TRAINING_DEFAULTS = {
    "recipe": "film",
    "arch": "tf_efficientnet_lite0",
    "init": "imagenet",
    "image_size": 256,
    "epochs": 30,
    "batch_size": 16,
    "lr": 3e-4,
    "weight_decay": 1e-5,
    "patience": 7,
    "seed": 0,
    "min_side": 32,  # imaging.MIN_SIDE (tested)
    "patch_size": 96,
    "top_k": 4,
    "min_coverage": 0.9,
    "hard_negatives": 3,
    "grad_accum": 1,
    "film_epochs": 0,
    "film_lr": 1e-4,
    "film_batch_size": 8,
}
PATCH_STAGE, FILM_STAGE = "patches", "whole films"  # the patch recipe's two stages, as epochs name them
GRAD_CAM = "Grad-CAM"
# The patch network's own dense map of P(lesion) (1 - P(normal tissue)) on an absolute 0-1 scale,
# from the same forward pass (models of the patch recipe; others fall back to Grad-CAM).
LESION_MAP = "Lesion map"
DEFAULT_METHOD = LESION_MAP
DEFAULT_OPACITY = 0.4  # of the heat map drawn over the film
# each class activation map offered: its name -> its class in the package grad-cam (pytorch_grad_cam)
CAM_CLASSES = {
    GRAD_CAM: "GradCAM",
    "Grad-CAM++": "GradCAMPlusPlus",
    "HiResCAM": "HiResCAM",
    "XGrad-CAM": "XGradCAM",
    "LayerCAM": "LayerCAM",
    "EigenCAM": "EigenCAM",
}
HEATMAP_METHODS = (LESION_MAP, *CAM_CLASSES)


def listed_method(method: str) -> str:
    """``method`` as :data:`HEATMAP_METHODS` spells it, whatever its case and surrounding spaces
    ("grad-cam" was refused, where a label is taken in any case: an API probe); anything else as it
    came, to be refused naming the methods."""
    return {name.casefold(): name for name in HEATMAP_METHODS}.get(method.strip().casefold(), method)


# Why a stored case may be withdrawn: a fixed list, so that no free text (a name, a record number)
# is stored with the withdrawal.
WITHDRAWAL_REASONS = (
    "identifier visible in the image",
    "wrong image (another patient, or not a mammogram)",
    "consent withdrawn",
    "image quality too poor to label",
    "other",
)


def listed_reason(given: object) -> str | None:
    """``given`` as :data:`WITHDRAWAL_REASONS` spells it (any case and spacing); None when it is not one."""
    known = {reason.lower(): reason for reason in WITHDRAWAL_REASONS}
    return known.get(given.strip().lower()) if isinstance(given, str) else None
