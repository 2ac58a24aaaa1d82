"""Faults end to end: SIGKILL of the app during submits and retrains, a full disk, the Hub down.

The app runs as ``python app.py`` in a subprocess (``AppProcess``); a kill is SIGKILL (no
clean-up runs) and the restart uses the same MAMMO_HOME on a fresh port. The Hub is the
Hub-protocol test server of ``tests/hub_server.py`` (legacy LFS transfer: Xet is not covered).
"""

from __future__ import annotations

import csv
import errno
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from app_server import ROOT, AppProcess
from gradio_client import Client, handle_file
from helpers import LABELS, RETRAIN, SERVED, Images, load_cases, load_script, running_job_desc
from hub_server import USER, HubServer

from mammo.model import load as load_model
from mammo.service import SUBMISSIONS_CHECKED_AFTER_S, UPLOAD_QUEUED_ON_A_SPACE
from mammo.store import AuditLog, CaseStore, StoreError
from mammo.store.audit import LATE_SUBMISSION, SUBMITTER_NOT_RECORDED
from mammo.store.cases import local as cases_module
from mammo.store.pending import PendingPool
from mammo.store.registry import MODEL_FILES, version_number
from mammo.uploads import RUN_PREFIX


class Restartable:
    """One MAMMO_HOME whose app is killed and started again (a fresh port each time)."""

    def __init__(self, home: Path, env: dict[str, str]) -> None:
        self.home, self.env = home, env
        self.app: AppProcess | None = None

    def start(self) -> AppProcess:
        self.app = AppProcess(self.home, env=self.env).start()
        return self.app

    def client(self) -> Client:
        assert self.app is not None
        return Client(self.app.url, verbose=False, download_files=False)

    def kill_and_restart(self) -> AppProcess:
        assert self.app is not None
        self.app.kill()
        assert self.app.process is not None and self.app.process.returncode == -9
        return self.start()

    def stop(self) -> None:
        if self.app is not None:
            self.app.stop()


@pytest.fixture(scope="module")
def crashing(small_mias: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Restartable]:
    root = tmp_path_factory.mktemp("faults")
    env = {"MAMMO_BASE_DATA": str(small_mias), "HF_HOME": str(root / "hf")}
    restartable = Restartable(root / "home", env)
    restartable.start()
    yield restartable
    restartable.stop()


def assert_store_intact(home: Path, receipts: list[dict], cache: Path) -> list[str]:
    """Every shard is complete, load() sees exactly their rows, every receipted case is there; the
    stored cases' ids."""
    root = home / "cases"
    shard_rows = sum(pq.read_metadata(path).num_rows for path in (root / "data").glob("*.parquet"))
    ids = load_cases(root, cache)["case_id"] if shard_rows else []
    assert len(ids) == shard_rows == len(set(ids))
    missing = {r["case_id"] for r in receipts} - set(ids)
    assert not missing, f"receipted cases lost by the kill: {missing}"
    assert sum(CaseStore(LABELS, root).counts().values()) == shard_rows
    return list(ids)


def assert_audit_intact(home: Path, receipts: list[dict]) -> None:
    """Every audit event file is whole (a kill leaves at most a hidden partial file), and every
    receipted case has its submission event (written before the receipt was sent)."""
    events = AuditLog(home / "audit").events()
    unreadable = [e for e in events if e["action"] == "unreadable event"]
    assert not unreadable, unreadable
    audited = {e["details"]["case_id"] for e in events if e["action"] == "submission"}
    assert {r["case_id"] for r in receipts} <= audited


def assert_every_case_recorded(home: Path, stored: list[str]) -> None:
    """Every ``stored`` case has one submission event, once the running app has checked (a case stored
    just before a kill, its event not yet written, is recorded late, its submitter unknown)."""
    deadline = time.monotonic() + SUBMISSIONS_CHECKED_AFTER_S + 20
    while True:
        events = AuditLog(home / "audit").events()
        recorded = [e["details"]["case_id"] for e in events if e["action"] in ("submission", LATE_SUBMISSION)]
        if set(stored) <= set(recorded) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert set(stored) <= set(recorded), set(stored) - set(recorded)
    assert len(recorded) == len(set(recorded))  # never both, never twice
    assert all(e["user"] == SUBMITTER_NOT_RECORDED for e in events if e["action"] == LATE_SUBMISSION)


