"""ONNX exports of model backbones kept on disk, keyed by what they were exported from.

Exporting a backbone takes about a second at each model load (0.9 s for v3 in a new process, the
``onnx`` import included). The export of the same weights at the same input size by the same
torch is the same bytes, so it is kept in a folder (:func:`mammo.config.cache_dir`) and read back
by the next load: an app restart, the same version in another process, a rollback. The key hashes
the model's structure and every weight, so a changed model never finds an old export; a copy that
fails to load or gives other features than PyTorch is dropped by the caller and exported anew.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import logging
import os
import tempfile
import time
from importlib import metadata
from pathlib import Path

import torch
from torch import nn

__all__ = ["ExportCache", "export_key", "KEEP"]

log = logging.getLogger(__name__)

KEEP = 16  # exports kept (the newest used): about 14 MB each for v2 and v3
_FORMAT = "backbone-1"  # what an export holds (forward_features, its input and output names)


def export_key(model: nn.Module, batch: torch.Tensor, opset: int) -> str:
    """The hash of what an export of ``model``'s backbone on inputs like ``batch`` depends on: the
    export format, the versions of torch, timm and onnx, the opset, the input's shape and type, the
    model's class and the source of its ``forward_features``, the module tree, every parameter and
    buffer. (A plain attribute that ``forward_features`` reads is not in it: the check at every load,
    against PyTorch, is what catches an export that does not answer as the model does.)"""
    kind = type(model)
    try:
        source = inspect.getsource(kind.forward_features)
    except (OSError, TypeError, AttributeError):  # no source to read (a frozen or built-in class)
        source = ""
    versions = "|".join(_version(name) for name in ("torch", "timm", "onnx"))
    digest = hashlib.sha256(
        f"{_FORMAT}|{versions}|{opset}|{tuple(batch.shape[1:])}|{batch.dtype}|"
        f"{kind.__module__}.{kind.__qualname__}|{source}|{model!r}".encode())
    for name, tensor in model.state_dict().items():
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}".encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "none"


class ExportCache:
    """A folder of exports, ``<key>.onnx``; the ``keep`` most recently used stay.

    Every failure to read or write it is logged and treated as a miss: the cache can only save time.
    What it holds is trusted as far as the check at every load goes (the caller compares the export
    with PyTorch on one prepared input): the folder is made readable by its owner only.

    Args:
        folder: where the exports go (created on the first write).
        keep: how many exports stay after a write.
    """

    def __init__(self, folder: Path, keep: int = KEEP) -> None:
        self.folder, self.keep = folder, keep

    def path(self, key: str) -> Path:
        return self.folder / f"{key}.onnx"

    def read(self, key: str) -> bytes | None:
        """The export under ``key`` (marked as just used), or None."""
        path = self.path(key)
        try:
            exported = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as error:
            log.warning("ONNX export cache not read (%s)", error)
            return None
        with contextlib.suppress(OSError):  # a folder it may read but not write: still used
            os.utime(path)
        return exported

    def write(self, key: str, exported: bytes) -> None:
        """Store ``exported`` under ``key`` (whole or not at all), then drop the least recently used."""
        part = None
        try:
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.folder, suffix=".part", delete=False) as part:
                part.write(exported)
            os.replace(part.name, self.path(key))
        except OSError as error:
            log.warning("ONNX export not cached (%s)", error)
            if part is not None:
                Path(part.name).unlink(missing_ok=True)
            return
        self._evict()

    def drop(self, key: str) -> None:
        """Remove the export under ``key`` (one that did not load or answer as PyTorch does)."""
        try:
            self.path(key).unlink(missing_ok=True)
        except OSError as error:
            log.warning("ONNX export cache: a bad copy not removed (%s)", error)

    def _evict(self) -> None:
        """Drop all but the ``keep`` most recently used exports, and parts an ended write left (a
        process killed between writing and renaming), once an hour old."""
        try:
            exports = sorted(self.folder.glob("*.onnx"), key=lambda p: p.stat().st_mtime, reverse=True)
            stale = [p for p in self.folder.glob("*.part") if time.time() - p.stat().st_mtime > 3600]
            for old in [*exports[self.keep:], *stale]:
                old.unlink(missing_ok=True)
        except OSError as error:  # another process evicting at the same time
            log.debug("ONNX export cache not trimmed (%s)", error)
