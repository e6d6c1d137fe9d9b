"""Chatting with what a run of a family without a template (or with a turn-end token) wrote."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from families import build_family

from engine.config import LoraConfig
from engine.data.chat_tokens import ensure_chat_template
from engine.train.chat_model import load_chat_model, stream_reply
from engine.train.model import apply_lora, fit_embeddings, load_model, load_tokenizer


@pytest.fixture(scope="module")
def mistral(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_family("mistral", tmp_path_factory.mktemp("mistral"))


def test_an_adapter_of_a_model_given_chat_markers_loads_over_its_base(mistral: Path, tmp_path: Path) -> None:
    tokenizer = load_tokenizer(mistral)
    added = ensure_chat_template(tokenizer)  # as the run did: two new special tokens
    model = load_model(mistral, _config())
    fit_embeddings(model, len(tokenizer), 0)
    adapter = apply_lora(model, LoraConfig(r=4, alpha=8, target_modules=["q_proj"]), added)
    final = tmp_path / "final"
    adapter.save_pretrained(str(final))
    tokenizer.save_pretrained(str(final))
    loaded = load_chat_model(final, None, lambda _: None)  # was: IndexError, index 320 out of bounds
    assert loaded.model.get_input_embeddings().weight.shape[0] == len(tokenizer) == 322
    said: list[str] = []
    done = stream_reply(loaded, [{"role": "user", "content": "Hi"}], 3, 0.0, 1.0, lambda: False, said.append)
    assert done["tokens"] >= 1


def test_the_answer_stops_at_the_token_the_template_ends_a_turn_with(tmp_path: Path) -> None:
    gemma = build_family("gemma2", tmp_path / "gemma2")
    tokenizer = load_tokenizer(gemma)
    asked: dict[str, Any] = {}

    class Model:
        config, device = SimpleNamespace(max_position_embeddings=64), torch.device("cpu")

        def generate(self, **arguments: Any) -> torch.Tensor:
            asked.update(arguments)
            arguments["streamer"].end()
            return arguments["input_ids"]

    stream_reply(SimpleNamespace(model=Model(), tokenizer=tokenizer), [{"role": "user", "content": "Hi"}], 4, 0.0,
                 1.0, lambda: False, lambda _: None)
    end_of_turn, eos = tokenizer.convert_tokens_to_ids(["<end_of_turn>", "<eos>"])
    assert asked["eos_token_id"] == [end_of_turn, eos]  # was the EOS alone: Gemma talked on past its turn


def _config() -> Any:
    from engine.config import Config

    return Config()
