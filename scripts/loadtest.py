"""Bounded headless load test: start the app on 127.0.0.1 with a temporary MAMMO_HOME, run Locust.

Usage (``make loadtest`` runs the first line)::

    python scripts/loadtest.py --users 20 --seconds 60
    python scripts/loadtest.py --users 5 --seconds 20 --out loadtest-results

The app is ``python app.py`` with its packaged model, a fresh local store (no Hub: the Hub
variables are removed from its environment) and one torch thread. Locust runs
``scripts/locustfile.py`` headless for ``--seconds`` (users are spawned within that time), then
the app is stopped and the script prints, per request kind: requests, failures, requests per
second, p50/p95/p99/max latency (ms, end to end: upload + call + result), the failure messages
and the machine. Exit status: 0 when every request succeeded, 1 when any failed, 2 when the app
or Locust could not run. Only 127.0.0.1 is ever contacted.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

__all__ = ["main", "machine", "summary_rows"]

ROOT = Path(__file__).resolve().parents[1]
LOCUSTFILE = Path(__file__).with_name("locustfile.py")
# a local store only (never a real Hub), everyone may submit, no retraining data
DROPPED_VARIABLES = ("MAMMO_DATASET_REPO", "MAMMO_MODEL_REPO", "HF_TOKEN", "HF_ENDPOINT", "MAMMO_SUBMITTERS",
                     "MAMMO_BASE_DATA")
START_TIMEOUT_S = 240


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_app(work: Path, port: int, script: str = "app.py") -> subprocess.Popen:
    """``python <script>`` (the app) on 127.0.0.1:port with MAMMO_HOME under ``work``; returns once
    it answers."""
    env = {key: value for key, value in os.environ.items() if key not in DROPPED_VARIABLES}
    env.update(MAMMO_HOME=str(work / "home"), GRADIO_SERVER_NAME="127.0.0.1", GRADIO_SERVER_PORT=str(port),
               GRADIO_ANALYTICS_ENABLED="False", GRADIO_TEMP_DIR=str(work / "gradio"),
               HF_HOME=str(work / "hf"), OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    with (work / "app.log").open("wb") as log:
        app = subprocess.Popen([sys.executable, script], cwd=ROOT, env=env, stdout=log,
                               stderr=subprocess.STDOUT)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if app.poll() is not None:
            raise RuntimeError(f"the app exited with {app.returncode}; see {work / 'app.log'}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/gradio_api/info", timeout=2):
                return app
        except (urllib.error.URLError, OSError):
            time.sleep(0.5)
    stop_app(app)
    raise RuntimeError(f"the app did not answer within {START_TIMEOUT_S} s; see {work / 'app.log'}")


def stop_app(app: subprocess.Popen) -> None:
    if app.poll() is None:
        app.send_signal(signal.SIGTERM)
        try:
            app.wait(30)
        except subprocess.TimeoutExpired:
            app.kill()
            app.wait(30)


def run_locust(host: str, users: int, spawn_rate: float, seconds: int, prefix: Path) -> int:
    """Locust headless against ``host``; its output goes to ``<prefix>.log``; its exit status."""
    command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "-u", str(users),
               "-r", str(spawn_rate), "-t", f"{seconds}s", "--host", host, "--csv", str(prefix),
               "--only-summary", "--stop-timeout", "30", "--loglevel", "WARNING"]
    with open(f"{prefix}.log", "wb") as log:
        return subprocess.run(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                              timeout=seconds + 180).returncode


def summary_rows(stats_csv: Path) -> list[dict]:
    """Per request name (and the aggregate): requests, failures, rps, p50/p95/p99/max in ms."""
    rows = []
    with stats_csv.open(newline="") as handle:
        for row in csv.DictReader(handle):
            rows.append({
                "name": row["Name"], "requests": int(row["Request Count"]),
                "failures": int(row["Failure Count"]), "rps": float(row["Requests/s"]),
                "p50": row["50%"], "p95": row["95%"], "p99": row["99%"], "max": row["Max Response Time"],
            })
    return rows


def failure_rows(failures_csv: Path) -> list[tuple[str, str, int]]:
    if not failures_csv.exists():
        return []
    with failures_csv.open(newline="") as handle:
        return [(r["Name"], r["Error"], int(r["Occurrences"])) for r in csv.DictReader(handle)]


def machine() -> dict:
    """CPU model, cores, memory, OS and Python of this machine (the app and Locust share it)."""
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    models = [line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")]
    meminfo = Path("/proc/meminfo").read_text() if Path("/proc/meminfo").exists() else ""
    mem = next((int(line.split()[1]) for line in meminfo.splitlines() if line.startswith("MemTotal")), 0)
    return {
        "cpu": models[0] if models else platform.processor() or "unknown",
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_gib": round(mem / 1024**2, 1),
        "os": platform.platform(), "python": platform.python_version(),
    }


def served_model(home: Path) -> str:
    config = json.loads((home / "models" / "v1" / "config.json").read_text())
    size = config.get("pretrained_cfg", {}).get("input_size", ["?", "?", "?"])[-1]
    return f"{config.get('architecture')} at {size} px (v1), Grad-CAM on every prediction"


def report(rows: list[dict], failures: list[tuple[str, str, int]], args: argparse.Namespace,
           model: str) -> str:
    lines = [f"mammo load test: {args.users} users (spawn rate {args.spawn_rate:g}/s), {args.seconds} s, "
             "app and Locust on 127.0.0.1 of one machine",
             f"model: {model}; app: one torch thread, /predict concurrency 2, /submit_case 4",
             "each user waits 0.5-2 s between its requests (closed loop: req/s is the load offered at "
             "this user count, the capacity only once latencies climb)",
             "", f"{'request':<18} {'count':>7} {'failed':>7} {'req/s':>7} {'p50 ms':>8} {'p95 ms':>8} "
             f"{'p99 ms':>8} {'max ms':>8}"]
    for r in rows:
        lines.append(f"{r['name']:<18} {r['requests']:>7} {r['failures']:>7} {r['rps']:>7.2f} {r['p50']:>8} "
                     f"{r['p95']:>8} {r['p99']:>8} {float(r['max']):>8.0f}")
    if failures:
        lines += ["", "failures:"] + [f"  {count} x {name}: {error[:300]}" for name, error, count in failures]
    info = machine()
    lines += ["", f"machine: {info['cpu']}, {info['cores']} cores, {info['memory_gib']} GiB, {info['os']}, "
                  f"Python {info['python']}"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=20, help="simulated users (default 20)")
    parser.add_argument("--seconds", type=int, default=60, help="run time, spawning included (default 60)")
    parser.add_argument("--spawn-rate", type=float, default=None, help="users started per second "
                        "(default: all within the first quarter of the run)")
    parser.add_argument("--out", type=Path, default=None, help="keep the CSVs and logs in this folder")
    args = parser.parse_args(argv)
    if args.users < 1 or args.seconds < 5:
        parser.error("--users must be at least 1 and --seconds at least 5")
    args.spawn_rate = args.spawn_rate or max(1.0, args.users / (args.seconds / 4))

    work = Path(tempfile.mkdtemp(prefix="mammo-loadtest-"))
    try:
        port = free_port()
        print(f"starting the app on 127.0.0.1:{port} (MAMMO_HOME={work / 'home'}) ...", flush=True)
        try:
            app = start_app(work, port)
        except RuntimeError as error:
            log = (work / "app.log").read_text(errors="replace")[-3000:]
            print(f"error: {error}\n{log}", file=sys.stderr)
            return 2
        try:
            print(f"running Locust: {args.users} users for {args.seconds} s ...", flush=True)
            status = run_locust(f"http://127.0.0.1:{port}", args.users, args.spawn_rate, args.seconds,
                                work / "locust")
        finally:
            stop_app(app)
        stats = work / "locust_stats.csv"
        if not stats.exists():
            print(f"error: Locust wrote no statistics (exit {status}):\n"
                  f"{(work / 'locust.log').read_text(errors='replace')[-3000:]}", file=sys.stderr)
            return 2
        rows, failures = summary_rows(stats), failure_rows(work / "locust_failures.csv")
        print(report(rows, failures, args, served_model(work / "home")))
        if args.out is not None:
            shutil.copytree(work, args.out, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("home", "gradio", "hf"))
            print(f"\nCSVs and logs kept in {args.out}")
        return 1 if any(r["failures"] for r in rows) else 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