def submit_until_stopped(client: Client, images: Images, receipts: list[dict], stop: threading.Event,
                         worker: int) -> None:
    """Submit cases back to back; keep each receipt that comes back; end when the app is gone."""
    while not stop.is_set():
        job = client.submit(handle_file(images.next()), LABELS[worker % 3], api_name="/submit_case")
        try:
            receipts.append(job.result(timeout=30))
        except Exception:  # the app was killed under this request
            return


def test_sigkill_during_submits_loses_no_receipted_case(crashing: Restartable, tmp_path: Path) -> None:
    images = Images(tmp_path / "images", seed=1)
    receipts: list[dict] = []
    for delay in (0.0, 0.3):  # after the first receipt of the round: in the middle of writes
        client = crashing.client()
        before = len(receipts)
        stop = threading.Event()
        workers = [threading.Thread(target=submit_until_stopped, args=(client, images, receipts, stop, i))
                   for i in range(4)]
        for worker in workers:
            worker.start()
        deadline = time.monotonic() + 30
        while len(receipts) == before and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(receipts) > before, "no submit was answered before the kill"
        time.sleep(delay)
        uploads = crashing.home.parent / "gradio"
        killed_runs = list(uploads.glob(f"{RUN_PREFIX}*"))
        assert any(killed_runs) and any(path.is_file() for run in killed_runs for path in run.rglob("*.png"))
        app = crashing.kill_and_restart()
        stop.set()
        for worker in workers:
            worker.join(60)
        stored = assert_store_intact(crashing.home, receipts, tmp_path / "cache")
        assert_audit_intact(crashing.home, receipts)
        # the killed run's uploads (a DICOM's tags and all) are deleted by the start after it: Gradio
        # deletes only its own run's files, and those of a killed run stayed for good (a fault probe)
        assert not any(run.exists() for run in killed_runs)
        assert len(list(uploads.glob(f"{RUN_PREFIX}*"))) == 1  # the new run's own
        client = crashing.client()
        assert client.predict(api_name="/models")[0]["version"] == "v1"
        receipt = client.predict(handle_file(images.next()), "benign", api_name="/submit_case")
        assert receipt["status"] == "stored" and receipt["total_cases"] == len(stored) + 1, app.log()[-2000:]
        receipts.append(receipt)
    assert all(r["status"] == "stored" for r in receipts)
    # every stored case has its submission event once the last start checked (a kill between storing
    # a case and recording it left one without: a fault probe saw 5 in 226 kills)
    stored = assert_store_intact(crashing.home, receipts, tmp_path / "cache")
    assert_every_case_recorded(crashing.home, stored)


def served_version(client: Client, image: Path) -> str:
    return client.predict(handle_file(str(image)), api_name="/predict")[2]["model_version"]


def assert_versions_clean(home: Path) -> list[str]:
    """models/ holds only complete vN folders that load, ``rejected/`` and the lock; the vN names."""
    models = home / "models"
    versions = []
    for entry in models.iterdir():
        if entry.name in {".lock", "rejected"}:
            continue
        assert entry.is_dir() and version_number(entry.name), f"stray entry in models/: {entry.name}"
        assert sorted(p.name for p in entry.iterdir()) == sorted(MODEL_FILES)
        load_model(entry)
        versions.append(entry.name)
    rejected = home / "models" / "rejected"
    if rejected.is_dir():
        assert not [p.name for p in rejected.iterdir() if p.name.startswith(".tmp-")]
    return sorted(versions, key=version_number)


