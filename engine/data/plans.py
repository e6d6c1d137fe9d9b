"""Batch plans: which samples go in which row of which batch, from sample lengths only (no torch).

A plan is a list of batches; a batch is a list of rows; a row is a list of sample indices (one
sample per row when padding, several when packing). Plans are computed from the lengths array
alone, so resuming at batch ``k`` of an epoch reads no sample data before it.

- ``fixed_plan``: ``batch_size`` samples per batch, in the given order.
- ``pack_plan``: best-fit-decreasing packing of samples into blocks of ``capacity`` tokens,
  within windows of the order (so a shuffled order stays shuffled at a large scale).
- ``bucket_plan``: within windows, samples sorted by length and grouped while
  ``rows x padded longest`` stays within a token budget.
"""

from __future__ import annotations

from bisect import bisect_left, insort

import numpy as np

Plan = list[list[list[int]]]
WINDOW = 8192


def round_up(value: int, multiple: int) -> int:
    """``value`` rounded up to a multiple of ``multiple``."""
    return -(-value // multiple) * multiple


def fixed_plan(order: np.ndarray, batch_size: int) -> Plan:
    """Batches of ``batch_size`` samples (the last may be short)."""
    items = order.tolist()
    return [[[i] for i in items[s:s + batch_size]] for s in range(0, len(items), batch_size)]


def pack_rows(lengths: np.ndarray, order: np.ndarray, capacity: int, window: int = WINDOW) -> list[list[int]]:
    """Blocks of sample indices whose lengths (capped at ``capacity``) fit in ``capacity`` tokens."""
    blocks: list[list[int]] = []
    for start in range(0, len(order), window):
        part = order[start:start + window]
        sizes = np.minimum(lengths[part], capacity)
        free: list[tuple[int, int]] = []  # (room left, block number), sorted
        for position in np.argsort(-sizes, kind="stable"):
            index, size = int(part[position]), int(sizes[position])
            slot = bisect_left(free, (size, -1))
            if slot < len(free):
                room, block = free.pop(slot)
            else:
                room, block = capacity, len(blocks)
                blocks.append([])
            blocks[block].append(index)
            if room - size > 0:
                insort(free, (room - size, block))
    return blocks


def group_rows(rows: list[list[int]], per_batch: int) -> Plan:
    """Rows in batches of ``per_batch`` (the last may be short)."""
    return [rows[s:s + per_batch] for s in range(0, len(rows), per_batch)]


def bucket_plan(lengths: np.ndarray, order: np.ndarray, budget: int, multiple: int = 1,
                window: int = WINDOW) -> Plan:
    """Length-bucketed batches of at most ``budget`` padded tokens (a longer sample goes alone)."""
    plan: Plan = []
    for start in range(0, len(order), window):
        part = order[start:start + window]
        batch: list[list[int]] = []
        longest = 0
        for position in np.argsort(lengths[part], kind="stable"):
            index = int(part[position])
            width = round_up(max(longest, int(lengths[index])), multiple)
            if batch and width * (len(batch) + 1) > budget:
                plan.append(batch)
                batch, width = [], round_up(int(lengths[index]), multiple)
            batch.append([index])
            longest = width
        if batch:
            plan.append(batch)
    return plan
