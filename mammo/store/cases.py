"""The case store: labelled cases submitted by clinicians, as parquet shards of a HF dataset.

Layout (the same in a local folder and in a Hub dataset repo)::

    README.md                                    dataset card (no dataset_info: shards are added)
    data/train-<UTC %Y%m%dT%H%M%S%fZ>-<uuid4 hex>.parquet   one shard per submission or batch

Columns: ``image`` (datasets ``Image``: a 16-bit greyscale PNG re-encoded from the pixels, so no
EXIF, PNG text or DICOM tag survives), ``label`` (``ClassLabel``), ``case_id``, ``submitted_at``
(ISO 8601 UTC), ``image_sha256`` (of the pixels, for duplicate detection), then one nullable
column per entry of :data:`METADATA_FIELDS` (always all of them, so every shard has one schema).
The card has no ``configs:`` block on purpose: with one, datasets 5.2 keys its cache of a local
folder on the file pattern alone, and ``load_dataset(folder)`` returned stale cases after an
append (checked).

Writes are atomic: a shard is written under ``.tmp/`` (which ``load_dataset`` never reads),
fsynced, renamed into ``data/`` and the folder fsynced, under a thread lock and an ``fcntl`` file
lock, so threads and processes sharing a folder never clash and a killed process leaves at
worst an orphan temp file (deleted by a later open once an hour old).

Hub backend: a shard first lands in a local outbox (``<home>/outbox/<repo>/data/``), then is
uploaded in its own commit with ``HfApi.upload_file`` (never ``push_to_hub``, which rewrites the
split) and deleted from the outbox once the Hub confirmed it. While the Hub is unreachable the
receipt says ``"queued"`` and a background thread retries with exponential backoff; the outbox
survives restarts and is drained at the next open. Shard names are unique and a shard is checked
for on the Hub before it is sent again, so nothing is lost and nothing is stored twice.

Known limits: the label set is fixed per store (shards must share one ``ClassLabel``); on the
Hub backend, duplicate detection and counts cover the cases this machine has seen (every shard
in the repo is read once at open: one download per shard, cached), so two apps writing to one
repo at the same instant could each accept the same image.
"""

from __future__ import annotations

import contextlib
import heapq
import logging
import os
import threading
import time
import unicodedata
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from datasets.data_files import EmptyDatasetError
from huggingface_hub.errors import EntryNotFoundError

from .. import imaging
from ..config import DISCLAIMER, Settings
from ..config import settings as current_settings
from ..errors import MammoError
from ._fs import file_lock, fsync_dir, utc_now, write_new_file
from ._hub import (
    HubUnavailable,
    branch_head,
    check_reachable,
    ensure_repo,
    hub_api,
    hub_errors,
)

__all__ = [
    "StoreError",
    "MetadataField",
    "METADATA_FIELDS",
    "CASE_COLUMNS",
    "CaseStore",
    "HubCaseStore",
    "open_case_store",
    "validate_metadata",
    "case_features",
    "dataset_card",
]

log = logging.getLogger(__name__)

ImageInput = str | os.PathLike | bytes | np.ndarray
CASE_COLUMNS = ("image", "label", "case_id", "submitted_at", "image_sha256")
_INDEX_COLUMNS = [c for c in CASE_COLUMNS if c != "image"]
_DATA_DIR = "data"
_AUDIT_DIR = "audit"  # audit events queued for the dataset repo (store/audit.py)
_LOGS_DIR = "logs"  # closed prediction-log shards (store/predictions.py)
_EXTRA_DIRS = {_AUDIT_DIR: "audit event", _LOGS_DIR: "prediction-log shard"}
_TMP_DIR = ".tmp"
_LOCK_FILE = ".lock"
_STALE_TMP_S = 3600.0
_CONTROL_OK = frozenset("\n\r\t")


class StoreError(MammoError, ValueError):
    """A submission that cannot be stored (label, metadata, image, duplicate): say why.

    ``duplicate_of`` is the earlier case's id when the image was already submitted.
    """

    def __init__(self, message: str, *, duplicate_of: str | None = None):
        super().__init__(message)
        self.duplicate_of = duplicate_of


