"""The audit log and the prediction log: append-only, intact after a kill, CSV export, Hub mirror."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hub_server import USER

from mammo.config import settings
from mammo.store import (
    AuditLog,
    CaseStore,
    PredictionLog,
    open_audit_log,
    open_case_store,
    open_prediction_log,
    prediction_record,
)

ROOT = Path(__file__).resolve().parents[1]
LABELS = ["normal", "benign", "malignant"]


def kill_while_writing(folder: Path, pattern: str, files: int, loop: str) -> None:
    """Run ``loop`` (Python writing into ``folder``, given as argv[1]) in a process; SIGKILL it once
    ``folder`` holds ``files`` files matching ``pattern``: mid-stream, no clean-up runs."""
    writer = subprocess.Popen([sys.executable, "-c", "import sys\n" + loop, str(folder)], cwd=ROOT,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    deadline = time.monotonic() + 60
    while len(list(folder.glob(pattern))) < files and time.monotonic() < deadline:
        time.sleep(0.01)
    writer.send_signal(signal.SIGKILL)
    writer.wait(30)


def test_events_are_appended_never_rewritten_and_export_as_csv(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit")
    log.record("submission", "alice", case_id="c1", label="benign")
    first = {p.name: p.read_bytes() for p in (tmp_path / "audit").iterdir()}
    log.record("rollback", None, served_again="v1", published_as="v3")
    events = log.events()
    assert [e["action"] for e in events] == ["submission", "rollback"]
    assert events[1]["user"] == "anonymous" and events[0]["details"] == {"case_id": "c1", "label": "benign"}
    now = {p.name: p.read_bytes() for p in (tmp_path / "audit").iterdir()}
    assert all(now[name] == content for name, content in first.items())  # untouched by the append
    rows = list(csv.reader(io.StringIO(log.csv())))
    assert rows[0] == ["at", "action", "user", "details"] and len(rows) == 3
    # the newest events alone (the app's table), oldest first as ever
    assert log.events(last=1) == events[1:] and log.events(last=5) == events and log.events(last=0) == []
    assert rows[1][1:3] == ["submission", "alice"] and json.loads(rows[1][3])["case_id"] == "c1"
    # the newest event of some actions (the Retrain tab's last retrain); an unreadable newer file is passed
    assert log.latest({"submission"}) == events[0] and log.latest({"rollback", "submission"}) == events[1]
    assert log.latest({"promotion"}) is None
    (tmp_path / "audit" / "99991231T000000000000Z-broken00.json").write_text("{not json")
    assert log.latest({"rollback"}) == events[1]


def test_a_kill_while_writing_leaves_every_earlier_event_whole(tmp_path: Path) -> None:
    folder = tmp_path / "audit"
    kill_while_writing(folder, "*.json", 50, "from mammo.store import AuditLog\nlog = AuditLog(sys.argv[1])\n"
                       "for i in range(100000):\n"
                       "    log.record('submission', 'w', case_id=str(i), padding='x' * 20000)\n")
    events = AuditLog(folder).events()
    assert len(events) >= 50 and all(e["action"] == "submission" for e in events)  # none unreadable
    ids = [int(e["details"]["case_id"]) for e in events]
    assert ids == list(range(len(ids)))  # in order, none missing before the kill


@pytest.fixture
def hub_cases(hub_server, tmp_path: Path, monkeypatch):
    """(settings, case store) with the cases in a dataset repo on the test hub."""
    monkeypatch.setenv("MAMMO_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MAMMO_DATASET_REPO", f"{USER}/cases")
    config = settings()
    store = open_case_store(LABELS, config)
    yield config, store
    store.close()


def test_events_reach_the_dataset_repo_with_the_cases(hub_cases, hub_server) -> None:
    config, store = hub_cases
    log = open_audit_log(config, store)
    event = log.record("bulk import", "alice", case_ids=["a", "b"])
    assert store.wait_until_delivered(30)
    on_hub = [p for p in hub_server.files(f"{USER}/cases") if p.startswith("audit/")]
    assert len(on_hub) == 1
    assert json.loads(hub_server.read(f"{USER}/cases", on_hub[0])) == event
    assert log.events() == [event]  # the local record stays
    assert "Add audit event" in hub_server.commit_titles(f"{USER}/cases")[0]


def test_a_new_disk_fetches_the_newest_events_and_the_log_shards_it_lacks(hub_cases, hub_server,
                                                                           tmp_path: Path) -> None:
    config, store = hub_cases
    log, predictions = open_audit_log(config, store), open_prediction_log(config, store)
    events = [log.record("submission", "alice", case_id=f"c{i}") for i in range(3)]
    predictions.append(prediction_record({"model_version": "v2", "image_sha256": "a"}, "alice", 0.2))
    predictions.close()
    assert store.wait_until_delivered(30)
    commits = len(hub_server.commit_titles(f"{USER}/cases"))
    new = tmp_path / "new"  # another disk
    audit, logs = AuditLog(new / "audit"), PredictionLog(new / "logs")
    assert store.fetch_missing("audit", audit.folder, ".json", newest=2) == 2
    assert audit.events() == events[1:]  # the newest two, oldest first
    assert store.fetch_missing("audit", audit.folder, ".json") == 1 and audit.events() == events
    assert store.fetch_missing("audit", audit.folder, ".json") == 0  # nothing it lacks
    assert store.fetch_missing("nothing-here", audit.folder, ".json") == 0
    written: list[Path] = []
    assert store.fetch_missing("logs", logs.folder, ".jsonl", fetched=written.append) == 1
    logs.adopt(written)
    assert [r["image_sha256"] for r in logs.records()] == ["a"]
    # noted as mirrored: a log opened on that disk does not send the fetched shard back
    PredictionLog(new / "logs", mirror=lambda name, content: pytest.fail(f"{name} sent back"))
    assert store.wait_until_delivered(30) and len(hub_server.commit_titles(f"{USER}/cases")) == commits


def test_prediction_records_hold_scores_never_the_image_and_survive_a_kill(tmp_path: Path) -> None:
    folder = tmp_path / "logs"
    kill_while_writing(folder, "*.jsonl", 3, "from mammo.store import PredictionLog, prediction_record\n"
                       "log = PredictionLog(sys.argv[1], shard_size=40)\nfor i in range(100000):\n"
                       "    log.append(prediction_record({'model_version': 'v2', 'malignancy_score': i % 100,"
                       " 'image_sha256': str(i)}, 'w', 0.1))\n")
    shard = sorted(folder.glob("*.jsonl"))[-1]
    with shard.open("ab") as handle:
        handle.write(b'{"at": "2026-11-30T10:00:00.000+00:00", "model_ver')  # a write cut short
    records = PredictionLog(folder).records()
    ids = sorted(int(r["image_sha256"]) for r in records)
    assert len(ids) >= 80 and ids == list(range(len(ids)))  # whole records, none lost before the kill
    assert set(records[0]) == {"at", "model_version", "label", "probabilities", "malignancy_score",
                               "threshold", "above_threshold", "heatmap_method", "uncertainty",
                               "uncertainty_high", "image_sha256", "user", "latency_s"}


def test_closed_prediction_log_shards_reach_the_dataset_repo(hub_cases, hub_server) -> None:
    config, store = hub_cases
    log = open_prediction_log(config, store)
    for i in range(3):
        log.append(prediction_record({"model_version": "v2", "image_sha256": str(i)}, "alice", 0.2))
    assert not [p for p in hub_server.files(f"{USER}/cases") if p.startswith("logs/")]  # still open
    log.close()
    assert store.wait_until_delivered(30)
    shards = [p for p in hub_server.files(f"{USER}/cases") if p.startswith("logs/")]
    assert len(shards) == 1 and shards[0].endswith(".jsonl")
    lines = hub_server.read(f"{USER}/cases", shards[0]).decode().splitlines()
    assert [json.loads(line)["image_sha256"] for line in lines] == ["0", "1", "2"]


def test_a_record_appended_after_the_log_closed_is_queued_at_once(tmp_path: Path) -> None:
    """A prediction finishing while the app stops (after the log closed) is not left in a shard that
    nobody queues: on a Space's next, new disk it would be lost."""
    sent: list[tuple[str, bytes]] = []
    log = PredictionLog(tmp_path, mirror=lambda name, content: sent.append((name, content)))
    log.append(prediction_record({"model_version": "v2", "image_sha256": "a"}, None, 0.1))
    log.close()
    log.append(prediction_record({"model_version": "v2", "image_sha256": "late"}, None, 0.1))
    assert [[json.loads(line)["image_sha256"] for line in content.splitlines()] for _, content in sent] == [
        ["a"], ["late"]]
    assert len({name for name, _ in sent}) == 2  # each in its own shard


