"""The prediction log: one record per prediction, for analytics, monitoring and users' history.

A record holds the UTC time, model version, probabilities, malignancy score and review cut-off,
whether it was flagged, the heat-map method, the uncertainty spread, the SHA-256 of the image's
pixels, the user when signed in, and the latency; never the image, its file name or a DICOM tag.

Append-only JSON lines in ``<MAMMO_HOME>/logs/predictions-<UTC date>-<process id>.jsonl``: each
record is one ``write`` of a whole line, fsynced, to a file only this process appends to; a kill
mid-write can leave at most a partial last line, which readers skip, so earlier records are never
lost. A shard is closed at the day's end, after ``shard_size`` records or when the process closes
the log; with the Hub backend for cases a closed shard is queued in the case store's outbox for
``logs/`` in the dataset repo, and its name and size added to ``.mirrored``. Opening the log
queues the shards earlier processes left unqueued or grew after queuing (killed, or stopped
without closing it; a shard another process still appends to is queued as it is, and again,
whole, when that process closes it).
"""

from __future__ import annotations

import functools
import json
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from ..config import Settings
from ._fs import append_lines, utc_now
from .cases import CaseStore

__all__ = ["PredictionLog", "open_prediction_log", "prediction_record"]

Mirror = Callable[[str, bytes], None]
_MIRRORED = ".mirrored"  # "<shard name> <bytes>" of each shard queued for the Hub, one a line


def prediction_record(details: Mapping[str, Any], user: str | None, latency_s: float) -> dict:
    """The log record of one prediction from its ``Prediction.details()`` (nothing else is kept)."""
    uncertainty = details.get("uncertainty") or {}
    return {
        "at": utc_now().isoformat(timespec="milliseconds"),
        "model_version": details.get("model_version"),
        "label": details.get("label"),
        "probabilities": details.get("probabilities"),
        "malignancy_score": details.get("malignancy_score"),
        "threshold": details.get("threshold"),
        "above_threshold": details.get("above_threshold"),
        "heatmap_method": details.get("heatmap_method"),
        "uncertainty": uncertainty.get("spread"),
        "uncertainty_high": uncertainty.get("high"),
        "image_sha256": details.get("image_sha256"),
        "user": user,
        "latency_s": round(latency_s, 4),
    }


class PredictionLog:
    """Append-only prediction records in ``folder`` (see the module docstring).

    Args:
        folder: where the shards are (created).
        mirror: called with each closed shard's name and bytes (the Hub outbox), or None.
        shard_size: records per shard before it is closed.
    """

    def __init__(self, folder: Path, mirror: Mirror | None = None, shard_size: int = 1000) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.mirror, self.shard_size = mirror, shard_size
        self._process = uuid.uuid4().hex[:8]
        self._lock = threading.Lock()
        self._shard: Path | None = None
        self._count = 0
        self._part = 0
        self._closed = False  # closed: a late record (a prediction finishing at a stop) is queued at once
        if mirror is not None:
            with self._lock:
                sent = self._mirrored()
                for path in sorted(self.folder.glob("predictions-*.jsonl")):
                    if sent.get(path.name) != path.stat().st_size:
                        self._send(path)

    def append(self, record: Mapping[str, Any]) -> None:
        line = (json.dumps(record, sort_keys=True, default=str) + "\n").encode()
        day = str(record["at"])[:10].replace("-", "")
        with self._lock:
            if self._shard is not None and (self._count >= self.shard_size or day not in self._shard.name):
                self._close()
            if self._shard is None:
                self._part += 1
                self._shard = self.folder / f"predictions-{day}-{self._process}-{self._part:04d}.jsonl"
            append_lines(self._shard, line)  # written whole, after any line a full disk tore
            self._count += 1
            if self._closed:
                self._close()

    def close(self) -> None:
        """Close the current shard (queued for the Hub when mirrored); a record appended after this
        is queued in a shard of its own at once (the process is stopping)."""
        with self._lock:
            self._close()
            self._closed = True

    def _close(self) -> None:
        if self._shard is not None and self.mirror is not None and self._shard.exists():
            self._send(self._shard)
        self._shard, self._count = None, 0

    def _send(self, shard: Path) -> None:
        """Queue ``shard`` for the Hub and note it, with its size, in ``.mirrored`` (under the lock)."""
        assert self.mirror is not None
        content = shard.read_bytes()
        self.mirror(shard.name, content)
        self._note_mirrored([(shard.name, len(content))])

    def adopt(self, shards: Iterable[Path]) -> None:
        """Note shards fetched from the Hub (another disk's, or this one's before it was new) as
        mirrored: they are there already and are not sent back."""
        with self._lock:
            self._note_mirrored((shard.name, shard.stat().st_size) for shard in shards)

    def _note_mirrored(self, shards: Iterable[tuple[str, int]]) -> None:
        """Append (shard name, size) lines to ``.mirrored``, as :meth:`_mirrored` reads them (called
        under the lock)."""
        with open(self.folder / _MIRRORED, "a", encoding="utf-8") as handle:
            handle.writelines(f"{name} {size}\n" for name, size in shards)

    def _mirrored(self) -> dict[str, int]:
        """Shard name -> the size it was last queued at."""
        path = self.folder / _MIRRORED
        lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
        return {parts[0]: int(parts[1]) for line in lines if len(parts := line.split()) == 2}

    def records(self) -> list[dict]:
        """Every record of every shard, oldest first; partial lines (a killed write) are skipped."""
        out = []
        for path in sorted(self.folder.glob("predictions-*.jsonl")):
            for line in path.read_bytes().splitlines():
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue
        return sorted(out, key=lambda r: r.get("at") or "")


def open_prediction_log(settings: Settings, cases: CaseStore) -> PredictionLog:
    """The prediction log (``<MAMMO_HOME>/logs``), its closed shards mirrored to ``logs/`` in the
    dataset repo when the cases are on the Hub."""
    mirror = functools.partial(cases.outbox.queue_file, "logs") if cases.outbox else None
    return PredictionLog(settings.home / "logs", mirror)
