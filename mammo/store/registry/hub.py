"""Versions in a Hugging Face model repo (``MAMMO_MODEL_REPO`` + ``HF_TOKEN``).

One commit on ``main`` per version (the three files), made with ``parent_commit`` = the head it was
numbered from (a concurrent publisher makes it fail with 412 and it is renumbered), then tag ``vN``
on that commit. ``main`` is always the latest version, so ``timm.create_model("hf-hub:<repo>",
pretrained=True)`` loads it. Window: between the commit and the tag, ``main`` already serves vN
while ``latest()`` and ``versions()`` (from tags) do not list it yet. If tagging fails, a clear
RegistryError names the commit, and the next publish or ``open_registry`` tags it (an untagged
version commit at the head of ``main`` is always tagged before anything else is published).
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from huggingface_hub import CommitOperationAdd, HfApi, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.file_download import repo_folder_name

from ...model_card import render_model_card
from ...values import echoed
from .._fs import utc_now
from .._hub import HubError, HubUnavailable, branch_head, check_reachable, ensure_repo, hub_errors
from .base import MODEL_FILES, RENUMBER_ATTEMPTS, ModelRegistry, RegistryError, _version_files, version_number

__all__ = ["HubModelRegistry"]

_TAG_DELAYS_S = (0.5, 1.0, 2.0)  # backoff between tag attempts after the commit

log = logging.getLogger(__name__)


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
        self._outage_logged = False  # the cached versions' use is logged once per outage (the app polls)

    @property
    def location(self) -> str:
        return f"{self.api.endpoint}/{self.repo_id}"

    @property
    def files_folders(self) -> list[Path]:
        # its versions are downloaded into the cache's folder of this model repo (nothing else of it)
        return [*super().files_folders,
                self.cache_dir / repo_folder_name(repo_id=self.repo_id, repo_type="model")]

    def connect(self) -> None:
        """Check the token, create the repo (with its card) if missing and tag an untagged version
        at the head of ``main``; while the Hub is unreachable, carry on with the cached versions
        (RegistryError when none are cached)."""
        try:
            with hub_errors(self.api.endpoint, f"opening the model registry ({self.repo_id})"):
                check_reachable(self.api)
                ensure_repo(self.api, self.repo_id, "model", render_model_card({}))
        except HubUnavailable as error:  # serve the cached versions; publishing waits for the Hub
            if not self._refs_file.exists():
                raise RegistryError(f"{error} No model versions are cached locally.") from error
            log.warning("%s Starting on the cached model versions.", error)
        except HubError as error:
            raise RegistryError(str(error)) from error
        self._healed_refs()

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
        self._tag_commits, self._outage_logged = dict(tags), False
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
        if not self._outage_logged:
            log.warning("%s Using the model versions cached at %s.", error, cached["saved_at"])
            self._outage_logged = True
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
        """Like ``_refs``, after tagging an untagged version commit at the head of ``main`` (not while
        the Hub is down: the refs are then the cached ones)."""
        head, tags = self._refs()
        if head in tags.values() or self._outage_logged:
            return head, tags
        raw = self._config_at(head)
        version = (self._parse(raw, head).get("mammo") or {}).get("version") if raw else None
        if isinstance(version, str) and version_number(version) and version not in tags:
            self._tag(version, head)
            return self._refs()  # listed again: the refs kept for an outage hold the new tag too
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
        # healed: a version committed just before its publisher lost the Hub stayed untagged, unlisted
        # and unserved by every app until the next publish or a restart (a Hub probe); a token that may
        # not tag lists the tags as they are
        try:
            tags = self._healed_refs()[1]
        except RegistryError:
            tags = self._refs()[1]
        return [n for n in map(version_number, tags) if n is not None]

    def _fetch(self, version: str) -> Path:
        """``version``'s files, downloaded or (the Hub down) as cached; RegistryError when the Hub is
        down and they are not all cached (said at once: through the client's retry loop a rollback
        waited 23 s for it; and the cached snapshot of a version whose config alone was read, for the
        Models tab, was served as a folder with "no model.safetensors": Hub probes)."""
        options = dict(revision=self._tag_commits.get(version, version), cache_dir=self.cache_dir,
                       allow_patterns=list(MODEL_FILES), token=self.api.token, endpoint=self.api.endpoint)
        try:
            with self._errors(f"downloading {version}"):
                branch_head(self.api, self.repo_id, "model")  # a Hub that is down answers at once
        except RegistryError as down:
            try:
                folder = Path(snapshot_download(self.repo_id, local_files_only=True, **options))
            except (LocalEntryNotFoundError, OSError):
                raise down from None
            if _missing_files(folder):
                raise down from None
            return folder
        with self._errors(f"downloading {version}"):
            try:
                folder = Path(snapshot_download(self.repo_id, **options))
            except RevisionNotFoundError as error:
                raise RegistryError(f"No version {echoed(version)} in the model repo "
                                    f"{self.location}.") from error
        if missing := _missing_files(folder):
            raise RegistryError(f"{version} in the model repo {self.location} lacks {', '.join(missing)}.")
        return folder

    def _version_config(self, version: str) -> dict:
        raw = self._config_at(self._tag_commits.get(version, version))
        if raw is None:
            raise RegistryError(f"{version} at {self.location} has no config.json")
        return self._parse(raw, version)

    def _publish(self, model_dir: Path, config: dict, report: dict | None,
                 only_if_count: int | None) -> str | None:
        for _ in range(RENUMBER_ATTEMPTS):
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


def _missing_files(folder: Path) -> list[str]:
    """The files of a version (:data:`MODEL_FILES`) that ``folder`` lacks."""
    return [name for name in MODEL_FILES if not (folder / name).is_file()]
