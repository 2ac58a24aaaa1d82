"""Label corrections: a stored case's confirmed label changed later, without rewriting its shard.

The case shards are append-only, so a correction is its own small JSON file (``corrections/<UTC
time>-<id>.json`` in the store folder and in the Hub dataset repo), written whole or not at all and
never changed: ``{"case_id", "label", "was", "corrected_at"}``. The newest correction of a case (by
file name: by time) gives its label; counts, recent cases, duplicate messages and every load for
training use it. Who corrected what is in the audit log, not here.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterable
from pathlib import Path

from .._fs import utc_iso, utc_now, write_new_file

__all__ = ["CORRECTIONS_DIR", "correction_file", "correction_names", "read_records",
           "write_correction"]

CORRECTIONS_DIR = "corrections"

log = logging.getLogger(__name__)


def correction_file(case_id: str, label: str, was: str) -> tuple[str, bytes, dict]:
    """A new correction's file name, its bytes and the record they hold."""
    now = utc_now()
    record = {"case_id": case_id, "label": label, "was": was, "corrected_at": utc_iso(now)}
    name = f"{now:%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:8]}.json"
    return name, (json.dumps(record, sort_keys=True) + "\n").encode(), record


def write_correction(folder: Path, name: str, content: bytes) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    write_new_file(folder / name, content)


def correction_names(folder: Path) -> list[str]:
    """The correction files in ``folder``, oldest first (a write in progress, a "." file, is not one)."""
    return sorted(p.name for p in folder.glob("[!.]*.json")) if folder.is_dir() else []


def read_records(folder: Path, names: Iterable[str]) -> list[dict]:
    """The corrections in these files of ``folder``, in the order given; an unreadable file is
    logged and left out (its case keeps its earlier label), never a reason to refuse a load."""
    records = []
    for name in names:
        try:
            record = json.loads((folder / name).read_text())
            records.append({"case_id": str(record["case_id"]), "label": str(record["label"])})
        except (OSError, ValueError, KeyError, TypeError) as error:
            log.error("label correction %s not applied: %s", folder / name, error)
    return records
