"""A model's backbone (``forward_features``) through ONNX Runtime on the CPU.

EfficientNet-Lite's depthwise convolutions run faster in ONNX Runtime than in PyTorch on a CPU (v2's
512 px backbone pass: 145 ms in PyTorch on one thread, 66 ms here on two; see README "Serving
speed"). The backbone is exported in memory when a model is loaded (about a second) and checked
against PyTorch on a real input; where onnxruntime is missing, the export fails or the outputs
differ, the caller keeps PyTorch and the reason is logged. Heads, pooling, calibration and Grad-CAM
stay in PyTorch.
"""

from __future__ import annotations

import ctypes
import gc
import io
import logging
import os
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

    Runs take turns, each on ``threads`` threads that sleep between runs (no spinning), so one run
    has the machine's cores while the rest of other requests (reading, preparing, drawing) goes on.
    Without ONNX Runtime's memory arena: it would keep the largest activations it ever held
    (about 115 MB more for v2) for a third of the time per run (44 instead of 66 ms, measured).

    Args:
        model: the loaded model (eval mode) with ``forward_features``.
        example: one real prepared input (C, S, S): exported at its shape and checked on it.
        threads: ONNX Runtime's intra-op threads for a run.
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
        options.enable_cpu_mem_arena = False
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = onnxruntime.InferenceSession(exported.getvalue(), options,
                                                    providers=["CPUExecutionProvider"])
        self._turn = threading.Lock()
        del exported
        _release_freed_memory()  # the exporter's garbage: about 50 MB the process would otherwise keep
        with torch.inference_mode():
            expected = model.forward_features(batch)
        self.difference = float((self(batch) - expected).abs().max())

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        inputs = np.ascontiguousarray(batch.numpy(), dtype=np.float32)
        with self._turn:
            return torch.from_numpy(self.session.run(None, {"inputs": inputs})[0])


def _cores() -> int:
    """The CPU cores this process may use, at most 4 (runs take turns: one run may use them all)."""
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        available = os.cpu_count() or 1
    return max(1, min(4, available))


def _release_freed_memory() -> None:
    """Collect garbage and hand freed heap pages back to the system (glibc; elsewhere nothing)."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def onnx_backbone(model: nn.Module, example: torch.Tensor) -> OnnxBackbone | None:
    """The backbone through ONNX Runtime, or None (logged) where PyTorch must stay."""
    try:
        backbone = OnnxBackbone(model, example, _cores())
    except Exception as error:  # noqa: BLE001 - any failure to export or load means: keep PyTorch
        log.warning("ONNX Runtime not used for this model (%s: %s); PyTorch serves it",
                    type(error).__name__, str(error)[:200])
        return None
    if not backbone.difference <= TOLERANCE:
        log.warning("ONNX Runtime not used for this model: its features differ from PyTorch's by %.2g",
                    backbone.difference)
        return None
    return backbone
