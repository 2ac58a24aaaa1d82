"""A small Hugging Face Hub-protocol HTTP server for tests, and the ``hub_server`` pytest fixture.

The real ``huggingface_hub`` and ``datasets`` clients talk to it over HTTP on ``127.0.0.1``:
``HfApi`` (whoami, create_repo, upload_file / create_commit through preupload + the legacy LFS
batch protocol, repo_info, list_repo_refs, create_tag / delete_tag, list_repo_tree,
get_paths_info, list_repo_commits, file_exists), ``hf_hub_download`` (with ``revision=``),
``HfFileSystem`` (ranged reads), ``datasets.load_dataset(<repo id>)`` and
``timm.create_model("hf-hub:<repo>", pretrained=True)``.

Repos (model and dataset types) are kept in memory as git-like histories: each commit holds the
full file map (path -> sha256 of the content; blobs are content-addressed), branch ``main``, tags
pointing at commits. Files named ``*.parquet``, ``*.safetensors``, ``*.bin``, ``*.pt``... or larger than
10 MB are LFS files, the rest regular git files, as on the Hub. Writes need the token; reads of
public repos work without one, private repos look missing without it; a wrong token is refused
(401, "Invalid credentials in Authorization header") on every route, as on the Hub.

NOT covered (what a real Hub adds): Xet transfer (the fixture sets ``HF_HUB_DISABLE_XET=1`` so
the clients use the legacy LFS protocol); real authentication and permissions (one valid token,
one user, who may write anywhere); organisations, gated repos, pull requests, branches other
than ``main`` created by API, super-squash, rate limits, CDN redirects (files are served directly)
and pagination (every listing is one page). Repo ids must be ``namespace/name``. Spaces are
repos with settings (SDK, hardware, variables, secrets) that nothing builds or runs.

Fault injection for tests: :meth:`HubServer.stop` / :meth:`HubServer.restart` (same port, same
data) and :attr:`HubServer.lose_commit_responses` (apply the next N commits, then drop the
connection without answering: an ambiguous failure).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
import yaml

__all__ = ["HubServer", "hub_server", "USER"]

USER = "mammo-tester"
_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
_API_TYPE = {"models": "model", "datasets": "dataset", "spaces": "space"}
_LFS_SUFFIXES = (".parquet", ".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".arrow", ".zip")
_LFS_MIN_SIZE = 10 * 1024 * 1024
_GITATTRIBUTES = b"".join(
    f"*{suffix} filter=lfs diff=lfs merge=lfs -text\n".encode() for suffix in _LFS_SUFFIXES
)
_REPO = r"(?P<repo>[^/]+/[^/]+)"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _git_oid(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def _is_lfs(path: str, size: int, sample: bytes = b"") -> bool:
    """As the Hub decides: known binary suffixes, large files, and binary content (a NUL byte in
    the first 512 bytes the client samples)."""
    return path.endswith(_LFS_SUFFIXES) or size >= _LFS_MIN_SIZE or b"\0" in sample


@dataclass(frozen=True)
class _Entry:
    """One file in a commit: its content's sha256 and whether it is stored with LFS."""

    sha256: str
    size: int
    lfs: bool


@dataclass
class _Commit:
    oid: str
    parent: str | None
    files: dict[str, _Entry]
    title: str
    message: str
    date: str


@dataclass
class _Repo:
    repo_type: str
    repo_id: str
    private: bool
    created_at: str
    commits: dict[str, _Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    # Spaces only: the settings a Space's owner sets (secrets are write-only, as on the Hub)
    sdk: str | None = None
    hardware: str | None = None
    variables: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)


class _HttpError(Exception):
    """An HTTP error answer, with the Hub's ``X-Error-Code`` when it has one."""

    def __init__(self, status: int, message: str, code: str | None = None, **extra: object):
        super().__init__(message)
        self.status, self.message, self.code, self.extra = status, message, code, extra


