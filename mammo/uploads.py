"""The app's upload folder: one of its own for each run, inside Gradio's, held locked while the run
lives. Gradio deletes only the files of the run that made them, so a run killed before it could
(a crash, the OOM killer, kill -9) left its visitors' uploads, a DICOM's tags and all, for good;
the next start deletes every earlier run's folder that no live process holds."""

from __future__ import annotations

import os
import tempfile
from contextlib import ExitStack
from pathlib import Path

from .store._fs import file_lock, remove_unlocked

__all__ = ["RUN_PREFIX", "own_upload_folder"]

RUN_PREFIX = "mammo-run-"

_held = ExitStack()  # this process's folder locks: released when it ends, however it ends


def own_upload_folder(base: Path) -> Path:
    """A new folder for this run under ``base``, locked until the process ends; first, the folders of
    earlier runs that ended are deleted (a live run's is kept: two apps may share ``base``)."""
    base.mkdir(parents=True, exist_ok=True)
    remove_unlocked(base.glob(f"{RUN_PREFIX}*"))
    # locked before it takes its name: a start beside this one never finds it unlocked
    starting = Path(tempfile.mkdtemp(prefix=".starting-", dir=base))
    _held.enter_context(file_lock(starting / ".lock"))
    folder = base / f"{RUN_PREFIX}{os.getpid()}-{starting.name.removeprefix('.starting-')}"
    starting.rename(folder)
    return folder
