"""Parallel tokenization gives the same cache bytes; shuffled reads over a small memory budget stay cheap."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from support import chat_records, corpus_lines, write_jsonl

from engine.config import Config
from engine.data import pipeline
from engine.data.encode import render_chunk
from engine.data.parallel import EncodePool, encoded_chunks
from engine.data.pipeline import prepare
from engine.data.token_cache import TokenCache
from engine.data.tokenized import SHARD, TokenizedDataset
from engine.data.tokenizer import train_bpe_tokenizer

FILES = ("ids.bin", "mask.bin", "offsets.npy")


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    return train_bpe_tokenizer(corpus_lines(), vocab_size=300, min_frequency=1)


def entry_bytes(dataset: TokenizedDataset) -> list[bytes]:
    return [(dataset.folder / name).read_bytes() for name in FILES]


def test_cache_bytes_same_with_one_and_two_workers(tokenizer: Any, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipeline, "CHUNK", 16)  # 200 records: 13 chunks, so the pool is used
    data = write_jsonl(tmp_path / "train.jsonl", chat_records(200, seed=5))
    config = Config()
    config.data.max_length = 28  # every sample cut, some dropped (no trained token left)
    one = prepare([data], tokenizer, config, TokenCache(tmp_path / "one"), prefix_ids=[3], workers=1)
    two = prepare([data], tokenizer, config, TokenCache(tmp_path / "two"), prefix_ids=[3], workers=2)
    assert not one.from_cache and not two.from_cache
    assert 0 < len(one.dataset) < 200
    assert entry_bytes(one.dataset) == entry_bytes(two.dataset)


def test_pool_keeps_order_and_falls_back_when_broken(tokenizer: Any) -> None:
    records = chat_records(60, seed=2)
    chunks = [render_chunk(tokenizer, [r["messages"] for r in records[i:i + 10]], "assistant")
              for i in range(0, 60, 10)]
    local = list(encoded_chunks(tokenizer, chunks, 64, (), workers=1))
    with EncodePool(tokenizer, 2, 64) as pool:
        pooled = list(pool.map(chunks))
        assert not pool.broken
        pool._executor.shutdown(wait=True)
        pool._executor._broken = "stopped by the test"  # later submits raise BrokenProcessPool
        after = list(pool.map(chunks))
    assert pool.broken
    for got in (pooled, after):
        assert [[a.tobytes() for a in chunk] for chunk in got] == [[a.tobytes() for a in chunk] for chunk in local]


class CountingFile:
    """Wraps a FlatFile and counts the elements read."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.read = inner, 0

    def __getitem__(self, span: slice) -> np.ndarray:
        self.read += int(span.stop) - int(span.start)
        return self.inner[span]  # type: ignore[no-any-return]


def test_shuffled_reads_over_a_small_budget_do_not_reload_shards(tmp_path: Path) -> None:
    cache = TokenCache(tmp_path / "c", None, memory_size_mib=1)
    writer = cache.writer("k")
    count, width = 8 * SHARD, 8
    for start in range(0, count, SHARD):
        index = np.repeat(np.arange(start, start + SHARD, dtype=np.int32), width)
        writer.append_chunk(index, np.ones(len(index), dtype=bool), np.full(SHARD, width))
    dataset = writer.commit({})
    dataset._memory_bytes = 2 * SHARD * width * 5  # two shards of eight
    dataset._ids = counting = CountingFile(dataset._ids)  # type: ignore[assignment]
    for index in np.random.default_rng(0).permutation(count):
        ids, mask = dataset.arrays(int(index))
        assert ids.tolist() == [index] * width and mask.all()
    assert len(dataset._shards) <= 2
    assert counting.read <= 3 * count * width  # a shard reload per miss: ~750x
