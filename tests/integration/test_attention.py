"""``model.attn_implementation``: "auto" picks what the family runs (Gemma2 refuses SDPA), and it trains."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from test_methods import method_config, new_recipe, recipe_data

from engine.config import Config
from engine.errors import ConfigError
from engine.events import Step
from engine.train.model import attention_for, load_model


@pytest.fixture(scope="module")
def tiny_gemma2(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random tiny Gemma2 with the tiny model's tokenizer."""
    import torch
    from transformers import AutoTokenizer, Gemma2Config, Gemma2ForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    torch.manual_seed(0)
    config = Gemma2Config(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                          num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=256,
                          pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, bos_token_id=None)
    folder = tmp_path_factory.mktemp("gemma2")
    Gemma2ForCausalLM(config).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder


def with_attention(config: Config, kind: str) -> Config:
    return replace(config, model=replace(config.model, attn_implementation=kind))


def test_auto_is_sdpa_for_llama_and_eager_for_gemma2(tiny_model_dir: Path, tiny_gemma2: Path) -> None:
    assert attention_for(tiny_model_dir, Config()) == "sdpa"
    assert attention_for(tiny_gemma2, Config()) == "eager"
    assert load_model(tiny_gemma2, Config()).config._attn_implementation == "eager"


def test_a_kernel_the_family_refuses_is_one_line_naming_the_key(tiny_gemma2: Path) -> None:
    with pytest.raises(ConfigError, match=r"^model.attn_implementation = 'sdpa': Gemma2ForCausalLM does not"):
        attention_for(tiny_gemma2, with_attention(Config(), "sdpa"))


def test_flash_attention_needs_a_gpu(tiny_model_dir: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is here")
    with pytest.raises(ConfigError, match="needs a CUDA GPU"):
        attention_for(tiny_model_dir, with_attention(Config(), "flash_attention_2"))


@pytest.mark.parametrize("packing", [False, True])
def test_gemma2_trains_with_no_per_family_setting(tiny_gemma2: Path, chat_files, tmp_path: Path,
                                                  packing: bool) -> None:
    config = method_config("lora")
    config = replace(config, data=replace(config.data, packing=packing, pack_length=128),
                     training=replace(config.training, max_steps=6))
    events: list = []
    recipe = new_recipe(config, tiny_gemma2, recipe_data(tiny_gemma2, chat_files), tmp_path, events)
    assert recipe.train() == "finished"
    losses = [e.loss for e in events if isinstance(e, Step)]
    assert len(losses) == 6 and losses[-1] < losses[0]
