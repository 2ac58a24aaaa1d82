"""Download files: each in its own folder, under the name given; old folders are removed."""

from __future__ import annotations

import os
import time
from pathlib import Path

from mammo.downloads import write_download


def test_each_download_is_its_own_file_and_old_ones_are_removed(tmp_path: Path) -> None:
    first = Path(write_download("mammo-history.csv", "file,label\n", folder=tmp_path, kept_s=60))
    second = Path(write_download("mammo-history.csv", b"\x89PNG", folder=tmp_path, kept_s=60))
    assert first.name == second.name == "mammo-history.csv" and first != second
    assert first.read_text() == "file,label\n" and second.read_bytes() == b"\x89PNG"
    an_hour_ago = time.time() - 3600
    os.utime(first.parent, (an_hour_ago, an_hour_ago))
    third = Path(write_download("mammo-report.pdf", b"%PDF", folder=tmp_path, kept_s=60))
    assert not first.parent.exists()  # older than kept_s: Gradio served its own copy long ago
    assert second.is_file() and third.is_file()
    assert sorted(p.parent for p in tmp_path.rglob("*.*")) == sorted([second.parent, third.parent])