@dataclass(frozen=True)
class MetadataField:
    """One optional metadata field: its type, allowed values, what it means and its form label.

    ``names`` describe the whole numbers ``min``, ``min + 1``, ... of a categorical int field.
    """

    kind: type  # str, int or bool
    help: str
    label: str
    choices: tuple[str, ...] = ()
    min: int | None = None
    max: int | None = None
    max_len: int | None = None
    names: tuple[str, ...] = ()


# The one table of optional case metadata: the Submit form and the dataset card come from it.
# Free text (``notes``) is stored verbatim as plain text: markup such as HTML is kept as typed and
# never rendered as HTML by mammo.
METADATA_FIELDS: dict[str, MetadataField] = {
    "view": MetadataField(str, "mammographic view", "View", choices=("CC", "MLO")),
    "laterality": MetadataField(str, "breast side: L (left) or R (right)", "Laterality", choices=("L", "R")),
    "density": MetadataField(str, "ACR breast density category", "Breast density (ACR)",
                             choices=("A", "B", "C", "D")),
    "birads": MetadataField(int, "BI-RADS assessment category (0-6)", "BI-RADS assessment", min=0, max=6,
                            names=("incomplete: needs more imaging", "negative", "benign",
                                   "probably benign", "suspicious", "highly suggestive of malignancy",
                                   "known biopsy-proven malignancy")),
    "biopsy_confirmed": MetadataField(bool, "label confirmed by biopsy / histology", "Biopsy-confirmed"),
    "age": MetadataField(int, "patient age in years (18-120)", "Age in years", min=18, max=120),
    "notes": MetadataField(str, "free-text notes (plain text, no identifiers)",
                           "Notes (plain text, no identifiers, up to 2000 characters)", max_len=2000),
}

_ARROW_TYPE = {str: "string", int: "int32", bool: "bool"}
_TRUE = frozenset({"true", "yes", "1", "y"})
_FALSE = frozenset({"false", "no", "0", "n"})


def case_features(labels: Sequence[str]) -> datasets.Features:
    """The datasets schema of every shard for the label set ``labels``."""
    return datasets.Features(
        {
            "image": datasets.Image(),
            "label": datasets.ClassLabel(names=list(labels)),
            "case_id": datasets.Value("string"),
            "submitted_at": datasets.Value("string"),
            "image_sha256": datasets.Value("string"),
            **{name: datasets.Value(_ARROW_TYPE[f.kind]) for name, f in METADATA_FIELDS.items()},
        }
    )


def dataset_card(labels: Sequence[str], title: str = "mammo contributed cases") -> str:
    """README.md of a case dataset: description, schema, licence, disclaimer; no dataset_info."""
    rows = "\n".join(
        f"| `{name}` | {_ARROW_TYPE[f.kind]}, optional | {f.help}"
        + (f" ({', '.join(f.choices)})" if f.choices else "")
        + " |"
        for name, f in METADATA_FIELDS.items()
    )
    return f"""---
license: cc-by-4.0
pretty_name: {title}
task_categories:
- image-classification
tags:
- medical
- mammography
---

# {title}

Labelled mammogram cases contributed through the mammo app, used to retrain its classifier.
Each submission adds one parquet shard under `data/`; shards are never rewritten.
Images are re-encoded from their pixels as 16-bit greyscale PNG: no EXIF, PNG text or DICOM
tag is kept. Contributors must not submit images or notes that identify a patient.

> **Disclaimer.** {DISCLAIMER}

## Schema

| column | type | meaning |
| --- | --- | --- |
| `image` | Image (PNG) | the mammogram, greyscale |
| `label` | ClassLabel | one of: {", ".join(labels)} |
| `case_id` | string | unique id of the case (uuid4 hex) |
| `submitted_at` | string | submission time, ISO 8601 UTC |
| `image_sha256` | string | SHA-256 of the pixels (duplicate detection) |
{rows}

Free text is stored as plain text exactly as typed (markup is never rendered).

## Licence

Contributed cases are shared under [CC BY 4.0](https://creativecommons.org/licenses/by/4.0/):
by submitting a case, a contributor confirms they may share it under this licence.

## Loading

```python
from datasets import load_dataset
cases = load_dataset("<this repo or folder>", split="train")
```
"""


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def _not_saved(error: OSError) -> StoreError:
    return StoreError(f"The case could not be saved ({error.strerror or error}); nothing was stored. "
                      "Earlier cases are unaffected.")