def test_a_shard_left_open_by_an_earlier_process_is_queued_when_the_log_next_opens(tmp_path: Path) -> None:
    sent: list[tuple[str, bytes]] = []
    earlier = PredictionLog(tmp_path, mirror=lambda name, content: sent.append((name, content)))
    earlier.append(prediction_record({"model_version": "v2", "image_sha256": "a"}, None, 0.1))
    assert sent == []  # still open; the process then stops without closing the log (killed)
    PredictionLog(tmp_path, mirror=lambda name, content: sent.append((name, content)))
    [(name, content)] = sent
    assert json.loads(content)["image_sha256"] == "a" and (tmp_path / name).read_bytes() == content
    PredictionLog(tmp_path, mirror=lambda name, content: sent.append((name, content)))
    assert len(sent) == 1  # once: the next start queues nothing again
    earlier.append(prediction_record({"model_version": "v2", "image_sha256": "b"}, None, 0.1))  # still open
    PredictionLog(tmp_path, mirror=lambda name, content: sent.append((name, content)))
    assert len(sent) == 2  # it grew since: queued again, whole
    assert [json.loads(line)["image_sha256"] for line in sent[1][1].splitlines()] == ["a", "b"]


def test_the_case_dataset_still_loads_as_cases_beside_audit_and_log_files(tmp_path: Path) -> None:
    """The dataset repo holds audit/ and logs/ too: datasets.load_dataset must read only the cases."""
    import datasets
    import numpy as np

    root = tmp_path / "repo"  # the dataset repo's layout, as a folder
    store = CaseStore(LABELS, root)
    store.append(np.random.default_rng(0).random((48, 48), dtype=np.float32), "benign", None)
    AuditLog(root / "audit").record("submission", "alice", case_id="x")
    log = PredictionLog(root / "logs")
    log.append(prediction_record({"model_version": "v2"}, None, 0.1))
    log.close()
    cases = datasets.load_dataset(str(root), split="train", cache_dir=str(tmp_path / "cache"))
    assert len(cases) == 1 and cases.column_names[:3] == ["image", "label", "case_id"]
