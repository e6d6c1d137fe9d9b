"""Batch plans: which samples go in which row of which batch, from sample lengths only (no torch).

A plan reads as a list of batches; a batch is a list of rows; a row is a list of sample indices
(one sample per row when padding, several when packing). It is stored flat, as numpy arrays
(the sample indices in order plus row and batch offsets), so it costs a few bytes per sample
rather than Python lists. Plans are computed from the lengths array alone, so resuming at
batch ``k`` of an epoch reads no sample data before it.

- ``fixed_plan``: ``batch_size`` samples per batch, in the given order.
- ``pack_rows``: best-fit-decreasing packing of samples into blocks of ``capacity`` tokens,
  within windows of the order (so a shuffled order stays shuffled at a large scale);
  ``group_rows`` puts those rows into batches of ``per_batch``.
- ``bucket_plan``: within windows, samples sorted by length and grouped while
  ``rows x padded longest`` stays within a token budget.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np

WINDOW = 8192


def round_up(value: int, multiple: int) -> int:
    """``value`` rounded up to a multiple of ``multiple``."""
    return -(-value // multiple) * multiple


def index_dtype(bound: int) -> type[np.signedinteger]:
    """int32 when every index below ``bound`` fits in it, else int64."""
    return np.int32 if bound < 2**31 else np.int64


@dataclass(frozen=True)
class Rows:
    """Rows of sample indices: ``samples[starts[r]:starts[r + 1]]`` (``starts`` None: one per row)."""

    samples: np.ndarray
    starts: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.samples) if self.starts is None else len(self.starts) - 1

    def span(self, low: int, high: int) -> list[list[int]]:
        """Rows ``low`` to ``high`` (excluded) as lists."""
        if self.starts is None:
            return [[i] for i in self.samples[low:high].tolist()]
        bounds = self.starts[low:high + 1].tolist()
        flat = self.samples[bounds[0]:bounds[-1]].tolist()
        return [flat[a - bounds[0]:b - bounds[0]] for a, b in zip(bounds, bounds[1:], strict=False)]

    def __getitem__(self, row: int) -> list[int]:
        return self.span(row, row + 1)[0]

    def __iter__(self) -> Iterator[list[int]]:
        return (self[r] for r in range(len(self)))


@dataclass(frozen=True)
class Plan:
    """Batches of rows: batch ``b`` is rows ``starts[b]:starts[b + 1]``, or ``per_batch`` rows each."""

    rows: Rows
    count: int
    per_batch: int = 0
    starts: np.ndarray | None = None

    def bounds(self, batch: int) -> tuple[int, int]:
        """The rows ``(first, past last)`` of batch ``batch``."""
        if not -self.count <= batch < self.count:
            raise IndexError(batch)
        batch %= self.count
        if self.starts is not None:
            return int(self.starts[batch]), int(self.starts[batch + 1])
        return batch * self.per_batch, min((batch + 1) * self.per_batch, len(self.rows))

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, batch: int) -> list[list[int]]:
        return self.rows.span(*self.bounds(batch))

    def __iter__(self) -> Iterator[list[list[int]]]:
        return (self[b] for b in range(self.count))

    def rows_in(self, batch: int) -> int:
        """How many rows batch ``batch`` holds."""
        low, high = self.bounds(batch)
        return high - low

    def truncated(self, count: int) -> Plan:
        """The first ``count`` batches."""
        return replace(self, count=min(count, self.count))

    def reordered(self, order: np.ndarray) -> Plan:
        """The batches in the order ``order`` (one-sample rows only)."""
        if self.rows.starts is not None or self.starts is None:
            raise ValueError("reordered: needs batch offsets over one-sample rows")
        sizes = np.diff(self.starts)[order]
        starts = np.zeros(len(order) + 1, dtype=self.starts.dtype)
        np.cumsum(sizes, out=starts[1:])
        take = np.repeat(self.starts[:-1][order] - starts[:-1], sizes) + np.arange(starts[-1])
        return Plan(Rows(self.rows.samples[take]), len(order), starts=starts)


def fixed_plan(order: np.ndarray, batch_size: int) -> Plan:
    """Batches of ``batch_size`` samples (the last may be short)."""
    return group_rows(Rows(np.asarray(order, dtype=index_dtype(len(order)))), batch_size)


def group_rows(rows: Rows, per_batch: int) -> Plan:
    """Rows in batches of ``per_batch`` (the last may be short)."""
    return Plan(rows, -(-len(rows) // per_batch), per_batch)


def _pack_window(sizes: np.ndarray, capacity: int) -> tuple[np.ndarray, np.ndarray]:
    """``(visit order, block of each visited sample)`` of best-fit-decreasing over one window."""
    visits = np.argsort(-sizes, kind="stable")
    blocks = np.empty(len(visits), dtype=np.int64)
    free: list[tuple[int, int]] = []  # (room left, block number), sorted
    made = 0
    for step, size in enumerate(sizes[visits].tolist()):
        slot = bisect_left(free, (size, -1))
        if slot < len(free):
            room, block = free.pop(slot)
        else:
            room, block, made = capacity, made, made + 1
        blocks[step] = block
        if room - size > 0:
            insort(free, (room - size, block))
    return visits, blocks


def pack_rows(lengths: np.ndarray, order: np.ndarray, capacity: int, window: int = WINDOW) -> Rows:
    """Blocks of sample indices whose lengths (capped at ``capacity``) fit in ``capacity`` tokens.

    In a block, samples come in the order they were placed (longest first); blocks in the order
    they were opened.
    """
    samples = np.empty(len(order), dtype=index_dtype(len(lengths)))
    counts: list[np.ndarray] = []
    for start in range(0, len(order), window):
        part = order[start:start + window]
        visits, blocks = _pack_window(np.minimum(lengths[part], capacity), capacity)
        by_block = np.argsort(blocks, kind="stable")
        samples[start:start + len(part)] = part[visits[by_block]]
        counts.append(np.bincount(blocks))
    sizes = np.concatenate(counts) if counts else np.zeros(0, dtype=np.int64)
    starts = np.zeros(len(sizes) + 1, dtype=index_dtype(len(order) + 1))
    np.cumsum(sizes, out=starts[1:])
    return Rows(samples, starts)


def _bucket_window(widths: list[int], budget: int) -> list[int]:
    """Where batches start in one window of ascending padded widths."""
    cuts: list[int] = []
    size = 0
    for position, width in enumerate(widths):
        if size and width * (size + 1) > budget:
            cuts.append(position)
            size = 0
        size += 1
    return cuts


def bucket_plan(lengths: np.ndarray, order: np.ndarray, budget: int, multiple: int = 1,
                window: int = WINDOW) -> Plan:
    """Length-bucketed batches of at most ``budget`` padded tokens (a longer sample goes alone)."""
    samples = np.empty(len(order), dtype=index_dtype(len(lengths)))
    starts: list[int] = []
    for start in range(0, len(order), window):
        part = order[start:start + window]
        by_length = np.argsort(lengths[part], kind="stable")
        samples[start:start + len(part)] = part[by_length]
        widths = (-(-lengths[part][by_length].astype(np.int64) // multiple) * multiple).tolist()
        starts += [start] + [start + cut for cut in _bucket_window(widths, budget)]
    offsets = np.asarray(starts + [len(order)], dtype=index_dtype(len(order) + 1))
    return Plan(Rows(samples), len(starts), starts=offsets)
