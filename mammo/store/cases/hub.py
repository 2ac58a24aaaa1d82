"""The case store on a Hub dataset repo: the local index and writes of :class:`CaseStore` over the
outbox folder, with :class:`Outbox` delivering each shard to the repo in its own commit.

While the Hub is unreachable a receipt says ``"queued"`` and the outbox retries with backoff; it
survives restarts and is drained at the next open. At open every shard in the repo is indexed once
(its small columns; one cached download per shard; while the Hub is down, the shards this disk's
cache holds), and the new ones at each check of the repo (``fetch_amendments``, every
``MAMMO_FOLLOW_SECONDS`` in the app), so duplicate detection and counts cover the cases this machine
has seen: two apps writing to one repo between two checks could each accept the same image.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import datasets
import pyarrow.parquet as pq
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, RepoFile
from huggingface_hub.errors import EntryNotFoundError, RemoteEntryNotFoundError

from ...config import Settings
from .._fs import file_lock, utc_now, write_new_file
from .._hub import (
    HubError,
    HubUnavailable,
    branch_head,
    cached_files,
    check_reachable,
    ensure_repo,
    hub_api,
    hub_errors,
)
from .card import dataset_card
from .compaction import MERGED_SHARD_ROWS, SMALL_SHARD_ROWS, Merges, ShardSize, groups_to_merge, write_merged
from .corrections import CORRECTIONS_DIR, correction_names
from .local import _LOCK_FILE, CaseStore, load_cases
from .outbox import SUBMIT_WAIT_S, Outbox
from .schema import DATA_DIR, shard_name

__all__ = ["HubCaseStore"]

log = logging.getLogger(__name__)
FETCH_THREADS = 8  # downloads at a time when fetching audit events and log shards onto a new disk
_SYNC_LOCK = ".corrections.lock"  # held while the repo's label corrections are fetched into the outbox folder


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
            self._index_cached_shards()
        delivery.start()

    @property
    def location(self) -> str:
        return f"{self.api.endpoint}/datasets/{self.repo_id} (outbox {self.root})"

    def _load_shards(self) -> datasets.Dataset:
        """Every case: the Hub repo's shards plus those still queued in the outbox (and the repo's
        label corrections fetched, for :meth:`load` to apply)."""
        assert self.outbox is not None
        if self._connected:  # fast failure when the Hub is down (a first connect probes it itself)
            branch_head(self.api, self.repo_id, "dataset")
        with self.outbox.upload_lock:  # a consistent snapshot: no shard moves from outbox to Hub now
            if self._connected:  # a first connect syncs them itself
                self._sync_corrections()
            else:
                self._connect()
            revision = branch_head(self.api, self.repo_id, "dataset")
            queued = [pq.read_table(self._data_dir / name) for name in self.outbox.queued_shards()]
        parts = [datasets.Dataset.from_dict(table.to_pydict(), features=self.features) for table in queued]
        # the case shards alone: with none, load_dataset read the audit events' JSON as the cases (a
        # first retrain failed on their schemas, and one event loaded as one "case": a Hub probe)
        if self._repo_shards(revision):
            with hub_errors(self.api.endpoint, f"loading the dataset {self.repo_id}"):
                parts.insert(0, load_cases(self.repo_id, self._cache_dir, revision=revision,
                                           token=self.api.token,
                                           data_files={"train": f"{DATA_DIR}/*.parquet"}))
        if not parts:
            return self._empty()
        return datasets.concatenate_datasets(parts) if len(parts) > 1 else parts[0]

    def compact(self, *, small: int = SMALL_SHARD_ROWS, largest: int = MERGED_SHARD_ROWS) -> dict[str, int]:
        """Merge the repo's small shards: each merged shard is built from the shards at one revision,
        then committed, in one commit that adds it and deletes its sources, on the head read just
        before it under the upload lock (this process's deliveries wait; a commit from elsewhere in
        that moment makes it fail). If another machine merged some of the sources away since they
        were read, the Hub refuses to delete a file that no longer exists ("A file with this name
        doesn't exist", as the test server answers too) and the commit fails: no case is lost or
        stored twice. Shards still in the outbox are left alone. Returns shards merged, shards
        written and cases moved."""
        assert self.outbox is not None
        merges = Merges()
        with self.outbox.upload_lock:
            self._connect()
            revision = branch_head(self.api, self.repo_id, "dataset")
            in_repo = self._repo_shards(revision)
            queued = set(self.outbox.queued_shards())  # maybe on the Hub too, if an answer was lost
        with self._lock:
            sizes = {name: ShardSize(rows, in_repo[name]) for name, rows in self._index.shard_sizes().items()
                     if name in in_repo and name not in queued}
        for group in groups_to_merge(sizes, small=small, largest=largest):
            name = shard_name(utc_now())
            with tempfile.TemporaryDirectory(dir=self._tmp_dir) as work, \
                    hub_errors(self.api.endpoint, f"merging {len(group)} case shards of {self.repo_id}"):
                merged = Path(work) / name
                cases = write_merged([
                    pq.read_table(self.api.hf_hub_download(self.repo_id, f"{DATA_DIR}/{source}",
                                                           repo_type="dataset", revision=revision))
                    for source in group
                ], merged)
                operations = [CommitOperationAdd(f"{DATA_DIR}/{name}", str(merged)),
                              *(CommitOperationDelete(f"{DATA_DIR}/{source}") for source in group)]
                with self.outbox.upload_lock:
                    self.api.create_commit(
                        self.repo_id, operations, repo_type="dataset",
                        parent_commit=branch_head(self.api, self.repo_id, "dataset"),
                        commit_message=f"Merge {len(group)} case shards into {name}",
                    )
                    with self._lock:
                        self._index_shard(merged, name)
                        self._index.forget(group)
            merges.add(len(group), cases)
        return merges.as_dict()

    def _repo_shards(self, revision: str | None = None) -> dict[str, int]:
        """The case shards in the repo (file name -> bytes)."""
        with hub_errors(self.api.endpoint, f"listing the shards of {self.repo_id}"):
            try:
                tree = list(self.api.list_repo_tree(self.repo_id, path_in_repo=DATA_DIR, repo_type="dataset",
                                                    revision=revision))
            except EntryNotFoundError:  # no data/ folder yet: no case
                return {}
        sizes = {entry.path.rsplit("/", 1)[-1]: entry.size for entry in tree}
        return {name: size for name, size in sizes.items() if name.endswith(".parquet")}

    def fetch_missing(self, folder: str, dest: Path, suffix: str, newest: int | None = None,
                      fetched: Callable[[Path], None] | None = None) -> int:
        """Download into ``dest`` the ``*<suffix>`` files under ``folder/`` of the repo (the ``newest``
        by name, i.e. by time, or all) that it lacks: the audit events and prediction-log shards the
        repo holds when this disk is new (a restarted Space) or another app wrote them. ``fetched``
        is called with each file written, as it is written (from the downloading threads). The number
        written."""
        names = self._repo_files(folder, suffix)
        chosen = names if newest is None else names[max(len(names) - newest, 0):]
        return self._download_missing(folder, chosen, dest, fetched)

    def _repo_files(self, folder: str, suffix: str) -> list[str]:
        """The names of the ``*<suffix>`` files under ``folder/`` of the repo, sorted (by time)."""
        with hub_errors(self.api.endpoint, f"listing {folder}/ of {self.repo_id}"):
            try:
                tree = self.api.list_repo_tree(self.repo_id, path_in_repo=folder, repo_type="dataset")
                return sorted(name for entry in tree if isinstance(entry, RepoFile)
                              and not (name := entry.path.rsplit("/", 1)[-1]).startswith(".")
                              and name.endswith(suffix))
            except EntryNotFoundError:  # nothing there yet
                return []

    def _download_missing(self, folder: str, names: Sequence[str], dest: Path,
                          fetched: Callable[[Path], None] | None = None) -> int:
        """Download ``folder/<name>`` for each of ``names`` that ``dest`` lacks; the number written."""
        missing = [name for name in names if not (dest / name).exists()]

        def download(name: str) -> None:
            local = self.api.hf_hub_download(self.repo_id, f"{folder}/{name}", repo_type="dataset")
            write_new_file(dest / name, Path(local).read_bytes())
            if fetched is not None:  # at once: a fetch cut short leaves no file unannounced
                fetched(dest / name)

        with hub_errors(self.api.endpoint, f"fetching {folder}/ of {self.repo_id}"), \
                ThreadPoolExecutor(FETCH_THREADS, thread_name_prefix="fetch") as pool:
            list(pool.map(download, missing))  # small files: several requests at a time
        return len(missing)

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
        in_repo = self._repo_shards()
        assert self.outbox is not None
        self.outbox.forget_delivered(in_repo)  # merged or rewritten away: known no more
        self._index_new_files(self.outbox.delivered_shards())  # its own, from the columns kept: no download
        self._index_repo_shards(in_repo)
        self._sync_corrections()  # a failure leaves it unconnected: tried again at the next delivery
        self._connected = True

    @property
    def _corrections_dir(self) -> Path:
        """Kept beside the outbox (whose ``corrections/`` empties as they reach the Hub)."""
        return self.root / ".corrections"

    def _sync_corrections(self) -> None:
        """Fetch the repo's label corrections that this disk lacks (made by another app, or before a
        restart), queue for the repo those kept here that it lacks and the outbox does not hold (a
        process stopped between keeping and queueing one), and apply them. Called holding the upload
        lock (or before delivery starts), so no delivery moves a file meanwhile."""
        assert self.outbox is not None
        folder = self._corrections_dir
        folder.mkdir(parents=True, exist_ok=True)
        with file_lock(self.root / _SYNC_LOCK):  # another process sharing this outbox
            in_repo = self._repo_files(CORRECTIONS_DIR, ".json")
            self._download_missing(CORRECTIONS_DIR, in_repo, folder)
            with self._lock, file_lock(self.root / _LOCK_FILE):  # no correction half-written here now
                kept, waiting = correction_names(folder), set(self.outbox.files())
                for name in sorted(set(kept) - set(in_repo)):
                    if f"{CORRECTIONS_DIR}/{name}" not in waiting:
                        self.outbox.queue_file(CORRECTIONS_DIR, name, (folder / name).read_bytes())
                self._apply_corrections(kept)

    def fetch_amendments(self) -> None:
        """Fetch and apply the label corrections and withdrawals in the repo that this disk lacks (made
        by another server or the command line elsewhere), and index the shards of cases stored there
        since: a listing of ``corrections/`` and one of ``data/``, and a download of each new shard.
        Before the first connect, nothing: the connect fetches them. HubError when the Hub does not answer, at
        once: a probe without the client's retry loop comes first, so an outage never holds the upload
        lock (a submission behind it would wait) through the listing's retries."""
        assert self.outbox is not None
        if not self._connected:
            return
        branch_head(self.api, self.repo_id, "dataset")  # fast failure when the Hub is down
        with self.outbox.upload_lock:
            self._sync_corrections()
        # and the cases another server stored (two replicas each took the other's image again, and
        # their counts drifted apart, until a restart: a Hub probe)
        self._index_repo_shards()

    def _index_cached_shards(self) -> None:
        """While the Hub cannot be asked at the start: index the repo's shards that this disk knows
        (the index columns of those its outbox delivered, and those its Hugging Face cache downloaded,
        from any revision; a case is counted once, however many shards hold it), so
        that the cases known here are counted and their duplicates, and the pixels of withdrawn ones,
        are refused. Indexed from the outbox alone, a restart during an outage took back a withdrawn
        case's image and stored duplicates (a Hub probe). The connect indexes the rest."""
        assert self.outbox is not None
        self._open_index()
        kept = {**cached_files(self.repo_id, "dataset", DATA_DIR), **self.outbox.delivered_shards()}
        indexed = self._index_new_files({name: path for name, path in kept.items()
                                         if name.endswith(".parquet")})
        if indexed:
            log.info("indexed %d case shards of %s kept on this disk until the Hub answers", indexed,
                     self.repo_id)

    def _index_new_files(self, shards: dict[str, Path]) -> int:
        """Index the shard files (name -> path on this disk) the index does not know; how many."""
        with self._lock:
            new = {name: path for name, path in shards.items() if name not in self._index}
            for name, path in new.items():
                self._index_shard(path, name)
        return len(new)

    def _index_repo_shards(self, shards: Iterable[str] | None = None) -> None:
        """Index the repo's shards (listed now, or ``shards``) this machine has not seen (one cached
        download each); one merged away since it was listed is passed over (its merged shard is listed
        at the next check)."""
        with hub_errors(self.api.endpoint, f"indexing the shards of {self.repo_id}"):
            for name in self._repo_shards() if shards is None else shards:
                with self._lock:
                    known = name in self._index
                if known:
                    continue
                try:
                    local = self.api.hf_hub_download(self.repo_id, f"{DATA_DIR}/{name}", repo_type="dataset")
                except RemoteEntryNotFoundError:
                    continue
                with self._lock:
                    self._index_shard(local, name)

    def _index_gone_shard(self, name: str) -> bool:
        """A shard another process (sharing this outbox) journalled and has since delivered: indexed
        from the repo (so its cases are counted and their duplicates refused here too). False while
        the Hub cannot be asked (tried again at the next refresh); True when the repo no longer has
        it either (merged away there: the merged shard is indexed from the repo). Called holding the
        store's locks: a Hub that is down is found out by one request without retries; a shard is a
        single download, and only when two processes share an outbox."""
        assert self.outbox is not None
        if kept := self.outbox.delivered_shards().get(name):  # its index columns, kept at delivery
            self._index_shard(kept, name)
            return True
        try:
            branch_head(self.api, self.repo_id, "dataset")  # a Hub that is down answers at once (no retries)
            with hub_errors(self.api.endpoint, f"fetching the case shard {name} of {self.repo_id}"):
                try:
                    local = self.api.hf_hub_download(self.repo_id, f"{DATA_DIR}/{name}", repo_type="dataset")
                except RemoteEntryNotFoundError:  # not LocalEntryNotFoundError: that one means "no answer"
                    return True
        except HubError as error:
            log.warning("case shard %s not indexed yet: %s", name, error)
            return False
        self._index_shard(local, name)
        return True

    def _find_moved_cases(self) -> None:
        """After a shard was merged away on the Hub (by another machine, or by a merge whose commit
        answer was lost here): index the repo's new shards."""
        super()._find_moved_cases()
        self._index_repo_shards()