def _shard_name(moment: datetime) -> str:
    return f"train-{moment.strftime('%Y%m%dT%H%M%S%fZ')}-{uuid.uuid4().hex}.parquet"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _validate_value(name: str, spec: MetadataField, value: Any) -> Any:
    """``value`` checked and normalised for ``spec``; StoreError with a plain reason otherwise."""
    if spec.kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise StoreError(f"Metadata '{name}' must be yes/no (true or false), got {_short(value)}.")
    if spec.kind is int:
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            value = int(value.strip())
        elif isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise StoreError(f"Metadata '{name}' must be a whole number, got {_short(value)}.")
        value = int(value)
        if (spec.min is not None and value < spec.min) or (spec.max is not None and value > spec.max):
            raise StoreError(
                f"Metadata '{name}' ({spec.help}) must be between {spec.min} and {spec.max}, got {value}."
            )
        return value
    if not isinstance(value, str):
        raise StoreError(f"Metadata '{name}' must be text, got {type(value).__name__}.")
    if spec.choices:
        choice = value.strip().upper()
        if choice not in spec.choices:
            raise StoreError(
                f"Metadata '{name}' ({spec.help}) must be one of {', '.join(spec.choices)}, "
                f"got {_short(value)}."
            )
        return choice
    if spec.max_len is not None and len(value) > spec.max_len:
        raise StoreError(f"Metadata '{name}' is {len(value)} characters long; the limit is {spec.max_len}.")
    if any(unicodedata.category(ch) == "Cc" and ch not in _CONTROL_OK for ch in value):
        raise StoreError(f"Metadata '{name}' contains control characters; use plain text.")
    return value


def validate_metadata(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    """Every field of :data:`METADATA_FIELDS`, checked; missing or empty values become None."""
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, Mapping):
        raise StoreError(f"Metadata must be a mapping of field to value, got {type(metadata).__name__}.")
    unknown = sorted(str(k) for k in metadata if k not in METADATA_FIELDS)
    if unknown:
        raise StoreError(
            f"Unknown metadata field(s): {', '.join(unknown)[:200]}. Allowed: {', '.join(METADATA_FIELDS)}."
        )
    clean: dict[str, Any] = {}
    for name, spec in METADATA_FIELDS.items():
        value = metadata.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            clean[name] = None
        else:
            clean[name] = _validate_value(name, spec, value)
    return clean


@dataclass(frozen=True)
class _Case:
    """A validated case, ready to write."""

    png: bytes
    sha256: str
    label: str
    metadata: dict[str, Any]


