"""Concurrency end to end: 50 parallel submissions, and predictions while a retrain runs."""

from __future__ import annotations

import csv
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from app_server import AppProcess
from gradio_client import Client, handle_file
from helpers import LABELS, RETRAIN, Images, load_cases, run_script, running_job_desc

from mammo.store import CaseStore

N_SUBMITS = 50


@pytest.fixture(scope="module")
def app(small_mias: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppProcess]:
    root = tmp_path_factory.mktemp("concurrency")
    env = {"MAMMO_BASE_DATA": str(small_mias), "HF_HOME": str(root / "hf")}
    with AppProcess(root / "home", env=env) as process:
        yield process


def test_50_parallel_submits_store_50_distinct_cases(app: AppProcess, tmp_path: Path) -> None:
    images = Images(tmp_path / "images", seed=3)
    paths = [images.next() for _ in range(N_SUBMITS)]
    labels = [LABELS[i % 3] for i in range(N_SUBMITS)]

    def submit(path: Path, label: str) -> dict:
        # one client per user, as 50 clinicians would be: one gradio_client Client shares a single
        # event stream between its jobs and, on a loaded machine, can cancel a job it just submitted
        # when that stream closes under it (a race in gradio_client 2.7, seen under a parallel test run).
        # Joining the queue is a POST with httpx's 5 s default timeout, which 50 joins at once on a
        # slowed 2-core machine passed (a CI run 2.5x slower throughout): the browser waits longer
        client = Client(app.url, verbose=False, download_files=False, httpx_kwargs={"timeout": 60})
        return client.submit(handle_file(path), label, api_name="/submit_case").result(timeout=120)

    with ThreadPoolExecutor(max_workers=N_SUBMITS) as users:
        receipts = list(users.map(submit, paths, labels))

    ids = [r["case_id"] for r in receipts]
    assert len(set(ids)) == N_SUBMITS
    assert [r["label"] for r in receipts] == labels and {r["status"] for r in receipts} == {"stored"}
    totals = sorted(r["total_cases"] for r in receipts)
    # each receipt counts its own case and every case stored before it; the last one counts all
    assert all(total >= rank for rank, total in enumerate(totals, start=1))
    assert totals[-1] == N_SUBMITS
    assert CaseStore(LABELS, app.home / "cases").counts() == dict(Counter(labels))
    loaded = load_cases(app.home / "cases", tmp_path / "cache")
    assert sorted(loaded["case_id"]) == sorted(ids)
    assert len(list((app.home / "cases" / "data").glob("*.parquet"))) == N_SUBMITS


def test_predict_keeps_answering_during_a_retrain(app: AppProcess, small_mias: Path) -> None:
    client = Client(app.url, verbose=False, download_files=False)
    image = handle_file(str(next((small_mias / "malignant").glob("*.png"))))
    job = client.submit(1, *RETRAIN[1:], api_name="/retrain")  # one epoch: longer than 4 predictions
    deadline = time.monotonic() + 60
    while "batch" not in running_job_desc(job) and not job.done() and time.monotonic() < deadline:
        time.sleep(0.05)  # wait until it is training
    assert not job.done(), "the retrain ended before any prediction was tried"
    for _ in range(4):
        started = time.monotonic()
        label, _, details = client.predict(image, api_name="/predict")
        assert time.monotonic() - started < 5, "a prediction waited for the retrain"
        assert details["label"] == label["label"]
        assert sum(details["probabilities"].values()) == pytest.approx(1)
    assert not job.done(), "the retrain finished before the predictions did: nothing was overlapped"
    summary = job.result(timeout=120)
    assert isinstance(summary["promoted"], bool) and summary["candidate_metrics"]["n"] > 0


def test_loadtest_script_runs_clean(tmp_path: Path) -> None:
    """scripts/loadtest.py end to end, short: its own app, Locust through the HTTP API, the report."""
    done = run_script("scripts/loadtest.py", "--users", "3", "--seconds", "5", "--out", str(tmp_path / "out"),
                      timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    with (tmp_path / "out" / "locust_stats.csv").open(newline="") as handle:
        rows = {row["Name"]: row for row in csv.DictReader(handle)}
    assert int(rows["Aggregated"]["Request Count"]) > 0 and rows["Aggregated"]["Failure Count"] == "0"
    assert "Aggregated" in done.stdout and "p95 ms" in done.stdout and "cores" in done.stdout
