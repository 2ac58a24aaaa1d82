"""The last few uploaded files, decoded, with the predictions drawn on them: a file's heat map is
redrawn with another method or opacity, its report and full-size map made, without reading it again."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import replace

from .predict import LoadedImage, Prediction

__all__ = ["RecentImages"]


class RecentImages:
    """The last few uploaded files, decoded, with the predictions drawn on them (thread-safe LRU).

    Keys are file paths (Gradio gives each upload its own); predictions are kept per (model
    version, requested heat-map method), without their overlay (a re-blend redraws it).
    """

    def __init__(self, size: int = 4) -> None:
        self.size = size
        self._entries: OrderedDict[str, tuple[LoadedImage, dict[tuple[str, str], Prediction]]] = OrderedDict()
        self._lock = threading.Lock()

    def image(self, key: str) -> LoadedImage | None:
        with self._lock:
            if key not in self._entries:
                return None
            self._entries.move_to_end(key)
            return self._entries[key][0]

    def drawn(self, key: str, version: str) -> dict[str, Prediction]:
        """The predictions of version ``version`` on this file, by requested method."""
        with self._lock:
            _, drawn = self._entries.get(key, (None, {}))
            return {method: p for (v, method), p in drawn.items() if v == version}

    def put(self, key: str, image: LoadedImage, drawn: tuple[str, Prediction] | None = None) -> None:
        """Keep ``image`` and, if given, a (requested method, prediction) drawn on it."""
        with self._lock:
            _, kept = self._entries.pop(key, (image, {}))
            if drawn is not None:
                method, prediction = drawn
                kept[(prediction.model_version, method)] = replace(prediction, overlay=None)
            self._entries[key] = (image, kept)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
