"""The model registry: numbered versions v1, v2, ... in a local folder (:mod:`.local`) or a Hugging
Face model repo (:mod:`.hub`), one interface (:mod:`.base`). :func:`open_registry` picks the
backend from the settings and publishes the packaged versions a new registry lacks."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ... import config as mammo_config
from .._hub import hub_api
from .base import (
    MODEL_FILES,
    ModelRegistry,
    NewerVersion,
    RegistryError,
    is_newer,
    rollback_of,
    version_number,
)
from .hub import HubModelRegistry
from .local import LocalModelRegistry

__all__ = [
    "MODEL_FILES",
    "RegistryError",
    "NewerVersion",
    "is_newer",
    "ModelRegistry",
    "LocalModelRegistry",
    "HubModelRegistry",
    "open_registry",
    "packaged_versions",
    "rollback_of",
    "version_number",
]


def open_registry(
    settings: mammo_config.Settings | None = None,
    seed: Path | Sequence[Path] | None = None,
) -> ModelRegistry:
    """The registry chosen by the settings (Hub with ``MAMMO_MODEL_REPO`` + ``HF_TOKEN``).

    Removes crash leftovers and publishes the packaged versions (``seed``, default every
    ``mammo/weights/vN`` in order) that the registry's history does not have yet (see
    :meth:`ModelRegistry.seed`). A model repo without a token is refused (no silent local fallback).
    """
    settings = settings or mammo_config.settings()
    registry: ModelRegistry
    if settings.use_hub_models:
        assert settings.model_repo is not None
        registry = HubModelRegistry(settings.home, hub_api(settings), settings.model_repo)
        registry.connect()
    elif settings.model_repo:
        raise RegistryError(
            f"MAMMO_MODEL_REPO is set ({settings.model_repo}) but HF_TOKEN is not: set HF_TOKEN "
            "(a Space secret) to use the Hub, or unset MAMMO_MODEL_REPO to keep versions locally"
        )
    else:
        registry = LocalModelRegistry(settings.home)
    registry.clean()
    registry.seed(packaged_versions() if seed is None else seed)
    return registry


def packaged_versions() -> list[Path]:
    """The model folders shipped in the package (``mammo/weights/v1``, ``v2``, ...), in order."""
    folders = [p for p in mammo_config.PACKAGE_WEIGHTS.glob("v*") if version_number(p.name)]
    return sorted(folders, key=lambda p: version_number(p.name))
