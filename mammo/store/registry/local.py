"""Versions in a local folder: ``<MAMMO_HOME>/models/vN/``.

The files are written to a ``.tmp-<uuid>`` folder, fsynced, then renamed to ``vN`` under an
exclusive ``fcntl`` lock on ``models/.lock``, so a version folder exists complete or not at all
and two processes never get the same N. Leftover ``.tmp-*`` folders (a crash) are ignored and
removed at open.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

from .._fs import fsync_dir
from .base import (
    RENUMBER_ATTEMPTS,
    TMP_PREFIX,
    ModelRegistry,
    RegistryError,
    _copy_synced,
    _version_files,
    _write_synced,
    version_number,
)

__all__ = ["LocalModelRegistry"]


class LocalModelRegistry(ModelRegistry):
    """Versions as folders ``<home>/models/vN/``."""

    @property
    def location(self) -> str:
        return str(self.models_dir)

    def _numbers(self) -> list[int]:
        if not self.models_dir.is_dir():
            return []
        names = (path.name for path in self.models_dir.iterdir() if path.is_dir())
        return [n for n in map(version_number, names) if n is not None]

    def _fetch(self, version: str) -> Path:
        return self.models_dir / version

    def _publish(self, model_dir: Path, config: dict, report: dict | None,
                 only_if_count: int | None) -> str | None:
        with self._lock():
            if only_if_count is not None and len(self._numbers()) != only_if_count:
                return None
            tmp = self.models_dir / f"{TMP_PREFIX}{uuid.uuid4().hex}"
            tmp.mkdir()
            try:
                _copy_synced(model_dir / "model.safetensors", tmp / "model.safetensors")
                return self._rename_as_next(tmp, config, report)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)

    def _rename_as_next(self, tmp: Path, config: dict, report: dict | None) -> str:
        """Number ``tmp`` max+1 and rename it; N+1 again if that name was taken meanwhile."""
        for _ in range(RENUMBER_ATTEMPTS):
            parent = self.latest()
            version = f"v{max(self._numbers(), default=0) + 1}"
            for name, content in _version_files(config, version, parent, report).items():
                _write_synced(tmp / name, content)
            fsync_dir(tmp)
            try:
                os.rename(tmp, self.models_dir / version)  # fails if vN exists and is not empty
            except OSError:
                if (self.models_dir / version).exists():
                    continue
                raise
            fsync_dir(self.models_dir)
            return version
        raise RegistryError(f"could not claim a version number in {self.models_dir}")
