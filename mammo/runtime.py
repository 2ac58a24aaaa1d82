"""A model's backbone (``forward_features``) through ONNX Runtime on the CPU.

EfficientNet-Lite's depthwise convolutions run about twice as fast in ONNX Runtime as in PyTorch on
a CPU (v2's 512 px backbone pass on one thread: 75 ms against 145 ms; see README "Serving speed").
The backbone is exported when a model is first loaded (about a second; kept on disk for the next
load, :mod:`mammo.onnx_cache`) and checked against PyTorch on a prepared input at every load; where
onnxruntime is missing, the export fails or the outputs differ, the caller keeps PyTorch and the
reason is logged. Heads, pooling, calibration and Grad-CAM stay in PyTorch.
"""

from __future__ import annotations

import ctypes
import gc
import io
import logging
import threading
import warnings

import numpy as np
import torch
from torch import nn

from .config import cache_dir
from .onnx_cache import ExportCache, export_key

__all__ = ["OnnxBackbone", "export_backbone", "onnx_backbone", "TOLERANCE", "OPSET"]

log = logging.getLogger(__name__)

# largest accepted difference from PyTorch's feature map, relative to its largest value (or to 1, if
# smaller): float32 sums taken in another order differ in proportion to the values summed, and an
# absolute 1e-3 refused a retrained model whose features differed by 0.0011 of up to 6 (its
# probabilities by 2e-5 on real films, measured), so PyTorch served it at 1.6x the cost
TOLERANCE = 1e-3
OPSET = 17


class _Features(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.model.forward_features(inputs)


class OnnxBackbone:
    """``model.forward_features`` as an ONNX Runtime session (thread-safe; any batch size).

    Runs take turns, on one thread each (as PyTorch's, one per worker): ONNX Runtime's memory arena
    keeps the largest activations it has held, so two runs at once would keep twice that for good
    (about 100 MB more for v2, measured: the app then passed 2 GB with four DICOM clients); the
    rest of a request (reading, preparing, drawing) still overlaps. Without the arena a run takes
    109 ms instead of 75 and the app served no faster than with PyTorch.

    Args:
        exported: the backbone's ONNX export (:func:`export_backbone`).
        model: the loaded model (eval mode) with ``forward_features``, to check the session against.
        batch: one prepared input (1, C, S, S): checked on it.
        threads: ONNX Runtime's intra-op threads (one per worker, as PyTorch's).
    """

    def __init__(self, exported: bytes, model: nn.Module, batch: torch.Tensor, threads: int = 1) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = max(1, threads)
        self.session = onnxruntime.InferenceSession(exported, options, providers=["CPUExecutionProvider"])
        self._turn = threading.Lock()
        with torch.inference_mode():
            expected = model.forward_features(batch)
        # relative to the largest feature (see TOLERANCE)
        self.difference = float((self(batch) - expected).abs().max() / expected.abs().max().clamp(min=1))

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        inputs = np.ascontiguousarray(batch.numpy(), dtype=np.float32)
        with self._turn:
            return torch.from_numpy(self.session.run(None, {"inputs": inputs})[0])


def export_backbone(model: nn.Module, batch: torch.Tensor) -> bytes:
    """``model.forward_features`` exported to ONNX at ``batch``'s shape (any batch size)."""
    exported = io.BytesIO()
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(_Features(model).eval(), (batch,), exported, dynamo=False, opset_version=OPSET,
                          input_names=["inputs"], output_names=["features"],
                          dynamic_axes={"inputs": {0: "n"}, "features": {0: "n"}})
    data = exported.getvalue()
    del exported
    _release_freed_memory()  # the exporter's garbage: about 40 MB the app would otherwise keep (measured)
    return data


def _release_freed_memory() -> None:
    """Collect the young garbage and hand freed heap pages back to the system (glibc; elsewhere
    nothing). Young only: the exporter's garbage is new, and a full collection freed nothing more
    (the app at 1,090 MiB either way, measured) for 0.4 s at each model load, longer in a process
    holding more objects."""
    gc.collect(1)
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _export_cache(model: nn.Module, batch: torch.Tensor) -> tuple[ExportCache | None, str]:
    """The export cache and this model's key in it; no cache (logged) when the key cannot be made."""
    try:
        return ExportCache(cache_dir()), export_key(model, batch, OPSET)
    except Exception as error:  # noqa: BLE001 - a cache can only save time: export as without one
        log.warning("ONNX export not cached for this model (%s: %s)", type(error).__name__, str(error)[:200])
        return None, ""


def _cached(cache: ExportCache, key: str, model: nn.Module, batch: torch.Tensor,
            threads: int) -> OnnxBackbone | None:
    """The backbone from the cached export under ``key``; None when there is none, or when it does not
    load or answer as PyTorch does (then it is dropped, to be exported anew)."""
    exported = cache.read(key)
    if exported is None:
        return None
    try:
        backbone = OnnxBackbone(exported, model, batch, threads)
    except Exception as error:  # noqa: BLE001 - a damaged copy: export anew
        log.warning("A cached ONNX export did not load (%s: %s); exporting anew",
                    type(error).__name__, str(error)[:200])
        backbone = None
    if backbone is not None and not backbone.difference <= TOLERANCE:
        log.warning("A cached ONNX export answers otherwise than PyTorch (by %.2g of the largest feature); "
                    "exporting anew", backbone.difference)
        backbone = None
    if backbone is None:
        cache.drop(key)
    return backbone


def onnx_backbone(model: nn.Module, example: torch.Tensor) -> OnnxBackbone | None:
    """The backbone through ONNX Runtime, or None (logged) where PyTorch must stay. The export is
    cached (:mod:`mammo.onnx_cache`): a model loaded again skips it."""
    batch, threads = example[None].contiguous(), torch.get_num_threads()
    try:
        import onnxruntime  # noqa: F401 - where it is missing, PyTorch serves (and the cache is not touched)

        cache, key = _export_cache(model, batch)
        backbone = None if cache is None else _cached(cache, key, model, batch, threads)
        if backbone is None:
            exported = export_backbone(model, batch)
            backbone = OnnxBackbone(exported, model, batch, threads)
            if cache is not None and backbone.difference <= TOLERANCE:
                cache.write(key, exported)
    except Exception as error:  # noqa: BLE001 - any failure to export or load means: keep PyTorch
        log.warning("ONNX Runtime not used for this model (%s: %s); PyTorch serves it",
                    type(error).__name__, str(error)[:200])
        return None
    if not backbone.difference <= TOLERANCE:
        log.warning("ONNX Runtime not used for this model: its features differ from PyTorch's by %.2g of "
                    "their largest value", backbone.difference)
        return None
    return backbone
