"""The model registry: numbered versions v1, v2, ... in a local folder (:mod:`.local`) or a Hugging
Face model repo (:mod:`.hub`), one interface (:mod:`.base`). :func:`open_registry` picks the
backend from the settings and publishes the packaged versions a new registry lacks."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from ... import config as mammo_config
from ...model_card import render_model_card
from .._hub import HubError, HubUnavailable, check_reachable, ensure_repo, hub_api, hub_errors
from .base import MODEL_FILES, ModelRegistry, RegistryError, version_number
from .hub import HubModelRegistry
from .local import LocalModelRegistry

__all__ = [
    "MODEL_FILES",
    "RegistryError",
    "ModelRegistry",
    "LocalModelRegistry",
    "HubModelRegistry",
    "open_registry",
    "packaged_versions",
    "version_number",
]

log = logging.getLogger(__name__)


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
        api = hub_api(settings)
        registry = HubModelRegistry(settings.home, api, settings.model_repo)
        try:
            with hub_errors(api.endpoint, f"opening the model registry ({settings.model_repo})"):
                check_reachable(api)
                ensure_repo(api, settings.model_repo, "model", render_model_card({}))
        except HubUnavailable as error:  # serve the cached versions; publishing waits for the Hub
            if not registry._refs_file.exists():
                raise RegistryError(f"{error} No model versions are cached locally.") from error
            log.warning("%s Starting on the cached model versions.", error)
        except HubError as error:
            raise RegistryError(str(error)) from error
        registry._healed_refs()
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
