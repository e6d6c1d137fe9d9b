"""Prepared datasets mixed by weight into one stream, epoch by epoch, deterministically (no torch).

``Mixture`` sits where one dataset would (``lengths``, ``arrays``, ``raw``): an epoch holds as
many samples as the sources together, ``quotas`` of them from each source by weight (largest
remainders, at least one each). Each source is read as an endless stream of its samples, one
seeded permutation after another (``(seed, source, cycle)``), and epoch ``e`` takes the next
``quota`` samples of every stream, so a small source repeats and a large one is sampled without
the same subset every epoch. The sources' samples are interleaved evenly (3:1 gives A A A B ...)
before the batches shuffle them (``engine.data.batching.Batches`` asks ``epoch(e)`` for the
epoch's view). Everything follows from the seed, the weights and the sources' sizes, so the batch
stream's position (``{"epoch", "index"}``, saved in checkpoints) is the mixture's position too and
a resumed run continues it exactly. Samples are read from the memory-mapped sources on demand.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from engine.errors import DataError

EPOCHS_KEPT = 2
"""Epoch views cached at once (the trained epoch and the one the prefetch thread reached)."""


def quotas(weights: Sequence[float], total: int) -> list[int]:
    """``total`` split by ``weights``: largest remainders, ties to the first source, at least 1 each."""
    shares = [w / sum(weights) * total for w in weights]
    counts = [max(1, math.floor(s)) for s in shares]
    order = sorted(range(len(shares)), key=lambda i: (-(shares[i] - math.floor(shares[i])), i))
    for i in order[: max(0, total - sum(counts))]:
        counts[i] += 1
    return counts


def interleave(counts: Sequence[int]) -> np.ndarray:
    """Source ids spread evenly: the ``j``-th sample of source ``s`` sits at ``(j + 0.5) / count_s``."""
    keys = np.concatenate([(np.arange(c) + 0.5) / c for c in counts])
    sources = np.concatenate([np.full(c, s, dtype=np.int32) for s, c in enumerate(counts)])
    return sources[np.argsort(keys, kind="stable")]


def stream(size: int, seed: int, source: int, start: int, count: int) -> np.ndarray:
    """Draws ``start .. start + count`` of a source's endless stream of seeded permutations."""
    first, last = start // size, (start + count - 1) // size
    draws = np.concatenate([np.random.default_rng([seed, source, cycle]).permutation(size)
                            for cycle in range(first, last + 1)])
    offset = start - first * size
    return draws[offset: offset + count]


class EpochMix:
    """One epoch of a mixture: which source and sample each position holds."""

    def __init__(self, parts: Sequence[Any], source: np.ndarray, index: np.ndarray) -> None:
        self.parts, self.source, self.index = parts, source, index
        self.lengths = np.zeros(len(source), dtype=np.int64)
        for s, part in enumerate(parts):
            here = source == s
            self.lengths[here] = np.asarray(part.lengths)[index[here]]

    def __len__(self) -> int:
        return len(self.source)

    def arrays(self, position: int) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, trained mask)`` of the sample at ``position``."""
        return self.parts[self.source[position]].arrays(int(self.index[position]))  # type: ignore[no-any-return]

    def raw(self, position: int) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, flags)`` of the sample at ``position``."""
        return self.parts[self.source[position]].raw(int(self.index[position]))  # type: ignore[no-any-return]

    def __getitem__(self, position: int) -> Any:
        return self.parts[self.source[position]][int(self.index[position])]


