"""Files made for a visitor to download (a report, a heat map, a CSV): each in a fresh folder, for the
app's event to return. Gradio copies such a file into its own cache before it answers and serves that
copy (kept for MAMMO_KEEP_FILES_HOURS), so the folders left here are removed once they are old."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from pathlib import Path

__all__ = ["DOWNLOADS", "KEPT_S", "write_download"]

DOWNLOADS = Path(tempfile.gettempdir()) / "mammo-downloads"
KEPT_S = 600  # far longer than an event takes to hand its file to Gradio


def write_download(name: str, content: bytes | str, folder: Path = DOWNLOADS, kept_s: float = KEPT_S) -> str:
    """``content`` as a file called ``name`` in a fresh folder under ``folder``; the path, as a gr.File
    output takes it. The folders there older than ``kept_s`` seconds are removed first."""
    folder.mkdir(parents=True, exist_ok=True)
    cutoff = time.time() - kept_s
    for old in folder.iterdir():  # another request's thread may be removing the same ones
        with contextlib.suppress(FileNotFoundError):
            if old.stat().st_mtime < cutoff:
                shutil.rmtree(old, ignore_errors=True)
    path = Path(tempfile.mkdtemp(dir=folder)) / name
    if isinstance(content, str):
        path.write_text(content)
    else:
        path.write_bytes(content)
    return str(path)
