"""Epoch order and padding of micro-batches (``engine/train/batches.py``)."""

from __future__ import annotations

import pytest
import torch

from engine.data.template import IGNORE_INDEX, TokenizedSample
from engine.train.batches import batches_per_epoch, collate, epoch_order, micro_batch

PAD = 99
SAMPLES = [TokenizedSample([1, 2, 3], [IGNORE_INDEX, 2, 3]),
           TokenizedSample([4, 5, 6, 7, 8], [IGNORE_INDEX, IGNORE_INDEX, 6, 7, 8]),
           TokenizedSample([9], [9])]


def test_epoch_order_is_a_permutation() -> None:
    order = epoch_order(50, seed=3, epoch=0)
    assert sorted(order) == list(range(50))
    assert order != list(range(50))


def test_epoch_order_is_deterministic_per_seed_and_epoch() -> None:
    assert epoch_order(50, seed=3, epoch=2) == epoch_order(50, seed=3, epoch=2)
    assert epoch_order(50, seed=3, epoch=0) != epoch_order(50, seed=3, epoch=1)
    assert epoch_order(50, seed=3, epoch=0) != epoch_order(50, seed=4, epoch=0)


def test_epoch_order_ignores_global_torch_seed() -> None:
    torch.manual_seed(1)
    first = epoch_order(30, seed=5, epoch=1)
    torch.manual_seed(2)
    assert epoch_order(30, seed=5, epoch=1) == first


def test_epoch_order_without_shuffle_is_identity() -> None:
    assert epoch_order(7, seed=3, epoch=4, shuffle=False) == list(range(7))


@pytest.mark.parametrize(("count", "size", "expected"), [(10, 3, 4), (9, 3, 3), (1, 8, 1), (0, 4, 0)])
def test_batches_per_epoch_counts_the_short_last_batch(count: int, size: int, expected: int) -> None:
    assert batches_per_epoch(count, size) == expected


def test_collate_pads_right_by_default() -> None:
    batch = collate(SAMPLES, PAD)
    assert batch["input_ids"].tolist() == [[1, 2, 3, PAD, PAD], [4, 5, 6, 7, 8], [9, PAD, PAD, PAD, PAD]]
    assert batch["labels"].tolist() == [[IGNORE_INDEX, 2, 3, IGNORE_INDEX, IGNORE_INDEX],
                                        [IGNORE_INDEX, IGNORE_INDEX, 6, 7, 8],
                                        [9, IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]]
    assert all(t.dtype == torch.long for t in batch.values())


def test_collate_pads_left_when_asked() -> None:
    batch = collate(SAMPLES, PAD, left=True)
    assert batch["input_ids"].tolist() == [[PAD, PAD, 1, 2, 3], [4, 5, 6, 7, 8], [PAD, PAD, PAD, PAD, 9]]
    assert batch["labels"].tolist() == [[IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX, 2, 3],
                                        [IGNORE_INDEX, IGNORE_INDEX, 6, 7, 8],
                                        [IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX, 9]]
    assert batch["attention_mask"].tolist() == [[0, 0, 1, 1, 1], [1, 1, 1, 1, 1], [0, 0, 0, 0, 1]]


@pytest.mark.parametrize("left", [False, True])
def test_collate_keeps_every_real_token_once(left: bool) -> None:
    batch = collate(SAMPLES, PAD, left=left)
    mask = batch["attention_mask"].bool()
    for row, sample in enumerate(SAMPLES):
        assert batch["input_ids"][row][mask[row]].tolist() == sample.input_ids
        assert batch["labels"][row][mask[row]].tolist() == sample.labels
    assert int(mask.sum()) == sum(len(s.input_ids) for s in SAMPLES)
    assert (batch["labels"][~mask] == IGNORE_INDEX).all()
    assert (batch["input_ids"][~mask] == PAD).all()


def test_micro_batches_cover_the_epoch_order_once() -> None:
    samples = [TokenizedSample([i + 1] * (i % 3 + 1), [i + 1] * (i % 3 + 1)) for i in range(7)]
    order = epoch_order(len(samples), seed=11, epoch=0)
    seen = []
    for index in range(batches_per_epoch(len(samples), 3)):
        batch = micro_batch(samples, order, index, 3, pad_id=0)
        seen += [int(row[0]) - 1 for row in batch["input_ids"]]
    assert seen == order
