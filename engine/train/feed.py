"""The stream of micro-batches a run trains on, with a position it can save and rewind.

It wraps ``engine.data.batching.Batches`` (padded, bucketed or packed batches, per the
``[data]`` keys) with its background prefetch, or one rank's slice of each global batch
(``engine.train.shards``), and accepts either a prepared, memory-mapped
dataset or a plain list of ``TokenizedSample`` (tests, benchmarks). The prefetch thread starts
on the first ``next()``, so a feed built only to count batches starts no thread.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from engine.config import Config
from engine.data.batching import Batch, Batches, Collate, PrefetchedBatches
from engine.data.template import IGNORE_INDEX, TokenizedSample
from engine.train.shards import ShardedBatches

START = {"epoch": 0, "index": 0}


class SampleList:
    """A list of tokenized samples seen as a dataset (``lengths`` and ``arrays``)."""

    def __init__(self, samples: Sequence[TokenizedSample]) -> None:
        self.samples = samples
        self.lengths = np.array([len(s.input_ids) for s in samples], dtype=np.int32)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> TokenizedSample:
        return self.samples[index]

    def arrays(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, trained mask)`` of sample ``index``."""
        sample = self.samples[index]
        return np.asarray(sample.input_ids, dtype=np.int64), np.asarray(sample.labels) != IGNORE_INDEX

    def raw(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, flags)`` of sample ``index`` (a plain sample is flagged trained where labelled)."""
        ids, trained = self.arrays(index)
        return ids, trained.astype(np.uint8)


def as_dataset(data: Any) -> Any:
    """Anything with ``lengths`` and ``arrays`` as is; a list of samples wrapped."""
    return data if hasattr(data, "arrays") else SampleList(data)


class BatchFeed:
    """Micro-batches in the run's deterministic order, from a saved position on."""

    def __init__(self, data: Any, config: Config, pad_id: int, vocab_size: int,
                 state: dict[str, int] | None = None, collate: Collate | None = None,
                 shard: tuple[int, int] | None = None) -> None:
        """``shard`` = ``(rank, world)``: build only that rank's slice of each (global) batch."""
        if shard is None:
            self.batches = Batches.from_config(as_dataset(data), config, pad_id, vocab_size, collate)
        else:
            self.batches = ShardedBatches.from_config(as_dataset(data), config, pad_id, vocab_size, collate)
            self.batches.rank, self.batches.world = shard
        self.depth = config.data.prefetch_depth
        self._stream: PrefetchedBatches | None = None
        self._plain: Iterator[Batch] | None = None
        self.rewind(state)

    def rewind(self, state: dict[str, int] | None) -> None:
        """Continue from ``state`` (a position from ``state_dict``; None or empty: the start)."""
        self.close()
        self._state = dict(state or START)
        self.batches.load_state_dict(self._state)

    def _source(self) -> Iterator[Batch]:
        """The batch stream, started (with its prefetch thread, if any) on first use."""
        if self._stream is None and self._plain is None:
            self.batches.load_state_dict(self._state)
            if self.depth > 0:
                self._stream = self.batches.prefetched(self.depth)
            else:
                self._plain = iter(self.batches)
        return self._stream if self._stream is not None else self._plain  # type: ignore[return-value]

    def next(self) -> Batch:
        """The next micro-batch; epochs follow one another without end."""
        batch = next(self._source())
        self._state = dict(batch.state)
        return batch

    def state_dict(self) -> dict[str, int]:
        """The position after the last batch taken."""
        return dict(self._state)

    def batches_per_epoch(self, epoch: int = 0) -> int:
        """Micro-batches in an epoch (computed from lengths; starts no thread)."""
        return self.batches.batches_per_epoch(epoch)

    @property
    def started(self) -> bool:
        """Whether the batch stream (and its prefetch thread, if any) is running."""
        return self._stream is not None or self._plain is not None

    def close(self) -> None:
        """Stop the prefetch thread, if any; a later ``next()`` starts a new one."""
        if self._stream is not None:
            self._stream.close()
        self._stream, self._plain = None, None