@pytest.mark.parametrize("moment", ["batch", "evaluating"])  # mid-epoch; gate and publish near
def test_sigkill_during_retrain_keeps_the_last_promoted_model(
    crashing: Restartable, small_mias: Path, moment: str
) -> None:
    client = crashing.client()
    before = [v["version"] for v in client.predict(api_name="/models")]
    job = client.submit(1, *RETRAIN[1:], api_name="/retrain")  # one epoch: at the gate sooner
    deadline = time.monotonic() + 60
    while moment not in running_job_desc(job) and not job.done() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not job.done(), "the retrain ended before it could be killed"
    time.sleep(0.5 if moment == "evaluating" else 0.0)
    crashing.kill_and_restart()

    client = crashing.client()
    versions = [v["version"] for v in client.predict(api_name="/models")]
    assert versions[: len(before)] == before and len(versions) <= len(before) + 1
    assert served_version(client, next((small_mias / "malignant").glob("*.png"))) == versions[-1]
    assert assert_versions_clean(crashing.home) == versions
    work = crashing.home / "work"
    leftovers = [p.name for p in work.iterdir()] if work.is_dir() else []
    assert not leftovers, f"the killed retrain's work folder was never removed: {leftovers}"


# -- full disk ------------------------------------------------------------------------------------
def noise(seed: int, side: int = 96) -> np.ndarray:
    return np.random.default_rng(seed).random((side, side)).astype(np.float32)


def assert_no_partial_shard(root: Path, receipts: list[dict], cache: Path) -> None:
    assert not list((root / ".tmp").iterdir()), "a temp shard was left behind"
    ids = load_cases(root, cache)["case_id"]
    assert sorted(ids) == sorted(r["case_id"] for r in receipts)


def test_full_disk_is_a_clear_error_and_keeps_earlier_cases(tiny_disk: Path, tmp_path: Path) -> None:
    receipts = []
    # (the fixture collects before unmounting: a dataset memory-mapped from the tmpfs keeps it busy)
    with CaseStore(LABELS, tiny_disk / "cases") as store, pytest.raises(StoreError, match="(?i)disk|space"):
        for seed in range(100):
            receipts.append(store.append(noise(seed), "normal"))
    assert len(receipts) >= 2, "the disk filled before the test could store anything"
    assert_no_partial_shard(tiny_disk / "cases", receipts, tmp_path / "cache")
    with CaseStore(LABELS, tiny_disk / "cases") as reopened:
        assert sum(reopened.counts().values()) == len(receipts)


def test_a_disk_turned_read_only_refuses_changes_in_words_and_still_serves_the_cases(
        tiny_disk: Path, tmp_path: Path) -> None:
    """A home remounted read-only under a running app (a fault probe saw raw OSErrors from the lock
    files: unexpected errors): a submission, a correction and an offer for labelling are refused
    in words; what is stored is still read, and by a store opened afresh."""
    store = CaseStore(LABELS, tiny_disk / "cases")
    stored = store.append(noise(1), "benign")["case_id"]
    pool = PendingPool(tiny_disk / "pending")
    subprocess.run(["mount", "-o", "remount,ro", str(tiny_disk)], check=True)
    try:
        with pytest.raises(StoreError, match="could not be saved .*Read-only file system"):
            store.append(noise(2), "normal")
        with pytest.raises(StoreError, match="could not be saved .*Read-only file system.*still stored"):
            store.correct_label(stored, "malignant")
        with pytest.raises(StoreError, match=r"could not be kept for labelling \(Read-only file system\)"):
            pool.offer("a" * 64, b"png", {})
        assert store.counts() == {"normal": 0, "benign": 1, "malignant": 0}
        assert [case["case_id"] for case in store.recent()] == [stored]
        with CaseStore(LABELS, tiny_disk / "cases") as reopened:
            assert reopened.case_label(stored) == "benign"
    finally:
        store.close()
        subprocess.run(["mount", "-o", "remount,rw", str(tiny_disk)], check=True)


