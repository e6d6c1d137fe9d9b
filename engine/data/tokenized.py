"""A tokenized dataset on disk: a flat token file, a trained-token mask and an offsets index.

``TokenizedDataset`` opens a folder written by ``TokenCache`` (``ids.bin`` int32, ``mask.bin``
uint8, ``offsets.npy`` int64 of length n + 1, ``meta.json``) and reads samples on demand with
positional reads (``os.pread``), so memory grows with the dataset only by the offsets and int32
lengths it keeps (12 bytes a sample), not by its tokens. (A ``np.memmap``
would work the same, but the pages it touches count in the process's resident memory until the
kernel reclaims them: over an epoch that grows with the dataset; pread leaves them in the page
cache.) Hot shards (runs of ``SHARD`` samples) are kept in memory in an LRU bounded by
``memory_bytes`` (``cache.memory_size``), loaded only when they fit or are hot, so a shuffled
epoch over more data than that reads samples one by one rather than reloading shards over and
over. ``Subset`` is a view on some indices (splits, folds). No torch.
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from engine.data.render import TRAINED
from engine.data.template import IGNORE_INDEX, TokenizedSample

SHARD = 4096
"""Samples per in-memory shard."""
ADMIT = SHARD
"""Misses after which a shard that does not fit is loaded anyway, evicting older ones."""


class FlatFile:
    """A flat binary file of one dtype, read by element range with ``os.pread``."""

    def __init__(self, path: Path, dtype: Any) -> None:
        self.dtype = np.dtype(dtype)
        self.fd = os.open(path, os.O_RDONLY)

    def __getitem__(self, span: slice) -> np.ndarray:
        size = self.dtype.itemsize
        count = int(span.stop) - int(span.start)
        raw = os.pread(self.fd, count * size, int(span.start) * size) if count > 0 else b""
        return np.frombuffer(raw, dtype=self.dtype)

    def close(self) -> None:
        """Close the file."""
        os.close(self.fd)

    def __del__(self) -> None:
        try:
            os.close(self.fd)
        except OSError:
            pass


def lengths_of(offsets: np.ndarray) -> np.ndarray:
    """Sample lengths from offsets, as int32 (4 bytes a sample) when they fit."""
    lengths = np.diff(offsets)
    return lengths.astype(np.int32) if len(lengths) == 0 or lengths.max() < 2**31 else lengths


class TokenizedDataset:
    """Indexable, sized, memory-mapped token sequences with their loss masks."""

    def __init__(self, folder: Path, memory_bytes: int = 0) -> None:
        self.folder = Path(folder)
        self.meta: dict[str, Any] = json.loads((self.folder / "meta.json").read_text())
        self._ids = FlatFile(self.folder / "ids.bin", np.int32)
        self._mask = FlatFile(self.folder / "mask.bin", np.uint8)
        self.offsets: np.ndarray = np.load(self.folder / "offsets.npy")
        self.lengths: np.ndarray = lengths_of(self.offsets)
        self._memory_bytes = memory_bytes
        self._shards: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._held = 0
        self._misses: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self.lengths)

    @property
    def total_tokens(self) -> int:
        """Tokens of all samples together."""
        return int(self.offsets[-1])

    def arrays(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, trained mask)`` of sample ``index`` as numpy arrays."""
        ids, flags = self.raw(index)
        return ids, (flags & TRAINED).astype(bool)

    def raw(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, flags)`` of sample ``index``: the mask bytes as stored (``engine.data.render``)."""
        if not 0 <= index < len(self):
            raise IndexError(index)
        number = index // SHARD
        shard = self._shard(number) if self._memory_bytes > 0 else None
        if shard is None:
            low, high = self.offsets[index], self.offsets[index + 1]
            return self._ids[low:high], self._mask[low:high]
        base = self.offsets[number * SHARD]
        low, high = self.offsets[index] - base, self.offsets[index + 1] - base
        return shard[0][low:high], shard[1][low:high]

    def _shard(self, number: int) -> tuple[np.ndarray, np.ndarray] | None:
        """Shard ``number`` from memory, loaded when it fits or is hot; None: read the sample alone.

        A shard is loaded when it fits in ``memory_bytes`` beside those held, or after ``ADMIT``
        misses (then the least recently used ones are evicted). Random access over a dataset
        larger than the budget so reads single samples instead of reloading whole shards.
        """
        if number in self._shards:
            self._shards.move_to_end(number)
            return self._shards[number]
        low = self.offsets[number * SHARD]
        high = self.offsets[min((number + 1) * SHARD, len(self))]
        misses = self._misses.get(number, 0) + 1
        if self._held + int(high - low) * 5 > self._memory_bytes and misses < ADMIT:
            self._misses[number] = misses
            return None
        self._misses.pop(number, None)
        shard = (self._ids[low:high], self._mask[low:high])
        self._shards[number] = shard
        self._held += shard[0].nbytes + shard[1].nbytes
        while self._held > self._memory_bytes and len(self._shards) > 1:
            _, (old_ids, old_mask) = self._shards.popitem(last=False)
            self._held -= old_ids.nbytes + old_mask.nbytes
        return shard

    def __getitem__(self, index: int) -> TokenizedSample:
        ids, mask = self.arrays(index)
        labels = np.where(mask, ids, IGNORE_INDEX)
        return TokenizedSample(ids.tolist(), labels.tolist())


class Subset:
    """Some samples of a dataset, by index, in the given order (a split or a fold)."""

    def __init__(self, dataset: Any, indices: Sequence[int]) -> None:
        self.dataset = dataset
        self.indices = np.asarray(indices, dtype=np.int32 if len(dataset.lengths) < 2**31 else np.int64)
        self.lengths: np.ndarray = dataset.lengths[self.indices]

    def __len__(self) -> int:
        return len(self.indices)

    def arrays(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, trained mask)`` of the subset's sample ``index``."""
        return self.dataset.arrays(int(self.indices[index]))  # type: ignore[no-any-return]

    def raw(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, flags)`` of the subset's sample ``index``."""
        return self.dataset.raw(int(self.indices[index]))  # type: ignore[no-any-return]

    def __getitem__(self, index: int) -> TokenizedSample:
        return self.dataset[int(self.indices[index])]  # type: ignore[no-any-return]
