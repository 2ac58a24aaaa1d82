"""The case store on a Hub dataset repo: the local index and writes of :class:`CaseStore` over the
outbox folder, with :class:`Outbox` delivering each shard to the repo in its own commit.

While the Hub is unreachable a receipt says ``"queued"`` and the outbox retries with backoff; it
survives restarts and is drained at the next open. At open every shard in the repo is indexed once
(its small columns; one cached download per shard), so duplicate detection and counts cover the
cases this machine has seen: two apps writing to one repo at the same instant could each accept
the same image.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from pathlib import Path

import datasets
import pyarrow.parquet as pq
from datasets.data_files import EmptyDatasetError
from huggingface_hub import CommitOperationAdd, CommitOperationDelete
from huggingface_hub.errors import EntryNotFoundError

from ...config import Settings
from .._fs import utc_now
from .._hub import HubUnavailable, branch_head, check_reachable, ensure_repo, hub_api, hub_errors
from .card import dataset_card
from .compaction import MERGED_SHARD_ROWS, SMALL_SHARD_ROWS, Merges, groups_to_merge, merged_table
from .local import CaseStore, load_cases
from .outbox import SUBMIT_WAIT_S, Outbox
from .schema import DATA_DIR, shard_name

__all__ = ["HubCaseStore"]

log = logging.getLogger(__name__)


class HubCaseStore(CaseStore):
    """Cases in a Hub dataset repo, through a local outbox that survives restarts.

    Args:
        labels: the label set.
        repo_id: the Hub dataset repo (created with its card if missing).
        settings: endpoint and token.
        outbox: local folder of shards not yet confirmed by the Hub.
        max_bytes: largest accepted image file.
        private: visibility of the repo if it has to be created.
        retry_base_s, retry_cap_s: first and longest wait between delivery attempts.
        submit_wait_s: how long a submission waits for an upload in progress (then it is queued).
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
        submit_wait_s: float = SUBMIT_WAIT_S,
    ):
        self.repo_id = repo_id
        self.private = private
        self.api = hub_api(settings)
        self._connected = False
        delivery = Outbox(outbox, self.api, repo_id, self._connect, retry_base_s=retry_base_s,
                          retry_cap_s=retry_cap_s, submit_wait_s=submit_wait_s)
        super().__init__(labels, outbox, max_bytes=max_bytes, outbox=delivery)
        try:
            self._connect()
        except HubUnavailable as exc:
            log.warning("%s; cases are queued in %s until it is back", exc, self.root)
        delivery.start()

    @property
    def location(self) -> str:
        return f"{self.api.endpoint}/datasets/{self.repo_id} (outbox {self.root})"

    def load(self) -> datasets.Dataset:
        """Every case: the Hub repo's shards plus those still queued in the outbox."""
        assert self.outbox is not None
        with self.outbox.upload_lock:  # a consistent snapshot: no shard moves from outbox to Hub now
            self._connect()
            revision = branch_head(self.api, self.repo_id, "dataset")
            queued = [pq.read_table(self._data_dir / name) for name in self.outbox.queued_shards()]
        parts = [datasets.Dataset.from_dict(table.to_pydict(), features=self.features) for table in queued]
        with hub_errors(self.api.endpoint, f"loading the dataset {self.repo_id}"):
            try:
                parts.insert(0, load_cases(self.repo_id, self._cache_dir, revision=revision,
                                           token=self.api.token))
            except EmptyDatasetError:  # no shard on the Hub yet
                pass
        if not parts:
            return self._empty()
        return datasets.concatenate_datasets(parts) if len(parts) > 1 else parts[0]

    def compact(self, *, small: int = SMALL_SHARD_ROWS, largest: int = MERGED_SHARD_ROWS) -> dict[str, int]:
        """Merge the repo's small shards: one commit per merged shard adds it and deletes its sources,
        made on the head the shards were read at (a concurrent commit makes it fail, never lose a
        case). Submissions meanwhile are queued in the outbox. Returns shards merged, shards written
        and cases moved."""
        assert self.outbox is not None
        merges = Merges()
        with self.outbox.upload_lock:
            self._connect()
            head = branch_head(self.api, self.repo_id, "dataset")
            with hub_errors(self.api.endpoint, f"listing the shards of {self.repo_id}"):
                try:
                    entries = list(self.api.list_repo_tree(self.repo_id, path_in_repo=DATA_DIR,
                                                           repo_type="dataset", revision=head))
                except EntryNotFoundError:
                    entries = []
            in_repo = {entry.path.rsplit("/", 1)[-1] for entry in entries}
            with self._lock:
                sizes = {name: n for name, n in self._index.shard_sizes().items() if name in in_repo}
            for group in groups_to_merge(sizes, small=small, largest=largest):
                name = shard_name(utc_now())
                with hub_errors(self.api.endpoint, f"merging {len(group)} case shards of {self.repo_id}"):
                    table = merged_table([
                        pq.read_table(self.api.hf_hub_download(self.repo_id, f"{DATA_DIR}/{source}",
                                                               repo_type="dataset", revision=head))
                        for source in group
                    ])
                    content = io.BytesIO()
                    pq.write_table(table, content)
                    operations = [CommitOperationAdd(f"{DATA_DIR}/{name}", content.getvalue()),
                                  *(CommitOperationDelete(f"{DATA_DIR}/{source}") for source in group)]
                    head = self.api.create_commit(
                        self.repo_id, operations, repo_type="dataset", parent_commit=head,
                        commit_message=f"Merge {len(group)} case shards into {name}",
                    ).oid
                with self._lock:
                    self._index.add(name, table)
                    self._index.forget(group)
                merges.add(len(group), table.num_rows)
        return merges.as_dict()

    def wait_until_delivered(self, timeout: float) -> bool:
        """Wait until the outbox is empty; False on timeout."""
        assert self.outbox is not None
        return self.outbox.wait_until_delivered(timeout)

    def _connect(self) -> None:
        """Once: check the token, create the repo if missing, index the shards it holds."""
        if self._connected:
            return
        check_reachable(self.api)
        ensure_repo(self.api, self.repo_id, "dataset", dataset_card(self.labels), private=self.private)
        self._open_index()  # the queued shards here first
        with hub_errors(self.api.endpoint, f"indexing the shards of {self.repo_id}"):
            try:
                tree = self.api.list_repo_tree(self.repo_id, path_in_repo=DATA_DIR, repo_type="dataset")
                entries = list(tree)
            except EntryNotFoundError:  # no data/ folder yet: no case
                entries = []
            for entry in entries:
                name = entry.path.rsplit("/", 1)[-1]
                with self._lock:
                    known = name in self._index or not name.endswith(".parquet")
                if not known:
                    local = self.api.hf_hub_download(self.repo_id, entry.path, repo_type="dataset")
                    with self._lock:
                        self._index_shard(local, name)
        self._connected = True