class _State:
    """Every repo, blob and LFS object the server holds; all access under one lock."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.repos: dict[tuple[str, str], _Repo] = {}
        self.blobs: dict[str, bytes] = {}  # sha256 -> content

    def repo(self, repo_type: str, repo_id: str, authed: bool) -> _Repo:
        repo = self.repos.get((repo_type, repo_id))
        if repo is None or (repo.private and not authed):
            raise _HttpError(404 if authed else 401, "Repository not found", "RepoNotFound")
        return repo

    def put_blob(self, content: bytes) -> str:
        sha = hashlib.sha256(content).hexdigest()
        self.blobs.setdefault(sha, content)
        return sha

    def create_repo(self, repo_type: str, repo_id: str, private: bool) -> _Repo:
        repo = _Repo(repo_type, repo_id, private, _now())
        self.repos[(repo_type, repo_id)] = repo
        sha = self.put_blob(_GITATTRIBUTES)
        entry = _Entry(sha, len(_GITATTRIBUTES), lfs=False)
        self.commit(repo, "main", {".gitattributes": entry}, "initial commit", "", None)
        return repo

    @staticmethod
    def commit(
        repo: _Repo,
        branch: str,
        files: dict[str, _Entry],
        title: str,
        message: str,
        parent: str | None,
    ) -> _Commit:
        seed = json.dumps([parent, sorted((p, e.sha256) for p, e in files.items()), title, _now()])
        oid = hashlib.sha1((seed + secrets.token_hex(8)).encode()).hexdigest()
        commit = _Commit(oid, parent, dict(files), title, message, _now())
        repo.commits[oid] = commit
        repo.branches[branch] = oid
        return commit

    @staticmethod
    def resolve(repo: _Repo, revision: str) -> _Commit:
        rev = unquote(revision)
        for prefix, refs in (("refs/heads/", repo.branches), ("refs/tags/", repo.tags)):
            if rev.startswith(prefix) and rev[len(prefix) :] in refs:
                return repo.commits[refs[rev[len(prefix) :]]]
        oid = repo.branches.get(rev) or repo.tags.get(rev)
        if oid is None and rev in repo.commits:
            oid = rev
        if oid is None:
            raise _HttpError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        return repo.commits[oid]


def _pointer(entry: _Entry) -> bytes:
    return (
        f"version https://git-lfs.github.com/spec/v1\noid sha256:{entry.sha256}\nsize {entry.size}\n"
    ).encode()


class HubServer:
    """The Hub-protocol server: ``start()`` binds ``127.0.0.1:0`` and serves in a thread.

    Attributes:
        url: base URL (``HF_ENDPOINT``), set once started.
        token: the one valid token (user :data:`USER`, write access everywhere).
        calls: ``(method, path)`` of every request received, in order (path without the query).
        lose_commit_responses: apply the next N commits, then close the connection unanswered.
        commits_open: set; ``clear()`` it and commit requests wait unanswered until it is set again
            (an upload in progress), even across a stop.
        space_hosts: Space id → the URL its app answers on, reported as the Hub does (``host``); such
            a Space's runtime stage is RUNNING (BUILDING for the others).
    """

    def __init__(self, token: str | None = None) -> None:
        self.token = token or f"hf_test_{secrets.token_hex(12)}"
        self.calls: list[tuple[str, str]] = []
        self.lose_commit_responses = 0
        self.commits_open = threading.Event()
        self.commits_open.set()
        self.space_hosts: dict[str, str] = {}
        self._state = _State()
        self._secret = secrets.token_hex(16)
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    @property
    def running(self) -> bool:
        return self._httpd is not None

    def start(self) -> HubServer:
        """Serve on ``127.0.0.1`` (a free port the first time, the same port after a stop)."""
        if self._httpd is not None:
            return self
        handler = type("Handler", (_Handler,), {"hub": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", self._port), handler)
        self._httpd.daemon_threads = True
        self._port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving: connections are refused until :meth:`restart`; the data stays."""
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        assert self._thread is not None
        self._thread.join(timeout=5)
        self._httpd = self._thread = None

    def restart(self) -> HubServer:
        """Serve again on the same port with the same repos (a "Hub down, then back" test)."""
        self.stop()
        return self.start()

    # -- inspection helpers for tests (no HTTP) ------------------------------------------------
    def files(self, repo_id: str, repo_type: str = "dataset", revision: str = "main") -> list[str]:
        """Paths in ``repo_id`` at ``revision``."""
        with self._state.lock:
            repo = self._state.repo(repo_type, repo_id, authed=True)
            return sorted(self._state.resolve(repo, revision).files)

    def read(self, repo_id: str, path: str, repo_type: str = "dataset", revision: str = "main") -> bytes:
        """The content of ``path`` in ``repo_id`` at ``revision``."""
        with self._state.lock:
            repo = self._state.repo(repo_type, repo_id, authed=True)
            return self._state.blobs[self._state.resolve(repo, revision).files[path].sha256]

    def commit_count(self, repo_id: str, repo_type: str = "dataset") -> int:
        """Number of commits on ``main`` (the initial commit included)."""
        with self._state.lock:
            repo = self._state.repo(repo_type, repo_id, authed=True)
            return sum(1 for _ in _history(repo, repo.branches["main"]))

    def space_settings(self, repo_id: str) -> dict:
        """A Space's SDK, hardware, variables and secrets (the values tests check were set)."""
        with self._state.lock:
            space = self._state.repo("space", repo_id, authed=True)
            return {"sdk": space.sdk, "hardware": space.hardware, "private": space.private,
                    "variables": dict(space.variables), "secrets": dict(space.secrets)}

    def is_lfs(self, repo_id: str, path: str, repo_type: str = "dataset", revision: str = "main") -> bool:
        """Whether ``path`` was committed through LFS."""
        with self._state.lock:
            repo = self._state.repo(repo_type, repo_id, authed=True)
            return self._state.resolve(repo, revision).files[path].lfs

    def commit_titles(self, repo_id: str, repo_type: str = "dataset") -> list[str]:
        """The titles of the commits on ``main``, newest first."""
        with self._state.lock:
            repo = self._state.repo(repo_type, repo_id, authed=True)
            return [c.title for c in _history(repo, repo.branches["main"])]

    def repo_exists(self, repo_id: str, repo_type: str = "dataset") -> bool:
        with self._state.lock:
            return (repo_type, repo_id) in self._state.repos


