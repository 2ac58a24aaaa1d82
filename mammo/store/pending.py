"""The "label next" pool: images visitors offered for labelling, waiting for a clinician's label.

An image enters only with the visitor's explicit offer. It is kept re-encoded as PNG from its
decoded pixels (no EXIF, no DICOM tag, no file name), named by the SHA-256 of those pixels, with
what the model said about it (uncertainty, score, most likely class, version) and when. Pending
images are not cases: nothing trains on them until a clinician labels one (it then becomes a case
and leaves the pool) or removes it. Files are written whole or not at all.
"""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path
from typing import Any

from ..values import echoed
from ._fs import discard, utc_now, write_new_file
from .cases import StoreError

__all__ = ["PendingPool", "PendingError"]

_SHA = re.compile(r"[0-9a-f]{64}")


class PendingError(StoreError):
    """No such pending image (labelled or removed meanwhile, or a malformed id)."""


def _gone(sha256: str) -> PendingError:
    return PendingError(f"No pending image {sha256[:12]}: it was labelled or removed.")


class PendingPool:
    """Pending images in ``folder``: ``<sha256>.png`` and ``<sha256>.json`` (written second)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def offer(self, sha256: str, png: bytes, about: dict[str, Any]) -> tuple[dict, bool]:
        """Keep one image; its entry, and whether it is new (already offered: its first offer stays)."""
        self._check(sha256)
        with self._lock:
            if (self.folder / f"{sha256}.json").exists():
                return self._entry(sha256), False
            entry = {"id": sha256, "offered_at": utc_now().isoformat(timespec="seconds"), **about}
            try:
                write_new_file(self.folder / f"{sha256}.png", png)
                write_new_file(self.folder / f"{sha256}.json", json.dumps(entry, sort_keys=True).encode())
            except OSError as error:  # a full or read-only disk (a fault probe: an unexpected error)
                discard(self.folder / f"{sha256}.png")
                raise StoreError(f"The image could not be kept for labelling ({error.strerror or error}); "
                                 "nothing was kept.") from error
            return entry, True

    def entries(self) -> list[dict]:
        """Every pending image, the most uncertain first (then the most recently offered)."""
        found = [self._entry(p.stem) for p in self.folder.glob("[!.]*.json")]
        found.sort(key=lambda e: e.get("offered_at") or "", reverse=True)
        return sorted(found, key=lambda e: -(e.get("uncertainty") or 0.0))

    def png(self, sha256: str) -> bytes:
        self._check(sha256)
        path = self.folder / f"{sha256}.png"
        if not (self.folder / f"{sha256}.json").exists() or not path.exists():
            raise _gone(sha256)
        return path.read_bytes()

    def remove(self, sha256: str, missing_ok: bool = False) -> None:
        """Drop a pending image (the entry first, so a half-removed one is never listed); a
        PendingError when it is not pending, unless ``missing_ok``."""
        self._check(sha256)
        with self._lock:
            entry = self.folder / f"{sha256}.json"
            if not entry.exists() and not missing_ok:
                raise _gone(sha256)
            entry.unlink(missing_ok=True)
            (self.folder / f"{sha256}.png").unlink(missing_ok=True)

    def _entry(self, sha256: str) -> dict:
        return json.loads((self.folder / f"{sha256}.json").read_text())

    @staticmethod
    def _check(sha256: str) -> None:
        if not _SHA.fullmatch(sha256 or ""):
            raise PendingError(f"{echoed(sha256)} is not a pending image id (a SHA-256).")
