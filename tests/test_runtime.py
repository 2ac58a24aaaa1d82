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


def test_the_export_is_kept_for_the_next_load_and_a_damaged_copy_is_exported_anew(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path,
        films: list[Path]) -> None:
    from mammo import runtime

    monkeypatch.setenv("MAMMO_CACHE", str(tmp_path / "cache"))
    exports = []
    export = runtime.export_backbone
    monkeypatch.setattr(runtime, "export_backbone", lambda *a: exports.append(1) or export(*a))
    first = Predictor(PACKAGE_WEIGHTS / SERVED)
    [kept] = (tmp_path / "cache").glob("*.onnx")
    again = Predictor(PACKAGE_WEIGHTS / SERVED)  # a restart: read back, not exported
    assert len(exports) == 1 and again.runtime == "onnxruntime"
    assert again.predict(films[0]).probabilities == first.predict(films[0]).probabilities
    # a copy cut short (a full disk, another process's half-written file is never renamed in): dropped,
    # exported anew, and the model still served through ONNX Runtime
    kept.write_bytes(kept.read_bytes()[:1000])
    with caplog.at_level(logging.WARNING, logger="mammo.runtime"):
        damaged = Predictor(PACKAGE_WEIGHTS / SERVED)
    assert "A cached ONNX export did not load" in caplog.text and len(exports) == 2
    assert damaged.runtime == "onnxruntime" and kept.stat().st_size > 10**6
    # another model's export under this key (it loads, but its features are not this model's)
    other = Predictor(PACKAGE_WEIGHTS / "v2", fast=False).model
    kept.write_bytes(export(other, first._example_input()[None]))
    with caplog.at_level(logging.WARNING, logger="mammo.runtime"):
        assert Predictor(PACKAGE_WEIGHTS / SERVED).runtime == "onnxruntime" and len(exports) == 3
    assert "A cached ONNX export answers otherwise than PyTorch" in caplog.text


def test_the_export_key_changes_with_any_weight_and_the_input_size() -> None:
    import copy

    import torch

    from mammo.onnx_cache import export_key

    model = Predictor(PACKAGE_WEIGHTS / SERVED, fast=False).model
    batch = torch.zeros(1, 3, 512, 512)
    key = export_key(model, batch, 17)
    assert key == export_key(model, batch.clone(), 17)  # the weights and shape, not the input's values
    assert key != export_key(model, torch.zeros(1, 3, 384, 384), 17) != export_key(model, batch, 18)
    assert export_key(model, batch.double(), 17) != key

    class Doubled(type(model)):  # the same weights and tree, another forward_features
        def forward_features(self, inputs):
            return 2 * super().forward_features(inputs)

    doubled = copy.deepcopy(model)
    doubled.__class__ = Doubled
    assert export_key(doubled, batch, 17) != key
    with torch.no_grad():
        next(model.parameters()).view(-1)[0] += 1e-6
    assert export_key(model, batch, 17) != key


def test_the_cache_keeps_the_most_recently_used_exports(tmp_path: Path) -> None:
    import os

    from mammo.onnx_cache import ExportCache

    cache = ExportCache(tmp_path / "cache", keep=2)
    for age, key in enumerate(("a", "b")):
        cache.write(key, key.encode())
        os.utime(cache.path(key), (1000 + age, 1000 + age))
    assert cache.read("a") == b"a"  # used now: newer than b
    cache.write("c", b"c")
    assert [cache.read(key) for key in "abc"] == [b"a", None, b"c"]
    cache.drop("a")
    assert cache.read("a") is None and sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["c.onnx"]


def test_a_cache_that_fails_only_costs_the_export(monkeypatch: pytest.MonkeyPatch,
                                                   caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    """A cache folder that cannot be made (a file is in its place), or a model whose key cannot be
    computed: the backbone is exported as without a cache and still served through ONNX Runtime."""
    from mammo import runtime

    blocked = tmp_path / "a file"
    blocked.write_text("not a folder")
    monkeypatch.setenv("MAMMO_CACHE", str(blocked))
    with caplog.at_level(logging.WARNING):
        assert Predictor(PACKAGE_WEIGHTS / SERVED).runtime == "onnxruntime"
    assert "ONNX export not cached" in caplog.text and blocked.read_text() == "not a folder"
    monkeypatch.setenv("MAMMO_CACHE", str(tmp_path / "cache"))

    def no_key(*args):
        raise AttributeError("an extra state that is not a tensor")

    monkeypatch.setattr(runtime, "export_key", no_key)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="mammo.runtime"):
        assert Predictor(PACKAGE_WEIGHTS / SERVED).runtime == "onnxruntime"
    assert "ONNX export not cached for this model (AttributeError" in caplog.text
    assert not (tmp_path / "cache").exists()


def test_a_write_cut_short_leaves_no_part_for_long(tmp_path: Path) -> None:
    import os
    import time

    from mammo.onnx_cache import ExportCache

    cache = ExportCache(tmp_path / "cache")
    cache.write("a", b"a")
    assert oct((tmp_path / "cache").stat().st_mode & 0o777) == "0o700"  # its owner's only
    recent, old = tmp_path / "cache" / "recent.part", tmp_path / "cache" / "old.part"  # killed writes
    recent.write_bytes(b"x")
    old.write_bytes(b"x")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    cache.write("b", b"b")
    assert recent.exists() and not old.exists()  # a write may still be under way in another process
    assert cache.read("a") == b"a" and cache.read("b") == b"b"


def test_features_are_compared_with_pytorch_in_proportion_to_their_size(monkeypatch: pytest.MonkeyPatch,
                                                                        tmp_path: Path) -> None:
    """A retrained model's features differed from PyTorch's by 0.0011 (of up to 6; its probabilities by
    2e-5) and an absolute 1e-3 left it to PyTorch, at 1.6x the cost: the difference is now taken
    relative to the largest feature, as float32 sums in another order differ."""
    import torch
    from torch import nn

    from mammo.runtime import TOLERANCE, onnx_backbone

    monkeypatch.setenv("MAMMO_CACHE", str(tmp_path / "cache"))

    class LargeFeatures(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.net = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), nn.ReLU(),
                                     nn.Conv2d(64, 32, 3, padding=1))

        def forward_features(self, inputs: torch.Tensor) -> torch.Tensor:
            return self.net(inputs) * 1e6

    model, example = LargeFeatures().eval(), torch.rand(3, 64, 64)
    backbone = onnx_backbone(model, example)
    assert backbone is not None, "refused: PyTorch would serve it"
    with torch.inference_mode():
        expected = model.forward_features(example[None])
        absolute = float((backbone(example[None]) - expected).abs().max())
    assert absolute > TOLERANCE, "the sums agreed to the last bit: this check shows nothing here"
    assert backbone.difference == pytest.approx(absolute / float(expected.abs().max()))
    assert backbone.difference < TOLERANCE / 100
