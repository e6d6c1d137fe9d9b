"""Shared fixtures: a tiny Llama with a trained tokenizer and small chat datasets, made at test time."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import TINY_SHAPE, chat_records, corpus_lines, write_jsonl

from engine.quiet import quiet_libraries

quiet_libraries()

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
