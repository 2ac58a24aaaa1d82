"""The case store: labelled cases submitted by clinicians, as parquet shards of a HF dataset.

Layout (the same in a local folder and in a Hub dataset repo)::

    README.md                                    dataset card (no dataset_info: shards are added)
    data/train-<UTC %Y%m%dT%H%M%S%fZ>-<uuid4 hex>.parquet   one shard per submission, batch or merge
    corrections/<UTC %Y%m%dT%H%M%S%fZ>-<id>.json   one amendment each: a label corrected or the case
                                                 withdrawn (:mod:`.corrections`)
    .shards                                      (local only) the shard names in the order written
    .cache/                                      (local only) datasets' Arrow copy for load(): the newest kept
    .load.lock, .compaction                      (local only) loads vs merges; a merge in progress

Columns: :func:`~mammo.store.cases.schema.case_features` (a 16-bit greyscale PNG re-encoded from
the pixels, so no EXIF, PNG text or DICOM tag survives; the label; ids, time and pixel hash; every
metadata field). Writes are atomic: a shard is written under ``.tmp/`` (which ``load_dataset``
never reads), fsynced, renamed into ``data/`` and the folder fsynced, under a thread lock and an
``fcntl`` file lock, so threads and processes sharing a folder never clash and a killed process
leaves at worst an orphan temp file (deleted by a later open once an hour old).

The store keeps an index in memory (:class:`~mammo.store.cases.index.CaseIndex`: case id -> shard,
pixel hash -> case id, counts per label), built from the shards' small columns on first need (a
process that only trains never builds it) and kept as cases arrive; shards other processes write are
found through the journal ``.shards``, read on from where it was last read. So submitting, totals,
recent cases, duplicate checks and reading one case do not grow with the number of cases or shards;
building the index and loading the dataset grow with the number of shards, which :meth:`CaseStore.
compact` bounds by merging small ones (:mod:`~mammo.store.cases.compaction`). The label set is fixed
per store (shards share one ``ClassLabel``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ... import imaging
from ...choices import WITHDRAWAL_REASONS, listed_reason
from ...timestamps import human_time
from ...values import echoed
from .._fs import append_lines, discard, file_lock, fsync_dir, fsync_file, utc_iso, utc_now
from .card import dataset_card
from .compaction import (
    MERGED_SHARD_ROWS,
    SMALL_SHARD_ROWS,
    Merges,
    ShardSize,
    groups_to_merge,
    read_plan,
    write_merged,
    write_plan,
)
from .corrections import CORRECTIONS_DIR, correction_file, correction_names, read_records, write_correction
from .index import INDEX_COLUMNS, CaseIndex
from .outbox import Outbox
from .schema import (
    DATA_DIR,
    METADATA_FIELDS,
    NOTHING_STORED,
    StoreError,
    case_features,
    shard_name,
    validate_metadata,
)

__all__ = ["CASE_ID_START", "CaseStore", "ImageInput", "label_conflict_text", "load_cases"]

ImageInput = str | os.PathLike | bytes | np.ndarray
_TMP_DIR = ".tmp"
_LOCK_FILE = ".lock"
_JOURNAL = ".shards"  # the shard names, one per line, in the order they were written
_LOAD_LOCK = ".load.lock"  # shared while a load lists and reads data/, exclusive while shards merge
_PLAN = ".compaction"  # a merge in progress: its shard and sources (compaction.write_plan)
_STALE_TMP_S = 3600.0
_CACHE_DIR = ".cache"  # the Arrow conversion of the store that datasets makes to load it
_STALE_BUILD_S = 600.0  # an older Arrow build is deleted once this old (no other load still makes it)
# Rows per record batch of that Arrow copy (datasets writes 100 for image columns). Opening the copy
# reads each batch's header, and the kernel maps in tens of KB of the memory-mapped file around each:
# at 100 000 small cases, 100-row batches cost 65 MiB of resident memory, 10 000-row batches none.
# Batches are never larger than the parquet row groups they come from.
_ARROW_BATCH_ROWS = 10_000
CASE_ID_START = 8  # the fewest leading characters of a case id that name it (the pickers show 8)

log = logging.getLogger(__name__)


_REFUSALS_NAMED = 10  # items named in a batch's refusal


def _batch_refused(refused: Sequence[tuple[int, StoreError]], items: int,
                   names: Sequence[str] | None) -> StoreError:
    """One refusal of a batch naming each item refused (by ``names``, else "item N"; the log gets
    only the numbers: a file name can be a patient's) and why, the first few of many."""
    def said(i: int, error: StoreError, named: bool) -> str:
        name = names[i] if names and named else f"item {i + 1}"
        return f"{name}: {str(error if named else error.logged).removeprefix(NOTHING_STORED)}"

    shown, rest = refused[:_REFUSALS_NAMED], refused[_REFUSALS_NAMED:]
    more = f" And {len(rest)} more" if rest else ""
    # the uploader is told which the rest are, to take them out (the log gets only their count)
    rest_named = f": {', '.join(names[i] if names else f'item {i + 1}' for i, _ in rest)}." if rest else ""
    whole = "" if len(refused) == 1 else f"{len(refused)} of the {items} images cannot be stored. "
    # a batch is stored whole or not at all: the others were dropped too (a walk was left to guess)
    then = (f" The batch is stored whole or not at all: take {'it' if len(refused) == 1 else 'them'} out "
            "and submit the others again." if len(refused) < items else "")
    return StoreError(NOTHING_STORED + whole + " ".join(said(i, e, True) for i, e in shown) + more
                      + rest_named + then,
                      logged=NOTHING_STORED + whole + " ".join(said(i, e, False) for i, e in shown) + more
                      + ("." if rest else ""))


def _not_saved(error: OSError) -> StoreError:
    return StoreError(f"The case could not be saved ({error.strerror or error}); nothing was stored. "
                      "Earlier cases are unaffected.")


def load_cases(path: str, cache_dir: Path, **kwargs: Any) -> datasets.Dataset:
    """``datasets.load_dataset(path, split="train")`` with its Arrow cache in ``cache_dir``, then the
    older Arrow builds there deleted: every load after new shards converts the whole store again,
    and without this each retrain would leave a full copy of the store on disk."""
    loaded = datasets.load_dataset(path, split="train", cache_dir=str(cache_dir),
                                   writer_batch_size=_ARROW_BATCH_ROWS, **kwargs)
    pa.default_memory_pool().release_unused()  # what converting new shards took (not returned by itself)
    if loaded.cache_files:
        _delete_older_builds(Path(loaded.cache_files[0]["filename"]).parent, cache_dir)
    return loaded


def _delete_older_builds(build: Path, cache_dir: Path) -> None:
    """Delete the whole Arrow builds beside ``build`` (not one being made) older than a few minutes;
    a process still reading one keeps it readable (it is memory-mapped)."""
    cutoff = time.time() - _STALE_BUILD_S
    for other in build.parent.iterdir():
        if other != build and (other / "dataset_info.json").is_file() and other.stat().st_mtime < cutoff:
            shutil.rmtree(other, ignore_errors=True)
            locks = [*build.parent.glob(f"{other.name}*.lock"), *cache_dir.glob(f"*_{other.name}.lock")]
            for lock in locks:
                lock.unlink(missing_ok=True)


@dataclass(frozen=True)
class _Case:
    """A validated case, ready to write."""

    png: bytes
    sha256: str
    label: str
    metadata: dict[str, Any]
    copy_of_withdrawn: str | None = None  # the withdrawn case its image is a copy of (another size, encoding)


_CONFLICTS_NAMED = 5  # as many as the refusal of an all-skipped batch names


def label_conflict_text(skipped: Sequence[Mapping[str, Any]]) -> str:
    """The skipped images of a batch that are stored under another label than the batch gave them, in
    words ("" when none): a single submission says so, and so must a batch (a walk's bulk upload only
    said "stored before")."""
    conflicts = [f"{s['name']} (stored as {s['stored_label']}, given {s['given_label']})"
                 for s in skipped if s.get("stored_label")]
    if not conflicts:
        return ""
    more = f", and {len(conflicts) - _CONFLICTS_NAMED} more" if len(conflicts) > _CONFLICTS_NAMED else ""
    return (f"Stored before under another label: {', '.join(conflicts[:_CONFLICTS_NAMED])}{more}; if a "
            "stored label is wrong, correct the case's label instead.")


class CaseStore:
    """Cases in a local folder (``<root>/data/*.parquet``), indexed in memory.

    Args:
        labels: the label set (the served model's ``label_names``); submissions must use one.
        root: the folder holding ``README.md`` and ``data/``.
        max_bytes: largest accepted image file (None: no limit beyond imaging's own checks).
        outbox: when the folder is the outbox of a Hub dataset repo (:class:`HubCaseStore`): each
            new shard is handed to it, and shards no longer here are read from the Hub through it.
    """

    def __init__(self, labels: Sequence[str], root: Path, *, max_bytes: int | None = None,
                 outbox: Outbox | None = None):
        if not labels or len(set(labels)) != len(labels):
            raise StoreError(f"The label set must be non-empty and unique, got {list(labels)}.")
        self.labels: list[str] = list(labels)
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.outbox = outbox
        # the withdrawn case an incoming image (its grey pixels) is a copy of at another size or
        # encoding, or None: set by the app's service, which recognises copies by their fingerprints;
        # unset, only the very same pixels of a withdrawn case are refused
        self.copy_of_withdrawn: Callable[[np.ndarray], str | None] | None = None
        self.features = case_features(self.labels)
        self._lock = threading.RLock()
        self._index = CaseIndex(self.labels, list(METADATA_FIELDS))
        self._index_opened = False  # the folder is indexed on first need: a training process never is
        self._journal_read = 0  # bytes of the shard journal already indexed
        self._corrections_read: list[str] = []  # the label corrections applied to the index, oldest first
        for folder in (self._data_dir, self._tmp_dir):
            folder.mkdir(parents=True, exist_ok=True)
        if self._plan.exists():  # a merge was interrupted: finish it before anything reads data/
            self._finish_merge()
        with self._lock, file_lock(self.root / _LOCK_FILE):
            self._write_card_if_missing()
            self._sweep_tmp()
            self._check_label_set()

    # -- public API -----------------------------------------------------------------------------
    def append(
        self, image: ImageInput, label: str, metadata: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Store one labelled case; the receipt says its id, the totals and where it is."""
        case = self._prepare(image, label, metadata)
        receipt = self._store([case], skip_duplicates=False)
        return {
            "case_id": receipt["case_ids"][0],
            "label": case.label,
            "metadata": case.metadata,  # as stored: every field, None where none was given
            "submitted_at": receipt["submitted_at"],
            "total_cases": receipt["total_cases"],
            "counts": receipt["counts"],
            "status": receipt["status"],
            "duplicate_of": None,
            "image_sha256": case.sha256,  # of the pixels (``imaging.sha256_of_pixels``)
            **({"warning": receipt["warning"]} if "warning" in receipt else {}),
        }

    def append_many(
        self,
        items: Iterable[tuple[ImageInput, str, Mapping[str, Any] | None]],
        *,
        skip_duplicates: bool = False,
        names: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """Store a batch as one shard; all items are checked before anything is written.

        With ``skip_duplicates`` images already stored (or repeated in the batch) are left out
        and listed under ``skipped`` instead of failing the whole batch. ``names`` (the uploader's
        file names, never stored) name the items in refusals and in ``skipped`` ("item N" without).
        """
        items = list(items)
        if names is not None and len(names) != len(items):
            raise ValueError(f"{len(names)} names for {len(items)} items")
        cases, refused = [], []
        for i, (image, label, metadata) in enumerate(items):
            try:
                cases.append(self._prepare(image, label, metadata))
            except StoreError as exc:  # the whole batch is refused: every item it refuses is named at once
                refused.append((i, exc))
        if refused:
            raise _batch_refused(refused, len(cases) + len(refused), names) from refused[0][1]
        receipt = self._store(cases, skip_duplicates=skip_duplicates)
        receipt["skipped"] = [{**skip, "name": names[skip["index"]] if names else f"item {skip['index'] + 1}"}
                              for skip in receipt["skipped"]]
        return receipt

    def load(self) -> datasets.Dataset:
        """Every case not withdrawn as a ``datasets.Dataset`` (empty with the schema when there is
        none), with its label as corrected (:meth:`correct_label`, :meth:`withdraw`)."""
        return self._amended(self._load_shards())

    def _load_shards(self) -> datasets.Dataset:
        """Every case as its shard holds it."""
        with os.scandir(self._data_dir) as entries:
            empty = not any(entry.name.endswith(".parquet") for entry in entries)
        if empty:
            return self._empty()
        while True:
            with file_lock(self.root / _LOAD_LOCK, shared=True):  # no merge deletes a shard meanwhile
                if not self._plan.exists():
                    return load_cases(str(self.root), self._cache_dir)
            self._finish_merge()  # a merge was interrupted: finish it first

    def _amended(self, cases: datasets.Dataset) -> datasets.Dataset:
        """``cases`` with the labels of corrected cases replaced and withdrawn cases left out (only
        the label and id columns are read; the images stay in the memory-mapped dataset)."""
        amendments = self.amended_cases()
        if not amendments or len(cases) == 0:
            return cases
        code = {name: i for i, name in enumerate(self.labels)}
        ids = cases.data.column("case_id").to_pylist()
        # a withdrawn case (label None) keeps its code here and is left out below
        codes = [code[label] if (label := amendments.get(case_id)) else old
                 for case_id, old in zip(ids, cases.data.column("label").to_pylist(), strict=True)]
        relabelled = cases.remove_columns("label").add_column("label", codes, feature=self.features["label"])
        relabelled = relabelled.select_columns(cases.column_names)  # the label column back in its place
        kept = [i for i, case_id in enumerate(ids) if amendments.get(case_id, "") is not None]
        return relabelled if len(kept) == len(ids) else relabelled.select(kept)

    def correct_label(self, case_id: str, label: str) -> dict[str, Any]:
        """Change a stored case's confirmed label: a correction file is added (:mod:`.corrections`),
        the shard is not rewritten. The receipt says the case, its label before and now, and the totals."""
        label = self._label(label)
        return self._amend(case_id, label, None)

    def withdraw(self, case_id: str, reason: str) -> dict[str, Any]:
        """Withdraw a stored case (``reason`` one of ``WITHDRAWAL_REASONS``, in any case): from now on
        it is left out of counts, lists, its image's preview and every load for training, and its
        pixels are not taken again. A withdrawal file is added (:mod:`.corrections`); the shard, and
        so the image in it, is not rewritten (in a Hub repo it also stays in the history): erasing it
        is a maintainer's job (docs/architecture.md). The receipt says the case, the label it had
        and the totals."""
        return self._amend(case_id, None, self.withdrawal_reason(reason))

    @staticmethod
    def withdrawal_reason(given: Any) -> str:
        """``given`` as ``WITHDRAWAL_REASONS`` spells it (any case and spacing); StoreError naming them."""
        listed = listed_reason(given)
        if listed is None:
            raise StoreError(f"Unknown reason {echoed(given)} for a withdrawal; choose one of: "
                             f"{'; '.join(WITHDRAWAL_REASONS)}.")
        return listed

    def _amend(self, case_id: str, label: str | None, withdrawn: str | None) -> dict[str, Any]:
        """Store one amendment of a case (its label now, or None and the reason it is withdrawn)."""
        what = "correction" if label else "withdrawal"
        self._open_index()  # before the file lock, which it takes
        with self._lock, file_lock(self.root / _LOCK_FILE):
            self._refresh_local()
            case_id = self._resolve(case_id)
            row = self._index.row(case_id)
            assert row is not None  # every case the index names has its row
            if row.label is None:
                raise StoreError(f"Case {case_id} was withdrawn; nothing was changed.")
            if row.label == label:
                raise StoreError(f"Case {case_id} is already labelled {label}; nothing was changed.")
            applied = self._corrections_read  # every amendment in the folder: refreshed just above
            name, content, record = correction_file(case_id, label, row.label, withdrawn=withdrawn,
                                                    newest=applied[-1] if applied else None)
            try:
                write_correction(self._corrections_dir, name, content)
                if self.outbox:  # kept here first: one kept and never queued is queued at the next open
                    self.outbox.queue_file(CORRECTIONS_DIR, name, content)
            except OSError as exc:
                discard(self._corrections_dir / name)
                raise StoreError(f"The {what} could not be saved ({exc.strerror or exc}); case "
                                 f"{case_id} is still stored, labelled {row.label}.") from exc
            self._apply_corrections([name])
            counts = self._counts()
        status, warning = "stored", None
        if self.outbox:
            status, warning = self.outbox.deliver_now(f"{CORRECTIONS_DIR}/{name}")
        return {**record, "counts": counts, "status": status, **({"warning": warning} if warning else {})}

    def resolve_case(self, given: Any) -> str:
        """The id of the stored case that ``given`` names: its whole id, or the start of it (at least
        ``CASE_ID_START`` characters, as the pickers show it; any case); StoreError for none or several."""
        with self._lock:
            self._open_index()
            self._refresh_local()
            return self._resolve(given)

    def _resolve(self, given: Any) -> str:
        text = given.strip().lower() if isinstance(given, str) else ""
        if self._index.shard_of(text) is not None:
            return text
        found = self._index.ids_starting(text) if len(text) >= CASE_ID_START else []
        if len(found) == 1:
            return found[0]
        if found:
            raise StoreError(f"{len(found)} cases have ids starting {text!r}: give more of the id.")
        if 0 < len(text) < CASE_ID_START and self._index.ids_starting(text):
            raise StoreError(f"Give at least the first {CASE_ID_START} characters of the case id, not "
                             f"{echoed(given)} (as the pickers show it).")
        raise StoreError(f"No submitted case {echoed(given)}.")

    def compact(self, *, small: int = SMALL_SHARD_ROWS, largest: int = MERGED_SHARD_ROWS) -> dict[str, int]:
        """Merge the small shards into shards of up to ``largest`` cases (see :mod:`.compaction`):
        loads wait for it; submits wait only while a merged shard replaces its sources. Returns the
        number of shards merged, shards written and cases moved."""
        self._open_index()
        merges = Merges()
        with file_lock(self.root / _LOAD_LOCK):  # one merge at a time; no load reads data/ meanwhile
            with self._lock, file_lock(self.root / _LOCK_FILE):
                self._complete_plan()
                self._refresh_local()
                sizes = {}
                for name, rows in self._index.shard_sizes().items():
                    with contextlib.suppress(FileNotFoundError):  # merged away by another process
                        sizes[name] = ShardSize(rows, (self._data_dir / name).stat().st_size)
            for group in groups_to_merge(sizes, small=small, largest=largest):
                tmp = self._tmp_dir / f"{uuid.uuid4().hex}.parquet"
                cases = write_merged([pq.read_table(self._data_dir / name) for name in group], tmp)
                fsync_file(tmp)
                with self._lock, file_lock(self.root / _LOCK_FILE):
                    name = shard_name(utc_now())
                    write_plan(self._plan, name, group)
                    os.replace(tmp, self._data_dir / name)
                    fsync_dir(self._data_dir)
                    self._complete_plan()
                merges.add(len(group), cases)
        if merges.shards_written:
            log.info("merged %d case shards into %d in %s", merges.shards_merged, merges.shards_written,
                     self.root)
        return merges.as_dict()

    def counts(self) -> dict[str, int]:
        """Number of cases per label (every label listed, zero included), other processes' included."""
        with self._lock:
            self._open_index()
            self._refresh_local()
            return self._counts()

    def fetch_amendments(self) -> None:
        """Take in the amendments other servers made (a Hub repo's); a local folder's are read at each
        question already, so here there is nothing to fetch."""

    def submitted_total(self) -> int:
        """Number of cases ever stored here, withdrawn ones included (it only grows: what counts new
        cases between two retrains), other processes' included."""
        with self._lock:
            self._open_index()
            self._refresh_local()
            return self._index.submitted()

    @property
    def location(self) -> str:
        """Where the cases are, for messages and the start-up log."""
        return str(self.root)

    def pending(self) -> int:
        """Number of case shards written here and not yet delivered to the Hub (0 for a local store)."""
        return len(self.outbox.queued_shards()) if self.outbox else 0

    def case_png(self, case_id: str, *, withdrawn_too: bool = False) -> bytes:
        """One stored case's PNG, read from the one shard that holds it (not the whole dataset); a
        withdrawn case's is not shown (``withdrawn_too``: read for the app's own checks, such as
        whether a new image is a copy of it)."""
        with self._lock:
            self._open_index()
            self._refresh_local()  # a shard another process wrote since, or a withdrawal
            name = self._index.shard_of(case_id)
            row = self._index.row(case_id)
        if name is None:
            raise StoreError(f"No submitted case {echoed(case_id)}.")
        if row is not None and row.label is None and not withdrawn_too:
            raise StoreError(f"Case {case_id} was withdrawn; its image is not shown.")
        try:
            return self._png_in_shard(name, case_id)
        except FileNotFoundError:  # merged into another shard since (a compaction elsewhere)
            self._find_moved_cases()
            with self._lock:
                moved_to = self._index.shard_of(case_id)
        try:
            if moved_to is None or moved_to == name:
                raise FileNotFoundError(name)
            return self._png_in_shard(moved_to, case_id)
        except FileNotFoundError as error:
            raise StoreError(f"Case {case_id} is being moved to a merged shard; try again in a moment.") \
                from error

    def _find_moved_cases(self) -> None:
        """Index the shards that took the cases of shards merged away (here: through the journal)."""
        with self._lock:
            self._refresh_local()

    def _png_in_shard(self, name: str, case_id: str) -> bytes:
        path = self.outbox.locate(name) if self.outbox else self._data_dir / name
        table = pq.read_table(path, columns=["case_id", "image"], filters=[("case_id", "==", case_id)])
        return table.column("image")[0].as_py()["bytes"]

    def case_with_pixels(self, sha256: str) -> str | None:
        """The id of the stored case whose pixels have this SHA-256 (``imaging.sha256_of_pixels``),
        withdrawn or not; other processes' cases included."""
        with self._lock:
            self._open_index()
            self._refresh_local()
            return self._index.case_with_pixels(sha256)

    def withdrawn_cases(self) -> list[str]:
        """The ids of the withdrawn cases, from the index (other processes' withdrawals included)."""
        with self._lock:
            self._open_index()
            self._refresh_local()
            return self._index.withdrawn()

    def case_label(self, case_id: str) -> str | None:
        """A stored case's confirmed label (None for an unknown id or a withdrawn case), from the index."""
        with self._lock:
            self._open_index()
            self._refresh_local()  # a correction or withdrawal another process made
            row = self._index.row(case_id)
        return row.label if row else None

    def recent(self, n: int = 10) -> list[dict[str, Any]]:
        """The ``n`` latest cases, newest first: case_id, label, submitted_at, metadata (from the
        index: no shard is read)."""
        if n <= 0:
            return []
        with self._lock:
            self._open_index()
            self._refresh_local()
            rows = self._index.recent(n)
        return [{"case_id": row.case_id, "label": row.label, "submitted_at": row.submitted_at,
                 "metadata": dict(row.metadata or {})} for row in rows]

    def close(self) -> None:
        """Stop the outbox's delivery (nothing to do for a local folder)."""
        if self.outbox:
            self.outbox.close()

    def __enter__(self) -> CaseStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- validation and shards --------------------------------------------------------------------
    def _prepare(self, image: ImageInput, label: str, metadata: Mapping[str, Any] | None) -> _Case:
        label = self._label(label)
        clean = validate_metadata(metadata)
        grey = self._read(image)
        try:
            png, sha256 = imaging.encode_png(grey), imaging.sha256_of_pixels(grey)
        except ValueError as exc:
            raise StoreError(f"The image cannot be stored: {exc}.") from exc
        copy_of = self.copy_of_withdrawn(grey) if self.copy_of_withdrawn else None
        return _Case(png, sha256, label, clean, copy_of)

    def _label(self, label: Any) -> str:
        """``label`` as the label set spells it ("Benign" is benign, as "mlo" is the view MLO), or a
        StoreError naming the labels."""
        known = {name.lower(): name for name in self.labels}
        if not isinstance(label, str) or label.strip().lower() not in known:
            raise StoreError(f"Unknown label {echoed(label)}; choose one of {', '.join(self.labels)}.")
        return known[label.strip().lower()]

    def _read(self, image: ImageInput) -> np.ndarray:
        """The grey pixels of an image coming in: refused when unreadable, blank or a colour picture."""
        if isinstance(image, np.ndarray):
            decoded = imaging.DecodedImage(image, 0.0)
        elif not isinstance(image, str | bytes | os.PathLike):
            raise StoreError(f"Expected an image file path, bytes or array, got {type(image).__name__}.")
        else:
            try:
                decoded = imaging.decode_image(image, max_bytes=self.max_bytes)
            except imaging.ImageError as exc:
                raise StoreError(str(exc)) from exc
            except OSError as exc:
                raise StoreError(f"The image file cannot be read: {exc.strerror or exc}.") from exc
        try:
            imaging.refuse_blank(decoded.grey)
        except imaging.ImageError as exc:
            raise StoreError(str(exc)) from exc
        colour = imaging.colour_doubt(decoded.coloured)
        if colour:
            raise StoreError(f"Not a film: {colour}. Submit the film itself (its DICOM, or a grey PNG or "
                             "JPEG export of it).")
        return decoded.grey

    def _write_shard(self, cases: Sequence[_Case], moment: datetime) -> tuple[Path, pa.Table]:
        """Write ``cases`` to a fsynced temp file; return it with the table it holds."""
        records = [
            {
                "case_id": uuid.uuid4().hex,
                "label": case.label,
                "submitted_at": utc_iso(moment),
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
            fsync_file(tmp)
        except OSError as exc:  # a full disk, a read-only folder: say so, leave nothing behind
            discard(tmp)
            raise _not_saved(exc) from exc
        except BaseException:
            discard(tmp)
            raise
        return tmp, table

    def _store(self, cases: list[_Case], *, skip_duplicates: bool) -> dict[str, Any]:
        moment = utc_now()
        name = shard_name(moment)
        self._open_index()  # before the file lock, which it takes
        with self._lock, file_lock(self.root / _LOCK_FILE):
            self._refresh_local()
            cases, skipped = self._without_duplicates(cases, skip_duplicates)
            if not cases:
                return self._batch_receipt([], [], skipped, "stored", moment)
            tmp, table = self._write_shard(cases, moment)
            target = self._data_dir / name
            try:
                os.replace(tmp, target)
                fsync_dir(self._data_dir)
            except OSError as exc:  # the visitor is told nothing was stored: make it true
                discard(tmp)
                discard(target)
                raise _not_saved(exc) from exc
            self._index.add(name, table)
            self._journal_append([name])
        status, warning = self.outbox.deliver_now(f"{DATA_DIR}/{name}") if self.outbox else ("stored", None)
        receipt = self._batch_receipt(table.column("case_id").to_pylist(), cases, skipped, status, moment)
        if warning:
            receipt["warning"] = warning
        return receipt

    def _without_duplicates(self, cases: list[_Case], skip: bool) -> tuple[list[_Case], list[dict[str, Any]]]:
        kept: list[_Case] = []
        skipped: list[dict[str, Any]] = []
        batch: dict[str, int] = {}
        for i, case in enumerate(cases):
            earlier = self._index.case_with_pixels(case.sha256)
            conflict: dict[str, str] = {}
            if earlier is None and case.sha256 in batch:
                said, earlier_id, withdrawn = (f"This image was already submitted as item "
                                               f"{batch[case.sha256] + 1} of this batch; it was not stored "
                                               "again."), None, False
            elif earlier is not None:
                record = self._index.row(earlier)
                assert record is not None  # every case the index names has its row
                earlier_id, withdrawn = earlier, record.label is None
                if record.label and record.label != case.label:  # said by name in the receipt
                    conflict = {"stored_label": record.label, "given_label": case.label}
                state = record.label or "since withdrawn"
                said = (f"This image was already submitted as case {earlier} ({state}, submitted "
                        f"{human_time(record.submitted_at)}); it was not stored again."
                        + (" A withdrawn case's image is not taken again." if withdrawn
                           else " If that label is wrong, correct the case's label instead."))
            elif case.copy_of_withdrawn is not None:
                earlier_id, withdrawn = case.copy_of_withdrawn, True
                said = (f"This image is a copy (at another size or encoding, or mirrored) of case "
                        f"{earlier_id}, which was withdrawn; it was not stored. A withdrawn case's image is "
                        "not taken again, nor a copy of it.")
            else:
                batch[case.sha256] = i
                kept.append(case)
                continue
            if not skip:
                prefix = f"Item {i + 1}: " if len(cases) > 1 else ""
                raise StoreError(f"{prefix}{said}", duplicate_of=earlier_id)
            withdrawn_note = {"withdrawn": True} if withdrawn else {}
            skipped.append({"index": i, "duplicate_of": earlier_id, **withdrawn_note, **conflict})
        return kept, skipped

    def _batch_receipt(
        self, case_ids: list[str], cases: list[_Case], skipped: list[dict], status: str, moment: datetime
    ) -> dict[str, Any]:
        with self._lock:
            return {
                "case_ids": case_ids,
                "labels": [case.label for case in cases],  # each stored case's, in case_ids' order
                "image_sha256": [case.sha256 for case in cases],
                "submitted_at": utc_iso(moment),
                "total_cases": len(self._index),
                "counts": self._counts(),
                "status": status,
                "skipped": skipped,
            }

    # -- index ------------------------------------------------------------------------------------
    @property
    def _data_dir(self) -> Path:
        return self.root / DATA_DIR

    @property
    def _tmp_dir(self) -> Path:
        return self.root / _TMP_DIR

    @property
    def _journal(self) -> Path:
        return self.root / _JOURNAL

    @property
    def _cache_dir(self) -> Path:
        """Where ``datasets`` keeps its Arrow copy of the cases for :meth:`load`."""
        return self.root / _CACHE_DIR

    def _empty(self) -> datasets.Dataset:
        return datasets.Dataset.from_dict({name: [] for name in self.features}, features=self.features)

    @property
    def _corrections_dir(self) -> Path:
        """Where this store keeps its amendments (label corrections and withdrawals)."""
        return self.root / CORRECTIONS_DIR

    def amended_cases(self) -> dict[str, str | None]:
        """Each amended case's label now (case id -> label; None: withdrawn, whatever comes after it),
        read afresh (a training process never builds the index); corrections naming a label outside
        this store's set are left out."""
        amendments: dict[str, str | None] = {}
        for record in read_records(self._corrections_dir, correction_names(self._corrections_dir)):
            if self._known_label(record) and amendments.get(record["case_id"], "") is not None:
                amendments[record["case_id"]] = record["label"]  # a withdrawal is final
        return amendments

    def _known_label(self, record: dict) -> bool:
        if record["label"] is None or record["label"] in self.labels:
            return True
        log.error("label correction of case %s not applied: %r is not one of this store's labels %s",
                  record["case_id"], record["label"], self.labels)
        return False

    def _apply_corrections(self, names: Sequence[str]) -> None:
        """Apply the correction files ``names`` to the index (all of them again, in time order, when
        one sorts before a correction already applied: the newest of a case wins)."""
        new = sorted(set(names) - set(self._corrections_read))
        if not new:
            return
        if self._corrections_read and new[0] < self._corrections_read[-1]:
            new = sorted({*self._corrections_read, *new})
        for record in read_records(self._corrections_dir, new):
            if self._known_label(record):
                self._index.correct(record["case_id"], record["label"])
        self._corrections_read = sorted({*self._corrections_read, *new})

    def _counts(self) -> dict[str, int]:
        return {label: self._index.count(label) for label in self.labels}

    def _index_shard(self, path: Path | str, name: str) -> None:
        """Index one shard file from its small columns; StoreError if its labels differ."""
        table = pq.read_table(path, columns=[*INDEX_COLUMNS, *METADATA_FIELDS])
        self._check_labels(table.schema, name)
        self._index.add(name, table)

    def _check_label_set(self) -> None:
        """StoreError if the folder's shards use another label set (one shard's schema is read; each
        is checked when the index reads it)."""
        with os.scandir(self._data_dir) as entries:
            shard = next((entry.path for entry in entries if entry.name.endswith(".parquet")), None)
        if shard is not None:
            self._check_labels(pq.read_schema(shard), Path(shard).name)

    def _check_labels(self, schema: pa.Schema, name: str) -> None:
        names = datasets.Features.from_arrow_schema(schema)["label"].names
        if names != self.labels:
            raise StoreError(
                f"Shard {name} uses the labels {names}, but this store uses {self.labels}: "
                "one case store holds one label set."
            )

    @property
    def _plan(self) -> Path:
        return self.root / _PLAN

    def _finish_merge(self) -> None:
        """Finish (or drop) an interrupted merge, with no load reading ``data/`` meanwhile."""
        with file_lock(self.root / _LOAD_LOCK), self._lock, file_lock(self.root / _LOCK_FILE):
            self._complete_plan()

    def _complete_plan(self) -> None:
        """Under the file lock, with no load reading ``data/``: a recorded merge whose shard is in
        ``data/`` is completed (journaled, indexed, its sources deleted); one whose shard never got
        there is dropped (its temp file is swept later). Then the plan goes."""
        plan = read_plan(self._plan)
        if plan is None:
            return
        merged, sources = plan
        if (self._data_dir / merged).exists():
            self._journal_append([merged])  # a second line for it is harmless: indexing is idempotent
            if self._index_opened:
                self._index_shard(self._data_dir / merged, merged)
                self._index.forget(sources)
            for source in sources:
                (self._data_dir / source).unlink(missing_ok=True)
            fsync_dir(self._data_dir)
        self._plan.unlink()
        fsync_dir(self.root)

    def _open_index(self) -> None:
        """Index the folder once, on first need (under the file lock, so never called holding it)."""
        with self._lock:
            if not self._index_opened:
                with file_lock(self.root / _LOCK_FILE):
                    self._index_folder()
                self._index_opened = True

    def _index_folder(self) -> None:
        """Under the file lock: index every shard in ``data/`` and journal any the journal lacks
        (written before it existed, or by a writer killed between the rename and the journal)."""
        names = sorted(name for name in os.listdir(self._data_dir) if name.endswith(".parquet"))
        journal = self._journal
        journaled = set(journal.read_text(encoding="utf-8").split()) if journal.exists() else set()
        self._journal_append([name for name in names if name not in journaled])
        for name in names:
            self._index_shard(self._data_dir / name, name)
        self._journal_read = journal.stat().st_size if journal.exists() else 0
        self._apply_corrections(correction_names(self._corrections_dir))

    def _refresh_local(self) -> None:
        """Index the shards other processes wrote since: the journal's complete lines not read yet
        (a cost that does not grow with the store, unlike listing ``data/``); then apply the label
        corrections not applied yet (listing ``corrections/``: a cost that grows with the number of
        corrections, not of cases)."""
        self._refresh_shards()
        self._apply_corrections(correction_names(self._corrections_dir))

    def _refresh_shards(self) -> None:
        try:
            with open(self._journal, "rb") as handle:
                handle.seek(self._journal_read)
                added = handle.read()
        except FileNotFoundError:
            return
        for line in added.splitlines(keepends=True):
            if not line.endswith(b"\n"):  # a line being appended now: read next time
                break
            name = line.decode("utf-8", errors="replace").strip()
            if name not in self._index and "/" not in name and name.endswith(".parquet"):
                try:
                    self._index_shard(self._data_dir / name, name)
                except FileNotFoundError:  # merged away, or delivered to the Hub and removed since
                    if not self._index_gone_shard(name):
                        break  # tried again at the next refresh
            self._journal_read += len(line)  # only once indexed: a shard that fails is tried again

    def _index_gone_shard(self, name: str) -> bool:
        """A journalled shard no longer in ``data/``: here only a merge removes one, and the merged
        shard is journalled after it, so there is nothing to index. True: done with it."""
        return True

    def _journal_append(self, names: Sequence[str]) -> None:
        """Add shard names to the journal (under the file lock). The shards are already stored: if
        the journal cannot be written, other processes see them when they next open the store."""
        if not names:
            return
        try:
            append_lines(self._journal, "".join(f"{n}\n" for n in names).encode(), sync=False)
        except OSError as exc:
            log.warning("Could not journal %d shard(s) in %s (%s); other processes see them when they "
                        "next open the store", len(names), self.root, exc)

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
