"""Deterministic micro-batches over tokenized samples, with a resumable position.

The order of an epoch is a permutation drawn from ``seed + epoch``, so a run that stopped after
``k`` micro-batches of epoch ``e`` continues from exactly the same sample without re-reading the
ones before it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from engine.data.template import IGNORE_INDEX, TokenizedSample


def epoch_order(count: int, seed: int, epoch: int, shuffle: bool = True) -> list[int]:
    """Sample indices in the order epoch ``epoch`` visits them."""
    if not shuffle:
        return list(range(count))
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return torch.randperm(count, generator=generator).tolist()


def batches_per_epoch(count: int, batch_size: int) -> int:
    """Micro-batches in one epoch (the last one may be short)."""
    return -(-count // batch_size)


def micro_batch(samples: Sequence[TokenizedSample], order: list[int], index: int,
                batch_size: int, pad_id: int) -> dict[str, torch.Tensor]:
    """The ``index``-th micro-batch of an epoch's order, padded to its longest sample."""
    chosen = [samples[i] for i in order[index * batch_size:(index + 1) * batch_size]]
    return collate(chosen, pad_id)


def collate(samples: Sequence[TokenizedSample], pad_id: int, left: bool = False) -> dict[str, torch.Tensor]:
    """Pad samples to the longest one: input ids, attention mask and labels."""
    longest = max(len(s.input_ids) for s in samples)
    ids = torch.full((len(samples), longest), pad_id, dtype=torch.long)
    labels = torch.full((len(samples), longest), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(samples), longest), dtype=torch.long)
    for row, sample in enumerate(samples):
        size = len(sample.input_ids)
        cols = slice(longest - size, longest) if left else slice(0, size)
        ids[row, cols] = torch.tensor(sample.input_ids)
        labels[row, cols] = torch.tensor(sample.labels)
        mask[row, cols] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}
