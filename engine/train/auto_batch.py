"""``training.batch_size = "auto"``: the largest micro-batch that fits under ``resources.max_memory``.

Before the first step the recipe runs probe forward/backward passes on batches of the worst
case shape (every row as long as the longest sample, or a full packed block), doubling the
micro-batch from 1 and measuring each probe's peak memory: allocated CUDA memory on a GPU, the
process's resident memory (sampled by a thread) on a CPU. Peaks grow linearly with the
micro-batch, so before a probe that would cross the limit the search predicts it from the last
two and stops instead (on a CPU there is no out-of-memory error to catch, only the kernel's
killer), then tries the largest size the line says fits. AdamW's two moment buffers, not
allocated before the first step, are added to every peak. Probes draw no global random numbers
(their RNG state is restored), so a run with "auto" trains exactly like one given the same
number; the number found is kept in checkpoints so a resumed run uses it again.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.config import Config
from engine.errors import UserError
from engine.train.checkpoint import rng_state, set_rng_state
from engine.train.evaluate import autocast
from engine.train.oom import free_memory, is_oom

MIB = 1 << 20
Measure = Callable[[int], "int | None"]
"""Peak bytes of one probe step at a micro-batch size, or None when it ran out of memory."""


@dataclass
class AutoBatch:
    """What the search found: the micro-batch, its measured peak and the limit it had to fit."""

    batch_size: int
    peak_bytes: int
    limit_bytes: int

    def describe(self) -> str:
        """One log line about the choice."""
        return (f"training.batch_size = 'auto': micro-batch {self.batch_size} "
                f"(peak {self.peak_bytes / MIB:,.0f} MiB of {self.limit_bytes / MIB:,.0f} MiB allowed)")


def largest_fitting(measure: Measure, limit: int, cap: int) -> tuple[int, int] | None:
    """``(size, peak)`` of the largest micro-batch up to ``cap`` whose peak stays under ``limit``.

    None when not even one sample fits. Sizes double from 1; a size whose peak the last two
    probes predict to be over ``limit`` is never run.
    """
    best: tuple[int, int] | None = None
    previous: tuple[int, int] | None = None
    size = 1
    while size <= cap:
        if best and previous and _predicted(previous, best, size) > limit:
            break
        peak = measure(size)
        if peak is None or peak > limit:
            break
        previous, best = best, (size, peak)
        size *= 2
    if best is None or best[0] >= cap or previous is None:
        return best
    return _fill_gap(measure, limit, cap, previous, best)


def _predicted(a: tuple[int, int], b: tuple[int, int], size: int) -> float:
    """The peak at ``size`` on the line through two measured ``(size, peak)`` points."""
    slope = max(b[1] - a[1], 0) / (b[0] - a[0])
    return b[1] + slope * (size - b[0])


def _fill_gap(measure: Measure, limit: int, cap: int, a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
    """Try the largest size between ``b`` and twice ``b`` that the line through ``a``, ``b`` fits."""
    slope = max(b[1] - a[1], 0) / (b[0] - a[0])
    room = (limit - b[1]) / slope if slope else float("inf")
    size = min(cap, 2 * b[0] - 1, b[0] + int(room))
    if size <= b[0]:
        return b
    peak = measure(size)
    return (size, peak) if peak is not None and peak <= limit else b


def find_batch_size(model: Any, config: Config, seq_len: int, objective: Any = None) -> AutoBatch:
    """Probe ``model`` (already wrapped for its method) and pick the micro-batch for ``config``.

    ``objective`` (default: sft's) forms the probe batches and computes their loss.
    """
    if objective is None:
        from engine.objectives.base import Objective

        objective = Objective(config)
    device = next(model.parameters()).device
    vocab_size = int(model.get_input_embeddings().weight.shape[0])
    limit = memory_limit(config, device)
    optimizer_bytes = 2 * sum(p.numel() * 4 for p in model.parameters() if p.requires_grad)
    saved = rng_state()
    try:
        found = largest_fitting(
            lambda size: _probe(model, objective, config, size, seq_len, vocab_size, device, optimizer_bytes),
            limit, config.resources.max_batch_size)
    finally:
        set_rng_state(saved)
        model.zero_grad(set_to_none=True)
        free_memory(device)
    if found is None:
        raise UserError(f"training.batch_size = 'auto': even a micro-batch of 1 sample of {seq_len} tokens "
                        f"needs more than resources.max_memory ({limit / MIB:,.0f} MiB); lower data.max_length, "
                        "set training.gradient_checkpointing = true or raise resources.max_memory")
    return AutoBatch(found[0], found[1], limit)


def probe_length(dataset: Any, config: Config) -> int:
    """The row length of the worst-case batch: a packed block, or the longest sample padded."""
    data = config.data
    if data.packing:
        return data.pack_length or data.max_length
    lengths = getattr(dataset, "lengths", None)
    longest = int(np.max(lengths)) if lengths is not None and len(lengths) else max(
        (len(s.input_ids) for s in dataset), default=1)
    return -(-longest // data.pad_to_multiple_of) * data.pad_to_multiple_of


def memory_limit(config: Config, device: torch.device) -> int:
    """Bytes a probe may peak at: ``resources.max_memory``, or 90 % of what the device has."""
    if config.resources.max_memory > 0:
        return config.resources.max_memory * MIB
    if device.type == "cuda":
        return int(torch.cuda.get_device_properties(device).total_memory * 0.9)
    import psutil

    return int(psutil.Process().memory_info().rss + psutil.virtual_memory().available * 0.9)


def _probe(model: Any, objective: Any, config: Config, size: int, seq_len: int, vocab_size: int,
           device: torch.device, optimizer_bytes: int) -> int | None:
    """Forward and backward one synthetic batch of ``size`` units; its peak bytes (None on OOM)."""
    generator = torch.Generator().manual_seed(size)
    ids = torch.randint(0, max(vocab_size, 2), (size, seq_len), generator=generator)
    batch = {k: v.to(device) for k, v in objective.probe_batch(ids).items()}
    try:
        with _peak_memory(device) as peak:
            with autocast(config.training.precision, device):
                loss = objective.compute(model, batch).loss
            loss.backward()
    except RuntimeError as exc:
        if not is_oom(exc):
            raise
        return None
    finally:
        model.zero_grad(set_to_none=True)
        free_memory(device)
    return peak[0] + optimizer_bytes


@contextlib.contextmanager
def _peak_memory(device: torch.device) -> Iterator[list[int]]:
    """Yields a one-item list that holds the peak bytes in use during the block once it ends."""
    peak = [0]
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        yield peak
        torch.cuda.synchronize(device)
        peak[0] = torch.cuda.max_memory_allocated(device)
        return
    sampler = _RssSampler()
    sampler.start()
    try:
        yield peak
    finally:
        peak[0] = sampler.stop()


class _RssSampler(threading.Thread):
    """Samples the process's resident memory every millisecond; ``stop`` returns the largest seen."""

    def __init__(self) -> None:
        super().__init__(name="llamahome-rss-probe", daemon=True)
        import psutil

        self._process = psutil.Process()
        self._done = threading.Event()
        self.peak = self._process.memory_info().rss

    def run(self) -> None:
        while not self._done.wait(0.001):
            self.peak = max(self.peak, self._process.memory_info().rss)

    def stop(self) -> int:
        self._done.set()
        self.join()
        return max(self.peak, self._process.memory_info().rss)


def checkpoint_batch_size(folder: Path) -> int | None:
    """The micro-batch a checkpoint's run trained with, when it chose it with "auto"."""
    from engine.train.checkpoint import read_meta

    value = read_meta(folder).get("batch_size")
    return int(value) if isinstance(value, int) else None
