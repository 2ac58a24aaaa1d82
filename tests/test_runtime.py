"""The served backbone through ONNX Runtime: the packaged models give PyTorch's answers, heat maps
and uncertainty on real films, in batches and from many threads, and fall back to PyTorch (logged)
where onnxruntime is missing."""

from __future__ import annotations

import logging
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from helpers import PACKAGED, SERVED

from mammo.choices import GRAD_CAM
from mammo.config import PACKAGE_WEIGHTS
from mammo.predict import Predictor


@pytest.fixture(scope="module")
def films(data_root: Path) -> list[Path]:
    """Two mini-MIAS films at full resolution: one malignant, one normal."""
    root = data_root / "mias1024"
    return [sorted((root / "malignant").glob("*.png"))[0], sorted((root / "normal").glob("*.png"))[0]]


@pytest.mark.parametrize("version", PACKAGED)
def test_packaged_models_answer_as_in_pytorch(version: str, films: list[Path]) -> None:
    fast, plain = Predictor(PACKAGE_WEIGHTS / version), Predictor(PACKAGE_WEIGHTS / version, fast=False)
    assert (fast.runtime, plain.runtime) == ("onnxruntime", "pytorch")
    for got, expected in zip(fast.predict_many(films), plain.predict_many(films), strict=True):  # batch of 2
        assert got.label == expected.label and got.method == expected.method
        for label, p in expected.probabilities.items():
            assert got.probabilities[label] == pytest.approx(p, abs=1e-4)
        assert np.abs(got.heatmap - expected.heatmap).max() < 1e-3
        assert got.uncertainty == pytest.approx(expected.uncertainty, abs=1e-2)  # points of 100
    with ThreadPoolExecutor(4) as pool:  # one session shared by the app's worker threads
        spreads = list(pool.map(lambda f: fast.predict(f).uncertainty, films * 2))
    assert spreads[:2] == spreads[2:]
    if version == "v1":  # Grad-CAM keeps PyTorch (it needs gradients or the torch feature map)
        cam = fast.predict(films[0], method=GRAD_CAM)
        assert cam.method == GRAD_CAM and cam.heatmap.max() > 0


def test_without_onnxruntime_pytorch_serves_and_says_so(monkeypatch: pytest.MonkeyPatch,
                                                        caplog: pytest.LogCaptureFixture,
                                                        films: list[Path]) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails, as where it is not installed
    with caplog.at_level(logging.WARNING, logger="mammo.runtime"):
        predictor = Predictor(PACKAGE_WEIGHTS / SERVED)
    assert predictor.runtime == "pytorch"
    assert "ONNX Runtime not used" in caplog.text and "PyTorch serves it" in caplog.text
    assert sum(predictor.predict(films[0]).probabilities.values()) == pytest.approx(1)
