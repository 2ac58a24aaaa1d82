"""Model registry: numbered versions v1, v2, ... that are never changed once published.

A version holds ``model.safetensors``, ``config.json`` (timm Hub format plus the ``mammo`` block)
and ``README.md`` (the model card). :class:`ModelRegistry` is the interface and what both
backends share (numbering, listing, pulling, the rejected candidates kept under
``<MAMMO_HOME>/models/rejected/<UTC>-<id>/`` with their report); :mod:`.local` and :mod:`.hub`
store the versions.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path

from ...errors import MammoError
from ...model_card import render_model_card
from ...timestamps import time_name
from ...values import echoed
from .._fs import file_lock, fsync_dir, fsync_file, utc_now

__all__ = ["MODEL_FILES", "RENUMBER_ATTEMPTS", "TMP_PREFIX", "ModelRegistry", "NewerVersion", "RegistryError",
           "is_newer", "rollback_of", "version_number"]

MODEL_FILES = ("model.safetensors", "config.json", "README.md")
_VERSION = re.compile(r"v([1-9]\d*)")
TMP_PREFIX = ".tmp-"
RENUMBER_ATTEMPTS = 5  # attempts when another publisher takes the number first


class RegistryError(MammoError, RuntimeError):
    """A registry operation failed; the message says what, where and what to do."""


class NewerVersion(RegistryError):
    """A publish refused because another process published ``latest`` since the caller looked."""

    def __init__(self, latest: str) -> None:
        super().__init__(f"{latest} was published meanwhile, by another process")
        self.latest = latest


def is_newer(version: str | None, than: str | None) -> bool:
    """Whether ``version`` comes after ``than`` (None, or a name that is not ``vN``, comes before v1)."""
    return (version_number(version or "") or 0) > (version_number(than or "") or 0)


def version_number(name: str) -> int | None:
    """N of a version name ``vN`` (N >= 1), else None."""
    match = _VERSION.fullmatch(name)
    return int(match.group(1)) if match else None


def _read_config(folder: Path) -> dict:
    path = folder / "config.json"
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise RegistryError(f"no readable config.json at {path}: {error}") from error
    if not isinstance(config, dict):
        raise RegistryError(f"{path} is not a JSON object")
    return config


def _check_model_dir(model_dir: Path) -> dict:
    """The config of a model folder fit to publish; RegistryError saying what is missing."""
    if not (model_dir / "model.safetensors").is_file():
        raise RegistryError(f"cannot publish {model_dir}: it has no model.safetensors")
    config = _read_config(model_dir)
    missing = [key for key in ("architecture", "num_classes", "pretrained_cfg") if key not in config]
    if missing:
        raise RegistryError(
            f"cannot publish {model_dir}: config.json lacks {missing} (timm Hub format needed)"
        )
    return config


def _json_bytes(data: object) -> bytes:
    return (json.dumps(data, indent=2, default=str) + "\n").encode()


def _version_files(config: dict, version: str, parent: str | None, report: dict | None) -> dict:
    """config.json and README.md contents (bytes) of ``config`` published as ``version``."""
    mammo = dict(config.get("mammo") or {})
    mammo.update(version=version, parent=parent, published_at=utc_now().isoformat())
    if report is not None:
        mammo["report"] = report
    published = {**config, "mammo": mammo}
    return {
        "config.json": _json_bytes(published),
        "README.md": render_model_card(published).encode(),
    }


_FILM_RECORDS = ("image_sha256", "image_fingerprints")  # a version's films, one by one


def rollback_of(config: dict) -> object:
    """The version a rollback's copy copies (its config's ``mammo.report.rollback_of``), else None."""
    return ((config.get("mammo") or {}).get("report") or {}).get("rollback_of")


def _summary(version: str, config: dict) -> dict:
    """One row of :meth:`ModelRegistry.versions`."""
    mammo = config.get("mammo") or {}
    metrics, cv = mammo.get("metrics") or {}, mammo.get("cv")
    keys = ("auc_malignant", "auc_malignant_ci95", "auc_ci_resampled", "accuracy", "balanced_accuracy", "n",
            "sensitivity")
    malignant = ((metrics.get("per_class") or {}).get("malignant") or {}).get("support")
    # what its review flag caught: on held-out films, at a cut-off it records (else no flag to count,
    # or one fitted on those very films)
    counted = (malignant is not None and mammo.get("threshold") is not None
               and (mammo.get("split") or {}).get("name") == "holdout")
    flag = {"per_class": {"malignant": {"support": malignant}}} if counted else {}
    return {
        "version": version,
        "created_at": mammo.get("created_at"),
        "published_at": mammo.get("published_at"),
        "parent": mammo.get("parent"),
        "rollback_of": rollback_of(config),  # a copy of this version, served again
        # with the malignant films' count: how many its review flag caught (the gate compares it)
        "metrics": {**{key: metrics.get(key) for key in keys}, **flag},
        "cv": cv and {key: cv.get(key) for key in (*keys, "n_folds")},  # its cross-validation, if any
        # without the films' hashes and fingerprints (a few thousand lines: read them from config.json)
        "data": {k: v for k, v in (mammo.get("data") or {}).items() if k not in _FILM_RECORDS},
        "split": mammo.get("split"),
    }


def _write_synced(path: Path, content: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(content)
        handle.flush()
        os.fsync(handle.fileno())


def _copy_synced(source: Path, dest: Path) -> None:
    shutil.copyfile(source, dest)
    fsync_file(dest)


class ModelRegistry(ABC):
    """Numbered model versions; the same interface for the local and the Hub backend.

    Args:
        home: the local store root (``settings.home``); ``models/rejected/`` and the lock live
            under ``home/models`` for both backends.
    """

    def __init__(self, home: Path) -> None:
        self.home = Path(home)
        self.models_dir = self.home / "models"
        self.rejected_dir = self.models_dir / "rejected"
        self._packaged: set[tuple[str, str]] = set()  # (version, created_at) of the packaged ones seeded

    @property
    def files_folders(self) -> list[Path]:
        """The folders the files of :meth:`load`'s versions lie in, which a web page may serve as they
        are (any version is for anyone to download): never the store's ``home``, which holds the cases,
        nor the rejected candidates (:attr:`rejected_dir`, under ``models/``: a server must block it)."""
        return [self.models_dir]

    # -- backend ---------------------------------------------------------------------------------
    @property
    @abstractmethod
    def location(self) -> str:
        """Where the versions are, for messages."""

    @abstractmethod
    def _numbers(self) -> list[int]:
        """Every version number in the registry."""

    @abstractmethod
    def _publish(self, model_dir: Path, config: dict, report: dict | None,
                 only_if_count: int | None) -> str | None:
        """Store ``model_dir`` as the next version (None unless the registry holds exactly
        ``only_if_count`` versions, when it is given)."""

    @abstractmethod
    def _fetch(self, version: str) -> Path:
        """A local folder holding ``version``'s files (version known to exist)."""

    def _version_config(self, version: str) -> dict:
        return _read_config(self._fetch(version))

    # -- public interface -----------------------------------------------------------------------
    def publish(self, model_dir: Path, report: dict | None = None, after: str | None = None) -> str:
        """Publish a model folder as the next version ``vN`` (parent: the current latest).

        The published ``config.json`` gets ``mammo.version``, ``mammo.parent``,
        ``mammo.published_at`` and ``mammo.report`` (e.g. the gate decision); ``README.md`` is
        rendered from it. Returns ``"vN"``. With ``after``, only while ``after`` is the latest version
        (checked again as the version is written: under the local lock; on the Hub, in the commit's
        parent): :class:`NewerVersion` when another process has published since, and nothing is
        published.
        """
        model_dir = Path(model_dir)
        config = _check_model_dir(model_dir)
        numbers = self._numbers()
        newest = max(numbers, default=0)
        if after is not None and newest != version_number(after):
            if version_number(after) is None or newest < version_number(after):  # not one it holds
                raise RegistryError(f"cannot publish after {after!r}: the newest version at {self.location} "
                                    f"is {self.latest() or 'none'}")
            raise NewerVersion(f"v{newest}")
        version = self._publish(model_dir, config, report, None if after is None else len(numbers))
        if version is None:  # published by another process between the two checks
            raise NewerVersion(self.latest() or "?")
        return version

    def seed(self, seeds: Path | Sequence[Path]) -> str | None:
        """Publish the packaged versions ``seeds`` (v1, v2, ... in order; folders that exist):
        the i-th only when the registry holds exactly the i-1 packaged ones before it, so a
        registry whose history went its own way (its own v1, a retrained v2) is never given a
        packaged version. The last new version."""
        seeds = [Path(seeds)] if isinstance(seeds, str | Path) else [Path(s) for s in seeds]
        present = [s for s in seeds if (s / "config.json").is_file()]
        self._packaged = {(f"v{i + 1}", (_read_config(seed).get("mammo") or {}).get("created_at"))
                          for i, seed in enumerate(present)}
        published = None
        for count, seed in enumerate(present):
            if len(self._numbers()) != count or not all(
                self._is_seed(f"v{i + 1}", present[i]) for i in range(count)
            ):
                continue
            published = self._publish(seed, _check_model_dir(seed), None, count) or published
        return published

    def _is_seed(self, version: str, seed: Path) -> bool:
        """Whether ``version`` was published from the packaged folder ``seed`` (same creation)."""
        created = (_read_config(seed).get("mammo") or {}).get("created_at")
        published = (self._version_config(version).get("mammo") or {}).get("created_at")
        return created is not None and published == created

    def latest(self) -> str | None:
        """The highest version, or None when the registry is empty."""
        numbers = self._numbers()
        return f"v{max(numbers)}" if numbers else None

    def versions(self) -> list[dict]:
        """v1..vN, each with created_at, published_at, parent, metrics, data, split and ``packaged``
        (whether it is the packaged version of that name seeded here, whose ``published_at`` is when
        this store first opened, not when it was made).

        A version whose config cannot be read is listed with an ``error`` entry, not hidden.
        """
        rows = []
        for number in sorted(self._numbers()):
            version = f"v{number}"
            try:
                row = _summary(version, self._version_config(version))
                rows.append({**row, "packaged": (version, row["created_at"]) in self._packaged})
            except RegistryError as error:
                rows.append({**_summary(version, {}), "error": str(error)})
        return rows

    def load(self, version: str | None = None) -> Path:
        """A local folder with ``version``'s files (default: latest). Do not modify it."""
        return self._fetch(self._resolve(version))

    def config(self, version: str | None = None) -> dict:
        """``version``'s ``config.json`` (default: latest); RegistryError when it cannot be read."""
        return self._version_config(self._resolve(version))

    def pull(self, version: str, out: Path) -> Path:
        """Copy ``version``'s files into ``out`` (created); never overwrites an existing file."""
        source = self.load(version)
        out = Path(out)
        clashes = [name for name in MODEL_FILES if (out / name).exists()]
        if clashes:
            raise RegistryError(f"{out} already holds {clashes}: pull into an empty folder")
        out.mkdir(parents=True, exist_ok=True)
        for name in MODEL_FILES:
            shutil.copyfile(source / name, out / name)
        return out

    def card(self, version: str) -> str:
        """The model card (README.md) of ``version``."""
        return (self.load(version) / "README.md").read_text()

    def record_rejected(self, model_dir: Path, report: dict) -> str:
        """Keep a rejected candidate and its report under ``models/rejected/<id>``; the id."""
        model_dir = Path(model_dir)
        config = _check_model_dir(model_dir)
        now = utc_now()
        rejected_id = time_name(now)
        mammo = {**(config.get("mammo") or {}), "report": report, "rejected_at": now.isoformat()}
        kept = {**config, "mammo": mammo}
        self.rejected_dir.mkdir(parents=True, exist_ok=True)
        with self._lock():
            tmp = self.rejected_dir / f"{TMP_PREFIX}{uuid.uuid4().hex}"
            tmp.mkdir()
            try:
                _copy_synced(model_dir / "model.safetensors", tmp / "model.safetensors")
                _write_synced(tmp / "config.json", _json_bytes(kept))
                _write_synced(tmp / "README.md", render_model_card(kept).encode())
                _write_synced(tmp / "report.json", _json_bytes(report))
                fsync_dir(tmp)
                os.rename(tmp, self.rejected_dir / rejected_id)
                fsync_dir(self.rejected_dir)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        return rejected_id

    def rejected(self) -> list[dict]:
        """Rejected candidates, oldest first: id, rejected_at, report, metrics, path (+ error)."""
        rows = []
        for folder in self._rejected_folders():
            row = {"id": folder.name, "path": str(folder)}
            try:
                mammo = _read_config(folder).get("mammo") or {}
            except RegistryError as error:
                mammo, row["error"] = {}, str(error)
            row.update(
                rejected_at=mammo.get("rejected_at"),
                report=mammo.get("report"),
                metrics=_summary(folder.name, {"mammo": mammo})["metrics"],
            )
            rows.append(row)
        return rows

    def rejected_config(self, rejected_id: str) -> dict:
        """The ``config.json`` of the rejected candidate ``rejected_id`` (as :meth:`rejected` lists it);
        RegistryError when no such candidate is kept or its config cannot be read."""
        kept = {folder.name: folder for folder in self._rejected_folders()}
        if rejected_id not in kept:  # also keeps a caller's id from naming a path
            raise RegistryError(f"no rejected candidate {rejected_id!r} is kept")
        return _read_config(kept[rejected_id])

    # -- helpers ----------------------------------------------------------------------------------
    def _rejected_folders(self) -> list[Path]:
        """The kept rejected candidates' folders, oldest first (not a half-written one)."""
        if not self.rejected_dir.is_dir():
            return []
        return [folder for folder in sorted(self.rejected_dir.iterdir())
                if folder.is_dir() and not folder.name.startswith(TMP_PREFIX)]

    def _resolve(self, version: str | None) -> str:
        numbers = self._numbers()
        if version is None:
            if not numbers:
                raise RegistryError(
                    f"the model registry at {self.location} is empty: no version to load. "
                    "Train one (python -m mammo train ...) and publish it, or ship the packaged "
                    "seed in mammo/weights/v1."
                )
            return f"v{max(numbers)}"
        if version_number(version) not in numbers:
            known = ", ".join(f"v{n}" for n in sorted(numbers)) or "none"
            raise RegistryError(f"No version {echoed(version)} in the model registry (its versions: "
                                f"{known}).")
        return version

    def _lock(self, blocking: bool = True):
        """Exclusive lock on ``models/.lock`` (threads and processes); yields False if busy."""
        self.models_dir.mkdir(parents=True, exist_ok=True)
        return file_lock(self.models_dir / ".lock", blocking)

    def clean(self) -> list[Path]:
        """Remove temp folders left by a crash (skipped while another publisher holds the lock)."""
        removed: list[Path] = []
        with self._lock(blocking=False) as locked:
            if not locked:
                return removed
            for folder in (self.models_dir, self.rejected_dir):
                if folder.is_dir():
                    for tmp in folder.glob(f"{TMP_PREFIX}*"):
                        shutil.rmtree(tmp, ignore_errors=True)
                        removed.append(tmp)
        return removed
