"""Resumable batches over a tokenized dataset: padded, length-bucketed or packed (imports torch).

``Batches`` walks epochs forever; each epoch's plan (``engine.data.plans``) comes from
``(seed, epoch)`` and the sample lengths alone; the last ``PLANS_KEPT`` plans are cached behind a
lock, so the training loop and the prefetch thread (often an epoch apart) share them safely.
``state_dict()`` is ``{"epoch", "index"}``: the
position after the last batch handed out; ``load_state_dict`` continues from exactly there
without reading the samples before it. ``prefetched(depth)`` builds batches on a background
thread while keeping that state exact (it is the state of the last batch *consumed*).

Packed batches hold ``input_ids``, ``labels`` and ``position_ids`` restarting at 0 for every
sample and **no** ``attention_mask``: transformers (5.x ``masking_utils``) then derives a
block-diagonal causal mask from the position ids, so no token attends across samples, provided
the forward runs **without a KV cache** (``model(**batch.inputs, use_cache=False)`` or
``model.config.use_cache = False``; with a cache the detection is skipped and samples leak).
Tested for the ``sdpa`` and ``eager`` paths of Llama (tests/unit/test_packing.py); flash
attention 2/3 use the position ids the same way; a model whose attention ignores position
ids (or a remote-code model with its own masking) would attend across samples. The tail of
a block is padding: ``pad_id`` inputs, labels ``-100``, its own position run.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from engine.data.augment import Augmenter
from engine.data.plans import Plan, bucket_plan, fixed_plan, group_rows, pack_rows, round_up
from engine.data.prefetch import Prefetcher
from engine.data.splits import permutation
from engine.data.template import IGNORE_INDEX

Collate = Callable[[list[tuple[np.ndarray, np.ndarray]], int], dict[str, torch.Tensor]]
"""``(samples as (ids, flags), pad id) -> model inputs``: an objective's batch form."""
PLANS_KEPT = 2
"""Epoch plans cached at once: the one being trained on and the one the prefetch thread reached."""


@dataclass
class Batch:
    """Model inputs of one micro-batch and what it holds."""

    inputs: dict[str, torch.Tensor]
    real_tokens: int
    samples: int
    state: dict[str, int] = field(default_factory=dict)

    @property
    def computed_tokens(self) -> int:
        """Tokens the model computes on, padding included."""
        return int(self.inputs["input_ids"].numel())


@dataclass
class BatchSettings:
    """How batches are formed (the ``[data]`` batching keys and ``training.batch_size``)."""

    batch_size: int = 16
    seed: int = 0
    shuffle: bool = True
    packing: bool = False
    pack_length: int = 512
    batch_tokens: int = 0
    pad_to_multiple_of: int = 1
    sort_by_length: bool = False
    drop_last: bool = False


def sequence_tokens(inputs: dict[str, torch.Tensor]) -> int:
    """Real tokens of an objective's batch: its ``sequence_lengths`` when its batch form computes
    some tokens once for several sequences (pairs sharing a prompt), else its attention mask's."""
    lengths = inputs.get("sequence_lengths")
    return int((lengths if lengths is not None else inputs["attention_mask"]).sum())


