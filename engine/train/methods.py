"""Wrap a loaded base model for the training method: lora, qlora, qat (alone or with LoRA), full.

``load_for_method`` loads the base the way the method needs it (bitsandbytes-quantized for
qlora) and ``prepare_for_method`` adds fake quantization, adapters and gradient checkpointing.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from engine.checkpoint_meta import DAMAGED
from engine.config import Config
from engine.errors import ConfigError, UserError
from engine.train import qat as qat_mod
from engine.train import quant
from engine.train.model import apply_lora, device, load_model


def uses_adapter(config: Config) -> bool:
    """Whether the method trains (and checkpoints) a LoRA adapter rather than all weights."""
    method = config.training.method
    return method in ("lora", "qlora") or (method == "qat" and config.qat.lora)


def check_precision(config: Config) -> None:
    """fp16 needs CUDA (its gradient scaler is CUDA-only here): one clear line otherwise."""
    if config.training.precision == "fp16" and device().type != "cuda":
        raise ConfigError("training.precision = 'fp16': needs a CUDA GPU (none found); use 'bf16' or 'fp32'")


def load_for_method(path: Path, config: Config) -> Any:
    """The base model on the training device, quantized with bitsandbytes for qlora."""
    check_precision(config)
    if config.training.method != "qlora":
        return load_model(path, config).to(device())
    quant.check_platform(device())
    return load_model(path, config, quantization_config=quant.bnb_config(config.quant))


def prepare_for_method(model: Any, config: Config, new_tokens: Sequence[int] = ()) -> Any:
    """Fake quantization, k-bit preparation, LoRA and gradient checkpointing as the config asks.

    ``new_tokens``: tokens the run added to the tokenizer, whose rows an adapter trains too.
    """
    method, checkpointing = config.training.method, config.training.gradient_checkpointing
    if method == "qlora":
        model = quant.prepare_kbit(model, config)
    elif checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if method == "qat":
        model = qat_mod.prepare(model, config.qat)
    if uses_adapter(config):
        model = apply_lora(model, config.lora, new_tokens)
    if config.training.compile:
        model.compile()
    return model


def no_kv_cache(model: Any) -> None:
    """Training forwards need no KV cache, and packed batches need none for their masks."""
    config = getattr(model, "config", None)
    if config is not None:
        config.use_cache = False


def load_adapter(model: Any, folder: Path) -> None:
    """Load a saved adapter's weights into a peft model; UserError naming a damaged file."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    path = folder / "adapter_model.safetensors"
    try:
        weights = load_file(str(path))
    except Exception:  # noqa: BLE001 - missing, truncated or not safetensors: one problem to the user
        raise UserError(f"{path}: unreadable adapter weights; {DAMAGED}") from None
    set_peft_model_state_dict(model, weights)
