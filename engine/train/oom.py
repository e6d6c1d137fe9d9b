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

from engine.data.template import IGNORE_INDEX

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


def trained_tokens(labels: torch.Tensor) -> torch.Tensor:
    """Per-row count of tokens the loss is taken on (labels are shifted by one)."""
    return (labels[:, 1:] != IGNORE_INDEX).sum(dim=1)


def forward_backward(model: Any, batch: dict[str, torch.Tensor], splits: int, scale: float,
                     backward: Backward,
                     context: Callable[[], contextlib.AbstractContextManager[Any]]) -> torch.Tensor:
    """Forward and backward one micro-batch in ``splits`` pieces; returns its (detached) mean loss.

    ``scale`` multiplies the loss before ``backward`` (1 / accumulation steps).
    """
    rows = batch["input_ids"].shape[0]
    if splits <= 1 or rows == 1:
        with context():
            loss = model(**batch).loss
        backward(loss * scale)
        return loss.detach()
    pieces = [dict(zip(batch, parts, strict=True))
              for parts in zip(*(torch.tensor_split(v, min(splits, rows)) for v in batch.values()), strict=True)]
    total = trained_tokens(batch["labels"]).sum().clamp(min=1)
    mean = torch.zeros((), device=batch["input_ids"].device)
    for piece in pieces:
        weight = trained_tokens(piece["labels"]).sum() / total
        if float(weight) == 0.0:
            continue
        with context():
            loss = model(**piece).loss
        backward(loss * weight * scale)
        mean = mean + loss.detach().float() * weight
    return mean


def backoff_message(step: int, batch_size: int, accumulation: int, splits: int) -> str:
    """The log line recorded when a step is retried with smaller micro-batches."""
    micro = -(-batch_size // splits)
    return (f"out of memory at step {step}: retrying with micro-batch {micro} and gradient "
            f"accumulation {accumulation * splits} (effective batch {batch_size * accumulation} unchanged)")
