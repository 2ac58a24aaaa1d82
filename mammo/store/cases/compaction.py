"""Merging small case shards: the Submit tab writes one shard per case, and opening the store and
loading the dataset cost time per shard, so the small ones are merged into bigger shards.

A merged shard is bounded in cases and in bytes (full-field films are ~10 MB each), holds its rows
sorted by case id in row groups of about 8 MB, so reading one case reads one row group (the
row-group statistics of ``case_id`` let the reader skip the others). The local store merges under
its file lock with a plan file (``.compaction``: the merged shard and its sources) written first, so
a merge killed halfway is finished or undone by the next open, load or merge and no case is ever
read twice; the Hub store merges in one commit per merged shard that adds it and deletes its sources.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

import pyarrow as pa
import pyarrow.parquet as pq

from .._fs import write_new_file

__all__ = ["MERGED_SHARD_BYTES", "MERGED_SHARD_ROWS", "SMALL_SHARD_BYTES", "SMALL_SHARD_ROWS", "Merges",
           "ShardSize", "groups_to_merge", "read_plan", "write_merged", "write_plan"]

SMALL_SHARD_ROWS = 100  # a shard with fewer cases ...
SMALL_SHARD_BYTES = 16 * 2**20  # ... and fewer bytes is merged
MERGED_SHARD_ROWS = 5_000  # the most cases a merged shard gets
MERGED_SHARD_BYTES = 128 * 2**20  # and the most bytes (a merge holds one group in memory)
_ROW_GROUP_BYTES = 8 * 2**20  # what reading one case from a merged shard reads at most, about


class ShardSize(NamedTuple):
    rows: int
    bytes: int


def groups_to_merge(sizes: Mapping[str, ShardSize], *, small: int = SMALL_SHARD_ROWS,
                    largest: int = MERGED_SHARD_ROWS) -> Iterator[list[str]]:
    """The small shards (fewer than ``small`` cases and SMALL_SHARD_BYTES), oldest name first, in
    groups of at most ``largest`` cases and MERGED_SHARD_BYTES; a lone shard is left as it is."""
    group: list[str] = []
    rows = size = 0
    for name in sorted(n for n, s in sizes.items() if s.rows < small and s.bytes < SMALL_SHARD_BYTES):
        if group and (rows + sizes[name].rows > largest or size + sizes[name].bytes > MERGED_SHARD_BYTES):
            if len(group) > 1:
                yield group
            group, rows, size = [], 0, 0
        group.append(name)
        rows, size = rows + sizes[name].rows, size + sizes[name].bytes
    if len(group) > 1:
        yield group


def write_merged(tables: list[pa.Table], path: Path | pa.NativeFile) -> int:
    """Write the shards' rows as one shard, sorted by case id in row groups of about 8 MB; returns
    the number of cases (the schemas are the store's)."""
    table = pa.concat_tables(tables).sort_by("case_id")
    rows_per_group = max(1, int(table.num_rows * _ROW_GROUP_BYTES / max(1, table.nbytes)))
    pq.write_table(table, path, row_group_size=rows_per_group)
    return table.num_rows


def write_plan(path: Path, merged: str, sources: list[str]) -> None:
    """Record a local merge before its shard is renamed into place (refuses to replace a plan)."""
    if path.exists():
        raise FileExistsError(f"{path} records an unfinished merge")
    write_new_file(path, json.dumps({"merged": merged, "sources": sources}).encode("utf-8"))


def read_plan(path: Path) -> tuple[str, list[str]] | None:
    """The merged shard and its sources of an unfinished merge; None when there is none."""
    try:
        plan = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    return plan["merged"], list(plan["sources"])


@dataclass
class Merges:
    """What a compaction did."""

    shards_merged: int = 0
    shards_written: int = 0
    cases: int = 0

    def add(self, sources: int, cases: int) -> None:
        """One merged shard written from ``sources`` shards holding ``cases`` cases."""
        self.shards_merged += sources
        self.shards_written += 1
        self.cases += cases

    def as_dict(self) -> dict[str, int]:
        return asdict(self)
