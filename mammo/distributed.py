"""Training across processes with Hugging Face ``accelerate`` (see docs/architecture.md, "Facts the
code relies on").

A plain ``python -m mammo train|cv`` is one process, as before. Launched as
``accelerate launch --multi_gpu --num_processes N -m mammo train ...`` (or ``torchrun
--nproc_per_node N -m mammo train ...``) every process runs the same command: each trains on its
own share of every epoch's batches and DDP averages the gradients (gloo on CPUs, NCCL on GPUs;
``--mixed_precision bf16|fp16`` on GPUs); everything after training (calibration, metrics) is
computed by every process alike and only the main process writes files or prints.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TypeVar

import torch
from accelerate import Accelerator, PartialState
from accelerate.utils import broadcast_object_list, gather_object

T = TypeVar("T")

__all__ = ["ShareRecord", "accelerator", "from_main", "is_main_process", "processes", "record_shares",
           "sync_buffers"]


def _cpu_only() -> bool:
    """No GPU here: processes of a launch then train over gloo on CPUs."""
    return not torch.cuda.is_available()


def accelerator(grad_accum: int = 1) -> Accelerator:
    """The accelerator of one training run: the launcher's processes (DDP over CPUs when no GPU is
    present), its mixed precision, and ``grad_accum`` batches per optimiser step."""
    return Accelerator(cpu=_cpu_only(), gradient_accumulation_steps=grad_accum)


def _state() -> PartialState:
    return PartialState(cpu=_cpu_only())


def is_main_process() -> bool:
    """True in a plain process and in the main process of a launch (the one that writes)."""
    return _state().is_main_process


def processes() -> int:
    """How many processes train together (1 unless launched by accelerate or torchrun)."""
    return _state().num_processes


@dataclass(frozen=True)
class ShareRecord:
    """How one epoch's training data was shared between processes (recorded in the model's config).

    Args:
        processes: processes that trained.
        per_process: training items (films or patches) each process trained on in the first epoch.
        shared: items more than one process trained on (the launcher pads the last batches).
        covered: distinct items trained on by all processes together.
        device: where each process trained (``cpu``, ``cuda:0``, ...).
        mixed_precision: ``no``, ``bf16`` or ``fp16``.
        grad_accum: batches per optimiser step.
    """

    processes: int
    per_process: list[int]
    shared: int
    covered: int
    device: str
    mixed_precision: str
    grad_accum: int

    def to_dict(self) -> dict:
        return asdict(self)


def record_shares(acc: Accelerator, seen: list[int]) -> ShareRecord:
    """Gather the item indices each process trained on (a collective call: every process makes it)."""
    shares = gather_object([sorted(seen)]) if acc.num_processes > 1 else [sorted(seen)]
    every = [index for share in shares for index in share]
    return ShareRecord(
        processes=acc.num_processes, per_process=[len(share) for share in shares],
        shared=len(every) - len(set(every)), covered=len(set(every)), device=str(acc.device),
        mixed_precision=str(acc.mixed_precision), grad_accum=acc.gradient_accumulation_steps,
    )


def sync_buffers(acc: Accelerator, model: torch.nn.Module) -> None:
    """Give every process the main process's buffers (batch-norm statistics), so that scoring
    between epochs, and decisions taken on it, are the same everywhere (a collective call)."""
    if acc.num_processes > 1:
        for buffer in model.buffers():
            torch.distributed.broadcast(buffer, src=0)


def from_main(acc: Accelerator, value: T) -> T:
    """The main process's ``value`` in every process (a collective call), so that a decision taken on
    floating-point results (early stopping, mined hard negatives) is the same everywhere."""
    if acc.num_processes == 1:
        return value
    box = [value]
    broadcast_object_list(box, from_process=0)
    return box[0]
