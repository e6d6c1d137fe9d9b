"""QAT set-up: group sizes that do not fit are config errors naming the layer; the fake-quant switch."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import pytest
import torch

from engine.config import Config
from engine.errors import ConfigError
from engine.train import qat


def _tiny_llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(hidden_size=64, intermediate_size=96, num_hidden_layers=1,
                                        num_attention_heads=4, num_key_value_heads=2, vocab_size=50,
                                        tie_word_embeddings=True))


def test_group_size_that_does_not_divide_names_key_and_layer():
    settings = replace(Config().qat, group_size=48)
    with pytest.raises(ConfigError) as err:
        qat.prepare(_tiny_llama(), settings)
    assert str(err.value) == ("qat.group_size = 48: does not divide the 64 input features of layer "
                              "model.layers.0.self_attn.q_proj; use a divisor of every linear layer's input size")


def test_group_size_checks_every_layer_and_skips_the_output_head():
    with pytest.raises(ConfigError, match=r"the 96 input features of layer model\.layers\.0\.mlp\.down_proj"):
        qat.prepare(_tiny_llama(), replace(Config().qat, group_size=64))
    model = qat.prepare(_tiny_llama(), replace(Config().qat, group_size=32))
    names = {name for name, m in model.named_modules() if type(m).__name__ == "FakeQuantizedLinear"}
    assert "model.layers.0.mlp.down_proj" in names and "lm_head" not in names


def test_fake_quant_switch_turns_on_after_n_steps():
    model = qat.prepare(_tiny_llama(), replace(Config().qat, group_size=32))
    switch = qat.FakeQuantSwitch(replace(Config().qat, fake_quant_after_n_steps=2))
    quantizers = [m.weight_fake_quantizer for m in model.modules() if hasattr(m, "weight_fake_quantizer")]
    seen = []
    for step in range(4):
        switch(SimpleNamespace(model=model, progress=SimpleNamespace(step=step)))
        seen.append({q.enabled for q in quantizers})
    assert seen == [{False}, {False}, {True}, {True}]