def _history(repo: _Repo, oid: str | None) -> Iterator[_Commit]:
    while oid is not None:
        commit = repo.commits[oid]
        yield commit
        oid = commit.parent


class _Handler(BaseHTTPRequestHandler):
    """One request. HTTP/1.0: every connection closes, so a stopped server refuses at once."""

    hub: HubServer
    server_version = "mammo-test-hub/1"

    # -- plumbing ---------------------------------------------------------
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        """Quiet: tests read ``HubServer.calls`` instead."""

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._dispatch("GET")

    def do_HEAD(self) -> None:  # noqa: N802
        self._dispatch("HEAD")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def do_PUT(self) -> None:  # noqa: N802
        self._dispatch("PUT")

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        split = urlsplit(self.path)
        self.query = parse_qs(split.query)
        self.hub.calls.append((method, split.path))
        self._body: bytes | None = None
        try:
            token = self._token()
            for route_method, pattern, name in _ROUTES:
                if method in route_method and (match := re.fullmatch(pattern, split.path)):
                    if name == "commit":
                        self.hub.commits_open.wait()
                    with self.hub._state.lock:
                        getattr(self, name)(token, **match.groupdict())
                    return
            raise _HttpError(404, f"Not found: {method} {split.path}")
        except _HttpError as err:
            self._send_json({"error": err.message, **err.extra}, err.status, error=err)
        except _DropConnection:
            self.close_connection = True

    def _token(self) -> bool:
        """True with the valid token, False with none; a wrong token is refused everywhere."""
        auth = self.headers.get("Authorization", "")
        if not auth:
            return False
        if auth != f"Bearer {self.hub.token}":
            raise _HttpError(401, "Invalid credentials in Authorization header")
        return True

    def _read_body(self) -> bytes:
        if self._body is None:
            length = int(self.headers.get("Content-Length") or 0)
            self._body = self.rfile.read(length) if length else b""
        return self._body

    def _json_body(self) -> dict:
        try:
            return json.loads(self._read_body() or b"{}")
        except json.JSONDecodeError as exc:
            raise _HttpError(400, f"Invalid JSON body: {exc}") from exc

    def _send(self, status: int, body: bytes, headers: dict[str, str], head: bool = False) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        if "Content-Length" not in headers:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _send_json(self, data: object, status: int = 200, error: _HttpError | None = None) -> None:
        headers = {"Content-Type": "application/json"}
        if error is not None:
            headers["X-Error-Message"] = error.message
            if error.code:
                headers["X-Error-Code"] = error.code
        self._send(status, json.dumps(data).encode(), headers, head=self.command == "HEAD")

    def _base(self) -> str:
        return self.hub.url

    def _repo_url(self, r: _Repo) -> str:
        return f"{self._base()}/{_PREFIX[r.repo_type]}{r.repo_id}"

    def _repo(self, token: bool, api_type: str, repo: str, write: bool = False) -> _Repo:
        if write and not token:
            raise _HttpError(401, "You must be authenticated to write")
        return self.hub._state.repo(_API_TYPE[api_type], unquote(repo), token)

    # -- account and repos ---------------------------------------------------------
    def whoami(self, token: bool) -> None:
        if not token:
            raise _HttpError(401, "Invalid credentials in Authorization header")
        self._send_json(
            {
                "type": "user",
                "id": "0" * 24,
                "name": USER,
                "fullname": "Mammo Tester",
                "avatarUrl": "/avatars/mammo-tester.svg",  # Gradio's local sign-in reads it
                "orgs": [],
                "auth": {
                    "type": "access_token",
                    "accessToken": {"displayName": "test", "role": "write"},
                },
            }
        )

    def create_repo(self, token: bool) -> None:
        if not token:
            raise _HttpError(401, "You must be authenticated to create a repo")
        body = self._json_body()
        repo_type = body.get("type") or "model"
        if repo_type not in _PREFIX or not body.get("name"):
            raise _HttpError(400, f"Invalid repo type or name: {repo_type!r} {body.get('name')!r}")
        repo_id = f"{body.get('organization') or USER}/{body['name']}"
        if (repo_type, repo_id) in self.hub._state.repos:
            url = f"{self._base()}/{_PREFIX[repo_type]}{repo_id}"
            raise _HttpError(409, "You already created this repo", url=url)
        private = body.get("visibility") == "private" or bool(body.get("private"))
        if repo_type == "space" and body.get("sdk") not in ("gradio", "docker", "static"):
            raise _HttpError(400, "A Space needs an SDK (gradio, docker or static)")
        repo = self.hub._state.create_repo(repo_type, repo_id, private)
        if repo_type == "space":
            repo.sdk, repo.hardware = body.get("sdk"), body.get("hardware") or "cpu-basic"
        self._send_json({"url": self._repo_url(repo), "name": repo_id})

    # -- Space settings ----------------------------------------------------------------
    def _space(self, token: bool, repo: str) -> _Repo:
        if not token:
            raise _HttpError(401, "You must be authenticated to change a Space's settings")
        return self.hub._state.repo("space", unquote(repo), token)

    def space_variables(self, token: bool, repo: str) -> None:
        space = self._space(token, repo)
        if self.command == "POST":
            body = self._json_body()
            space.variables[str(body["key"])] = str(body["value"])
        self._send_json({key: {"value": value, "updatedAt": _now()}
                         for key, value in space.variables.items()})

    def space_secret(self, token: bool, repo: str) -> None:
        body = self._json_body()
        self._space(token, repo).secrets[str(body["key"])] = str(body["value"])
        self._send_json({})

    def space_runtime(self, token: bool, repo: str) -> None:
        space = self._space(token, repo)
        if self.command == "POST":
            space.hardware = str(self._json_body()["flavor"])
        stage = "RUNNING" if space.repo_id in self.hub.space_hosts else "BUILDING"
        self._send_json({"stage": stage, "hardware": {"current": None, "requested": space.hardware},
                         "gcTimeout": None, "storage": None, "devMode": False})

    def validate_yaml(self, token: bool) -> None:
        content = self._json_body().get("content", "")
        match = re.match(r"^---\n(.*?)\n---", content, re.S)
        try:
            if match:
                yaml.safe_load(match.group(1))
        except yaml.YAMLError as exc:
            self._send_json({"errors": [{"message": str(exc)}], "warnings": []}, 400)
            return
        self._send_json({"errors": [], "warnings": []})

    def repo_info(self, token: bool, api_type: str, repo: str, rev: str = "main") -> None:
        r = self._repo(token, api_type, repo)
        commit = self.hub._state.resolve(r, rev)
        blobs = self.query.get("blobs", ["false"])[0].lower() == "true"
        siblings = []
        for path, entry in sorted(commit.files.items()):
            sibling: dict = {"rfilename": path}
            if blobs:
                sibling.update(size=entry.size, blobId=self._oid(entry))
                if entry.lfs:
                    sibling["lfs"] = {
                        "size": entry.size,
                        "sha256": entry.sha256,
                        "pointerSize": len(_pointer(entry)),
                    }
            siblings.append(sibling)
        info = {
            "_id": hashlib.sha1(r.repo_id.encode()).hexdigest()[:24],
            "id": r.repo_id,
            "author": r.repo_id.split("/")[0],
            "sha": commit.oid,
            "createdAt": r.created_at,
            "lastModified": commit.date,
            "private": r.private,
            "gated": False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "siblings": siblings,
        }
        if r.repo_type == "model":
            info["modelId"] = r.repo_id
        if r.repo_type == "space" and r.repo_id in self.hub.space_hosts:
            info["host"] = self.hub.space_hosts[r.repo_id]
        self._send_json(info)

    def refs(self, token: bool, api_type: str, repo: str) -> None:
        r = self._repo(token, api_type, repo)

        def refs(kind: str, names: dict[str, str]) -> list[dict]:
            return [
                {"name": name, "ref": f"refs/{kind}/{name}", "targetCommit": oid}
                for name, oid in sorted(names.items())
            ]

        self._send_json(
            {
                "branches": refs("heads", r.branches),
                "tags": refs("tags", r.tags),
                "converts": [],
                "pullRequests": [],
            }
        )

    def tag(self, token: bool, api_type: str, repo: str, rev: str) -> None:
        r = self._repo(token, api_type, repo, write=True)
        if self.command == "DELETE":
            name = unquote(rev)
            if r.tags.pop(name, None) is None:
                raise _HttpError(404, f"Invalid rev id: {name}", "RevisionNotFound")
            self._send_json({})
            return
        commit = self.hub._state.resolve(r, rev)
        name = str(self._json_body().get("tag") or "")
        if not name:
            raise _HttpError(400, "Missing tag name")
        if name in r.tags or name in r.branches:
            raise _HttpError(409, f"Tag {name} already exists")
        r.tags[name] = commit.oid
        self._send_json({"name": name, "ref": f"refs/tags/{name}", "targetCommit": commit.oid})

    def commits(self, token: bool, api_type: str, repo: str, rev: str) -> None:
        r = self._repo(token, api_type, repo)
        head = self.hub._state.resolve(r, rev)
        self._send_json(
            [
                {
                    "id": c.oid,
                    "title": c.title,
                    "message": c.message,
                    "date": c.date,
                    "authors": [{"user": USER, "avatar": ""}],
                }
                for c in _history(r, head.oid)
            ]
        )

    # -- listings ---------------------------------------------------------
    def _oid(self, entry: _Entry) -> str:
        content = _pointer(entry) if entry.lfs else self.hub._state.blobs[entry.sha256]
        return _git_oid(content)

    def _file_info(self, r: _Repo, commit: _Commit, path: str, expand: bool) -> dict:
        entry = commit.files[path]
        info: dict = {"type": "file", "oid": self._oid(entry), "size": entry.size, "path": path}
        if entry.lfs:
            info["lfs"] = {
                "oid": entry.sha256,
                "size": entry.size,
                "pointerSize": len(_pointer(entry)),
            }
        if expand:
            info["lastCommit"] = self._last_commit(r, commit, path)
        return info

    def _dir_info(self, r: _Repo, commit: _Commit, path: str, expand: bool) -> dict:
        inside = sorted((p, e.sha256) for p, e in commit.files.items() if p.startswith(path + "/"))
        oid = hashlib.sha1(json.dumps(inside).encode()).hexdigest()
        info: dict = {"type": "directory", "oid": oid, "size": 0, "path": path}
        if expand:
            info["lastCommit"] = self._last_commit(r, commit, path)
        return info

    @staticmethod
    def _last_commit(r: _Repo, head: _Commit, path: str) -> dict:
        def state(c: _Commit) -> list:
            return sorted((p, e.sha256) for p, e in c.files.items() if p == path or p.startswith(path + "/"))

        last = head
        for commit in _history(r, head.parent):
            if state(commit) != state(last):
                break
            last = commit
        return {"id": last.oid, "title": last.title, "date": last.date}

    def _entry_info(self, r: _Repo, commit: _Commit, path: str, expand: bool) -> dict | None:
        if path in commit.files:
            return self._file_info(r, commit, path, expand)
        if any(p.startswith(path + "/") for p in commit.files):
            return self._dir_info(r, commit, path, expand)
        return None

    def tree(self, token: bool, api_type: str, repo: str, rev: str, path: str = "") -> None:
        r = self._repo(token, api_type, repo)
        commit = self.hub._state.resolve(r, rev)
        path = unquote(path or "").strip("/")
        recursive = self.query.get("recursive", ["false"])[0].lower() in ("true", "1")
        expand = self.query.get("expand", ["false"])[0].lower() in ("true", "1")
        prefix = f"{path}/" if path else ""
        if path and not any(p.startswith(prefix) for p in commit.files):
            code = "EntryNotFound"
            raise _HttpError(404, f"Entry not found: {path}", code)
        children: set[str] = set()
        for file in commit.files:
            if not file.startswith(prefix):
                continue
            parts = file[len(prefix) :].split("/")
            depth = len(parts) if recursive else 1
            for i in range(1, depth + 1):
                children.add(prefix + "/".join(parts[:i]))
        entries = [self._entry_info(r, commit, child, expand) for child in sorted(children)]
        self._send_json(entries)

    def paths_info(self, token: bool, api_type: str, repo: str, rev: str) -> None:
        r = self._repo(token, api_type, repo)
        commit = self.hub._state.resolve(r, rev)
        body = self._read_body().decode()
        if self.headers.get("Content-Type", "").startswith("application/json"):
            data = json.loads(body or "{}")
            paths, expand = data.get("paths", []), bool(data.get("expand"))
        else:
            form = parse_qs(body)
            paths = form.get("paths", [])
            expand = form.get("expand", ["False"])[0].lower() in ("true", "1")
        infos = [self._entry_info(r, commit, p.strip("/"), expand) for p in paths]
        self._send_json([info for info in infos if info is not None])

    # -- uploads ---------------------------------------------------------
    def preupload(self, token: bool, api_type: str, repo: str, rev: str) -> None:
        r = self._repo(token, api_type, repo, write=True)
        commit = self.hub._state.resolve(r, rev)
        files = []
        for item in self._json_body().get("files", []):
            path, size = item["path"], int(item["size"])
            sample = base64.b64decode(item.get("sample") or "")
            existing = commit.files.get(path)
            files.append(
                {
                    "path": path,
                    "uploadMode": "lfs" if _is_lfs(path, size, sample) else "regular",
                    "shouldIgnore": False,
                    "oid": self._oid(existing) if existing else None,
                }
            )
        self._send_json({"files": files, "commitOid": commit.oid})

    def lfs_batch(self, token: bool, prefix: str, repo: str) -> None:
        api_type = {"": "models", "datasets/": "datasets", "spaces/": "spaces"}[prefix or ""]
        r = self._repo(token, api_type, repo, write=True)
        body = self._json_body()
        if body.get("operation") != "upload":
            raise _HttpError(400, "Only the upload operation is supported")
        objects = []
        for obj in body.get("objects", []):
            oid, size = str(obj["oid"]), int(obj["size"])
            answer: dict = {"oid": oid, "size": size, "authenticated": True}
            if oid not in self.hub._state.blobs:
                sig = self._sign(oid)
                where = f"{self._base()}/lfs-objects/{r.repo_type}/{r.repo_id}/{oid}/{size}?sig={sig}"
                answer["actions"] = {
                    "upload": {"href": where, "header": {}},
                    "verify": {"href": f"{where}&verify=1", "header": {}},
                }
            objects.append(answer)
        self._send_json({"transfer": "basic", "objects": objects, "hash_algo": "sha256"})

    def _sign(self, oid: str) -> str:
        return hashlib.sha256(f"{self.hub._secret}:{oid}".encode()).hexdigest()[:32]

    def lfs_object(self, token: bool, rtype: str, repo: str, oid: str, size: str) -> None:
        if self.query.get("sig", [""])[0] != self._sign(oid):
            raise _HttpError(403, "Bad signature on the LFS upload URL")
        if self.command == "PUT":
            content = self._read_body()
            if len(content) != int(size) or hashlib.sha256(content).hexdigest() != oid:
                raise _HttpError(400, "LFS object does not match its oid/size")
            self.hub._state.put_blob(content)
            self._send(200, b"", {"ETag": f'"{oid}"'})
            return
        if oid not in self.hub._state.blobs:
            raise _HttpError(404, f"LFS object {oid} was not uploaded")
        self._send_json({"success": True})

    def commit(self, token: bool, api_type: str, repo: str, rev: str) -> None:
        r = self._repo(token, api_type, repo, write=True)
        branch = unquote(rev)
        if branch.startswith("refs/heads/"):
            branch = branch[len("refs/heads/") :]
        if branch not in r.branches:
            raise _HttpError(404, f"Invalid rev id: {branch} (commits go to a branch)", "RevisionNotFound")
        head = r.commits[r.branches[branch]]
        files = dict(head.files)
        header: dict = {}
        state = self.hub._state
        for line in self._read_body().splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            key, value = item.get("key"), item.get("value", {})
            if key == "header":
                header = value
            elif key == "file":
                content = base64.b64decode(value["content"])
                files[value["path"]] = _Entry(state.put_blob(content), len(content), lfs=False)
            elif key == "lfsFile":
                oid = value["oid"]
                if oid not in state.blobs:
                    raise _HttpError(422, f"LFS object {oid} for {value['path']} was not uploaded")
                files[value["path"]] = _Entry(oid, len(state.blobs[oid]), lfs=True)
            elif key == "deletedFile":
                if files.pop(value["path"], None) is None:
                    raise _HttpError(404, "A file with this name doesn't exist", "EntryNotFound")
            elif key == "deletedFolder":
                folder = value["path"].rstrip("/") + "/"
                for path in [p for p in files if p.startswith(folder)]:
                    del files[path]
            else:
                raise _HttpError(400, f"Unknown commit operation {key!r}")
        parent = header.get("parentCommit")
        if parent is not None and parent != head.oid:
            raise _HttpError(412, "A commit has happened since. Please refresh and try again.")
        title = str(header.get("summary") or "")
        if not title:
            raise _HttpError(400, "Missing commit summary")
        commit = state.commit(r, branch, files, title, str(header.get("description") or ""), head.oid)
        if self.hub.lose_commit_responses > 0:
            self.hub.lose_commit_responses -= 1
            raise _DropConnection
        self._send_json(
            {
                "success": True,
                "commitOid": commit.oid,
                "commitUrl": f"{self._repo_url(r)}/commit/{commit.oid}",
                "hookOutput": "",
            }
        )

    # -- downloads ---------------------------------------------------------
    def resolve(self, token: bool, prefix: str, repo: str, rev: str, path: str) -> None:
        api_type = {"": "models", "datasets/": "datasets", "spaces/": "spaces"}[prefix or ""]
        r = self._repo(token, api_type, repo)
        commit = self.hub._state.resolve(r, rev)
        path = unquote(path)
        entry = commit.files.get(path)
        if entry is None:
            raise _HttpError(404, f"Entry not found: {path}", "EntryNotFound")
        content = self.hub._state.blobs[entry.sha256]
        etag = entry.sha256 if entry.lfs else _git_oid(content)
        headers = {
            "Content-Type": "application/octet-stream",
            "ETag": f'"{etag}"',
            "X-Repo-Commit": commit.oid,
            "Accept-Ranges": "bytes",
        }
        if entry.lfs:
            headers["X-Linked-Etag"] = f'"{etag}"'
            headers["X-Linked-Size"] = str(entry.size)
        status, body = 200, content
        rng = self.headers.get("Range")
        if rng:
            span = _parse_range(rng, len(content))
            if span is None:
                headers["Content-Range"] = f"bytes */{len(content)}"
                self._send(416, b"", headers, head=self.command == "HEAD")
                return
            start, end = span
            status, body = 206, content[start : end + 1]
            headers["Content-Range"] = f"bytes {start}-{end}/{len(content)}"
        headers["Content-Length"] = str(len(body))
        self._send(status, body, headers, head=self.command == "HEAD")


