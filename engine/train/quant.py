"""QLoRA's quantized base: bitsandbytes 4-bit (NF4/FP4) or 8-bit weights, prepared for k-bit training.

bitsandbytes runs on CUDA and, since 0.45, on the CPU. ``check_platform`` probes the device once
with a tiny tensor so that a platform it cannot run on gets one line naming what is missing
instead of a stack trace from deep inside a training step.
"""

from __future__ import annotations

from typing import Any

import torch

from engine.config import Config, QuantConfig
from engine.errors import ConfigError

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def check_platform(device: torch.device) -> None:
    """Raise a one-line ConfigError when bitsandbytes is missing or cannot quantize on ``device``."""
    try:
        import bitsandbytes
        import bitsandbytes.functional as bnb_functional
    except ImportError as exc:
        raise ConfigError("training.method = 'qlora': needs the bitsandbytes package "
                          f"(pip install 'bitsandbytes>=0.45'): {exc}") from None
    try:
        bnb_functional.quantize_4bit(torch.ones(64, device=device), quant_type="nf4")
    except Exception as exc:  # noqa: BLE001 - any failure means this platform is unsupported
        raise ConfigError(f"training.method = 'qlora': bitsandbytes {bitsandbytes.__version__} cannot "
                          f"quantize on {device.type} ({type(exc).__name__}: {str(exc).splitlines()[0]}); "
                          "use training.method = 'lora'") from None


def bnb_config(quant: QuantConfig) -> Any:
    """The transformers ``BitsAndBytesConfig`` for the [quant] settings."""
    from transformers import BitsAndBytesConfig

    if quant.bits == 8:
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=quant.type,
                              bnb_4bit_use_double_quant=quant.double_quant,
                              bnb_4bit_compute_dtype=_DTYPES[quant.compute_dtype])


def prepare_kbit(model: Any, config: Config) -> Any:
    """Freeze the quantized base, cast norms to fp32 and (optionally) turn on gradient checkpointing."""
    from peft import prepare_model_for_kbit_training

    keep_weights_as_loaded(model)
    return prepare_model_for_kbit_training(
        model, use_gradient_checkpointing=config.training.gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False})


def keep_weights_as_loaded(model: Any) -> None:
    """Stop bitsandbytes repacking 4-bit weights for its CPU kernel in eval mode.

    On CPUs with AVX-512 bf16 an eval-mode forward repacks each 4-bit weight, and unpacking it
    (on save or the next train step) does not give back the same scales: the base would drift
    every evaluation and a resumed run would not match an uninterrupted one.
    """
    for module in model.modules():
        if hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False


def describe(quant: QuantConfig) -> str:
    """A short description for logs, e.g. ``4-bit nf4``."""
    return "8-bit" if quant.bits == 8 else f"4-bit {quant.type}"
