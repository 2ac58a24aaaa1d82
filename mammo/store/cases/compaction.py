"""Merging small case shards: the Submit tab writes one shard per case, and opening the store and
loading the dataset cost time per shard, so the small ones are merged into shards of many cases.

The local store does it under its file lock with a plan file (``.compaction``: the merged shard and
its sources) written first, so a merge killed halfway is finished at the next open and no case is
ever in two shards or in none; the Hub store does it as one commit per merged shard that adds it
and deletes its sources.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow as pa

from .._fs import fsync_dir

__all__ = ["MERGED_SHARD_ROWS", "SMALL_SHARD_ROWS", "CompactionPlan", "Merges", "groups_to_merge",
           "merged_table"]

SMALL_SHARD_ROWS = 100  # a shard with fewer cases is merged
MERGED_SHARD_ROWS = 5_000  # the most cases a merged shard gets


def groups_to_merge(sizes: Mapping[str, int], *, small: int = SMALL_SHARD_ROWS,
                    largest: int = MERGED_SHARD_ROWS) -> Iterator[list[str]]:
    """The small shards (oldest name first) in groups of at most ``largest`` cases; a lone shard is
    left as it is."""
    group: list[str] = []
    rows = 0
    for name in sorted(n for n, count in sizes.items() if count < small):
        if group and rows + sizes[name] > largest:
            if len(group) > 1:
                yield group
            group, rows = [], 0
        group.append(name)
        rows += sizes[name]
    if len(group) > 1:
        yield group


def merged_table(tables: list[pa.Table]) -> pa.Table:
    """The shards' rows in one table, in the shards' order (their schemas are the store's)."""
    return pa.concat_tables(tables, promote_options="default").combine_chunks()


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


class CompactionPlan:
    """The plan file of a local merge in progress: written (fsynced) before the merged shard is
    renamed into ``data/``, removed once the sources are deleted."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, merged: str, sources: list[str]) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump({"merged": merged, "sources": sources}, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)
        fsync_dir(self.path.parent)

    def finish(self, data_dir: Path) -> None:
        """After a kill: a merged shard in ``data/`` means its sources go (the merge is completed);
        none means the merge never happened (its temp file is swept). Then the plan goes."""
        if not self.path.exists():
            return
        plan = json.loads(self.path.read_text(encoding="utf-8") or "{}")
        if plan.get("merged") and (data_dir / plan["merged"]).exists():
            self.delete_sources(data_dir, plan.get("sources", []))
        self.path.unlink()
        fsync_dir(self.path.parent)

    @staticmethod
    def delete_sources(data_dir: Path, sources: list[str]) -> None:
        for name in sources:
            (data_dir / name).unlink(missing_ok=True)
        fsync_dir(data_dir)
