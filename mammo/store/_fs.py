"""Filesystem helpers shared by the stores: UTC clock, fsync, and an exclusive or shared file lock."""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

__all__ = ["utc_now", "utc_iso", "fsync_file", "fsync_dir", "file_lock", "remove_unlocked", "append_lines",
           "write_new_file", "discard"]


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def utc_iso(moment: datetime) -> str:
    """``moment`` (UTC) as stored: ISO 8601 to the microsecond with a "Z" (sorts as text)."""
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def fsync_dir(path: Path) -> None:
    """Make a rename or a new file in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def discard(path: Path) -> None:
    """Remove what a failed write may have left at ``path``, if it can be: on a disk turned read-only
    it cannot, and nothing was left (the error that led here is the one to say, not this one)."""
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass


def write_new_file(path: Path, content: bytes) -> None:
    """Write ``path`` whole or not at all: a hidden temp file, fsynced, renamed into place. A kill
    mid-way leaves only the temp file (a name starting with "."), which readers skip."""
    temp = path.with_name(f".{path.name}.partial")
    try:
        with open(temp, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:  # a full disk: no temp file left behind (a kill still can leave one)
        discard(temp)
        raise
    fsync_dir(path.parent)


@contextmanager
def file_lock(path: Path, blocking: bool = True, *, shared: bool = False) -> Iterator[bool]:
    """Exclusive (or ``shared``) ``fcntl`` lock on ``path`` (a fresh open file each time, so threads
    exclude each other too); yields False instead of waiting when ``blocking`` is False and the lock
    is busy. On a disk that has turned read-only reads go on and a write fails where it is said in
    words (it failed here, as an unexpected error: a fault probe): an existing lock file is opened
    to read, which ``flock`` takes as well; a missing one is not taken (no process that sees the disk
    read-only can change the files it guards; one that has it mounted writable could)."""
    handle = None
    try:
        handle = open(path, "a+b")
    except OSError as error:
        if error.errno not in (errno.EROFS, errno.EACCES):
            raise
        if error.errno == errno.EACCES or path.exists():
            handle = open(path, "rb")
    if handle is None:
        yield True
        return
    with handle:
        try:
            mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
            fcntl.flock(handle, mode | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def remove_unlocked(folders: Iterable[Path]) -> None:
    """Delete each folder whose ``.lock`` no process holds: the process that made it, holding it
    while it lives, has ended (cleanly or killed)."""
    for folder in folders:
        with file_lock(folder / ".lock", blocking=False) as free:
            if free:
                shutil.rmtree(folder, ignore_errors=True)


def append_lines(path: Path, lines: bytes, *, sync: bool = True) -> None:
    """Append whole ``lines`` (each ending in a newline) to ``path``: after a line an earlier append
    left torn (a full disk, a kill), on a line of their own, so that neither glues onto it and both
    are lost to a reader that skips lines it cannot parse."""
    with open(path, "ab+") as handle:  # appends go to the end, wherever it reads
        size = handle.seek(0, os.SEEK_END)
        torn = False
        if size:
            handle.seek(size - 1)
            torn = handle.read(1) != b"\n"
        handle.write((b"\n" if torn else b"") + lines)
        handle.flush()
        if sync:
            os.fsync(handle.fileno())
