"""Out-of-memory backoff: split each micro-batch into smaller pieces, keeping the effective batch.

A micro-batch of ``B`` samples run as ``splits`` pieces is the same gradient as the whole: each
piece's mean loss is weighted by its share of the micro-batch's trained tokens. So when a step runs
out of memory, the recipe zeroes the gradients, rewinds the data position and RNG, doubles
``splits`` (half the micro-batch, twice the accumulation) and runs the step again: the effective
batch, the data order and the losses stay what they were.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch

Backward = Callable[[torch.Tensor], None]


def is_oom(exc: BaseException) -> bool:
    """Whether an exception is an out-of-memory error (CUDA, MPS or the CPU allocator)."""
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def free_memory(device: torch.device) -> None:
    """Give cached accelerator memory back after an out-of-memory error."""
    if device.type == "cuda":
        torch.cuda.empty_cache()


Metrics = dict[str, torch.Tensor]


def forward_backward(objective: Any, model: Any, batch: dict[str, torch.Tensor], splits: int, scale: float,
                     backward: Backward,
                     context: Callable[[], contextlib.AbstractContextManager[Any]]) -> tuple[torch.Tensor, Metrics]:
    """Forward and backward one micro-batch in ``splits`` pieces; its (detached) mean loss and metrics.

    ``objective`` computes the loss (``engine.objectives.base``); ``scale`` multiplies it before
    ``backward`` (1 / accumulation steps). Pieces keep the objective's units whole (pairs stay
    pairs) and are weighted by their share of the units (trained tokens, pairs).
    """
    rows = objective.rows(batch)
    if splits <= 1 or rows == 1:
        with context():
            out = objective.compute(model, batch)
        backward(out.loss * scale)
        return out.loss.detach(), {k: v.detach() for k, v in out.metrics.items()}
    total = objective.weight(batch).clamp(min=1)
    mean = torch.zeros((), device=batch["input_ids"].device)
    metrics: Metrics = {}
    for piece in objective.split(batch, min(splits, rows)):
        weight = objective.weight(piece) / total
        if float(weight) == 0.0:
            continue
        with context():
            out = objective.compute(model, piece)
        backward(out.loss * weight * scale)
        mean = mean + out.loss.detach().float() * weight
        for name, value in out.metrics.items():
            metrics[name] = metrics.get(name, 0) + value.detach().float() * weight
    return mean, metrics


def backoff_message(step: int, batch_size: int, accumulation: int, splits: int) -> str:
    """The log line recorded when a step is retried with smaller micro-batches."""
    micro = -(-batch_size // splits)
    return (f"out of memory at step {step}: retrying with micro-batch {micro} and gradient "
            f"accumulation {accumulation * splits} (effective batch {batch_size * accumulation} unchanged)")