class Batches:
    """Deterministic, resumable batches over anything with ``lengths`` and ``arrays(i)``."""

    def __init__(self, dataset: Any, pad_id: int, settings: BatchSettings,
                 augmenter: Augmenter | None = None, collate: Collate | None = None) -> None:
        self.dataset, self.pad_id, self.settings = dataset, pad_id, settings
        self.augmenter = augmenter
        self.collate = collate
        """An objective's batch form (``engine.objectives.base``); None: padded or packed rows."""
        self.epoch, self.index = 0, 0
        self._plans: OrderedDict[int, Plan] = OrderedDict()
        self._plans_lock = threading.Lock()

    @classmethod
    def from_config(cls, dataset: Any, config: Any, pad_id: int, vocab_size: int = 0,
                    collate: Collate | None = None) -> Batches:
        """Batches set up from a ``Config`` (``[data]`` keys, ``training.batch_size`` and ``seed``)."""
        data, training = config.data, config.training
        settings = BatchSettings(training.batch_size, training.seed, data.shuffle, data.packing,
                                 data.pack_length or data.max_length, data.batch_tokens,
                                 data.pad_to_multiple_of, data.sort_by_length, data.drop_last)
        augmenter = Augmenter(data.augment_mask_prob, data.augment_replace_prob, data.augment_rotate_prob,
                              pad_id, max(vocab_size, 1), training.seed)
        return cls(dataset, pad_id, settings, augmenter if augmenter.enabled else None, collate)

    def plan(self, epoch: int) -> Plan:
        """The batches of epoch ``epoch`` (computed from lengths; the last ``PLANS_KEPT`` cached).

        Thread-safe: a plan is made once, under the lock, even when two threads ask for it.
        """
        with self._plans_lock:
            plan = self._plans.get(epoch)
            if plan is None:
                plan = self._plans[epoch] = self._make_plan(epoch)
            self._plans.move_to_end(epoch)
            while len(self._plans) > PLANS_KEPT:
                self._plans.popitem(last=False)
            return plan

    def data(self, epoch: int) -> Any:
        """The samples of epoch ``epoch``: the dataset, or its epoch's view when it changes by epoch
        (a ``engine.data.mixing.Mixture``)."""
        view = getattr(self.dataset, "epoch", None)
        return view(epoch) if callable(view) else self.dataset

    def _make_plan(self, epoch: int) -> Plan:
        s, lengths = self.settings, self.data(epoch).lengths
        if s.sort_by_length:
            order = np.argsort(lengths, kind="stable")
        else:
            order = permutation(len(lengths), s.seed, epoch) if s.shuffle else np.arange(len(lengths))
        if s.packing:
            rows = pack_rows(lengths, order, s.pack_length)
            plan = group_rows(rows, max(1, s.batch_tokens // s.pack_length) if s.batch_tokens else s.batch_size)
        elif s.batch_tokens:
            plan = bucket_plan(lengths, order, s.batch_tokens, s.pad_to_multiple_of)
            if s.shuffle and not s.sort_by_length:
                plan = plan.reordered(permutation(len(plan), s.seed + 1, epoch))
        else:
            plan = fixed_plan(order, s.batch_size)
        if s.drop_last and len(plan) > 1 and plan.rows_in(-1) < plan.rows_in(0) and not s.batch_tokens:
            plan = plan.truncated(len(plan) - 1)
        return plan

    def batches_per_epoch(self, epoch: int = 0) -> int:
        """Batches in epoch ``epoch`` (packed and bucketed epochs may differ slightly)."""
        return len(self.plan(epoch))

    def batch(self, epoch: int, index: int) -> Batch:
        """Batch ``index`` of epoch ``epoch``."""
        rows = self.plan(epoch)[index]
        if self.collate is not None:
            data = self.data(epoch)
            inputs = self.collate([data.raw(i) for row in rows for i in row], self.pad_id)
            return Batch(inputs, sequence_tokens(inputs), sum(len(row) for row in rows))
        arrays = [[self._sample(epoch, i) for i in row] for row in rows]
        return self._packed(arrays) if self.settings.packing else self._padded(arrays)

    def _sample(self, epoch: int, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(input ids, labels, positions)`` of one sample, augmented when set."""
        ids, trained = self.data(epoch).arrays(index)
        if self.settings.packing:
            ids, trained = ids[: self.settings.pack_length], trained[: self.settings.pack_length]
        labels = np.where(trained, ids, IGNORE_INDEX).astype(np.int64)
        if self.augmenter is not None:
            ids = self.augmenter(ids, epoch, index)
        return ids.astype(np.int64), labels, np.arange(len(ids), dtype=np.int64)

    def _padded(self, rows: list[list[tuple[np.ndarray, np.ndarray, np.ndarray]]]) -> Batch:
        width = round_up(max(len(r[0][0]) for r in rows), self.settings.pad_to_multiple_of)
        ids = np.full((len(rows), width), self.pad_id, dtype=np.int64)
        labels = np.full((len(rows), width), IGNORE_INDEX, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for r, ((sample_ids, sample_labels, _),) in enumerate(rows):
            ids[r, : len(sample_ids)], labels[r, : len(sample_ids)], mask[r, : len(sample_ids)] = (
                sample_ids, sample_labels, 1)
        inputs = {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask),
                  "labels": torch.from_numpy(labels)}
        return Batch(inputs, int(mask.sum()), len(rows))

    def _packed(self, rows: list[list[tuple[np.ndarray, np.ndarray, np.ndarray]]]) -> Batch:
        width = self.settings.pack_length
        ids = np.full((len(rows), width), self.pad_id, dtype=np.int64)
        labels = np.full((len(rows), width), IGNORE_INDEX, dtype=np.int64)
        positions = np.tile(np.arange(width, dtype=np.int64), (len(rows), 1))
        real = 0
        for r, row in enumerate(rows):
            used = sum(len(s[0]) for s in row)
            ids[r, :used] = np.concatenate([s[0] for s in row])
            labels[r, :used] = np.concatenate([s[1] for s in row])
            positions[r, :used] = np.concatenate([s[2] for s in row])
            positions[r, used:] = np.arange(width - used)
            real += used
        inputs = {"input_ids": torch.from_numpy(ids), "labels": torch.from_numpy(labels),
                  "position_ids": torch.from_numpy(positions)}
        return Batch(inputs, real, sum(len(row) for row in rows))

    def __iter__(self) -> Iterator[Batch]:
        """Batches from the current position on, epoch after epoch, forever (the position follows)."""
        for batch in self.walk(self.state_dict()):
            self.epoch, self.index = batch.state["epoch"], batch.state["index"]
            yield batch

    def walk(self, state: dict[str, int]) -> Iterator[Batch]:
        """Batches from position ``state`` on, forever, leaving this object's position alone."""
        epoch, index = int(state["epoch"]), int(state["index"])
        while True:
            while index < self.batches_per_epoch(epoch):
                batch = self.batch(epoch, index)
                index += 1
                batch.state = {"epoch": epoch, "index": index}
                yield batch
            epoch, index = epoch + 1, 0

    def state_dict(self) -> dict[str, int]:
        """The position after the last batch handed out."""
        return {"epoch": self.epoch, "index": self.index}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue from a saved position."""
        self.epoch, self.index = int(state["epoch"]), int(state["index"])

    def prefetched(self, depth: int = 4) -> PrefetchedBatches:
        """These batches built ``depth`` ahead on a background thread (close it when done)."""
        return PrefetchedBatches(self, depth)


class PrefetchedBatches:
    """Batches built on a background thread; ``state_dict`` is that of the last batch consumed."""

    def __init__(self, batches: Batches, depth: int) -> None:
        self._state = batches.state_dict()
        self._prefetcher: Prefetcher[Batch] = Prefetcher(batches.walk(self._state), depth)

    def __iter__(self) -> Iterator[Batch]:
        return self

    def __next__(self) -> Batch:
        batch = next(self._prefetcher)
        self._state = dict(batch.state)
        return batch

    def state_dict(self) -> dict[str, int]:
        """The position after the last batch taken from this iterator."""
        return dict(self._state)

    def close(self) -> None:
        """Stop the background thread."""
        self._prefetcher.close()
