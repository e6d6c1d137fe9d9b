"""Load a causal LM and its tokenizer from a local folder, and wrap it for the chosen method.

Only local folders saved with ``save_pretrained`` are read: nothing is fetched from a hub, and
``trust_remote_code`` stays off unless the config turns it on.
"""

from __future__ import annotations

from collections.abc import Sequence
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


def load_run_tokenizer(path: Path, config: Config) -> tuple[Any, list[int]]:
    """The tokenizer a run trains with, and the ids of the tokens it added to the saved one.

    For objectives that render chats, a tokenizer without a chat template gets the built-in
    ChatML one with its markers as special tokens (``engine.data.chat_tokens``); raw-text
    training (``pretrain``) keeps the tokenizer as saved. The same rule rebuilds a run's
    tokenizer from its base when a checkpoint is exported or evaluated.
    """
    from engine.data.chat_tokens import ensure_chat_template
    from engine.objectives import record_kind

    tokenizer = load_tokenizer(path, config.model.trust_remote_code)
    added = ensure_chat_template(tokenizer) if record_kind(config.training.objective) != "text" else []
    return tokenizer, added


def fit_embeddings(model: Any, size: int, seed: int) -> None:
    """Grow the model's token embeddings (and output head) to ``size`` rows when the tokenizer grew.

    New rows start near the mean of the others (transformers' default), drawn with ``seed`` so a
    run is reproducible.
    """
    if size <= model.get_input_embeddings().weight.shape[0]:
        return
    with torch.random.fork_rng(devices=list(range(torch.cuda.device_count()))):
        torch.manual_seed(seed)
        model.resize_token_embeddings(size)


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
        dtype=_DTYPES[config.model.dtype], attn_implementation=attention_for(path, config), **extra)
    return model


def attention_for(path: Path, config: Config) -> str:
    """The attention kernel to load ``path`` with: ``model.attn_implementation``, "auto" resolved.

    "auto" is SDPA when the family's model class supports it, else eager (Gemma2 refuses SDPA);
    an explicit kernel the family or this machine cannot run is one line naming the key.
    """
    wanted, model_class = config.model.attn_implementation, _model_class(path, config)
    supports = {"sdpa": getattr(model_class, "_supports_sdpa", True),
                "flash_attention_2": getattr(model_class, "_supports_flash_attn", False), "eager": True}
    if wanted == "auto":
        return "sdpa" if supports["sdpa"] else "eager"
    name = getattr(model_class, "__name__", "this model")
    if not supports[wanted]:
        raise ConfigError(f"model.attn_implementation = '{wanted}': {name} does not support it; use 'auto' or 'eager'")
    if wanted == "flash_attention_2" and (device().type != "cuda" or not _has_flash_attn()):
        raise ConfigError("model.attn_implementation = 'flash_attention_2': needs a CUDA GPU and the flash-attn "
                          "package; use 'auto'")
    return wanted


def _model_class(path: Path, config: Config) -> Any:
    """The causal-LM class transformers maps the folder's config to (None for remote code)."""
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING

    model_config = AutoConfig.from_pretrained(str(path), local_files_only=True,
                                              trust_remote_code=config.model.trust_remote_code)
    try:
        return MODEL_FOR_CAUSAL_LM_MAPPING[type(model_config)]
    except KeyError:
        return None


def _has_flash_attn() -> bool:
    """Whether the flash-attn package is importable."""
    import importlib.util

    return importlib.util.find_spec("flash_attn") is not None


def apply_lora(model: Any, lora: LoraConfig, new_tokens: Sequence[int] = ()) -> Any:
    """Wrap a model with a peft LoRA adapter; only the adapter's weights stay trainable.

    ``new_tokens`` (tokens the run added, e.g. chat markers) have their embedding rows, and their
    output-head rows when the head is not tied to the embeddings, trained and saved with the
    adapter (peft's ``trainable_token_indices``).
    """
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

    if lora.target_modules == "auto":
        targets: str | list[str] = "all-linear"  # peft: every Linear / Conv1D but the output head
        if not projection_names(model):
            raise ConfigError(f"lora.target_modules = 'auto': the model has no linear or Conv1D layer "
                              f"(its modules: {sorted(_module_names(model))[:20]})")
    else:
        targets = list(lora.target_modules)
        present = _module_names(model)
        missing = [m for m in targets if m not in present]
        if missing:
            raise ConfigError(f"lora.target_modules: {missing} not found in the model "
                              f"(linear and Conv1D layers it has: {sorted(projection_names(model))})")
    peft_config = PeftLoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                                 target_modules=targets, bias=lora.bias, task_type="CAUSAL_LM",
                                 trainable_token_indices=token_rows(model, new_tokens))
    return get_peft_model(model, peft_config)


def save_options(model: Any) -> dict[str, Any]:
    """``save_pretrained`` options: an adapter whose added tokens are trainable rows saves those rows only,
    not the whole resized embedding matrix (peft would, seeing the vocabulary grown)."""
    peft_config = getattr(model, "peft_config", None)
    config = peft_config.get("default") if isinstance(peft_config, dict) else None
    return {"save_embedding_layers": False} if getattr(config, "trainable_token_indices", None) else {}


def token_rows(model: Any, tokens: Sequence[int]) -> list[int] | dict[str, list[int]] | None:
    """peft's ``trainable_token_indices`` for ``tokens``: the embedding's rows, and the output head's
    when it is a matrix of its own (a tied head follows the embedding)."""
    if not tokens:
        return None
    rows = sorted({int(t) for t in tokens})
    embedding, head = model.get_input_embeddings(), model.get_output_embeddings()
    if head is None or head.weight is embedding.weight:
        return rows
    names = {module: name for name, module in model.named_modules()}
    return {names[embedding]: rows, names[head]: rows}


def _module_names(model: Any) -> set[str]:
    """Short names of every module of the model."""
    return {name.rsplit(".", 1)[-1] for name, _ in model.named_modules() if name}


def projection_names(model: Any) -> set[str]:
    """Short names of the model's linear and Conv1D layers but the output head (what LoRA targets)."""
    from transformers.pytorch_utils import Conv1D

    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    return {name.rsplit(".", 1)[-1] for name, module in model.named_modules()
            if isinstance(module, torch.nn.Linear | Conv1D) and module is not head}


def trainable_parameters(model: Any) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters())
