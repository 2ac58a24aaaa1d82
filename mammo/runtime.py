"""A model's backbone (``forward_features``) through ONNX Runtime on the CPU.

EfficientNet-Lite's depthwise convolutions run about twice as fast in ONNX Runtime as in PyTorch on
a CPU (v2's 512 px backbone pass on one thread: 75 ms against 145 ms; see README "Serving speed").
The backbone is exported in memory when a model is loaded (about a second) and checked against
PyTorch on a prepared input; where onnxruntime is missing, the export fails or the outputs differ, the
caller keeps PyTorch and the reason is logged. Heads, pooling, calibration and Grad-CAM stay in
PyTorch.
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

__all__ = ["OnnxBackbone", "onnx_backbone", "TOLERANCE"]

log = logging.getLogger(__name__)

TOLERANCE = 1e-3  # largest accepted difference from PyTorch's feature map (features are O(1))


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
        model: the loaded model (eval mode) with ``forward_features``.
        example: one prepared input (C, S, S): exported at its shape and checked on it.
        threads: ONNX Runtime's intra-op threads (one per worker, as PyTorch's).
    """

    def __init__(self, model: nn.Module, example: torch.Tensor, threads: int = 1) -> None:
        import onnxruntime

        batch = example[None].contiguous()
        exported = io.BytesIO()
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
            torch.onnx.export(_Features(model).eval(), (batch,), exported, dynamo=False, opset_version=17,
                              input_names=["inputs"], output_names=["features"],
                              dynamic_axes={"inputs": {0: "n"}, "features": {0: "n"}})
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = max(1, threads)
        self.session = onnxruntime.InferenceSession(exported.getvalue(), options,
                                                    providers=["CPUExecutionProvider"])
        self._turn = threading.Lock()
        del exported
        _release_freed_memory()  # the exporter's garbage: about 40 MB the app would otherwise keep (measured)
        with torch.inference_mode():
            expected = model.forward_features(batch)
        self.difference = float((self(batch) - expected).abs().max())

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        inputs = np.ascontiguousarray(batch.numpy(), dtype=np.float32)
        with self._turn:
            return torch.from_numpy(self.session.run(None, {"inputs": inputs})[0])


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


def onnx_backbone(model: nn.Module, example: torch.Tensor) -> OnnxBackbone | None:
    """The backbone through ONNX Runtime, or None (logged) where PyTorch must stay."""
    try:
        backbone = OnnxBackbone(model, example, torch.get_num_threads())
    except Exception as error:  # noqa: BLE001 - any failure to export or load means: keep PyTorch
        log.warning("ONNX Runtime not used for this model (%s: %s); PyTorch serves it",
                    type(error).__name__, str(error)[:200])
        return None
    if not backbone.difference <= TOLERANCE:
        log.warning("ONNX Runtime not used for this model: its features differ from PyTorch's by %.2g",
                    backbone.difference)
        return None
    return backbone
