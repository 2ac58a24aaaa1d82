"""Where each stored case is and what the app lists of it without opening a shard: case id ->
shard, pixel hash -> case id, counts per label, and per shard its cases' (id, label as corrected or
None when withdrawn, submission time, filled-in metadata) with the shard's newest submission time,
so that recent cases, the case growth chart and duplicate messages are answered from memory (also
for shards that are only on the Hub). Never an image: about 500 bytes per case, 50 MB at 100 000
cases.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Sequence
from typing import Any, NamedTuple

import pyarrow as pa

__all__ = ["INDEX_COLUMNS", "CaseIndex", "CaseRow"]

# The columns of a shard the index always reads (never the image); metadata columns come on top.
INDEX_COLUMNS = ("case_id", "label", "submitted_at", "image_sha256")


class CaseRow(NamedTuple):
    """What the index keeps of one case."""

    case_id: str
    label: str | None  # as corrected; None: the case was withdrawn (left out of counts and lists)
    submitted_at: str  # ISO 8601, UTC: sorts as text
    metadata: dict[str, Any] | None  # the filled-in fields; None when none was


class CaseIndex:
    """The in-memory index of a case store's shards (not thread-safe: the store locks around it).

    Args:
        label_names: the store's labels, in ``ClassLabel`` code order (every shard shares them).
        metadata_fields: the metadata columns kept per case (those a shard has).
    """

    def __init__(self, label_names: Sequence[str], metadata_fields: Sequence[str]) -> None:
        self._label_names = list(label_names)
        self._metadata_fields = list(metadata_fields)
        self._shards: list[str] = []  # shard names in the order indexed
        self._position: dict[str, int] = {}  # shard name -> its place in _shards
        self._rows: list[list[CaseRow]] = []  # per shard
        self._newest: list[str] = []  # per shard: its newest submitted_at
        self._shard_of: dict[str, int] = {}  # case_id -> the shard holding it (the last indexed)
        self._by_sha: dict[str, str] = {}  # image_sha256 -> the first case_id with those pixels
        self._label_counts: Counter[str] = Counter()
        self._corrected: dict[str, str | None] = {}  # case_id -> its label now (None: withdrawn)

    def add(self, name: str, table: pa.Table) -> None:
        """Index one shard (labels as ``ClassLabel`` codes); a shard already indexed is left as it is."""
        if name in self._position:
            return
        position = len(self._shards)
        self._shards.append(name)
        self._position[name] = position
        case_ids, codes, submitted, hashes = (table.column(c).to_pylist() for c in INDEX_COLUMNS)
        fields = [(f, table.column(f).to_pylist()) for f in self._metadata_fields if f in table.column_names]
        label_names = self._label_names
        times: dict[str, str] = {}  # one string per distinct time: a shard's cases share theirs
        rows = []
        for i, (case_id, code, sha) in enumerate(zip(case_ids, codes, hashes, strict=True)):
            label = self._corrected.get(case_id, label_names[code])
            if case_id not in self._shard_of and label is not None:  # counted once, however often seen
                self._label_counts[label] += 1
            self._shard_of[case_id] = position
            self._by_sha.setdefault(sha, case_id)
            metadata = {f: values[i] for f, values in fields if values[i] is not None}
            rows.append(CaseRow(case_id, label, times.setdefault(submitted[i], submitted[i]),
                                metadata or None))
        self._rows.append(rows)
        self._newest.append(max(submitted, default=""))

    def correct(self, case_id: str, label: str | None) -> None:
        """``case_id``'s label is ``label`` from now on (a label correction; None: withdrawn, which is
        final: a later label is ignored); a case whose shard is not indexed yet gets it when it is."""
        if case_id in self._corrected and self._corrected[case_id] is None:
            return
        self._corrected[case_id] = label
        position = self._shard_of.get(case_id)
        if position is None:
            return
        rows = self._rows[position]
        i = next(i for i, row in enumerate(rows) if row.case_id == case_id)
        if rows[i].label != label:
            if rows[i].label is not None:
                self._label_counts[rows[i].label] -= 1
            if label is not None:
                self._label_counts[label] += 1
            rows[i] = rows[i]._replace(label=label)

    def withdrawn(self) -> list[str]:
        """The ids of the withdrawn cases, in the order their withdrawals were applied."""
        return [case_id for case_id, label in self._corrected.items() if label is None]

    def __contains__(self, shard: str) -> bool:
        """Whether the shard file ``shard`` is indexed."""
        return shard in self._position

    def __len__(self) -> int:
        """Number of cases indexed and not withdrawn."""
        return sum(self._label_counts.values())

    def submitted(self) -> int:
        """Number of cases indexed, withdrawn ones included: a count that only grows."""
        return len(self._shard_of)

    def forget(self, names: Sequence[str]) -> None:
        """Drop the rows of shards merged into another (already indexed): they stay known, so a
        journal line naming one is not read again."""
        for name in names:
            position = self._position.get(name)
            if position is not None:
                self._rows[position], self._newest[position] = [], ""

    def shard_sizes(self) -> dict[str, int]:
        """Number of cases in each indexed shard (forgotten ones left out)."""
        return {name: len(rows) for name, rows in zip(self._shards, self._rows, strict=True) if rows}

    def shard_of(self, case_id: str) -> str | None:
        """The shard file holding ``case_id``; None if no indexed shard does."""
        position = self._shard_of.get(case_id)
        return None if position is None else self._shards[position]

    def row(self, case_id: str) -> CaseRow | None:
        """What the index keeps of ``case_id`` (None if unknown)."""
        position = self._shard_of.get(case_id)
        if position is None:
            return None
        return next(row for row in self._rows[position] if row.case_id == case_id)

    def ids_starting(self, prefix: str) -> list[str]:
        """The case ids that start with ``prefix`` (a scan: for a person typing an id, not a loop)."""
        return [case_id for case_id in self._shard_of if case_id.startswith(prefix)]

    def case_with_pixels(self, sha256: str) -> str | None:
        """The first case whose pixels have this SHA-256 (withdrawn or not)."""
        return self._by_sha.get(sha256)

    def count(self, label: str) -> int:
        return self._label_counts.get(label, 0)

    def recent(self, n: int) -> list[CaseRow]:
        """The ``n`` newest cases not withdrawn, newest first (each once), looking only at the newest
        shards."""
        def time(row: CaseRow) -> str:
            return row.submitted_at

        rows: list[CaseRow] = []
        for position in sorted(range(len(self._shards)), key=self._newest.__getitem__, reverse=True):
            if len(rows) >= n:
                rows = heapq.nlargest(n, rows, key=time)
                if self._newest[position] < rows[-1].submitted_at:
                    break
            rows += [row for row in self._rows[position]
                     if self._shard_of[row.case_id] == position and row.label is not None]
        return sorted(rows, key=time, reverse=True)[: max(0, n)]
