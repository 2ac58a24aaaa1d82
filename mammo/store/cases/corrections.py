"""Amendments to stored cases: a label corrected, or a case withdrawn, without rewriting its shard.

The case shards are append-only, so an amendment is its own small JSON file (``corrections/<UTC
time>-<id>.json`` in the store folder and in the Hub dataset repo), written whole or not at all and
never changed. A label correction holds ``{"case_id", "label", "was", "corrected_at"}``; a
withdrawal holds ``"label": null`` and ``"withdrawn"``: its reason, one of
:data:`mammo.choices.WITHDRAWAL_REASONS` (never free text, which could carry a patient's name). The
newest amendment of a case (by file name: by time) gives its state; counts, recent cases, duplicate
messages and every load for training follow it, and a withdrawn case is left out of all of them.
Who amended what is in the audit log.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from pathlib import Path

from ...timestamps import NAME_TIME, time_name
from .._fs import utc_iso, utc_now, write_new_file

__all__ = ["CORRECTIONS_DIR", "correction_file", "correction_names", "read_records", "write_correction"]

CORRECTIONS_DIR = "corrections"
_TIME_CHARS = len(datetime(2000, 1, 1).strftime(NAME_TIME))  # a name's leading time

log = logging.getLogger(__name__)


def correction_file(case_id: str, label: str | None, was: str, *, withdrawn: str | None = None,
                    newest: str | None = None) -> tuple[str, bytes, dict]:
    """A new amendment's file name, its bytes and the record they hold: a label correction to
    ``label``, or (``label`` None) a withdrawal for the reason ``withdrawn``. The name sorts after
    ``newest`` (the newest amendment's file name) even if the clock was set back since: the newest
    amendment by name is the one that holds (a fault probe stepped the clock back, and an earlier
    correction overrode the later one); ``corrected_at`` keeps what the clock said."""
    now = utc_now()
    record = {"case_id": case_id, "label": label, "was": was, "corrected_at": utc_iso(now),
              **({"withdrawn": withdrawn} if label is None else {})}
    name = f"{time_name(max(now, _just_after(newest)))}.json"
    return name, (json.dumps(record, sort_keys=True) + "\n").encode(), record


def _just_after(name: str | None) -> datetime:
    """A microsecond after the time an amendment's file ``name`` starts with; the earliest time for
    none, or for a name of another shape (one put in the repo by hand is no reason to refuse)."""
    try:
        return datetime.strptime((name or "")[:_TIME_CHARS], NAME_TIME).replace(
            tzinfo=timezone.utc) + timedelta(microseconds=1)
    except (ValueError, OverflowError):
        return datetime.min.replace(tzinfo=timezone.utc)


def write_correction(folder: Path, name: str, content: bytes) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    write_new_file(folder / name, content)


def correction_names(folder: Path) -> list[str]:
    """The amendment files in ``folder``, oldest first (a write in progress, a "." file, is not one)."""
    return sorted(p.name for p in folder.glob("[!.]*.json")) if folder.is_dir() else []


def read_records(folder: Path, names: Iterable[str]) -> list[dict]:
    """The amendments in these files of ``folder``, in the order given, as ``{"case_id", "label"}``
    (``label`` None: withdrawn); an unreadable file is logged and left out (its case keeps its
    earlier state), never a reason to refuse a load."""
    records = []
    for name in names:
        try:
            record = json.loads((folder / name).read_text())
            label = record["label"]
            if label is None and not record.get("withdrawn"):
                raise ValueError("no label and no reason for a withdrawal")
            label = label if label is None else str(label)
            records.append({"case_id": str(record["case_id"]), "label": label})
        except (OSError, ValueError, KeyError, TypeError) as error:
            log.error("case amendment %s not applied: %s", folder / name, error)
    return records
