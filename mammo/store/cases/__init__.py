"""The case store: what a case is (:mod:`.schema`), its dataset card (:mod:`.card`), the store in
a local folder (:mod:`.local`), and on a Hub dataset repo (:mod:`.hub`) through an outbox
(:mod:`.outbox`). :func:`open_case_store` picks the backend from the settings."""

from __future__ import annotations

from collections.abc import Sequence

from ...config import Settings
from ...config import settings as current_settings
from .card import dataset_card
from .hub import HubCaseStore
from .local import CaseStore, ImageInput, label_conflict_text
from .outbox import Outbox
from .schema import (
    CASE_COLUMNS,
    METADATA_FIELDS,
    MetadataField,
    StoreError,
    case_features,
    label_doubt,
    validate_metadata,
)

__all__ = [
    "CASE_COLUMNS",
    "METADATA_FIELDS",
    "CaseStore",
    "HubCaseStore",
    "ImageInput",
    "MetadataField",
    "Outbox",
    "StoreError",
    "case_features",
    "dataset_card",
    "label_conflict_text",
    "label_doubt",
    "open_case_store",
    "validate_metadata",
]


def open_case_store(labels: Sequence[str], settings: Settings | None = None) -> CaseStore:
    """The case store the settings ask for: the Hub repo if configured, else a local folder."""
    s = settings or current_settings()
    if s.use_hub_cases:
        assert s.dataset_repo is not None
        outbox = s.home / "outbox" / s.dataset_repo.replace("/", "--")
        return HubCaseStore(labels, s.dataset_repo, s, outbox, max_bytes=s.max_upload_bytes)
    return CaseStore(labels, s.home / "cases", max_bytes=s.max_upload_bytes)
