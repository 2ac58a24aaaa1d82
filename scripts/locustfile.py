"""Locust users for the mammo app, through Gradio's HTTP API (``scripts/loadtest.py`` runs it).

Three kinds of request, each reported as ONE Locust request timed end to end (upload, call, result
stream) under its own name:

- ``/predict unique``: a new image every time (a random crop of a base image plus noise, PNG);
- ``/predict example``: the same example images again and again;
- ``/submit_case``: a new image with a random label (a new case each time, never a duplicate).

Gradio's HTTP API: ``POST /gradio_api/upload`` (multipart ``files``) -> server paths;
``POST /gradio_api/call/<api>`` with ``{"data": [...]}`` -> ``event_id``;
``GET /gradio_api/call/<api>/<event_id>``: a server-sent event stream ending in ``event: complete``
(success) or ``event: error`` (a failure here, with the app's message).

Base images: the mini-MIAS PNGs under ``$MAMMO_DATA/mias`` when set, else ``examples/*.png``.
Example images: ``examples/*.png``. Run by hand::

    locust -f scripts/locustfile.py --headless -u 20 -r 5 -t 60s --host http://127.0.0.1:7860
"""

from __future__ import annotations

import io
import json
import os
import random
import time
from pathlib import Path

import numpy as np
import requests
from locust import User, between, task
from PIL import Image

__all__ = ["MammoUser", "GradioError", "unique_png"]

ROOT = Path(__file__).resolve().parents[1]
LABELS = ("normal", "benign", "malignant")
MAX_BASE_IMAGES = 24
TIMEOUT_S = 300


class GradioError(RuntimeError):
    """A Gradio call that did not complete (error event, bad answer, stream cut)."""


def _grey8(path: Path) -> np.ndarray:
    pixels = np.asarray(Image.open(path))
    if pixels.ndim == 3:
        pixels = np.asarray(Image.open(path).convert("L"))
    if pixels.dtype != np.uint8:  # 16-bit PNG
        pixels = (pixels.astype(np.float64) / max(1, int(pixels.max())) * 255).astype(np.uint8)
    return pixels


def _examples() -> list[Path]:
    return sorted((ROOT / "examples").glob("*.png"))


def _base_images() -> list[np.ndarray]:
    data = os.environ.get("MAMMO_DATA")
    paths = sorted(Path(data, "mias").glob("*/*.png")) if data else []
    paths = paths or _examples()
    if not paths:
        raise SystemExit("no base images: set MAMMO_DATA (with mias/) or generate examples/*.png")
    random.Random(0).shuffle(paths)
    return [_grey8(path) for path in paths[:MAX_BASE_IMAGES]]


BASE_IMAGES = _base_images()


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


EXAMPLES = [(path.name, path.read_bytes()) for path in _examples()] or [
    (f"base-{i}.png", _png(grey)) for i, grey in enumerate(BASE_IMAGES[:3])
]


def unique_png(rng: np.random.Generator) -> bytes:
    """A new image: a random 75-100 % crop of a base image plus Gaussian noise, as 8-bit PNG."""
    base = BASE_IMAGES[int(rng.integers(len(BASE_IMAGES)))]
    height, width = base.shape
    h, w = (int(side * rng.uniform(0.75, 1.0)) for side in (height, width))
    top, left = int(rng.integers(height - h + 1)), int(rng.integers(width - w + 1))
    crop = base[top : top + h, left : left + w].astype(np.int16)
    return _png(np.clip(crop + rng.normal(0, 3, crop.shape), 0, 255).astype(np.uint8))


def _file(path: str) -> dict:
    return {"path": path, "meta": {"_type": "gradio.FileData"}}


class MammoUser(User):
    """A clinician: mostly predictions on new images, sometimes an example, sometimes a submission."""

    wait_time = between(0.5, 2.0)

    def on_start(self) -> None:
        self.session = requests.Session()
        self.rng = np.random.default_rng()

    def on_stop(self) -> None:
        self.session.close()

    # -- Gradio HTTP API ------------------------------------------------------------------------
    def _upload(self, name: str, content: bytes) -> str:
        response = self.session.post(f"{self.host}/gradio_api/upload",
                                     files=[("files", (name, content, "image/png"))], timeout=TIMEOUT_S)
        response.raise_for_status()
        return response.json()[0]

    def _call(self, api_name: str, data: list) -> list:
        """Start the call and read its event stream; the output list of ``event: complete``."""
        response = self.session.post(f"{self.host}/gradio_api/call/{api_name}", json={"data": data},
                                     timeout=TIMEOUT_S)
        response.raise_for_status()
        event_id = response.json()["event_id"]
        with self.session.get(f"{self.host}/gradio_api/call/{api_name}/{event_id}", stream=True,
                              timeout=TIMEOUT_S) as stream:
            stream.raise_for_status()
            event = None
            for line in stream.iter_lines(decode_unicode=True):
                if line.startswith("event:"):
                    event = line.partition(":")[2].strip()
                elif line.startswith("data:") and event in {"complete", "error"}:
                    payload = json.loads(line.partition(":")[2].strip() or "null")
                    if event == "error":
                        message = payload.get("error") if isinstance(payload, dict) else payload
                        raise GradioError(f"{api_name}: {message}")
                    return payload
        raise GradioError(f"{api_name}: the event stream ended without a result")

    def _timed(self, name: str, api_name: str, filename: str, content: bytes, rest: list,
               check) -> None:
        """One logical request (upload + call + result), reported to Locust as ``name``."""
        started = time.perf_counter()
        exception: Exception | None = None
        output: list = []
        try:
            output = self._call(api_name, [_file(self._upload(filename, content)), *rest])
            check(output)
        except Exception as error:  # every failure is counted, with its message
            exception = error
        self.environment.events.request.fire(
            request_type="gradio", name=name, response_time=(time.perf_counter() - started) * 1000,
            response_length=len(json.dumps(output)) if output else 0, exception=exception, context={},
        )

    # -- tasks ------------------------------------------------------------------------------------
    @staticmethod
    def _check_prediction(output: list) -> None:
        details = output[2]
        if details.get("label") not in LABELS or abs(sum(details["probabilities"].values()) - 1) > 1e-3:
            raise GradioError(f"/predict: unexpected details {details}")

    @task(3)
    def predict_unique(self) -> None:
        self._timed("/predict unique", "predict", "unique.png", unique_png(self.rng), ["Grad-CAM", 0.4],
                    self._check_prediction)

    @task(1)
    def predict_example(self) -> None:
        name, content = EXAMPLES[int(self.rng.integers(len(EXAMPLES)))]
        self._timed("/predict example", "predict", name, content, ["Grad-CAM", 0.4], self._check_prediction)

    @task(1)
    def submit_case(self) -> None:
        label = LABELS[int(self.rng.integers(len(LABELS)))]

        def check(output: list) -> None:
            receipt = output[0]
            if receipt.get("label") != label or receipt.get("status") != "stored":
                raise GradioError(f"/submit_case: unexpected receipt {receipt}")

        self._timed("/submit_case", "submit_case", "case.png", unique_png(self.rng),
                    [label, None, None, None, None, False, None, ""], check)
