"""Model registry: numbered versions v1, v2, ... in a local folder or a Hugging Face model repo.

A version holds ``model.safetensors``, ``config.json`` (timm Hub format plus the ``mammo`` block)
and ``README.md`` (the model card). Publishing never changes an existing version:

- Local (default): ``<MAMMO_HOME>/models/vN/``. The files are written to a ``.tmp-<uuid>``
  folder, fsynced, then renamed to ``vN`` under an exclusive ``fcntl`` lock on
  ``models/.lock``, so a version folder exists complete or not at all and two processes never
  get the same N. Leftover ``.tmp-*`` folders (a crash) are ignored and removed at open.
- Hub (``MAMMO_MODEL_REPO`` + ``HF_TOKEN``): one commit on ``main`` per version (the three
  files), made with ``parent_commit`` = the head it was numbered from (a concurrent publisher
  makes it fail with 412 and it is renumbered), then tag ``vN`` on that commit. ``main`` is
  always the latest version, so ``timm.create_model("hf-hub:<repo>", pretrained=True)`` loads
  it. Window: between the commit and the tag, ``main`` already serves vN while ``latest()`` and
  ``versions()`` (from tags) do not list it yet. If tagging fails, a clear RegistryError names
  the commit, and the next publish or ``open_registry`` tags it (an untagged version commit at
  the head of ``main`` is always tagged before anything else is published).

Rejected candidates (promotion gate said no) are kept locally for both backends under
``<MAMMO_HOME>/models/rejected/<UTC>-<id>/`` with their report.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from huggingface_hub import CommitOperationAdd, HfApi, hf_hub_download, snapshot_download
from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, RevisionNotFoundError

from .. import config as mammo_config
from ..errors import MammoError
from ..model_card import render_model_card
from ._fs import file_lock, fsync_dir, fsync_file, utc_now
from ._hub import HubError, HubUnavailable, check_reachable, ensure_repo, hub_api, hub_errors

__all__ = [
    "MODEL_FILES",
    "RegistryError",
    "ModelRegistry",
    "LocalModelRegistry",
    "HubModelRegistry",
    "open_registry",
    "packaged_versions",
    "version_number",
]

MODEL_FILES = ("model.safetensors", "config.json", "README.md")
_VERSION = re.compile(r"v([1-9]\d*)")
_TMP_PREFIX = ".tmp-"
_HUB_ATTEMPTS = 5  # renumbering attempts when other publishers commit first
_TAG_DELAYS_S = (0.5, 1.0, 2.0)  # backoff between tag attempts after the commit

log = logging.getLogger(__name__)


class RegistryError(MammoError, RuntimeError):
    """A registry operation failed; the message says what, where and what to do."""


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


def _summary(version: str, config: dict) -> dict:
    """One row of :meth:`ModelRegistry.versions`."""
    mammo = config.get("mammo") or {}
    metrics = mammo.get("metrics") or {}
    keys = ("auc_malignant", "auc_malignant_ci95", "accuracy", "balanced_accuracy", "n")
    return {
        "version": version,
        "created_at": mammo.get("created_at"),
        "published_at": mammo.get("published_at"),
        "parent": mammo.get("parent"),
        "metrics": {key: metrics.get(key) for key in keys},
        "data": {k: v for k, v in (mammo.get("data") or {}).items() if k != "image_sha256"},
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
    def publish(self, model_dir: Path, report: dict | None = None) -> str:
        """Publish a model folder as the next version ``vN`` (parent: the current latest).

        The published ``config.json`` gets ``mammo.version``, ``mammo.parent``,
        ``mammo.published_at`` and ``mammo.report`` (e.g. the gate decision); ``README.md`` is
        rendered from it. Returns ``"vN"``.
        """
        model_dir = Path(model_dir)
        version = self._publish(model_dir, _check_model_dir(model_dir), report, None)
        assert version is not None
        return version

    def seed(self, seeds: Path | Sequence[Path]) -> str | None:
        """Publish the packaged versions ``seeds`` (v1, v2, ... in order; folders that exist):
        the i-th only when the registry holds exactly the i-1 packaged ones before it, so a
        registry whose history went its own way (its own v1, a retrained v2) is never given a
        packaged version. The last new version."""
        seeds = [Path(seeds)] if isinstance(seeds, str | Path) else [Path(s) for s in seeds]
        present = [s for s in seeds if (s / "config.json").is_file()]
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
        """v1..vN, each with created_at, published_at, parent, metrics, data and split.

        A version whose config cannot be read is listed with an ``error`` entry, not hidden.
        """
        rows = []
        for number in sorted(self._numbers()):
            version = f"v{number}"
            try:
                rows.append(_summary(version, self._version_config(version)))
            except RegistryError as error:
                rows.append({**_summary(version, {}), "error": str(error)})
        return rows

    def load(self, version: str | None = None) -> Path:
        """A local folder with ``version``'s files (default: latest). Do not modify it."""
        return self._fetch(self._resolve(version))

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
        rejected_id = f"{now:%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:8]}"
        mammo = {**(config.get("mammo") or {}), "report": report, "rejected_at": now.isoformat()}
        kept = {**config, "mammo": mammo}
        self.rejected_dir.mkdir(parents=True, exist_ok=True)
        with self._lock():
            tmp = self.rejected_dir / f"{_TMP_PREFIX}{uuid.uuid4().hex}"
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
        if not self.rejected_dir.is_dir():
            return []
        rows = []
        for folder in sorted(self.rejected_dir.iterdir()):
            if folder.name.startswith(_TMP_PREFIX) or not folder.is_dir():
                continue
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

    # -- helpers ----------------------------------------------------------------------------------
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
            raise RegistryError(f"no version {version!r} at {self.location} (versions: {known})")
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
                    for tmp in folder.glob(f"{_TMP_PREFIX}*"):
                        shutil.rmtree(tmp, ignore_errors=True)
                        removed.append(tmp)
        return removed


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
            tmp = self.models_dir / f"{_TMP_PREFIX}{uuid.uuid4().hex}"
            tmp.mkdir()
            try:
                _copy_synced(model_dir / "model.safetensors", tmp / "model.safetensors")
                return self._rename_as_next(tmp, config, report)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)

    def _rename_as_next(self, tmp: Path, config: dict, report: dict | None) -> str:
        """Number ``tmp`` max+1 and rename it; N+1 again if that name was taken meanwhile."""
        for _ in range(_HUB_ATTEMPTS):
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