class _DropConnection(Exception):
    """Close the connection without an answer (fault injection)."""


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """``bytes=a-b``, ``bytes=a-`` or ``bytes=-n`` -> inclusive (start, end), or None."""
    match = re.fullmatch(r"bytes=(\d*)-(\d*)", header.strip())
    if not match or size == 0:
        return None
    first, last = match.groups()
    if first == "":
        if last == "":
            return None
        start, end = max(0, size - int(last)), size - 1
    else:
        start = int(first)
        end = min(int(last), size - 1) if last else size - 1
    return (start, end) if start <= end and start < size else None


_TYPES = r"(?P<api_type>models|datasets|spaces)"
_PFX = r"(?P<prefix>datasets/|spaces/)?"
_ROUTES: list[tuple[tuple[str, ...], str, str]] = [
    (("GET",), r"/api/whoami-v2", "whoami"),
    (("POST",), r"/api/repos/create", "create_repo"),
    (("POST",), r"/api/validate-yaml", "validate_yaml"),
    (("GET",), rf"/api/{_TYPES}/{_REPO}", "repo_info"),
    (("GET",), rf"/api/{_TYPES}/{_REPO}/revision/(?P<rev>[^/]+)", "repo_info"),
    (("GET",), rf"/api/{_TYPES}/{_REPO}/refs", "refs"),
    (("POST", "DELETE"), rf"/api/{_TYPES}/{_REPO}/tag/(?P<rev>[^/]+)", "tag"),
    (("GET",), rf"/api/{_TYPES}/{_REPO}/commits/(?P<rev>[^/]+)", "commits"),
    (("GET",), rf"/api/{_TYPES}/{_REPO}/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?", "tree"),
    (("POST",), rf"/api/{_TYPES}/{_REPO}/paths-info/(?P<rev>[^/]+)", "paths_info"),
    (("POST",), rf"/api/{_TYPES}/{_REPO}/preupload/(?P<rev>[^/]+)", "preupload"),
    (("POST",), rf"/api/{_TYPES}/{_REPO}/commit/(?P<rev>[^/]+)", "commit"),
    (("GET", "POST"), rf"/api/spaces/{_REPO}/variables", "space_variables"),
    (("POST",), rf"/api/spaces/{_REPO}/secrets", "space_secret"),
    (("POST",), rf"/api/spaces/{_REPO}/hardware", "space_runtime"),
    (("GET",), rf"/api/spaces/{_REPO}/runtime", "space_runtime"),
    (("POST",), rf"/{_PFX}{_REPO}\.git/info/lfs/objects/batch", "lfs_batch"),
    (
        ("PUT", "POST"),
        r"/lfs-objects/(?P<rtype>model|dataset|space)/" + _REPO + r"/(?P<oid>[0-9a-f]{64})/(?P<size>\d+)",
        "lfs_object",
    ),
    (("GET", "HEAD"), rf"/{_PFX}{_REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)", "resolve"),
]


