"""Launch the real app (``python app.py``) in a subprocess on a free port, for end-to-end tests."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]

__all__ = ["AppProcess", "free_port", "ROOT"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class AppProcess:
    """``python app.py`` with its own MAMMO_HOME; ``.url``, ``.client()``, ``.call()``, ``.upload()``,
    ``.log()``, ``.kill()``.

    Args:
        home: the local store root (MAMMO_HOME).
        env: extra environment variables (e.g. MAMMO_BASE_DATA, MAMMO_TRAINERS, HF_* for a hub); Gradio's
            uploads go to ``gradio/`` beside ``home`` unless GRADIO_TEMP_DIR says otherwise.
        port: the port (default: a free one); reuse it to restart "the same" app.
        cwd: the folder it is started from (default: the repository's, as ``make run`` does).
    """

    def __init__(self, home: Path, env: Mapping[str, str] | None = None, port: int | None = None,
                 cwd: Path = ROOT):
        self.home = Path(home)
        self.cwd = Path(cwd)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log_path = self.home.parent / f"app-{self.port}-{time.time_ns()}.log"
        self.env = {
            **os.environ,
            "MAMMO_HOME": str(self.home),
            "GRADIO_SERVER_NAME": "127.0.0.1",
            "GRADIO_SERVER_PORT": str(self.port),
            "GRADIO_ANALYTICS_ENABLED": "False",
            "GRADIO_TEMP_DIR": str(self.home.parent / "gradio"),  # its uploads beside its store, not /tmp's
            "OMP_NUM_THREADS": "1",
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 180) -> AppProcess:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen([sys.executable, str(ROOT / "app.py")], cwd=self.cwd, env=self.env,
                                        stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"app exited with {self.process.returncode}:\n{self.log()}")
            try:
                if httpx.get(self.url + "gradio_api/info", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"app did not start in {timeout} s:\n{self.log()}")

    def client(self, **options):
        """A ``gradio_client.Client`` of this app (``options``: e.g. ``oauth_token=``)."""
        from gradio_client import Client

        return Client(self.url, verbose=False, **options)

    def call(self, api_name: str, data: list) -> tuple[str, object]:
        """A public API call over plain HTTP (as any client may send it): (event, payload)."""
        event = httpx.post(f"{self.url}gradio_api/call/{api_name}", json={"data": data}, timeout=30).json()
        answer = httpx.get(f"{self.url}gradio_api/call/{api_name}/{event['event_id']}", timeout=120).text
        kind = re.search(r"event: (\w+)", answer).group(1)
        return kind, json.loads(answer.split("data: ", 1)[1])

    def upload(self, name: str, data: bytes) -> dict:
        """Upload bytes under an arbitrary client-chosen file name; the FileData the server made of it."""
        answer = httpx.post(f"{self.url}gradio_api/upload", files={"files": (name, data, "image/png")},
                            timeout=30)
        answer.raise_for_status()
        return {"path": answer.json()[0], "orig_name": name, "meta": {"_type": "gradio.FileData"}}

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL: no clean-up runs (crash test)."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(30)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self) -> AppProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
