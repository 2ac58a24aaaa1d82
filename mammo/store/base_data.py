"""The base data for retraining: a local imagefolder, or a Hub dataset repo downloaded into the cache."""

from __future__ import annotations

from pathlib import Path

from huggingface_hub import snapshot_download

from ..config import HUB_DATASET_PREFIX, Settings
from ._hub import hub_api, hub_errors

__all__ = ["base_data_folder", "base_data_name", "base_data_source"]


def base_data_source(settings: Settings) -> str | None:
    """Where the base data comes from, in words for logs and messages (no token)."""
    if settings.base_data_repo:
        return f"the Hub dataset repo {settings.base_data_repo}"
    return str(settings.base_data) if settings.base_data is not None else None


def base_data_name(settings: Settings, folder: Path) -> str:
    """How a model trained on the base data ``folder`` records it: a Hub repo as
    ``hf://datasets/OWNER/NAME@<commit>`` (not this machine's cache folder), a local folder as its path."""
    if settings.base_data_repo:  # snapshot_download's folder is named by the commit it holds
        return f"{HUB_DATASET_PREFIX}{settings.base_data_repo}@{folder.name}"
    return str(folder)


def base_data_folder(settings: Settings) -> Path | None:
    """The local imagefolder of the base data (None when MAMMO_BASE_DATA is unset).

    A Hub dataset repo is downloaded with ``snapshot_download`` (private repos with HF_TOKEN); a
    later call only checks for a newer commit, and falls back to the cached copy when the Hub is
    unreachable. Raises :class:`~mammo.store._hub.HubError` (or ``HubUnavailable``) with a plain
    message when the repo cannot be fetched and nothing is cached.
    """
    if not settings.base_data_repo:
        return settings.base_data
    api = hub_api(settings)
    with hub_errors(api.endpoint, f"downloading the base data {settings.base_data_repo}"):
        return Path(snapshot_download(settings.base_data_repo, repo_type="dataset", token=settings.hf_token,
                                      endpoint=settings.hf_endpoint, library_name="mammo"))
