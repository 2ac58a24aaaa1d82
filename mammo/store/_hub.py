"""Hugging Face Hub helpers shared by the case store and the model registry.

Every Hub call of the stores goes through :func:`hub_errors`, so a failure reaches the user as
one of two exceptions with a plain message: :class:`HubUnavailable` (network down, timeout,
Hub overloaded: worth retrying later) or :class:`HubError` (bad token, missing permission,
repo not found: retrying will not help). Tokens never appear in messages or logs.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2
from huggingface_hub import HfApi
from huggingface_hub import constants as hf_constants
from huggingface_hub.errors import (
    HfHubHTTPError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
)
from huggingface_hub.file_download import repo_folder_name
from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

from ..config import Settings
from ..errors import MammoError

__all__ = [
    "cached_files",
    "HubError",
    "HubUnavailable",
    "hub_api",
    "hub_errors",
    "translate_hub_error",
    "check_reachable",
    "branch_head",
    "ensure_repo",
]

_RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_TOKEN_PATTERN = re.compile(r"hf_[A-Za-z0-9_]{6,}")
_PROBE_TIMEOUT_S = 10.0


class HubError(MammoError, RuntimeError):
    """A Hub request failed in a way retrying will not fix (token, permission, missing repo)."""


class HubUnavailable(HubError):
    """The Hub could not be reached or is overloaded; the same request may work later."""


def hub_api(settings: Settings) -> HfApi:
    """An ``HfApi`` for ``settings.hf_endpoint`` (default: huggingface_hub's) and ``hf_token``."""
    return HfApi(endpoint=settings.hf_endpoint, token=settings.hf_token, library_name="mammo")


def _scrub(text: str) -> str:
    return _TOKEN_PATTERN.sub("hf_***", text)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return _scrub(text.splitlines()[0])


def _transport_cause(exc: BaseException) -> BaseException | None:
    """The network-level error behind ``exc`` (itself, or in its cause/context chain)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, httpx2.TransportError | ConnectionError | TimeoutError):
            return current
        current = current.__cause__ or current.__context__
    return None


def translate_hub_error(exc: BaseException, endpoint: str, action: str) -> BaseException:
    """``exc`` as a :class:`HubError`/:class:`HubUnavailable` with a clear message.

    Exceptions that are not Hub or network errors are returned unchanged (bugs stay visible).
    """
    where = f"Hugging Face Hub at {endpoint}"
    if isinstance(exc, HfHubHTTPError):
        status = exc.response.status_code if exc.response is not None else None
        detail = _scrub(exc.server_message or _first_line(exc))
        if status == 401 and not isinstance(exc, RepositoryNotFoundError):
            return HubError(
                f"Hugging Face token rejected (401) by the {where} while {action}: check HF_TOKEN "
                f"(it may be mistyped, expired or revoked). Server said: {detail}"
            )
        if status == 403:
            return HubError(
                f"Hugging Face token lacks permission (403) while {action} on the {where}: "
                f"it needs write access to the repository. Server said: {detail}"
            )
        if isinstance(exc, RepositoryNotFoundError):
            return HubError(
                f"Repository not found on the {where} while {action}: check the repo id and that "
                f"HF_TOKEN can access it. Server said: {detail}"
            )
        if status is None or status in _RETRYABLE_STATUS:
            return HubUnavailable(
                f"Hugging Face Hub unavailable at {endpoint} ({status or 'no status'}) while "
                f"{action}; it will be retried. Server said: {detail}"
            )
        return HubError(f"Hugging Face Hub error ({status}) while {action}: {detail}")
    if isinstance(exc, OfflineModeIsEnabled):
        return HubUnavailable(f"Hugging Face Hub offline mode (HF_HUB_OFFLINE) on while {action}")
    cause = _transport_cause(exc)
    if cause is not None or isinstance(exc, LocalEntryNotFoundError):
        reason = _first_line(cause or exc)
        return HubUnavailable(f"Hugging Face Hub unreachable at {endpoint} ({action}): {reason}")
    return exc


@contextmanager
def hub_errors(endpoint: str, action: str) -> Iterator[None]:
    """Re-raise Hub and network errors inside the block through :func:`translate_hub_error`."""
    try:
        yield
    except Exception as exc:
        translated = translate_hub_error(exc, endpoint, action)
        if translated is exc:
            raise
        raise translated from exc


def check_reachable(api: HfApi) -> dict:
    """Ask the Hub who the token belongs to, once, without the client's retry loop.

    huggingface_hub retries uploads on connection errors for about 23 s; calling this first
    makes a Hub that is down answer :class:`HubUnavailable` in milliseconds. A rejected token
    raises :class:`HubError`.
    """
    with hub_errors(api.endpoint, "checking the token"):
        response = get_session().get(
            f"{api.endpoint}/api/whoami-v2",
            headers=build_hf_headers(token=api.token, library_name="mammo"),
            timeout=_PROBE_TIMEOUT_S,
        )
        hf_raise_for_status(response)
        return response.json()


def branch_head(api: HfApi, repo_id: str, repo_type: str, branch: str = "main") -> str:
    """The commit id at the tip of ``branch``: one small request and no retry loop.

    Cheap enough to call before every upload as a liveness probe (unlike ``whoami``, which the
    Hub rate-limits), and a fixed revision to read a consistent snapshot with.
    """
    with hub_errors(api.endpoint, f"reading the refs of {repo_id}"):
        refs = api.list_repo_refs(repo_id, repo_type=repo_type)
    for ref in refs.branches:
        if ref.name == branch:
            return ref.target_commit
    raise HubError(f"The {repo_type} repo {repo_id} has no branch {branch!r}.")


def cached_files(repo_id: str, repo_type: str, folder: str) -> dict[str, Path]:
    """The files under ``folder/`` of ``repo_id`` that this disk's Hugging Face cache holds, from every
    revision it downloaded (file name -> path): readable while the Hub is down, for files whose name
    never takes other content (case shards)."""
    snapshots = Path(hf_constants.HF_HUB_CACHE) / repo_folder_name(repo_id=repo_id, repo_type=repo_type)
    return {path.name: path for path in sorted((snapshots / "snapshots").glob(f"*/{folder}/*"))
            if path.is_file()}  # a link whose download was cut short is no file


def ensure_repo(api: HfApi, repo_id: str, repo_type: str, card_text: str, *, private: bool = False) -> bool:
    """Create ``repo_id`` if missing, and its README.md from ``card_text`` if it has none.

    An existing card is left as it is. ``private`` applies only to a new repo.
    Returns True if anything was created.
    """
    action = f"creating the {repo_type} repo {repo_id}"
    with hub_errors(api.endpoint, action):
        created = not api.repo_exists(repo_id, repo_type=repo_type)
        if created:
            api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True)
        if api.file_exists(repo_id, "README.md", repo_type=repo_type):
            return created
        api.upload_file(
            path_or_fileobj=card_text.encode("utf-8"),
            path_in_repo="README.md",
            repo_id=repo_id,
            repo_type=repo_type,
            commit_message="Add the repository card",
        )
    return True