class HubModelRegistry(ModelRegistry):
    """Versions as tagged commits ``vN`` in a Hugging Face model repo; ``main`` is the latest.

    Downloads are cached under ``<home>/cache/hub`` (a cached version loads while the Hub is
    down).
    """

    def __init__(self, home: Path, api: HfApi, repo_id: str) -> None:
        super().__init__(home)
        self.api = api
        self.repo_id = repo_id
        self.cache_dir = self.home / "cache" / "hub"
        self._tag_commits: dict[str, str] = {}  # last seen {vN: commit}; tags are never moved

    @property
    def location(self) -> str:
        return f"{self.api.endpoint}/{self.repo_id}"

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """Hub and network errors as RegistryError with a plain message."""
        try:
            with hub_errors(self.api.endpoint, f"{action} ({self.repo_id})"):
                yield
        except HubError as error:
            raise RegistryError(str(error)) from error

    def _download(self, filename: str, revision: str) -> Path:
        return Path(
            hf_hub_download(
                self.repo_id,
                filename,
                revision=revision,
                cache_dir=self.cache_dir,
                token=self.api.token,
                endpoint=self.api.endpoint,
            )
        )

    @property
    def _refs_file(self) -> Path:
        return self.cache_dir / "refs.json"

    def _refs(self) -> tuple[str, dict[str, str]]:
        """Head of ``main`` and the version tags ``{vN: commit}`` (the last ones seen, from the
        local cache, while the Hub is unreachable)."""
        try:
            with hub_errors(self.api.endpoint, f"listing the model versions ({self.repo_id})"):
                refs = self.api.list_repo_refs(self.repo_id, repo_type="model")
        except HubUnavailable as error:
            return self._cached_refs(error)
        except HubError as error:
            raise RegistryError(str(error)) from error
        heads = {branch.name: branch.target_commit for branch in refs.branches}
        if "main" not in heads:
            raise RegistryError(f"{self.location} has no main branch")
        tags = {t.name: t.target_commit for t in refs.tags if version_number(t.name)}
        self._tag_commits = dict(tags)
        self._refs_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._refs_file.with_name(f".refs-{uuid.uuid4().hex}.tmp")  # unique: threads publish too
        tmp.write_text(json.dumps({"main": heads["main"], "tags": tags, "saved_at": utc_now().isoformat()}))
        os.replace(tmp, self._refs_file)
        return heads["main"], tags

    def _cached_refs(self, error: HubUnavailable) -> tuple[str, dict[str, str]]:
        try:
            cached = json.loads(self._refs_file.read_text())
        except (OSError, ValueError):
            raise RegistryError(f"{error} No model versions are cached locally.") from error
        log.warning("%s Using the model versions cached at %s.", error, cached["saved_at"])
        self._tag_commits = dict(cached["tags"])
        return cached["main"], dict(cached["tags"])

    def _parse(self, raw: bytes, where: str) -> dict:
        try:
            config = json.loads(raw)
        except ValueError as error:
            raise RegistryError(f"unreadable config.json at {where} of {self.location}: {error}") from error
        if not isinstance(config, dict):
            raise RegistryError(f"config.json at {where} of {self.location} is not a JSON object")
        return config

    def _config_at(self, revision: str) -> bytes | None:
        """config.json at ``revision`` (cached per commit), None when there is none."""
        with self._errors(f"reading config.json at {revision}"):
            try:
                return self._download("config.json", revision).read_bytes()
            except EntryNotFoundError:
                return None

    def _healed_refs(self) -> tuple[str, dict[str, str]]:
        """Like ``_refs``, after tagging an untagged version commit at the head of ``main``."""
        head, tags = self._refs()
        if head in tags.values():
            return head, tags
        raw = self._config_at(head)
        version = (self._parse(raw, head).get("mammo") or {}).get("version") if raw else None
        if isinstance(version, str) and version_number(version) and version not in tags:
            self._tag(version, head)
            tags[version] = head
        return head, tags

    def _tag(self, version: str, commit: str) -> None:
        """Tag ``commit`` as ``version``, retrying; RegistryError naming the commit if it fails."""
        error: Exception | None = None
        for delay in (0.0, *_TAG_DELAYS_S):
            time.sleep(delay)
            try:
                with self._errors(f"tagging {version}"):
                    self.api.create_tag(self.repo_id, tag=version, revision=commit, repo_type="model")
                return
            except RegistryError as failed:
                error = failed
            if self._tagged_commit(version) == commit:  # tagged after all (or by a peer)
                return
            if _http_status(error) == 409:
                break  # the tag exists on another commit: retrying cannot help
        raise RegistryError(
            f"{version} was committed to main of {self.location} as {commit}, but tag {version} "
            f"could not be created ({error}). main already serves this version; latest() and "
            "versions() will list it once the next publish or open_registry tags it."
        )

    def _tagged_commit(self, version: str) -> str | None:
        """The commit tagged ``version`` now, None if untagged or the Hub cannot say."""
        try:
            return self._refs()[1].get(version)
        except RegistryError:
            return None

    def _numbers(self) -> list[int]:
        return [n for n in map(version_number, self._refs()[1]) if n is not None]

    def _fetch(self, version: str) -> Path:
        with self._errors(f"downloading {version}"):
            try:
                folder = snapshot_download(
                    self.repo_id,
                    revision=self._tag_commits.get(version, version),
                    cache_dir=self.cache_dir,
                    allow_patterns=list(MODEL_FILES),
                    token=self.api.token,
                    endpoint=self.api.endpoint,
                )
            except RevisionNotFoundError as error:
                raise RegistryError(f"no version {version!r} at {self.location}") from error
        return Path(folder)

    def _version_config(self, version: str) -> dict:
        raw = self._config_at(self._tag_commits.get(version, version))
        if raw is None:
            raise RegistryError(f"{version} at {self.location} has no config.json")
        return self._parse(raw, version)

    def _publish(self, model_dir: Path, config: dict, report: dict | None,
                 only_if_count: int | None) -> str | None:
        for _ in range(_HUB_ATTEMPTS):
            head, tags = self._healed_refs()
            numbers = [n for n in map(version_number, tags) if n is not None]
            if only_if_count is not None and len(numbers) != only_if_count:
                return None
            parent = f"v{max(numbers)}" if numbers else None
            version = f"v{max(numbers, default=0) + 1}"
            files = _version_files(config, version, parent, report)
            operations = [
                CommitOperationAdd("model.safetensors", str(model_dir / "model.safetensors")),
                *(CommitOperationAdd(name, content) for name, content in files.items()),
            ]
            try:
                with self._errors(f"publishing {version}"):
                    oid = self.api.create_commit(
                        self.repo_id,
                        operations,
                        commit_message=f"mammo {version}",
                        repo_type="model",
                        parent_commit=head,
                    ).oid
            except RegistryError as error:
                oid = self._applied_anyway(head, files["config.json"])
                if oid is None and _http_status(error) == 412:
                    continue  # another publisher committed first: renumber
                if oid is None:
                    raise
            self._tag(version, oid)
            return version
        raise RegistryError(f"gave up publishing to {self.location}: other publishers kept committing first")

    def _applied_anyway(self, head: str, config_json: bytes) -> str | None:
        """The new head if a commit that raised (lost answer, client retry) was applied."""
        try:
            new_head = self._refs()[0]
            applied = new_head != head and self._config_at(new_head) == config_json
        except RegistryError:
            return None
        return new_head if applied else None


