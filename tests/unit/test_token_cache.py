"""Batch tokenization, control tokens, the token cache (fingerprint, LRU, age, memory) and prepare."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from support import chat_records, write_jsonl

from engine.config import Config
from engine.data.encode import encode_batch
from engine.data.pipeline import prepare
from engine.data.shapes import to_messages
from engine.data.template import IGNORE_INDEX, add_control_tokens, tokenize_conversation
from engine.data.token_cache import MIB, TokenCache
from engine.errors import DataError
from engine.store import RunStore


@pytest.fixture
def tokenizer(tiny_model_dir: Path) -> Any:
    from engine.train.model import load_tokenizer

    return load_tokenizer(tiny_model_dir)


@pytest.fixture
def store(tmp_path: Path) -> RunStore:
    with RunStore(tmp_path / "db.sqlite") as opened:
        yield opened


@pytest.fixture
def cache(tmp_path: Path, store: RunStore) -> TokenCache:
    return TokenCache(tmp_path / "cache", store)


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "train.jsonl", chat_records(30, seed=3))


def two_turns() -> list[dict[str, str]]:
    return [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2 + 3?"},
            {"role": "assistant", "content": "5"}, {"role": "user", "content": "And 4 + 4?"},
            {"role": "assistant", "content": "8"}]


@pytest.mark.parametrize("train_on", ["assistant", "all", "last"])
def test_encode_batch_equals_tokenize_conversation(tokenizer: Any, train_on: str) -> None:
    conversations = [two_turns(), [{"role": "assistant", "content": "Just text."}],
                     to_messages({"prompt": "Q?", "completion": "A."}, "x:1")]
    encoded = encode_batch(tokenizer, conversations, train_on, 20, prefix_ids=[7])
    for messages, (ids, trained) in zip(conversations, encoded, strict=True):
        expected = tokenize_conversation(tokenizer, messages, train_on, 20, prefix_ids=[7])
        assert ids.tolist() == expected.input_ids
        assert np.where(trained, ids, IGNORE_INDEX).tolist() == expected.labels


def test_control_tokens_are_added_once_and_prepended_untrained(tokenizer: Any) -> None:
    ids = add_control_tokens(tokenizer, ["<author_ada>", "<style_terse>"])
    assert ids == add_control_tokens(tokenizer, ["<author_ada>", "<style_terse>"])
    assert tokenizer.convert_ids_to_tokens(ids) == ["<author_ada>", "<style_terse>"]
    assert tokenizer("<author_ada>", add_special_tokens=False)["input_ids"] == ids[:1]
    sample = tokenize_conversation(tokenizer, two_turns(), "assistant", 512, prefix_ids=ids)
    assert sample.input_ids[:2] == ids and sample.labels[:2] == [IGNORE_INDEX] * 2


def test_prepare_caches_and_hits(tokenizer: Any, cache: TokenCache, store: RunStore, data: Path) -> None:
    first = prepare([data], tokenizer, Config(), cache)
    assert not first.from_cache and len(first.dataset) == 30
    again = prepare([data], tokenizer, Config(), cache)
    assert again.from_cache and again.fingerprint == first.fingerprint
    assert [again.dataset[i] for i in range(30)] == [first.dataset[i] for i in range(30)]
    (entry,) = store.cache_entries()
    assert entry["hits"] == 1 and entry["bytes"] > 0
    (version,) = store.dataset_versions()
    assert (version["samples"], version["tokens"]) == (30, first.dataset.total_tokens)
    store.link_run_dataset("run-1", first.fingerprint)
    assert store.dataset_versions(str(data))[0]["runs"] == ["run-1"]


def _config(**data: Any) -> Config:
    config = Config()
    config.data = dataclasses.replace(config.data, **data)
    return config


def test_every_fingerprint_part_invalidates(tokenizer: Any, cache: TokenCache, data: Path) -> None:
    base = prepare([data], tokenizer, Config(), cache).fingerprint
    keys = {prepare([data], tokenizer, _config(max_length=64), cache).fingerprint,
            prepare([data], tokenizer, _config(train_on="all"), cache).fingerprint,
            prepare([data], tokenizer, Config(), cache, prefix_ids=[5]).fingerprint}
    tokenizer.chat_template = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    keys.add(prepare([data], tokenizer, _config(train_on="all"), cache).fingerprint)
    tokenizer.chat_template = None
    tokenizer.add_tokens(["<new>"], special_tokens=True)
    keys.add(prepare([data], tokenizer, Config(), cache).fingerprint)
    data.write_text(data.read_text().replace("capital", "Capital"))
    keys.add(prepare([data], tokenizer, Config(), cache).fingerprint)
    assert base not in keys and len(keys) == 6


def test_lru_eviction_and_age(tmp_path: Path, store: RunStore) -> None:
    cache = TokenCache(tmp_path / "c", store, disk_size_mib=1, max_age_days=1)
    for key in ("a", "b", "c"):
        writer = cache.writer(key)
        writer.append(np.zeros(100_000, dtype=np.int32), np.ones(100_000, dtype=bool))
        writer.commit({})
        time.sleep(0.01)
    assert [e["key"] for e in store.cache_entries()] == ["b", "c"]   # 500 kB each; 1 MiB fits two
    assert not cache.entry_dir("a").exists()
    cache.lookup("b")
    assert cache.enforce_limits(now=time.time() + 2 * 86_400, keep="b") == ["c"]
    assert cache.lookup("c") is None and cache.lookup("b") is not None


def test_writer_keeps_4_byte_lengths_and_the_dataset_int32_lengths(tmp_path: Path) -> None:
    writer = TokenCache(tmp_path / "c", None).writer("k")
    writer.append(np.arange(3, dtype=np.int32), np.ones(3, dtype=bool))
    writer.append_chunk(np.arange(9, dtype=np.int32), np.zeros(9, dtype=bool), np.array([4, 0, 5]))
    writer.append(np.arange(2, dtype=np.int32), np.ones(2, dtype=bool))
    assert len(writer) == 5 and writer._lengths.itemsize == 4
    dataset = writer.commit({})
    assert dataset.lengths.dtype == np.int32 and dataset.lengths.tolist() == [3, 4, 0, 5, 2]
    assert dataset.offsets.tolist() == [0, 3, 7, 7, 12, 14] and dataset.total_tokens == 14
    assert dataset.arrays(3)[0].tolist() == [4, 5, 6, 7, 8] and not dataset.arrays(3)[1].any()


def test_memory_lru_keeps_only_hot_shards(tmp_path: Path) -> None:
    cache = TokenCache(tmp_path / "c", None, memory_size_mib=1)
    writer = cache.writer("k")
    for i in range(10_000):
        writer.append(np.full(30, i, dtype=np.int32), np.arange(30) % 2 == 0)
    dataset = writer.commit({})
    dataset._memory_bytes = MIB // 2
    for i in range(0, 10_000, 97):
        ids, mask = dataset.arrays(i)
        assert ids.tolist() == [i] * 30 and mask.tolist() == [True, False] * 15
    assert dataset._held <= MIB // 2 + 4096 * 30 * 5 and len(dataset._shards) < 3


def test_skipped_records_are_said_on_every_run(tokenizer: Any, cache: TokenCache, tmp_path: Path) -> None:
    from engine.events import Log

    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(chat_records(1, 0)[0]) + "\n{oops\n" + json.dumps(chat_records(1, 1)[0]) + "\n")
    for _ in range(2):  # tokenized, then from the cache
        said: list[Any] = []
        prepare([path], tokenizer, _config(on_invalid="skip"), cache, emit=said.append)
        warnings = [e.message for e in said if isinstance(e, Log) and e.level == "warning"]
        assert len(warnings) == 1 and "left out 1 invalid record" in warnings[0]
        assert f"first: {path}:2: invalid JSON" in warnings[0] and 'data.on_invalid = "skip"' in warnings[0]
    said = []
    prepare([write_jsonl(tmp_path / "ok.jsonl", chat_records(3, 0))], tokenizer, _config(on_invalid="skip"), cache,
            emit=said.append)
    assert not [e for e in said if isinstance(e, Log)]


def test_placeholders_and_mixed_shapes_are_said_on_every_run(tokenizer: Any, cache: TokenCache,
                                                             tmp_path: Path) -> None:
    from engine.events import Log

    records = chat_records(2, 0) + [{"prompt": "Hello {{name}}, what is 2 + 2?", "completion": "4"}]
    path = write_jsonl(tmp_path / "mixed.jsonl", records)
    for _ in range(2):  # tokenized, then from the cache
        said: list[Any] = []
        prepare([path], tokenizer, Config(), cache, emit=said.append)
        warnings = [e.message for e in said if isinstance(e, Log) and e.level == "warning"]
        assert warnings == [f"{path}:3: record shape prompt/completion, while the first record's is OpenAI messages: "
                            "the file mixes record shapes",
                            f"{path}:3: 1 record with template placeholders like {{{{name}}}} left in (first here); "
                            "they would be trained literally"]


def test_fail_and_skip_on_invalid(tokenizer: Any, cache: TokenCache, tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(chat_records(1, 0)[0]) + "\n{oops\n" + json.dumps(chat_records(1, 1)[0]) + "\n")
    with pytest.raises(DataError, match=rf"{path}:2: invalid JSON"):
        prepare([path], tokenizer, Config(), cache)
    assert not list(cache.root.glob(".tmp-*"))
    prepared = prepare([path], tokenizer, _config(on_invalid="skip"), cache)
    assert len(prepared.dataset) == 2 and prepared.reports[0].issues[0].where == f"{path}:2"