class CaseStore:
    """Cases in a local folder (``<root>/data/*.parquet``); the Hub backend extends it.

    Args:
        labels: the label set (the served model's ``label_names``); submissions must use one.
        root: the folder holding ``README.md`` and ``data/``.
        max_bytes: largest accepted image file (None: no limit beyond imaging's own checks).
    """

    def __init__(self, labels: Sequence[str], root: Path, *, max_bytes: int | None = None):
        if not labels or len(set(labels)) != len(labels):
            raise StoreError(f"The label set must be non-empty and unique, got {list(labels)}.")
        self.labels: list[str] = list(labels)
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.features = case_features(self.labels)
        self._lock = threading.RLock()
        self._records: dict[str, dict[str, Any]] = {}  # case_id -> record without the image
        self._by_sha: dict[str, str] = {}  # image_sha256 -> case_id
        self._shards: set[str] = set()  # shard file names already indexed
        self._shard_of: dict[str, str] = {}  # case_id -> the shard file holding it
        self._label_counts: Counter[str] = Counter()  # kept as cases are indexed: totals cost O(1)
        for folder in (self._data_dir, self._tmp_dir):
            folder.mkdir(parents=True, exist_ok=True)
        with self._lock, file_lock(self.root / _LOCK_FILE):
            self._write_card_if_missing()
            self._sweep_tmp()
            self._refresh_local()

    # -- public API -----------------------------------------------------------------------------
    def append(
        self, image: ImageInput, label: str, metadata: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Store one labelled case; the receipt says its id, the totals and where it is."""
        case = self._prepare(image, label, metadata)
        receipt = self._store([case], skip_duplicates=False)
        return {
            "case_id": receipt["case_ids"][0],
            "label": label,
            "metadata": case.metadata,  # as stored: every field, None where none was given
            "submitted_at": receipt["submitted_at"],
            "total_cases": receipt["total_cases"],
            "counts": receipt["counts"],
            "status": receipt["status"],
            "duplicate_of": None,
            **({"warning": receipt["warning"]} if "warning" in receipt else {}),
        }

    def append_many(
        self,
        items: Iterable[tuple[ImageInput, str, Mapping[str, Any] | None]],
        *,
        skip_duplicates: bool = False,
    ) -> dict[str, Any]:
        """Store a batch as one shard; all items are checked before anything is written.

        With ``skip_duplicates`` images already stored (or repeated in the batch) are left out
        and listed under ``skipped`` instead of failing the whole batch.
        """
        cases = []
        for i, (image, label, metadata) in enumerate(items):
            try:
                cases.append(self._prepare(image, label, metadata))
            except StoreError as exc:
                raise StoreError(f"Item {i + 1}: {exc}") from exc
        return self._store(cases, skip_duplicates=skip_duplicates)

    def load(self) -> datasets.Dataset:
        """Every case as a ``datasets.Dataset`` (empty with the schema when there is none)."""
        with self._lock:
            self._refresh_local()
            has_shards = bool(self._shards)
        if not has_shards:
            return self._empty()
        return datasets.load_dataset(str(self.root), split="train")

    def counts(self) -> dict[str, int]:
        """Number of cases per label (every label listed, zero included)."""
        with self._lock:
            return self._counts()

    @property
    def location(self) -> str:
        """Where the cases are, for messages and the start-up log."""
        return str(self.root)

    def case_png(self, case_id: str) -> bytes:
        """One stored case's PNG, read from the one shard that holds it (not the whole dataset)."""
        with self._lock:
            if case_id not in self._shard_of:
                self._refresh_local()  # a shard another process wrote since
            name = self._shard_of.get(case_id)
        if name is None:
            raise StoreError(f"No submitted case {str(case_id)[:80]!r}.")
        table = pq.read_table(self._shard_path(name), columns=["case_id", "image"],
                              filters=[("case_id", "==", case_id)])
        return table.column("image")[0].as_py()["bytes"]

    def _shard_path(self, name: str) -> Path | str:
        """A readable local path of the shard file ``name``."""
        return self._data_dir / name

    def case_with_pixels(self, sha256: str) -> str | None:
        """The id of the stored case whose pixels have this SHA-256 (``imaging.sha256_of_pixels``)."""
        with self._lock:
            return self._by_sha.get(sha256)

    def recent(self, n: int = 10) -> list[dict[str, Any]]:
        """The ``n`` latest cases, newest first: case_id, label, submitted_at, metadata."""
        with self._lock:
            records = heapq.nlargest(max(0, n), self._records.values(), key=lambda r: r["submitted_at"])
        return [
            {
                "case_id": r["case_id"],
                "label": r["label"],
                "submitted_at": r["submitted_at"],
                "metadata": {k: r[k] for k in METADATA_FIELDS if r.get(k) is not None},
            }
            for r in records[: max(0, n)]
        ]

    def close(self) -> None:
        """Release resources (nothing to do for a local folder)."""

    def __enter__(self) -> CaseStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- validation and shards --------------------------------------------------------------------
    def _prepare(self, image: ImageInput, label: str, metadata: Mapping[str, Any] | None) -> _Case:
        if label not in self.labels:
            raise StoreError(f"Unknown label {_short(label)}; choose one of {', '.join(self.labels)}.")
        clean = validate_metadata(metadata)
        grey = self._read(image)
        try:
            return _Case(imaging.encode_png(grey), imaging.sha256_of_pixels(grey), label, clean)
        except ValueError as exc:
            raise StoreError(f"The image cannot be stored: {exc}.") from exc

    def _read(self, image: ImageInput) -> np.ndarray:
        if isinstance(image, np.ndarray):
            return image
        if not isinstance(image, str | bytes | os.PathLike):
            raise StoreError(f"Expected an image file path, bytes or array, got {type(image).__name__}.")
        try:
            return imaging.read_image(image, max_bytes=self.max_bytes)
        except imaging.ImageError as exc:
            raise StoreError(str(exc)) from exc
        except OSError as exc:
            raise StoreError(f"The image file cannot be read: {exc.strerror or exc}.") from exc

    def _write_shard(self, cases: Sequence[_Case], moment: datetime) -> tuple[Path, list[dict]]:
        """Write ``cases`` to a fsynced temp file; return it with the records it holds."""
        records = [
            {
                "case_id": uuid.uuid4().hex,
                "label": case.label,
                "submitted_at": _iso(moment),
                "image_sha256": case.sha256,
                **case.metadata,
            }
            for case in cases
        ]
        columns: dict[str, list] = {"image": [{"bytes": c.png, "path": None} for c in cases]}
        for name in self.features:
            if name != "image":
                columns[name] = [r[name] for r in records]
        table = pa.Table.from_pydict(self.features.encode_batch(columns), schema=self.features.arrow_schema)
        tmp = self._tmp_dir / f"{uuid.uuid4().hex}.parquet"
        try:
            pq.write_table(table, tmp)
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
        except OSError as exc:  # a full disk, a read-only folder: say so, leave nothing behind
            tmp.unlink(missing_ok=True)
            raise _not_saved(exc) from exc
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return tmp, records

    def _store(self, cases: list[_Case], *, skip_duplicates: bool) -> dict[str, Any]:
        moment = utc_now()
        name = _shard_name(moment)
        with self._lock, file_lock(self.root / _LOCK_FILE):
            self._refresh_local()
            cases, skipped = self._without_duplicates(cases, skip_duplicates)
            if not cases:
                return self._batch_receipt([], skipped, "stored", moment)
            tmp, records = self._write_shard(cases, moment)
            target = self._data_dir / name
            try:
                os.replace(tmp, target)
                fsync_dir(self._data_dir)
            except OSError as exc:  # the visitor is told nothing was stored: make it true
                tmp.unlink(missing_ok=True)
                target.unlink(missing_ok=True)
                raise _not_saved(exc) from exc
            self._index(name, records)
        status, warning = self._after_store(name)
        receipt = self._batch_receipt(records, skipped, status, moment)
        if warning:
            receipt["warning"] = warning
        return receipt

    def _without_duplicates(self, cases: list[_Case], skip: bool) -> tuple[list[_Case], list[dict[str, Any]]]:
        kept: list[_Case] = []
        skipped: list[dict[str, Any]] = []
        batch: dict[str, int] = {}
        for i, case in enumerate(cases):
            earlier = self._by_sha.get(case.sha256)
            if earlier is None and case.sha256 in batch:
                detail = f"item {batch[case.sha256] + 1} of this batch"
                earlier_id = None
            elif earlier is not None:
                record = self._records[earlier]
                detail = f"case {earlier} ({record['label']}, {record['submitted_at']})"
                earlier_id = earlier
            else:
                batch[case.sha256] = i
                kept.append(case)
                continue
            if not skip:
                prefix = f"Item {i + 1}: " if len(cases) > 1 else ""
                raise StoreError(
                    f"{prefix}This image was already submitted as {detail}; it was not stored again.",
                    duplicate_of=earlier_id,
                )
            skipped.append({"index": i, "duplicate_of": earlier_id})
        return kept, skipped

    def _batch_receipt(
        self, records: list[dict], skipped: list[dict], status: str, moment: datetime
    ) -> dict[str, Any]:
        with self._lock:
            return {
                "case_ids": [r["case_id"] for r in records],
                "submitted_at": _iso(moment),
                "total_cases": len(self._records),
                "counts": self._counts(),
                "status": status,
                "skipped": skipped,
            }

    def _after_store(self, name: str) -> tuple[str, str | None]:
        """Status of a shard just renamed into ``data/`` (and a warning, if any)."""
        return "stored", None

    # -- index ------------------------------------------------------------------------------------
    @property
    def _data_dir(self) -> Path:
        return self.root / _DATA_DIR

    @property
    def _tmp_dir(self) -> Path:
        return self.root / _TMP_DIR

    def _empty(self) -> datasets.Dataset:
        return datasets.Dataset.from_dict({name: [] for name in self.features}, features=self.features)

    def _counts(self) -> dict[str, int]:
        return {label: self._label_counts.get(label, 0) for label in self.labels}

    def _index(self, name: str, records: Iterable[dict[str, Any]]) -> None:
        self._shards.add(name)
        for record in records:
            if record["case_id"] not in self._records:  # counted once, however often it is seen
                self._label_counts[record["label"]] += 1
            self._records[record["case_id"]] = record
            self._shard_of[record["case_id"]] = name
            self._by_sha.setdefault(record["image_sha256"], record["case_id"])

    def _read_records(self, path: Path | str, name: str) -> list[dict[str, Any]]:
        """The cases of one shard file, without images; StoreError if its labels differ."""
        table = pq.read_table(path, columns=_INDEX_COLUMNS + list(METADATA_FIELDS))
        names = datasets.Features.from_arrow_schema(table.schema)["label"].names
        if names != self.labels:
            raise StoreError(
                f"Shard {name} uses the labels {names}, but this store uses {self.labels}: "
                "one case store holds one label set."
            )
        rows = table.to_pylist()
        for row in rows:
            row["label"] = names[row["label"]]
        return rows

    def _refresh_local(self) -> None:
        """Index the shards in ``data/`` not seen yet (written by another process, or at open)."""
        for path in sorted(self._data_dir.glob("*.parquet")):
            if path.name not in self._shards:
                self._index(path.name, self._read_records(path, path.name))

    def _write_card_if_missing(self) -> None:
        card = self.root / "README.md"
        if not card.exists():
            tmp = self._tmp_dir / f"{uuid.uuid4().hex}.md"
            tmp.write_text(dataset_card(self.labels), encoding="utf-8")
            os.replace(tmp, card)

    def _sweep_tmp(self) -> None:
        """Delete temp files left by killed writers (old enough that no writer still owns them)."""
        cutoff = time.time() - _STALE_TMP_S
        for path in self._tmp_dir.iterdir():
            with contextlib.suppress(OSError):
                if path.stat().st_mtime < cutoff:
                    path.unlink()


class HubCaseStore(CaseStore):
    """Cases in a Hub dataset repo, through a local outbox that survives restarts.

    Args:
        labels: the label set.
        repo_id: the Hub dataset repo (created with its card if missing).
        settings: endpoint and token.
        outbox: local folder of shards not yet confirmed by the Hub.
        private: visibility of the repo if it has to be created.
        retry_base_s, retry_cap_s: first and longest wait between delivery attempts.
    """

    def __init__(
        self,
        labels: Sequence[str],
        repo_id: str,
        settings: Settings,
        outbox: Path,
        *,
        max_bytes: int | None = None,
        private: bool = False,
        retry_base_s: float = 1.0,
        retry_cap_s: float = 60.0,
    ):
        self.repo_id = repo_id
        self.private = private
        self.api = hub_api(settings)
        self.retry_base_s, self.retry_cap_s = retry_base_s, retry_cap_s
        self._connected = False
        self._upload_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._retried: set[str] = set()  # outbox files whose delivery may have half-happened
        super().__init__(labels, outbox, max_bytes=max_bytes)
        # found at open: their history is unknown
        self._retried.update(f.rsplit("/", 1)[-1] for f in self._outbox_files())
        try:
            self._connect()
        except HubUnavailable as exc:
            log.warning("%s; cases are queued in %s until it is back", exc, self.root)
        self._worker = threading.Thread(target=self._run, name=f"case-outbox {repo_id}", daemon=True)
        self._worker.start()

    # -- public API ---------------------------------------------------------------------------
    @property
    def location(self) -> str:
        return f"{self.api.endpoint}/datasets/{self.repo_id} (outbox {self.root})"

    def load(self) -> datasets.Dataset:
        """Every case: the Hub repo's shards plus those still queued in the outbox."""
        with self._upload_lock:  # a consistent snapshot: no shard moves from outbox to Hub now
            self._connect()
            revision = branch_head(self.api, self.repo_id, "dataset")
            queued = [pq.read_table(self._data_dir / name) for name in self._queued()]
        parts = [datasets.Dataset.from_dict(table.to_pydict(), features=self.features) for table in queued]
        with hub_errors(self.api.endpoint, f"loading the dataset {self.repo_id}"):
            try:
                parts.insert(
                    0,
                    datasets.load_dataset(
                        self.repo_id, split="train", revision=revision, token=self.api.token
                    ),
                )
            except EmptyDatasetError:  # no shard on the Hub yet
                pass
        if not parts:
            return self._empty()
        return datasets.concatenate_datasets(parts) if len(parts) > 1 else parts[0]

    def pending(self) -> int:
        """Number of shards waiting in the outbox."""
        return len(self._queued())

    def queue_file(self, folder_in_repo: str, name: str, content: bytes) -> None:
        """Queue a file for ``<folder_in_repo>/<name>`` in the dataset repo (``audit`` or ``logs``),
        delivered like case shards: in its own commit, kept in the outbox until the Hub has it."""
        if folder_in_repo not in _EXTRA_DIRS:
            raise ValueError(f"the outbox delivers files to {sorted(_EXTRA_DIRS)}, not {folder_in_repo!r}")
        folder = self.root / folder_in_repo
        folder.mkdir(parents=True, exist_ok=True)
        write_new_file(folder / name, content)
        self._wake.set()

    def wait_until_delivered(self, timeout: float) -> bool:
        """Nudge the delivery thread and wait until the outbox is empty; False on timeout."""
        deadline = time.monotonic() + timeout
        self._wake.set()
        while self._outbox_files():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True

    def close(self) -> None:
        """Stop the delivery thread; queued shards stay in the outbox for the next open."""
        self._stop.set()
        self._wake.set()
        self._worker.join(timeout=30)

    # -- delivery ------------------------------------------------------------------------------
    def _queued(self) -> list[str]:
        return sorted(p.name for p in self._data_dir.glob("*.parquet"))

    def _shard_path(self, name: str) -> Path | str:
        """Still in the outbox, or on the Hub (downloaded once into the Hub cache)."""
        queued = self._data_dir / name
        if queued.exists():
            return queued
        with hub_errors(self.api.endpoint, f"reading case shard {name}"):
            return self.api.hf_hub_download(self.repo_id, f"{_DATA_DIR}/{name}", repo_type="dataset")

    def _outbox_files(self) -> list[str]:
        """Everything waiting in the outbox, as paths in the repo: case shards, then audit events and
        prediction-log shards."""
        extra = sorted(f"{d}/{p.name}" for d in _EXTRA_DIRS for p in (self.root / d).glob("[!.]*.json*"))
        return [f"{_DATA_DIR}/{n}" for n in self._queued()] + extra

    def _connect(self) -> None:
        """Once: check the token, create the repo if missing, index the shards it holds."""
        if self._connected:
            return
        check_reachable(self.api)
        card = dataset_card(self.labels)
        ensure_repo(self.api, self.repo_id, "dataset", card, private=self.private)
        with hub_errors(self.api.endpoint, f"indexing the shards of {self.repo_id}"):
            try:
                entries = list(
                    self.api.list_repo_tree(self.repo_id, path_in_repo=_DATA_DIR, repo_type="dataset")
                )
            except EntryNotFoundError:  # no data/ folder yet: no case
                entries = []
            for entry in entries:
                name = entry.path.rsplit("/", 1)[-1]
                with self._lock:
                    known = name in self._shards or not name.endswith(".parquet")
                if not known:
                    local = self.api.hf_hub_download(self.repo_id, entry.path, repo_type="dataset")
                    records = self._read_records(local, name)
                    with self._lock:
                        self._index(name, records)
        self._connected = True

    def _after_store(self, name: str) -> tuple[str, str | None]:
        """Try to deliver now; any failure leaves the shard queued for the worker, and says so."""
        try:
            self._deliver(f"{_DATA_DIR}/{name}")
        except HubUnavailable as exc:
            self._wake.set()
            return "queued", str(exc)
        except Exception as exc:  # the case is safe in the outbox: report, never lose it
            log.error("case shard %s stays in the outbox: %s", name, exc)
            self._wake.set()
            return "queued", f"Not yet on the Hub, will be retried: {exc}"
        if self._queued():  # the Hub is back: let the worker drain the rest now
            self._wake.set()
        return "stored", None

    def _deliver(self, in_repo: str) -> None:
        """Upload one outbox file (``data/<shard>``, ``audit/<event>``, ``logs/<shard>``) in its own
        commit, then drop it from the outbox.

        A file no longer in the outbox was delivered already (files leave it only then).
        A file that may have reached the Hub before an error is looked for before re-sending.
        """
        path = self.root / in_repo
        name = in_repo.rsplit("/", 1)[-1]
        what = _EXTRA_DIRS.get(in_repo.split("/", 1)[0], "case shard")
        with self._upload_lock:
            if not path.exists():
                return
            self._connect()
            branch_head(self.api, self.repo_id, "dataset")  # fast failure when the Hub is down
            with hub_errors(self.api.endpoint, f"uploading {what} {name}"):
                if not (
                    name in self._retried and self.api.file_exists(self.repo_id, in_repo, repo_type="dataset")
                ):
                    self._retried.add(name)
                    self.api.upload_file(
                        path_or_fileobj=str(path),
                        path_in_repo=in_repo,
                        repo_id=self.repo_id,
                        repo_type="dataset",
                        commit_message=f"Add {what} {name}",
                    )
            path.unlink(missing_ok=True)
            fsync_dir(path.parent)
            self._retried.discard(name)

    def _run(self) -> None:
        """Background delivery: drain the outbox, backing off while the Hub is unavailable."""
        wait = self.retry_base_s
        while not self._stop.is_set():
            self._wake.clear()
            try:
                with self._upload_lock:
                    self._connect()
                for in_repo in self._outbox_files():
                    if self._stop.is_set():
                        return
                    self._deliver(in_repo)
                wait = self.retry_base_s
                self._wake.wait()
                continue
            except HubUnavailable as exc:
                log.warning("%s; retrying in %.1f s", exc, wait)
            except Exception as exc:  # the worker must survive, and say why
                log.error("case outbox delivery failed: %s; retrying in %.1f s", exc, wait)
            self._wake.wait(wait)
            wait = min(wait * 2, self.retry_cap_s)


def open_case_store(labels: Sequence[str], settings: Settings | None = None) -> CaseStore:
    """The case store the settings ask for: the Hub repo if configured, else a local folder."""
    s = settings or current_settings()
    max_bytes = s.max_upload_bytes
    if s.use_hub_cases:
        assert s.dataset_repo is not None
        outbox = s.home / "outbox" / s.dataset_repo.replace("/", "--")
        return HubCaseStore(labels, s.dataset_repo, s, outbox, max_bytes=max_bytes)
    return CaseStore(labels, s.home / "cases", max_bytes=max_bytes)