class Mixture:
    """Datasets mixed by weight; ``epoch(e)`` is epoch ``e``'s view (``lengths``, ``arrays``, ``raw``)."""

    def __init__(self, parts: Sequence[Any], weights: Sequence[float], names: Sequence[str], seed: int) -> None:
        for name, part in zip(names, parts, strict=True):
            if not len(part):
                raise DataError(f"data.sources: {name!r} has no sample to train on")
        self.parts, self.names, self.seed = list(parts), list(names), seed
        self.counts = quotas(weights, sum(len(p) for p in parts))
        """Samples each source gives an epoch."""
        self.order = interleave(self.counts)
        self._epochs: OrderedDict[int, EpochMix] = OrderedDict()
        self._lock = threading.Lock()  # the training loop and the prefetch thread both ask for epochs
        self.lengths = self.epoch(0).lengths

    def __len__(self) -> int:
        return len(self.order)

    def epoch(self, epoch: int) -> EpochMix:
        """Epoch ``epoch``'s samples (the last ``EPOCHS_KEPT`` are cached; thread-safe)."""
        with self._lock:
            view = self._epochs.get(epoch)
            if view is None:
                index = np.zeros(len(self.order), dtype=np.int64)
                for s, (part, count) in enumerate(zip(self.parts, self.counts, strict=True)):
                    index[self.order == s] = stream(len(part), self.seed, s, epoch * count, count)
                view = self._epochs[epoch] = EpochMix(self.parts, self.order, index)
                while len(self._epochs) > EPOCHS_KEPT:
                    self._epochs.popitem(last=False)
            self._epochs.move_to_end(epoch)
            return view

    def arrays(self, position: int) -> tuple[np.ndarray, np.ndarray]:
        """Epoch 0's sample at ``position`` (batches ask ``epoch(e)``)."""
        return self.epoch(0).arrays(position)

    def raw(self, position: int) -> tuple[np.ndarray, np.ndarray]:
        """Epoch 0's sample at ``position``, as stored."""
        return self.epoch(0).raw(position)

    def __getitem__(self, position: int) -> Any:
        return self.epoch(0)[position]

    def signature(self) -> dict[str, Any]:
        """What the mixture's order follows from (kept in checkpoints, compared on resume)."""
        return {"names": self.names, "sizes": [len(p) for p in self.parts], "counts": self.counts, "seed": self.seed}

    def samples_seen(self, plan: Callable[[int], Any], state: dict[str, int]) -> dict[str, int]:
        """Samples trained from each source up to a batch-stream position (``plan(epoch)[i]``: rows of
        positions of batch ``i``)."""
        epoch, index = int(state["epoch"]), int(state["index"])
        seen = np.asarray(self.counts, dtype=np.int64) * epoch
        batches = plan(epoch)
        positions = [p for i in range(min(index, len(batches))) for row in batches[i] for p in row]
        if positions:
            seen += np.bincount(self.order[np.asarray(positions)], minlength=len(self.parts))
        return {name: int(n) for name, n in zip(self.names, seen, strict=True)}


def samples_seen(train: Any, plan: Callable[[int], Any], state: dict[str, int]) -> dict[str, int]:
    """``samples_<source>``: samples trained from each source of a mixture so far ({} for one dataset)."""
    if not isinstance(train, Mixture):
        return {}
    return {f"samples_{name}": count for name, count in train.samples_seen(plan, state).items()}


class Concat:
    """Datasets one after the other, seen as one (``lengths``, ``arrays``, ``raw``): the held-out
    parts of every source, evaluated together."""

    def __init__(self, parts: Sequence[Any]) -> None:
        self.parts = list(parts)
        self.lengths = np.concatenate([np.asarray(p.lengths, dtype=np.int64) for p in parts] or [np.zeros(0)])
        self.starts = np.cumsum([0] + [len(p) for p in parts])

    def __len__(self) -> int:
        return int(self.starts[-1])

    def _locate(self, index: int) -> tuple[Any, int]:
        part = int(np.searchsorted(self.starts, index, side="right")) - 1
        return self.parts[part], index - int(self.starts[part])

    def arrays(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, trained mask)`` of sample ``index``."""
        part, inner = self._locate(index)
        return part.arrays(inner)  # type: ignore[no-any-return]

    def raw(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, flags)`` of sample ``index``."""
        part, inner = self._locate(index)
        return part.raw(inner)  # type: ignore[no-any-return]

    def __getitem__(self, index: int) -> Any:
        part, inner = self._locate(index)
        return part[inner]