def _http_status(error: BaseException) -> int | None:
    """HTTP status of the Hub error behind ``error`` (searched along its causes), if any."""
    current: BaseException | None = error
    while current is not None:
        if isinstance(current, HfHubHTTPError) and current.response is not None:
            return current.response.status_code
        current = current.__cause__
    return None


def open_registry(
    settings: mammo_config.Settings | None = None,
    seed: Path | Sequence[Path] | None = None,
) -> ModelRegistry:
    """The registry chosen by the settings (Hub with ``MAMMO_MODEL_REPO`` + ``HF_TOKEN``).

    Removes crash leftovers and publishes the packaged versions (``seed``, default every
    ``mammo/weights/vN`` in order) that the registry's history does not have yet (see
    :meth:`ModelRegistry.seed`). A model repo without a token is refused (no silent local fallback).
    """
    settings = settings or mammo_config.settings()
    registry: ModelRegistry
    if settings.use_hub_models:
        assert settings.model_repo is not None
        api = hub_api(settings)
        registry = HubModelRegistry(settings.home, api, settings.model_repo)
        try:
            with hub_errors(api.endpoint, f"opening the model registry ({settings.model_repo})"):
                check_reachable(api)
                ensure_repo(api, settings.model_repo, "model", render_model_card({}))
        except HubUnavailable as error:  # serve the cached versions; publishing waits for the Hub
            if not registry._refs_file.exists():
                raise RegistryError(f"{error} No model versions are cached locally.") from error
            log.warning("%s Starting on the cached model versions.", error)
        except HubError as error:
            raise RegistryError(str(error)) from error
        registry._healed_refs()
    elif settings.model_repo:
        raise RegistryError(
            f"MAMMO_MODEL_REPO is set ({settings.model_repo}) but HF_TOKEN is not: set HF_TOKEN "
            "(a Space secret) to use the Hub, or unset MAMMO_MODEL_REPO to keep versions locally"
        )
    else:
        registry = LocalModelRegistry(settings.home)
    registry.clean()
    registry.seed(packaged_versions() if seed is None else seed)
    return registry


def packaged_versions() -> list[Path]:
    """The model folders shipped in the package (``mammo/weights/v1``, ``v2``, ...), in order."""
    folders = [p for p in mammo_config.PACKAGE_WEIGHTS.glob("v*") if version_number(p.name)]
    return sorted(folders, key=lambda p: version_number(p.name))
