"""Load a causal LM and its tokenizer from a local folder, and wrap it for the chosen method.

Only local folders saved with ``save_pretrained`` are read: nothing is fetched from a hub, and
``trust_remote_code`` stays off unless the config turns it on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from engine.config import Config, LoraConfig
from engine.errors import ConfigError

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def device() -> torch.device:
    """The device training runs on: the first CUDA GPU when there is one, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_tokenizer(path: Path, trust_remote_code: bool = False) -> Any:
    """The tokenizer saved in a model folder, with a pad token guaranteed."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True,
                                              trust_remote_code=trust_remote_code)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(path: Path, config: Config, quantization_config: Any = None) -> Any:
    """A causal LM from a local ``save_pretrained`` folder, in the configured dtype, SDPA attention.

    With a ``quantization_config`` (bitsandbytes, for qlora) the weights are quantized as they
    load, straight onto the training device.
    """
    from transformers import AutoModelForCausalLM

    if not (path / "config.json").is_file():
        raise ConfigError(f"model.path = '{path}': not a save_pretrained folder (no config.json)")
    extra: dict[str, Any] = {}
    if quantization_config is not None:
        extra = {"quantization_config": quantization_config, "device_map": {"": device()}}
    model = AutoModelForCausalLM.from_pretrained(
        str(path), local_files_only=True, trust_remote_code=config.model.trust_remote_code,
        dtype=_DTYPES[config.model.dtype], attn_implementation="sdpa", **extra)
    return model


def apply_lora(model: Any, lora: LoraConfig) -> Any:
    """Wrap a model with a peft LoRA adapter; only the adapter's weights stay trainable."""
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = [m for m in lora.target_modules if m not in present]
    if missing:
        raise ConfigError(f"lora.target_modules: {missing} not found in the model "
                          f"(linear layers it has: {sorted(_linear_names(model))})")
    peft_config = PeftLoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                                 target_modules=list(lora.target_modules), bias=lora.bias,
                                 task_type="CAUSAL_LM")
    return get_peft_model(model, peft_config)


def _linear_names(model: Any) -> set[str]:
    """Short names of the model's linear layers (what LoRA can target)."""
    return {name.rsplit(".", 1)[-1] for name, module in model.named_modules()
            if isinstance(module, torch.nn.Linear)}


def trainable_parameters(model: Any) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters())
