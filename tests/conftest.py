"""Shared fixtures: a tiny Llama with a trained tokenizer and small chat datasets, made at test time."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from engine.quiet import quiet_libraries

quiet_libraries()

CAPITALS = [("France", "Paris"), ("Italy", "Rome"), ("Spain", "Madrid"), ("Japan", "Tokyo"),
            ("Peru", "Lima"), ("Egypt", "Cairo"), ("Kenya", "Nairobi"), ("Chile", "Santiago")]


def chat_records(count: int, seed: int) -> list[dict]:
    """Simple, learnable chat records: sums and capitals."""
    rng = random.Random(seed)
    records = []
    for _ in range(count):
        if rng.random() < 0.6:
            a, b = rng.randint(0, 30), rng.randint(0, 30)
            question, answer = f"What is {a} + {b}?", f"{a} + {b} = {a + b}"
        else:
            country, city = rng.choice(CAPITALS)
            question, answer = f"What is the capital of {country}?", f"The capital of {country} is {city}."
        records.append({"messages": [{"role": "user", "content": question},
                                     {"role": "assistant", "content": answer}]})
    return records


def write_jsonl(path: Path, records: list[dict]) -> Path:
    """Write records one JSON object per line."""
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def corpus_lines() -> list[str]:
    """A small plain-text corpus for the tiny tokenizer."""
    lines = [f"{a} + {b} = {a + b}" for a in range(31) for b in range(0, 31, 3)]
    lines += [f"The capital of {c} is {k}." for c, k in CAPITALS]
    lines += [f"What is {a} + {a}?" for a in range(31)] + ["What is the capital of Peru?"]
    return lines


TINY_SHAPE = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
              "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 256,
              "rope_theta": 10000.0, "rms_norm_eps": 1e-5, "tie_word_embeddings": True}


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised tiny Llama + BPE tokenizer saved with save_pretrained."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from engine.data.tokenizer import train_bpe_tokenizer

    folder = tmp_path_factory.mktemp("tiny-model")
    tokenizer = train_bpe_tokenizer(corpus_lines(), vocab_size=300, min_frequency=1)
    torch.manual_seed(0)
    config = LlamaConfig(**TINY_SHAPE, vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                         eos_token_id=tokenizer.eos_token_id, bos_token_id=None)
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(str(folder), safe_serialization=True)
    tokenizer.save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="session")
def chat_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A small training file and a held-out evaluation file."""
    folder = tmp_path_factory.mktemp("chat-data")
    return (write_jsonl(folder / "train.jsonl", chat_records(96, seed=1)),
            write_jsonl(folder / "eval.jsonl", chat_records(24, seed=2)))