def test_write_error_at_rename_stores_nothing_and_the_case_can_be_sent_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "cases"
    store = CaseStore(LABELS, root)
    receipts = [store.append(noise(1), "benign")]

    def disk_full(*args: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(cases_module.os, "replace", disk_full)
        with pytest.raises(StoreError, match="(?i)disk|space"):
            store.append(noise(2), "malignant")
    assert_no_partial_shard(root, receipts, tmp_path / "cache")
    assert store.counts() == {"normal": 0, "benign": 1, "malignant": 0}
    receipts.append(store.append(noise(2), "malignant"))  # not recorded as a duplicate
    assert receipts[-1]["total_cases"] == 2
    assert_no_partial_shard(root, receipts, tmp_path / "cache")


# -- the Hub down, end to end ---------------------------------------------------------------------
CASE_REPO, MODEL_REPO = f"{USER}/mammo-cases", f"{USER}/mammo-models"
PHANTOM = ROOT / "examples" / "phantom_mass.png"  # synthetic: the Hub tests need no real data


class HubApp:
    """A Hub-protocol server, and the env and MAMMO_HOME of an app that uses it for cases and models."""

    def __init__(self, root: Path) -> None:
        self.server = HubServer().start()
        self.home = root / "home"
        self.env = {"HF_ENDPOINT": self.server.url, "HF_TOKEN": self.server.token, "HF_HUB_DISABLE_XET": "1",
                    "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HOME": str(root / "hf"),
                    "MAMMO_DATASET_REPO": CASE_REPO, "MAMMO_MODEL_REPO": MODEL_REPO}
        self.images = Images(root / "images", seed=2)

    def app(self) -> AppProcess:
        return AppProcess(self.home, env=self.env)

    def submit(self, client: Client, label: str) -> dict:
        return client.predict(handle_file(self.images.next()), label, api_name="/submit_case")

    def shard_commits(self) -> int:
        """Commits that added a case shard (audit events are committed on their own)."""
        return sum(1 for title in self.server.commit_titles(CASE_REPO) if title.startswith("Add case shard"))

    def repo_case_ids(self) -> list[str]:
        shards = [p for p in self.server.files(CASE_REPO) if p.startswith("data/")]
        return sorted(pq.read_table(pa.BufferReader(self.server.read(CASE_REPO, p)))["case_id"][0].as_py()
                      for p in shards)

    def wait_delivered(self) -> None:
        """Until the app's outbox is empty (its own retries), then a moment for a duplicate to show."""
        outbox = self.home / "outbox" / CASE_REPO.replace("/", "--") / "data"
        deadline = time.monotonic() + 30
        while list(outbox.glob("*.parquet")) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[HubApp]:
    hub_app = HubApp(tmp_path)
    yield hub_app
    hub_app.server.stop()


def test_hub_down_then_back_through_the_app_and_a_restart_during_the_outage(hub: HubApp) -> None:
    image = PHANTOM
    with AppProcess(hub.home, env={**hub.env, "SPACE_ID": "owner/mammo"}) as app:  # as on a Space
        client = Client(app.url, verbose=False, download_files=False)
        assert "model.safetensors" in hub.server.files(MODEL_REPO, "model", revision="v1")  # seeded
        assert served_version(client, image) == SERVED
        first = hub.submit(client, "normal")
        assert first["status"] == "stored" and "warning" not in first

        hub.server.stop()
        started = time.monotonic()
        queued = hub.submit(client, "malignant")
        assert time.monotonic() - started < 10
        assert queued["status"] == "queued" and queued["total_cases"] == 2
        assert "unreachable" in queued["warning"] and hub.server.url in queued["warning"]
        # and says that until then the case is on the Space's disk alone (a restart would lose it)
        assert queued["warning"].endswith(UPLOAD_QUEUED_ON_A_SPACE)
        assert served_version(client, image) == SERVED
        commits = hub.shard_commits()
        deploy = load_script("scripts/deploy_space.py")  # a redeploy would restart it on a new disk
        with pytest.raises(SystemExit, match=r"holds 1 submitted case\(s\) not yet delivered"):
            deploy.check_no_queued_cases(app.url)

        hub.server.restart()
        hub.wait_delivered()
        assert hub.shard_commits() == commits + 1, app.log()[-3000:]
        assert deploy.queued_cases(app.url) == 0
        deploy.check_no_queued_cases(app.url)
        assert hub.repo_case_ids() == sorted([first["case_id"], queued["case_id"]])
        after = hub.submit(client, "benign")
        assert after["status"] == "stored" and after["total_cases"] == 3

    # a Space restarting during a Hub outage serves the cached model and queues the cases
    hub.server.stop()
    app = hub.app()
    try:
        app.start(timeout=120)
    except RuntimeError as error:
        pytest.fail(f"the app cannot start while the Hub is down: {str(error)[-600:]}")
    try:
        client = Client(app.url, verbose=False, download_files=False)
        assert served_version(client, image) == SERVED
        later = hub.submit(client, "benign")
        assert later["status"] == "queued" and "unreachable" in later["warning"]
        # it knows the cases this disk delivered: it counted the outbox's alone (a Hub probe), and took
        # their duplicates and a withdrawn case's image back
        assert later["total_cases"] == 4
        hub.server.restart()  # the next submission is delivered at once, and the queued one behind it
        back = hub.submit(client, "normal")
        assert back["status"] in ("stored", "queued")  # queued if the outbox's own retry holds the upload
        hub.wait_delivered()
        assert hub.repo_case_ids() == sorted(r["case_id"] for r in (first, queued, after, later, back))
    finally:
        app.stop()

    # a new disk while the Hub is down: no model version to serve, said in one line (five tracebacks)
    hub.server.stop()
    shutil.rmtree(hub.home)
    started = subprocess.run([sys.executable, "app.py"], cwd=ROOT, capture_output=True, text=True,
                             timeout=300, env={**os.environ, **hub.env, "MAMMO_HOME": str(hub.home)})
    assert started.returncode == 1 and "Traceback" not in started.stderr, started.stderr[-2000:]
    assert started.stderr.strip().splitlines()[-1].startswith("error: Hugging Face Hub unreachable")
    assert "No model versions are cached locally" in started.stderr


def test_a_stopped_app_sends_its_prediction_log_to_the_hub_and_a_new_disk_fetches_the_logs(
        hub: HubApp) -> None:
    """Stopped as a Space is (SIGTERM), the app delivers its open prediction-log shard before it
    exits (the next start may be on a new disk). A Space's disk is new at each restart: the audit
    events and prediction-log shards in the dataset repo are then fetched back (for the audit log,
    the last retrain and Analytics), not sent again."""
    with hub.app() as app:
        client = Client(app.url, verbose=False, download_files=False)
        details = client.predict(handle_file(str(PHANTOM)), api_name="/predict")[2]
        receipt = hub.submit(client, "benign")
        assert not [p for p in hub.server.files(CASE_REPO) if p.startswith("logs/")]  # still open
    shard = next((hub.home / "logs").glob("predictions-*.jsonl"))
    assert (hub.home / "logs" / ".mirrored").read_text().split() == [shard.name, str(shard.stat().st_size)]
    outbox = hub.home / "outbox" / CASE_REPO.replace("/", "--")
    assert not [p for folder in ("data", "audit", "logs") for p in (outbox / folder).glob("*")]
    [sent] = [p for p in hub.server.files(CASE_REPO) if p.startswith("logs/")]  # delivered at the stop
    record = json.loads(hub.server.read(CASE_REPO, sent))
    assert sent == f"logs/{shard.name}" and record["image_sha256"] == details["image_sha256"]
    in_repo = [p for p in hub.server.files(CASE_REPO) if p.startswith(("audit/", "logs/"))]
    commits = len(hub.server.commit_titles(CASE_REPO))
    shutil.rmtree(hub.home)  # a new disk
    with hub.app() as app:
        deadline = time.monotonic() + 30
        here = [*(hub.home / "audit").glob("*.json"), *(hub.home / "logs").glob("*.jsonl")]
        while sorted(str(p.relative_to(hub.home)) for p in here) != in_repo:
            assert time.monotonic() < deadline, "the logs were not fetched from the Hub"
            time.sleep(0.2)
            here = [*(hub.home / "audit").glob("*.json"), *(hub.home / "logs").glob("*.jsonl")]
        rows = list(csv.DictReader(Path(Client(app.url, verbose=False).predict(api_name="/audit")).open()))
        assert [(r["action"], json.loads(r["details"])["case_id"]) for r in rows] == [
            ("submission", receipt["case_id"])]
        assert (hub.home / "logs" / shard.name).read_bytes() == hub.server.read(CASE_REPO, sent)
    assert len(hub.server.commit_titles(CASE_REPO)) == commits  # nothing sent back
