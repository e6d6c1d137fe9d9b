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
Sync = Callable[[bool], contextlib.AbstractContextManager[Any]]
"""``sync(final)``: a context in which a piece's forward and backward reduce gradients over a group or not."""


def forward_backward(objective: Any, model: Any, batch: dict[str, torch.Tensor], splits: int, scale: float,
                     backward: Backward,
                     context: Callable[[], contextlib.AbstractContextManager[Any]],
                     sync: Sync | None = None,
                     agree: Callable[[int], int] | None = None) -> tuple[torch.Tensor, Metrics]:
    """Forward and backward one micro-batch in ``splits`` pieces; its (detached) mean loss and metrics.

    ``objective`` computes the loss (``engine.objectives.base``); ``scale`` multiplies it before
    ``backward`` (1 / accumulation steps). Pieces keep the objective's units whole (pairs stay
    pairs) and are weighted by their share of the units (trained tokens, pairs).

    In a group every rank must run as many passes as the others (FSDP gathers the weights in each
    forward) and reduce gradients in its last one only, whatever its slice of the batch: with
    ``splits > 1`` (the same on every rank) ``agree(n)`` turns this rank's number of pieces into
    the group's largest, the missing passes run the first piece again at weight 0, and
    ``sync(final)`` wraps every pass, ``final`` true for the last.
    """
    around = sync if sync is not None else _no_sync
    runs = _weighed_pieces(objective, batch, splits)
    extra = agree(len(runs)) - len(runs) if agree is not None and splits > 1 else 0
    for _ in range(extra):  # stand-in passes, adding gradients of zero
        _pass(objective, model, runs[0][0] if runs else batch, 0.0, backward, context, around(False))
    if len(runs) == 1 and runs[0][0] is batch:  # not split
        out = _pass(objective, model, batch, scale, backward, context, around(True))
        return out.loss.detach(), {k: v.detach() for k, v in out.metrics.items()}
    mean = torch.zeros((), device=batch["input_ids"].device)
    metrics: Metrics = {}
    for index, (piece, weight) in enumerate(runs):
        out = _pass(objective, model, piece, weight * scale, backward, context, around(index == len(runs) - 1))
        mean = mean + out.loss.detach().float() * weight
        for name, value in out.metrics.items():
            metrics[name] = metrics.get(name, 0) + value.detach().float() * weight
    return mean, metrics


def _pass(objective: Any, model: Any, piece: dict[str, torch.Tensor], factor: Any, backward: Backward,
          context: Callable[[], contextlib.AbstractContextManager[Any]],
          sync: contextlib.AbstractContextManager[Any]) -> Any:
    """One forward and backward (of the loss times ``factor``) inside ``sync``; the objective's output."""
    with sync:
        with context():
            out = objective.compute(model, piece)
        backward(out.loss * factor)
    return out


def _weighed_pieces(objective: Any, batch: dict[str, torch.Tensor], splits: int) -> list[tuple[Any, Any]]:
    """``(piece, its share of the batch's units)`` for each piece a micro-batch runs as.

    Pieces without a unit (no trained token) are left out: their mean loss is 0/0. A batch split
    into nothing but such pieces runs no pass at all in one process; in a group its stand-in
    passes then run the whole batch, whose 0/0 loss makes the gradient NaN (a rank holding not
    one trained token in a micro-batch of several pieces).
    """
    rows = objective.rows(batch)
    if splits <= 1 or rows == 1:
        return [(batch, 1.0)]
    total = objective.weight(batch).clamp(min=1)
    weighed = [(piece, objective.weight(piece) / total) for piece in objective.split(batch, min(splits, rows))]
    return [(piece, weight) for piece, weight in weighed if float(weight) != 0.0]


def _no_sync(final: bool) -> contextlib.AbstractContextManager[Any]:
    """One process: no gradient reduction to switch."""
    return contextlib.nullcontext()


def backoff_message(step: int, batch_size: int, accumulation: int, splits: int) -> str:
    """The log line recorded when a step is retried with smaller micro-batches."""
    micro = -(-batch_size // splits)
    return (f"out of memory at step {step}: retrying with micro-batch {micro} and gradient "
            f"accumulation {accumulation * splits} (effective batch {batch_size * accumulation} unchanged)")