@pytest.fixture
def hub_server(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[HubServer]:
    """A started :class:`HubServer`, with the Hub clients of this process pointed at it.

    Sets ``HF_ENDPOINT``, ``HF_TOKEN`` (the valid token), ``HF_HUB_DISABLE_XET=1``,
    ``HF_HUB_DISABLE_TELEMETRY=1``, unsets ``HF_HUB_OFFLINE``, points ``HF_HOME`` and the
    caches at a fresh temp folder, and patches the values ``huggingface_hub.constants`` and
    ``datasets.config`` computed from them at import. Stops the server at teardown.
    """
    import datasets.config
    import huggingface_hub.constants as hf_constants

    server = HubServer().start()
    home = tmp_path_factory.mktemp("hf_home")
    hub_cache, datasets_cache = home / "hub", home / "datasets"
    env = {
        "HF_ENDPOINT": server.url,
        "HF_TOKEN": server.token,
        "HF_HUB_DISABLE_XET": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_UPDATE_CHECK": "1",
        "HF_HOME": str(home),
        "HF_HUB_CACHE": str(hub_cache),
        "HF_ASSETS_CACHE": str(home / "assets"),
        "HF_XET_CACHE": str(home / "xet"),
        "HF_DATASETS_CACHE": str(datasets_cache),
        "HF_MODULES_CACHE": str(home / "modules"),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    for key in (
        "HF_HUB_OFFLINE",
        "HF_DATASETS_OFFLINE",
        "TRANSFORMERS_OFFLINE",
        "HUGGING_FACE_HUB_TOKEN",
    ):
        monkeypatch.delenv(key, raising=False)

    patches = {
        hf_constants: {
            "ENDPOINT": server.url,
            "HUGGINGFACE_CO_URL_TEMPLATE": server.url + "/{repo_id}/resolve/{revision}/{filename}",
            "HF_HUB_DISABLE_XET": True,
            "HF_HUB_OFFLINE": False,
            "HF_HUB_DISABLE_TELEMETRY": True,
            "HF_HUB_DISABLE_UPDATE_CHECK": True,
            "HF_HOME": str(home),
            "HF_HUB_CACHE": str(hub_cache),
            "HUGGINGFACE_HUB_CACHE": str(hub_cache),
            "HF_ASSETS_CACHE": str(home / "assets"),
            "HF_XET_CACHE": str(home / "xet"),
            "HF_TOKEN_PATH": str(home / "token"),
            "HF_STORED_TOKENS_PATH": str(home / "stored_tokens"),
        },
        datasets.config: {
            "HF_ENDPOINT": server.url,
            "HUB_DATASETS_URL": server.url + "/datasets/{repo_id}/resolve/{revision}/{path}",
            "HF_HUB_OFFLINE": False,
            "HF_DATASETS_OFFLINE": False,
            "HF_UPDATE_DOWNLOAD_COUNTS": False,
            "HF_CACHE_HOME": str(home),
            "HF_DATASETS_CACHE": datasets_cache,
            "HF_MODULES_CACHE": home / "modules",
            "DOWNLOADED_DATASETS_PATH": datasets_cache / "downloads",
            "EXTRACTED_DATASETS_PATH": datasets_cache / "downloads" / "extracted",
        },
    }
    for module, values in patches.items():
        for name, value in values.items():
            if hasattr(module, name):
                monkeypatch.setattr(module, name, value)
    try:
        yield server
    finally:
        server.stop()
