"""Quantization-aware training with torchao: fake-quantize, train, convert, save.

The linear layers (all but the output head, whose weight is usually tied to the embeddings) get
int4 weights in groups of ``qat.group_size`` and int8 dynamic activations
(``Int8DynamicActivationIntxWeightConfig``). ``prepare`` swaps them for fake-quantized layers
(``QATConfig(step="prepare")``); after training ``convert`` quantizes them for real
(``step="convert"``), merging a LoRA adapter first when there is one. ``save_quantized`` writes
safetensors with torchao's tensor metadata and a ``quantization_config`` in config.json, so
``AutoModelForCausalLM.from_pretrained(folder)`` loads the quantized model (torchao installed).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from engine.config import QatConfig
from engine.errors import ConfigError


def _base_config(qat: QatConfig) -> Any:
    """torchao's post-training config the fake quantization imitates."""
    from torchao.quantization import Int8DynamicActivationIntxWeightConfig
    from torchao.quantization.granularity import PerGroup

    return Int8DynamicActivationIntxWeightConfig(weight_dtype=torch.int4,
                                                 weight_granularity=PerGroup(qat.group_size))


def _head_names(model: Any) -> set[str]:
    """Qualified names of the output head (kept in full precision)."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    return {name for name, module in model.named_modules() if head is not None and module is head}


def _quantizable(model: Any) -> Callable[[torch.nn.Module, str], bool]:
    """torchao ``filter_fn``: every linear layer except the output head."""
    heads = _head_names(model)
    return lambda module, fqn: isinstance(module, torch.nn.Linear) and fqn not in heads


def check_group_size(model: Any, qat: QatConfig) -> None:
    """ConfigError naming the first linear layer whose input features ``qat.group_size`` does not divide."""
    keep = _quantizable(model)
    for name, module in model.named_modules():
        if keep(module, name) and module.in_features % qat.group_size:
            raise ConfigError(f"qat.group_size = {qat.group_size}: does not divide the "
                              f"{module.in_features} input features of layer {name}; use a divisor of "
                              f"every linear layer's input size")


def check_quantizable(model: Any) -> None:
    """ConfigError unless torchao can fake-quantize the model's projections (never a silent no-op).

    torchao swaps ``nn.Linear`` layers only: GPT-2's ``Conv1D`` projections would be left as
    they are, and the run would train in full precision while its saved config claimed int4.
    """
    from transformers.pytorch_utils import Conv1D

    convs = sorted({name.rsplit(".", 1)[-1] for name, module in model.named_modules() if isinstance(module, Conv1D)})
    name = type(model).__name__
    if convs:
        raise ConfigError(f"training.method = 'qat': {name}'s projections are Conv1D layers ({', '.join(convs)}), "
                          "which torchao cannot fake-quantize; use 'lora', 'qlora' or 'full'")
    keep = _quantizable(model)
    if not any(keep(module, fqn) for fqn, module in model.named_modules()):
        raise ConfigError(f"training.method = 'qat': {name} has no linear layer to fake-quantize "
                          "(besides the output head); use 'lora' or 'full'")


def prepare(model: Any, qat: QatConfig) -> Any:
    """Swap the linear layers for fake-quantized ones (in place); returns the model."""
    from torchao.quantization import quantize_
    from torchao.quantization.qat import QATConfig

    check_quantizable(model)
    check_group_size(model, qat)
    quantize_(model, QATConfig(_base_config(qat), step="prepare"), filter_fn=_quantizable(model))
    return model


def set_fake_quant(model: Any, enabled: bool) -> None:
    """Turn fake quantization of every fake-quantized linear layer on or off."""
    from torchao.quantization.qat.linear import enable_linear_fake_quant

    for module in model.modules():
        enable_linear_fake_quant(module, enabled)


class FakeQuantSwitch:
    """A step hook: fake quantization stays off for the first ``qat.fake_quant_after_n_steps`` steps."""

    def __init__(self, qat: QatConfig) -> None:
        self.after = qat.fake_quant_after_n_steps
        self.enabled: bool | None = None

    def __call__(self, recipe: Any) -> None:
        """Set the fake quantizers for the step that comes next."""
        enabled = recipe.progress.step >= self.after
        if enabled != self.enabled:
            set_fake_quant(recipe.model, enabled)
            self.enabled = enabled


def convert(model: Any, qat: QatConfig) -> Any:
    """The trained model with real int4/int8 quantized linear layers (LoRA merged first)."""
    from torchao.quantization import quantize_
    from torchao.quantization.qat import QATConfig

    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    set_fake_quant(model, True)
    quantize_(model, QATConfig(_base_config(qat), step="convert"), filter_fn=_quantizable(model))
    return model


def ptq(model: Any, qat: QatConfig) -> Any:
    """Post-training quantization of a plainly trained model with the same scheme (for comparison)."""
    from torchao.quantization import quantize_

    quantize_(model, _base_config(qat), filter_fn=_quantizable(model))
    return model


def save_quantized(model: Any, folder: Path, qat: QatConfig) -> None:
    """Save a converted model as torchao safetensors that ``from_pretrained`` loads."""
    from transformers import TorchAoConfig
    from transformers.quantizers import AutoHfQuantizer

    quant_config = TorchAoConfig(quant_type=_base_config(qat), modules_to_not_convert=sorted(_head_names(model)))
    model.config.quantization_config = quant_config
    model.hf_quantizer = AutoHfQuantizer.from_config(quant_config, pre_quantized=True)
    model.save_pretrained(str(folder), safe_serialization=True)
