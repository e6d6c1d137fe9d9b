"""BatchFeed: counting starts no prefetch thread; the stream starts on first use and resumes exactly."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from engine.config import Config
from engine.data.template import TokenizedSample
from engine.train.feed import BatchFeed

PAD = 0


def prefetch_threads() -> int:
    return sum(t.name == "llamahome-prefetch" and t.is_alive() for t in threading.enumerate())


def samples(count: int = 30) -> list[TokenizedSample]:
    sizes = np.random.default_rng(0).integers(3, 40, count).tolist()
    return [TokenizedSample(list(range(1 + i, 1 + i + n)), list(range(1 + i, 1 + i + n))) for i, n in enumerate(sizes)]


def config(depth: int, packing: bool = False) -> Config:
    config = Config()
    config.training.batch_size, config.data.prefetch_depth = 4, depth
    config.data.packing, config.data.pack_length = packing, 64
    return config


def test_counting_batches_starts_no_thread() -> None:
    before = prefetch_threads()
    feed = BatchFeed(samples(), config(depth=4), PAD, 100)
    assert feed.batches_per_epoch() == 8 and not feed.started
    assert prefetch_threads() == before
    feed.next()
    assert feed.started and prefetch_threads() == before + 1
    feed.close()
    assert prefetch_threads() == before and not feed.started


@pytest.mark.parametrize(("depth", "packing"), [(0, False), (3, False), (3, True)])
def test_rewind_and_restart_after_close_continue_exactly(depth: int, packing: bool) -> None:
    straight = BatchFeed(samples(), config(depth, packing), PAD, 100)
    expected = [straight.next().inputs for _ in range(20)]
    straight.close()
    feed = BatchFeed(samples(), config(depth, packing), PAD, 100)
    got = [feed.next().inputs for _ in range(5)]
    feed.close()                                        # a restart continues after the last batch taken
    got += [feed.next().inputs for _ in range(5)]
    state = feed.state_dict()
    feed.rewind({"epoch": 0, "index": 0})
    feed.rewind(state)
    got += [feed.next().inputs for _ in range(10)]
    feed.close()
    for a, b in zip(expected, got, strict=True):
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_rewind_to_nothing_is_the_start() -> None:
    feed = BatchFeed(samples(), config(depth=0), PAD, 100, {"epoch": 2, "index": 3})
    assert feed.state_dict() == {"epoch": 2, "index": 3}
    feed.rewind({})
    assert feed.state_dict() == {"epoch": 0, "index": 0}
