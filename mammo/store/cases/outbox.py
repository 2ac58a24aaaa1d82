"""The outbox: files on their way to a Hub dataset repo, each delivered in its own commit.

A file waits in a local folder laid out like the repo (``data/<shard>.parquet`` for cases,
``audit/<event>.json``, ``logs/<shard>.jsonl`` and ``corrections/<correction>.json`` for the audit
log, the prediction log and label corrections) until the Hub has confirmed it, and only then leaves
the folder, so it survives restarts and Hub outages. Of a delivered case shard the small columns the
index reads are kept (``.delivered/``, no image): a restart while the Hub is down still knows its cases.
Uploads use ``HfApi.upload_file`` (never ``push_to_hub``, which rewrites the split); a file that
may have reached the Hub before an error is looked for before it is sent again, so nothing is
lost and nothing is stored twice. A background thread drains the folder, backing off while the
Hub is unavailable. Closing delivers what still waits, for a few seconds: a Space's disk is new
after every restart, so a file left here at a stop is lost there.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow.parquet as pq
from huggingface_hub import HfApi
from huggingface_hub.errors import RemoteEntryNotFoundError

from .._fs import fsync_dir, write_new_file
from .._hub import HubUnavailable, branch_head, cached_files, check_reachable, hub_errors
from .corrections import CORRECTIONS_DIR
from .index import INDEX_COLUMNS
from .schema import DATA_DIR, METADATA_FIELDS

__all__ = ["Outbox"]

log = logging.getLogger(__name__)

# store/audit.py, predictions.py, cases/corrections.py
_EXTRA_DIRS = {"audit": "audit event", "logs": "prediction-log shard", CORRECTIONS_DIR: "label correction"}
# The index columns of the case shards delivered (no image), kept beside the outbox: a restart while the
# Hub is down indexes them (from the outbox alone, it took back a withdrawn case's image and stored
# duplicates: a Hub probe)
DELIVERED_DIR = ".delivered"
# How long a submission waits for an upload already in progress (the delivery thread's, or another
# submission's) before its shard is left to the background: huggingface_hub retries an upload on
# connection errors for ~23 s, and a clinician should not wait behind that.
SUBMIT_WAIT_S = 5.0
# How long a closing outbox keeps delivering what waits: a Space's disk is new after a restart, so
# what is left is lost there; a stop (SIGTERM) leaves a container about 10 s before it is killed.
CLOSE_FLUSH_S = 8.0


class Outbox:
    """Files waiting for the dataset repo ``repo_id`` in the folder ``root``.

    Args:
        root: the outbox folder (``data/``, ``audit/``, ``logs/``, ``corrections/`` inside, as in the repo).
        api: the Hub client (endpoint and token).
        repo_id: the dataset repo.
        connect: called (under the upload lock) before every delivery: checks the Hub and the repo.
        retry_base_s, retry_cap_s: first and longest wait between delivery attempts.
        submit_wait_s: how long a new case shard waits for an upload in progress before it is left to
            the background.
    """

    def __init__(self, root: Path, api: HfApi, repo_id: str, connect: Callable[[], None], *,
                 retry_base_s: float = 1.0, retry_cap_s: float = 60.0,
                 submit_wait_s: float = SUBMIT_WAIT_S) -> None:
        self.root, self.api, self.repo_id, self.connect = Path(root), api, repo_id, connect
        self.retry_base_s, self.retry_cap_s, self.submit_wait_s = retry_base_s, retry_cap_s, submit_wait_s
        self.upload_lock = threading.Lock()  # held while anything is committed to the repo
        self._wake = threading.Event()
        self._stop = threading.Event()
        (self.root / DATA_DIR).mkdir(parents=True, exist_ok=True)
        # files found at open, and files whose delivery may have half-happened: looked for first
        self._retried: set[str] = {f.rsplit("/", 1)[-1] for f in self.files()}
        self._worker = threading.Thread(target=self._run, name=f"outbox {repo_id}", daemon=True)

    def start(self) -> None:
        """Start delivering in the background."""
        self._worker.start()

    def delivered_shards(self) -> dict[str, Path]:
        """The index columns of the case shards this outbox delivered (file name -> path): what a
        restart while the Hub is down knows of the cases it sent (no image)."""
        return {path.name: path for path in sorted((self.root / DELIVERED_DIR).glob("*.parquet"))}

    def forget_delivered(self, in_repo: Iterable[str]) -> None:
        """Drop the kept index columns of delivered shards the repo no longer holds (merged into
        another, or rewritten to erase a case): read while the Hub is down, they would count its cases
        again and know an erased image's pixels."""
        held = set(in_repo)
        for name, path in self.delivered_shards().items():
            if name not in held:
                path.unlink(missing_ok=True)

    def queued_shards(self) -> list[str]:
        """Case shards not yet on the Hub (file names, oldest first)."""
        return sorted(p.name for p in (self.root / DATA_DIR).glob("*.parquet"))

    def files(self) -> list[str]:
        """Everything waiting, as paths in the repo: case shards, then audit events and log shards."""
        extra = sorted(f"{d}/{p.name}" for d in _EXTRA_DIRS for p in (self.root / d).glob("[!.]*.json*"))
        return [f"{DATA_DIR}/{n}" for n in self.queued_shards()] + extra

    def queue_file(self, folder_in_repo: str, name: str, content: bytes) -> None:
        """Queue a file for ``<folder_in_repo>/<name>`` in the repo (one of ``_EXTRA_DIRS``)."""
        if folder_in_repo not in _EXTRA_DIRS:
            raise ValueError(f"the outbox delivers files to {sorted(_EXTRA_DIRS)}, not {folder_in_repo!r}")
        folder = self.root / folder_in_repo
        folder.mkdir(parents=True, exist_ok=True)
        write_new_file(folder / name, content)
        self._wake.set()

    def deliver_now(self, in_repo: str) -> tuple[str, str | None]:
        """A file was just written here (a case shard, a label correction): try to deliver it now.
        The status for the receipt (``stored`` or ``queued``) and a warning; any failure leaves it queued."""
        try:
            self.deliver(in_repo, wait_s=self.submit_wait_s)
        except HubUnavailable as exc:
            self._wake.set()
            return "queued", str(exc)
        except Exception as exc:  # the file is safe in the outbox: report, never lose it
            log.error("%s stays in the outbox: %s", in_repo, exc)
            self._wake.set()
            return "queued", f"Not yet on the Hub, will be retried: {exc}"
        if self.files():  # the Hub is back: let the worker drain the rest now
            self._wake.set()
        return "stored", None

    def locate(self, name: str) -> Path | str:
        """A readable path of the case shard ``name``: still here, or from the Hub (cached);
        FileNotFoundError when the Hub no longer has it (merged into another). With the Hub down, this
        disk's cached copy from any revision (a shard's name never takes other content), else
        HubUnavailable at once: through the client's retry loop each read took 23 s, and a
        withdrawal's check held every submission that long (a Hub probe)."""
        queued = self.root / DATA_DIR / name
        if queued.exists():
            return queued
        try:
            branch_head(self.api, self.repo_id, "dataset")  # fast failure when the Hub is down
        except HubUnavailable:
            if cached := cached_files(self.repo_id, "dataset", DATA_DIR).get(name):
                return cached
            raise
        with hub_errors(self.api.endpoint, f"reading case shard {name}"):
            try:
                return self.api.hf_hub_download(self.repo_id, f"{DATA_DIR}/{name}", repo_type="dataset")
            except RemoteEntryNotFoundError:
                pass  # merged into another shard since: the caller looks for it
        raise FileNotFoundError(f"case shard {name} is no longer in {self.repo_id}")

    def deliver(self, in_repo: str, *, wait_s: float | None = None) -> None:
        """Upload one waiting file in its own commit, then drop it from the outbox (of a case shard,
        its index columns are kept: :meth:`delivered_shards`). A file no longer
        here was delivered already (files leave only then). ``wait_s``: the longest wait for an upload
        in progress (None: as long as it takes); past it, HubUnavailable and the file stays queued."""
        path = self.root / in_repo
        name = in_repo.rsplit("/", 1)[-1]
        what = _EXTRA_DIRS.get(in_repo.split("/", 1)[0], "case shard")
        with self._upload_lock_held(wait_s):
            if not path.exists():
                return
            self.connect()
            branch_head(self.api, self.repo_id, "dataset")  # fast failure when the Hub is down
            with hub_errors(self.api.endpoint, f"uploading {what} {name}"):
                if not (
                    name in self._retried and self.api.file_exists(self.repo_id, in_repo, repo_type="dataset")
                ):
                    self._retried.add(name)
                    self.api.upload_file(path_or_fileobj=str(path), path_in_repo=in_repo,
                                         repo_id=self.repo_id, repo_type="dataset",
                                         commit_message=f"Add {what} {name}")
            if in_repo.startswith(f"{DATA_DIR}/"):
                self._keep_index_columns(path)
            path.unlink(missing_ok=True)  # (another process sharing this outbox may have sent it)
            fsync_dir(path.parent)
            self._retried.discard(name)

    def _keep_index_columns(self, shard: Path) -> None:
        """Keep the columns the index reads of a case shard about to leave (its metadata, no image);
        not when another process sharing this outbox has sent it already."""
        try:
            table = pq.read_table(shard, columns=[*INDEX_COLUMNS, *METADATA_FIELDS])
        except FileNotFoundError:
            return
        kept = self.root / DELIVERED_DIR
        kept.mkdir(exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=kept, suffix=".tmp", delete=False) as handle:
            pq.write_table(table, handle)
        Path(handle.name).replace(kept / shard.name)

    @contextmanager
    def _upload_lock_held(self, wait_s: float | None) -> Iterator[None]:
        """Hold the upload lock, waiting at most ``wait_s`` for it; past that, HubUnavailable saying
        whether the Hub is down (one request with a short timeout, no retry loop) or only slow."""
        if not self.upload_lock.acquire(timeout=-1 if wait_s is None else wait_s):
            check_reachable(self.api)
            raise HubUnavailable(
                f"Hugging Face Hub at {self.api.endpoint} is slow: an earlier upload (or commit) to "
                f"{self.repo_id} has taken over {wait_s:.0f} s; this file is saved in the outbox and "
                "delivered in the background"
            )
        try:
            yield
        finally:
            self.upload_lock.release()

    def wait_until_delivered(self, timeout: float) -> bool:
        """Nudge the delivery thread and wait until the outbox is empty; False on timeout."""
        deadline = time.monotonic() + timeout
        self._wake.set()
        while self.files():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True

    def close(self, flush_s: float = CLOSE_FLUSH_S) -> None:
        """Stop the delivery thread and deliver what waits, taking at most ``flush_s`` seconds in all.
        A delivery still running then is left behind (the next open on this disk looks for its file on
        the Hub before sending it again); files left stay for the next open."""
        deadline = time.monotonic() + flush_s
        self._stop.set()
        self._wake.set()
        if self._worker.is_alive():
            self._worker.join(timeout=max(0.0, deadline - time.monotonic()))
        flusher = threading.Thread(target=self._flush, args=(deadline,), name=f"outbox flush {self.repo_id}",
                                   daemon=True)  # a Hub that never answers cannot hold the process
        flusher.start()
        flusher.join(timeout=max(0.0, deadline - time.monotonic()))
        if left := self.files():
            log.warning("%d file(s) stay in the outbox for %s until it is opened again on this disk "
                        "(%s): on a disk that is new after a restart they are lost", len(left),
                        self.repo_id, ", ".join(left[:5]))

    def _flush(self, deadline: float) -> None:
        """Deliver what waits, files added meanwhile included, until ``deadline``; stops at the first
        sign that the Hub is unavailable, and goes on past a file the Hub refuses."""
        tried: set[str] = set()
        while waiting := [f for f in self.files() if f not in tried]:
            for in_repo in waiting:
                if time.monotonic() >= deadline:
                    return
                tried.add(in_repo)
                try:
                    self.deliver(in_repo, wait_s=max(0.0, deadline - time.monotonic()))
                except HubUnavailable as exc:
                    log.warning("outbox for %s not delivered at close: %s", self.repo_id, exc)
                    return
                except Exception as exc:  # this file only: the others may still go
                    log.error("%s stays in the outbox for %s: %s", in_repo, self.repo_id, exc)

    def _run(self) -> None:
        """Background delivery: drain the outbox, backing off while the Hub is unavailable."""
        wait = self.retry_base_s
        while not self._stop.is_set():
            self._wake.clear()
            try:
                with self.upload_lock:
                    self.connect()
                for in_repo in self.files():
                    if self._stop.is_set():
                        return
                    self.deliver(in_repo)
                wait = self.retry_base_s
                self._wake.wait()
                continue
            except HubUnavailable as exc:
                log.warning("%s; retrying in %.1f s", exc, wait)
            except Exception as exc:  # the worker must survive, and say why
                log.error("outbox delivery failed: %s; retrying in %.1f s", exc, wait)
            self._wake.wait(wait)
            wait = min(wait * 2, self.retry_cap_s)
