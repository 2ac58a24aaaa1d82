"""How the local case store behaves as it grows: submit, totals, recent cases, one case, training start.

    python scripts/bench_store.py [--sizes 10000 100000] [--out DIR] [--batch 1000] [--later-batches 100]

For each size, fills a fresh local store with that many small synthetic cases (48 x 48 noise images,
labels in turn; appended in batches, as `cases import` does; `--batch 1`: one shard per case, as the
app's Submit tab writes them), then times on the full store: 30 single submits (p50/p95), `counts()`
(the totals the app shows), `recent(20)`, fetching one case's PNG (30 random cases, p50/p95),
opening the store afresh and counting its cases (an app restart), merging the small shards (as every
retrain does first) and opening again, and the start of training, in a new process as a retrain
starts: the served model (the newest packaged version) built to fine-tune, every case read as the retrain does
(`case_examples(store.load())`, images left in the memory-mapped dataset), the training set over all
of them at 512 px (as v2's recipe) and its first shuffled batch of 16; its memory is measured after
its imports, with the model, at its peak to the first batch and 100 batches later (anonymous and
file-backed: pages of the memory-mapped cases, which the kernel drops under memory pressure).
Prints one table with the sizes side by side.
Targets (issue 11): submit p50 at the largest size within 1.5x of the smallest; one case <= 50 ms;
memory to start training <= 1 GB at 100 000.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from torch.utils.data import DataLoader

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mammo.data import PreparedImages, case_examples  # noqa: E402
from mammo.model import build, read_config  # noqa: E402
from mammo.preprocess import PreprocessConfig  # noqa: E402
from mammo.store import CaseStore  # noqa: E402
from mammo.store.registry import packaged_versions  # noqa: E402

__all__ = ["bench", "main"]

LABELS = ["normal", "benign", "malignant"]


def _image(rng: np.random.Generator) -> np.ndarray:
    return rng.random((48, 48), dtype=np.float32)


def _ms(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return 1000 * statistics.median(ordered), 1000 * ordered[int(0.95 * (len(ordered) - 1))]


def bench(size: int, folder: Path, batch: int, later_batches: int = 100) -> dict:
    """Fill a store at ``folder`` with ``size`` cases and time what the app does with it."""
    rng = np.random.default_rng(size)
    store = CaseStore(LABELS, folder)
    started = time.perf_counter()
    for first in range(0, size, batch):
        items = [(_image(rng), LABELS[i % 3], None) for i in range(first, min(size, first + batch))]
        store.append_many(items)
    fill_s = time.perf_counter() - started
    submits = []
    for i in range(30):
        t = time.perf_counter()
        store.append(_image(rng), LABELS[i % 3], None)
        submits.append(time.perf_counter() - t)
    t = time.perf_counter()
    store.counts()
    totals_s = time.perf_counter() - t
    t = time.perf_counter()
    store.recent(20)
    recent_s = time.perf_counter() - t
    ids = [r["case_id"] for r in store.recent(size + 30)]
    fetches = []
    for case_id in random.Random(0).sample(ids, 30):
        t = time.perf_counter()
        store.case_png(case_id)
        fetches.append(time.perf_counter() - t)
    store.close()
    t = time.perf_counter()
    with CaseStore(LABELS, folder) as reopened:  # what a restarted app does first: open, show the totals
        reopened.counts()
    open_s = time.perf_counter() - t
    shards_before = _shards(folder)
    t = time.perf_counter()
    with CaseStore(LABELS, folder) as compacting:  # what every retrain does first
        compacting.compact()
    compact_s = time.perf_counter() - t
    t = time.perf_counter()
    with CaseStore(LABELS, folder) as reopened:
        reopened.counts()
    reopen_s = time.perf_counter() - t
    start = json.loads(subprocess.run([sys.executable, __file__, "--start-training", str(folder),
                                       "--later-batches", str(later_batches)], check=True,
                                      capture_output=True, text=True).stdout)
    return {"cases": size + 30, "fill (s)": fill_s, "submit p50/p95 (ms)": _ms(submits),
            "totals (ms)": 1000 * totals_s, "recent 20 (ms)": 1000 * recent_s,
            "one case p50/p95 (ms)": _ms(fetches), "open the store and count (s)": open_s,
            "shards before / after merging": (shards_before, _shards(folder)),
            "merge small shards (s)": compact_s,
            "open and count after merging (s)": reopen_s, "to first training batch (s)": start["seconds"],
            "new process: RSS after imports (MB)": start["imports_mb"],
            "new process: RSS with the served model (MB)": start["model_mb"],
            "new process: peak RSS to first batch (MB)": start["peak_mb"],
            "new process: file-backed RSS at first batch (MB)": start["file_mb"],
            f"new process: anonymous / file-backed RSS {later_batches} batches on (MB)": start["later"],
            "this process: peak RSS (MB)": _peak_mb()}


def _cell(value: float | tuple | list) -> str:
    """A table cell: counts as they are, times and sizes to one decimal, pairs as ``a / b``."""
    if isinstance(value, (tuple, list)):
        return " / ".join(_cell(v) for v in value)
    return str(value) if isinstance(value, int) else f"{value:.1f}"


def _shards(folder: Path) -> int:
    return len(list((folder / "data").glob("*.parquet")))


def start_training(folder: Path, later_batches: int = 100) -> dict:
    """In a fresh process: build the served model to fine-tune, open the store, read every case as
    the retrain does (images left in the memory-mapped dataset), build the training set at 512 px
    (v2's size) and take its first batch, then ``later_batches`` more (no model step: the memory
    that reading the cases takes as an epoch goes on)."""
    imports_mb = _peak_mb()
    served = packaged_versions()[-1]  # what a fresh app serves
    build(read_config(served)["architecture"], len(LABELS), served)
    model_mb = _peak_mb()
    started = time.perf_counter()
    store = CaseStore(LABELS, folder)
    examples = case_examples(store.load())
    images = PreparedImages(examples, LABELS, PreprocessConfig(image_size=512), (0.5,), (0.5,), min_side=32)
    batches = itertools.chain.from_iterable(itertools.repeat(DataLoader(images, batch_size=16, shuffle=True)))
    next(batches)
    first = {"seconds": time.perf_counter() - started, "peak_mb": _peak_mb(),
             "file_mb": _status_mb("RssFile")}
    for _ in range(later_batches):
        next(batches)
    return {**first, "imports_mb": imports_mb, "model_mb": model_mb,
            "later": (_status_mb("RssAnon"), _status_mb("RssFile"))}


def _status_mb(field: str) -> float:
    """A memory field of /proc/self/status in MB (Linux; NaN elsewhere)."""
    status = Path("/proc/self/status")
    if not status.exists():
        return float("nan")
    line = next(line for line in status.read_text().splitlines() if line.startswith(f"{field}:"))
    return int(line.split()[1]) / 1024


def _peak_mb() -> float:
    """This process's peak resident memory: VmHWM (Linux; getrusage's maximum survives exec, so a
    child started by subprocess would report its parent's peak), else getrusage."""
    peak = _status_mb("VmHWM")
    return peak if peak == peak else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--out", type=Path, help="where the stores go (default: a temp folder)")
    parser.add_argument("--batch", type=int, default=1000, help="cases per appended shard while filling")
    parser.add_argument("--later-batches", type=int, default=100,
                        help="training batches read after the first before memory is measured again")
    parser.add_argument("--start-training", type=Path, metavar="STORE", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.start_training:  # the child process of bench(): one JSON line
        print(json.dumps(start_training(args.start_training, args.later_batches)))
        return 0
    root = args.out or Path(tempfile.mkdtemp(prefix="bench-store-"))
    before = _peak_mb()
    results = [bench(size, root / f"store-{size}", args.batch, args.later_batches)
               for size in sorted(args.sizes)]
    print("| measure | " + " | ".join(f"{r['cases']} cases" for r in results) + " |")
    print("|---|" + "---|" * len(results))
    for key in results[0]:
        if key == "cases":
            continue
        print(f"| {key} | " + " | ".join(_cell(r[key]) for r in results) + " |")
    print(f"(this process: {before:.0f} MB after importing torch and datasets, before any store; each "
          "size's peak includes the smaller ones. The training start runs in a new process per size.)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
