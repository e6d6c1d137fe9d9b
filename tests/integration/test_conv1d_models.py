"""GPT-2 style models (``Conv1D`` projections): LoRA finds them by itself, QAT refuses in one line."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from test_methods import method_config, new_recipe, recipe_data

from engine.config import Config
from engine.errors import ConfigError
from engine.events import Step
from engine.train.methods import load_for_method, prepare_for_method


@pytest.fixture(scope="module")
def tiny_gpt2(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random tiny GPT-2 with the tiny model's tokenizer."""
    import torch
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(tokenizer), n_embd=64, n_layer=2, n_head=4, n_positions=256,
                        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                        bos_token_id=tokenizer.eos_token_id)
    folder = tmp_path_factory.mktemp("gpt2")
    GPT2LMHeadModel(config).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder


def test_lora_auto_targets_every_conv1d_projection_and_trains(tiny_gpt2: Path, chat_files, tmp_path: Path) -> None:
    config = method_config("lora")
    assert config.lora.target_modules == "auto"
    config = replace(config, training=replace(config.training, max_steps=6))
    events: list = []
    recipe = new_recipe(config, tiny_gpt2, recipe_data(tiny_gpt2, chat_files), tmp_path, events)
    adapted = {name.split(".")[-2] for name, _ in recipe.model.named_modules() if name.endswith("lora_A")}
    assert adapted == {"c_attn", "c_proj", "c_fc"}
    assert recipe.train() == "finished"
    losses = [e.loss for e in events if isinstance(e, Step)]
    assert losses[-1] < losses[0]


def test_a_wrong_target_lists_the_conv1d_layers(tiny_gpt2: Path) -> None:
    config = replace(Config(), lora=replace(Config().lora, target_modules=["q_proj"]))
    with pytest.raises(ConfigError, match=r"not found in the model \(linear and Conv1D layers it has: "
                                          r"\['c_attn', 'c_fc', 'c_proj'\]\)"):
        prepare_for_method(load_for_method(tiny_gpt2, config), config)


@pytest.mark.parametrize("with_lora", [False, True])
def test_qat_on_conv1d_layers_is_refused_in_one_line(tiny_gpt2: Path, with_lora: bool) -> None:
    config = method_config("qat", qat_lora=with_lora)
    with pytest.raises(ConfigError, match=r"^training.method = 'qat': GPT2LMHeadModel's projections are Conv1D "
                                          r"layers \(c_attn, c_fc, c_proj\)") as info:
        prepare_for_method(load_for_method(tiny_gpt2, config), config)
    assert "\n" not in str(info.value)
