"""Batch plans, packing, bucketing, exact resume, prefetch, splits and augmentation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from engine.data.augment import Augmenter
from engine.data.batching import Batches, BatchSettings
from engine.data.plans import bucket_plan, pack_rows
from engine.data.prefetch import Prefetcher
from engine.data.splits import kfold_indices, split_indices
from engine.data.template import IGNORE_INDEX

PAD = 0


class FakeDataset:
    """Sample i holds ids 1000*i + position (so every token is traceable), odd positions trained."""

    def __init__(self, lengths: list[int]) -> None:
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.reads: list[int] = []

    def arrays(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        self.reads.append(index)
        n = int(self.lengths[index])
        return np.arange(n, dtype=np.int32) + 1000 * index + 1, np.arange(n) % 2 == 1


def lengths(count: int, seed: int = 0, low: int = 30, high: int = 500) -> list[int]:
    return np.random.default_rng(seed).integers(low, high, count).tolist()


def test_pack_rows_places_every_sample_once_within_capacity() -> None:
    sizes = np.asarray(lengths(3000))
    rows = pack_rows(sizes, np.random.default_rng(1).permutation(3000), 2048, window=1000)
    assert sorted(i for row in rows for i in row) == list(range(3000))
    used = [sum(int(sizes[i]) for i in row) for row in rows]
    assert max(used) <= 2048
    assert 1 - sum(used) / (2048 * len(rows)) <= 0.02   # pad share of computed tokens


def test_packed_batch_keeps_every_token_once_with_aligned_labels_and_positions() -> None:
    data = FakeDataset(lengths(60, seed=2, low=5, high=90))
    batches = Batches(data, PAD, BatchSettings(batch_size=4, packing=True, pack_length=128, seed=3))
    seen: list[int] = []
    for index in range(batches.batches_per_epoch()):
        batch = batches.batch(0, index)
        assert "attention_mask" not in batch.inputs
        ids, labels, pos = (batch.inputs[k].numpy() for k in ("input_ids", "labels", "position_ids"))
        assert ids.shape == (len(ids), 128) and len(ids) <= 4
        real = ids != PAD
        seen += ids[real].tolist()
        assert batch.real_tokens == int(real.sum())
        sample_pos = (ids[real] - 1) % 1000
        assert (pos[real] == sample_pos).all()                      # positions restart per sample
        trained = labels != IGNORE_INDEX
        assert (labels[trained] == ids[trained]).all() and (sample_pos[trained[real]] % 2 == 1).all()
        assert not trained[~real].any()
    expected = [1000 * i + 1 + p for i, n in enumerate(data.lengths) for p in range(n)]
    assert sorted(seen) == sorted(expected)


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_packed_logits_equal_separate_logits(tiny_model_dir: Path, attention: str) -> None:
    """No attention across samples: each packed sample's logits match running it alone.

    Needs ``use_cache=False`` (or ``model.config.use_cache = False``): with a KV cache,
    transformers 5.x does not derive the packed mask from the position ids.
    """
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), attn_implementation=attention).eval()
    data = FakeDataset([7, 11, 5])
    data.arrays = lambda i: (np.arange(data.lengths[i], dtype=np.int32) % 50 + 10 * i + 3,  # type: ignore[method-assign]
                             np.ones(int(data.lengths[i]), dtype=bool))
    batch = Batches(data, PAD, BatchSettings(batch_size=1, packing=True, pack_length=32, shuffle=False)).batch(0, 0)
    with torch.no_grad():
        packed = model(input_ids=batch.inputs["input_ids"], position_ids=batch.inputs["position_ids"],
                       use_cache=False).logits[0]
        start = 0
        row = batch.inputs["input_ids"][0]
        for i in sorted(range(3), key=lambda i: -int(data.lengths[i])):
            n = int(data.lengths[i])
            assert row[start:start + n].tolist() == data.arrays(i)[0].tolist()
            alone = model(input_ids=row[start:start + n][None]).logits[0]
            torch.testing.assert_close(packed[start:start + n], alone, atol=1e-5, rtol=1e-4)
            start += n


def test_bucketed_batches_stay_within_the_token_budget() -> None:
    sizes = np.asarray(lengths(500, seed=4))
    plan = bucket_plan(sizes, np.arange(500), budget=2048, multiple=8)
    assert sorted(row[0] for batch in plan for row in batch) == list(range(500))
    for batch in plan:
        width = -(-max(int(sizes[r[0]]) for r in batch) // 8) * 8
        assert width * len(batch) <= 2048 or len(batch) == 1
    batches = Batches(FakeDataset(sizes.tolist()), PAD, BatchSettings(batch_tokens=2048, pad_to_multiple_of=8))
    assert batches.batch(0, 0).inputs["input_ids"].shape[1] % 8 == 0


def test_fixed_batches_shuffle_by_seed_and_epoch_sort_and_drop_last() -> None:
    data = FakeDataset(lengths(10, seed=5))
    def first_rows(settings: BatchSettings, epoch: int = 0) -> list[int]:
        return [row[0] for batch in Batches(data, PAD, settings).plan(epoch) for row in batch]
    shuffled = first_rows(BatchSettings(batch_size=4, seed=1))
    assert shuffled == first_rows(BatchSettings(batch_size=4, seed=1)) and sorted(shuffled) == list(range(10))
    assert shuffled != first_rows(BatchSettings(batch_size=4, seed=2))
    assert shuffled != first_rows(BatchSettings(batch_size=4, seed=1), epoch=1)
    by_length = first_rows(BatchSettings(batch_size=4, sort_by_length=True))
    assert [data.lengths[i] for i in by_length] == sorted(data.lengths)
    assert Batches(data, PAD, BatchSettings(batch_size=4, drop_last=True)).batches_per_epoch() == 2
    assert Batches(data, PAD, BatchSettings(batch_size=4)).batches_per_epoch() == 3


@pytest.mark.parametrize("packing", [False, True])
def test_resume_continues_exactly_without_rereading(packing: bool) -> None:
    settings = BatchSettings(batch_size=3, packing=packing, pack_length=512, seed=9)
    sizes = lengths(40, seed=6)
    straight = [b.inputs for _, b in zip(range(30), Batches(FakeDataset(sizes), PAD, settings), strict=False)]
    first = Batches(FakeDataset(sizes), PAD, settings)
    state = [b.state for _, b in zip(range(17), first, strict=False)][-1]
    data = FakeDataset(sizes)
    resumed = Batches(data, PAD, settings)
    resumed.load_state_dict(state)
    rest = [b.inputs for _, b in zip(range(13), resumed, strict=False)]
    for a, b in zip(straight[17:], rest, strict=True):
        assert all(torch.equal(a[k], b[k]) for k in a)
    first_read = resumed.plan(state["epoch"])[state["index"]][0][0]
    assert data.reads[0] == first_read


def test_prefetched_state_is_that_of_the_last_batch_consumed() -> None:
    batches = Batches(FakeDataset(lengths(20)), PAD, BatchSettings(batch_size=2))
    stream = batches.prefetched(depth=3)
    for _ in range(4):
        next(stream)
    try:
        assert stream.state_dict() == {"epoch": 0, "index": 4}
    finally:
        stream.close()


def test_prefetcher_forwards_errors_in_order() -> None:
    def source():
        yield 1
        yield 2
        raise ValueError("boom")
    with Prefetcher(source(), depth=1) as items:
        assert next(items) == 1 and next(items) == 2
        with pytest.raises(ValueError, match="boom"):
            next(items)


def test_split_and_kfold_are_deterministic_partitions() -> None:
    train, held = split_indices(100, 0.2, seed=4)
    again = split_indices(100, 0.2, seed=4)
    assert (train == again[0]).all() and (held == again[1]).all() and len(held) == 20
    assert sorted(np.concatenate([train, held]).tolist()) == list(range(100))
    assert not (split_indices(100, 0.2, seed=5)[1] == held).all()
    folds = [kfold_indices(23, 5, f, seed=1) for f in range(5)]
    assert sorted(np.concatenate([h for _, h in folds]).tolist()) == list(range(23))
    assert all(set(t.tolist()).isdisjoint(h.tolist()) and len(t) + len(h) == 23 for t, h in folds)
    with pytest.raises(ValueError):
        kfold_indices(10, 5, 5, seed=1)


def test_augmentation_changes_inputs_only_and_is_seeded() -> None:
    augmenter = Augmenter(mask_prob=0.2, replace_prob=0.2, rotate_prob=0.2, mask_id=PAD, vocab_size=50, seed=1)
    data = FakeDataset([200])
    plain = Batches(data, PAD, BatchSettings(batch_size=1)).batch(0, 0).inputs
    noisy = Batches(data, PAD, BatchSettings(batch_size=1), augmenter).batch(0, 0).inputs
    assert torch.equal(plain["labels"], noisy["labels"])
    changed = (plain["input_ids"] != noisy["input_ids"]).float().mean()
    assert 0.2 < changed < 0.7
    assert torch.equal(noisy["input_ids"], Batches(data, PAD, BatchSettings(batch_size=1), augmenter).batch(0, 0)
                       .inputs["input_ids"])
    assert not np.array_equal(augmenter(np.arange(100), 0, 0), augmenter(np.arange(100), 1, 0))
