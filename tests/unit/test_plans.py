"""Flat batch plans give exactly the batches of the list-based plans they replaced; the plan cache."""

from __future__ import annotations

import threading
from bisect import bisect_left, insort

import numpy as np
import pytest

from engine.data.batching import PLANS_KEPT, Batches, BatchSettings
from engine.data.plans import Plan, Rows, bucket_plan, fixed_plan, group_rows, pack_rows, round_up
from engine.data.splits import permutation

ListPlan = list[list[list[int]]]


# The list-based plans as they were (reference for bit-identical batches; resume depends on it).
def old_pack_rows(lengths: np.ndarray, order: np.ndarray, capacity: int, window: int) -> list[list[int]]:
    blocks: list[list[int]] = []
    for start in range(0, len(order), window):
        part = order[start:start + window]
        sizes = np.minimum(lengths[part], capacity)
        free: list[tuple[int, int]] = []
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


def old_bucket_plan(lengths: np.ndarray, order: np.ndarray, budget: int, multiple: int, window: int) -> ListPlan:
    plan: ListPlan = []
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


def old_make_plan(lengths: np.ndarray, s: BatchSettings, epoch: int) -> ListPlan:
    if s.sort_by_length:
        order = np.argsort(lengths, kind="stable")
    else:
        order = permutation(len(lengths), s.seed, epoch) if s.shuffle else np.arange(len(lengths))
    if s.packing:
        rows = old_pack_rows(lengths, order, s.pack_length, 8192)
        per = max(1, s.batch_tokens // s.pack_length) if s.batch_tokens else s.batch_size
        plan = [rows[i:i + per] for i in range(0, len(rows), per)]
    elif s.batch_tokens:
        plan = old_bucket_plan(lengths, order, s.batch_tokens, s.pad_to_multiple_of, 8192)
        if s.shuffle and not s.sort_by_length:
            plan = [plan[i] for i in permutation(len(plan), s.seed + 1, epoch)]
    else:
        items = order.tolist()
        plan = [[[i] for i in items[k:k + s.batch_size]] for k in range(0, len(items), s.batch_size)]
    if s.drop_last and len(plan) > 1 and len(plan[-1]) < len(plan[0]) and not s.batch_tokens:
        plan = plan[:-1]
    return plan


class Lengths:
    """A dataset that only has lengths (plans never read samples)."""

    def __init__(self, lengths: np.ndarray) -> None:
        self.lengths = lengths

    def arrays(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        raise AssertionError("a plan read a sample")


def random_lengths(count: int, seed: int, dtype: type = np.int32) -> np.ndarray:
    return np.random.default_rng(seed).integers(1, 3000, count).astype(dtype)


@pytest.mark.parametrize("count", [0, 1, 5, 777, 20000])
@pytest.mark.parametrize("mode", ["fixed", "drop_last", "sorted", "packed", "packed_tokens", "bucketed",
                                  "bucketed_sorted", "in_order"])
def test_flat_plans_equal_the_list_plans(count: int, mode: str) -> None:
    settings = {"fixed": BatchSettings(batch_size=5, seed=3),
                "drop_last": BatchSettings(batch_size=7, seed=1, drop_last=True),
                "sorted": BatchSettings(batch_size=4, sort_by_length=True),
                "packed": BatchSettings(batch_size=3, packing=True, pack_length=2048, seed=2),
                "packed_tokens": BatchSettings(packing=True, pack_length=1024, batch_tokens=4096, drop_last=True),
                "bucketed": BatchSettings(batch_tokens=4096, pad_to_multiple_of=8, seed=5),
                "bucketed_sorted": BatchSettings(batch_tokens=3000, sort_by_length=True),
                "in_order": BatchSettings(batch_size=2, shuffle=False, packing=True, pack_length=512)}[mode]
    for dtype in (np.int32, np.int64):
        lengths = random_lengths(count, seed=count + len(mode), dtype=dtype)
        batches = Batches(Lengths(lengths), 0, settings)
        for epoch in (0, 1):
            expected = old_make_plan(lengths, settings, epoch)
            assert list(batches.plan(epoch)) == expected
            assert batches.batches_per_epoch(epoch) == len(expected)


def test_pack_rows_and_bucket_plan_match_with_small_windows() -> None:
    lengths = random_lengths(5000, seed=8)
    order = np.random.default_rng(9).permutation(5000)
    assert list(pack_rows(lengths, order, 2048, window=300)) == old_pack_rows(lengths, order, 2048, 300)
    assert list(bucket_plan(lengths, order, 5000, 16, window=300)) == old_bucket_plan(lengths, order, 5000, 16, 300)


def test_plan_indexing_slicing_and_reordering() -> None:
    plan = fixed_plan(np.array([4, 2, 0, 1, 3]), 2)
    assert len(plan) == 3 and plan[0] == [[4], [2]] and plan[-1] == [[3]] and plan.rows_in(-1) == 1
    assert list(plan.truncated(2)) == [[[4], [2]], [[0], [1]]]
    with pytest.raises(IndexError):
        plan[3]
    packed = group_rows(Rows(np.array([5, 6, 7, 8]), np.array([0, 3, 4])), 1)
    assert list(packed) == [[[5, 6, 7]], [[8]]]
    buckets = Plan(Rows(np.array([9, 8, 7, 6, 5])), 3, starts=np.array([0, 1, 3, 5]))
    assert list(buckets.reordered(np.array([2, 0, 1]))) == [[[6], [5]], [[9]], [[8], [7]]]


def test_plans_hold_a_few_bytes_per_sample() -> None:
    lengths = random_lengths(50000, seed=1)
    for settings in (BatchSettings(), BatchSettings(packing=True, pack_length=2048), BatchSettings(batch_tokens=4096)):
        plan = Batches(Lengths(lengths), 0, settings).plan(0)
        held = plan.rows.samples.nbytes + sum(a.nbytes for a in (plan.rows.starts, plan.starts) if a is not None)
        assert held / len(lengths) <= 8


def test_plan_cache_keeps_recent_epochs_and_serves_each_thread_its_epoch() -> None:
    batches = Batches(Lengths(random_lengths(3000, seed=2)), 0, BatchSettings(batch_size=4, seed=7))
    expected = {epoch: list(batches._make_plan(epoch)) for epoch in range(3)}
    made: list[int] = []
    make = batches._make_plan
    batches._make_plan = lambda epoch: made.append(epoch) or make(epoch)  # type: ignore[method-assign]
    errors: list[str] = []

    def ask(epoch: int) -> None:
        for _ in range(200):
            if [batches.plan(epoch)[i] for i in range(3)] != expected[epoch][:3]:
                errors.append(f"wrong plan for epoch {epoch}")

    threads = [threading.Thread(target=ask, args=(e,)) for e in (0, 1, 0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert sorted(made) == [0, 1]                       # each plan made once, not recomputed in turn
    batches.plan(2)
    assert len(batches._plans) == PLANS_KEPT and 2 in batches._plans
