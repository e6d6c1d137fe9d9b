"""Keep a training worker from importing the quantization libraries its method does not use.

transformers and peft import bitsandbytes and torchao whenever they are installed: peft's LoRA
layers import bitsandbytes (which pulls in torch's compiler stack), and transformers' quantizer
registry imports torchao. A LoRA or full fine-tune uses neither. On a 2-core machine peft's import
went from 1.1 s to 0.14 s without them (``python -X importtime``), and a warm LoRA run's time to
its first step from 4.2 s to 2.75 s (bench/train_memory.py).

A worker runs one job in its own process, so before anything imports transformers it marks the
libraries the job does not need as absent: ``sys.modules[name] = None`` makes ``import name``
raise ImportError and ``importlib.util.find_spec(name)`` return None, which is the check both
transformers and peft make. A model folder whose config carries a ``quantization_config`` (a
pre-quantized model) keeps both, as does any process that already imported them.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from engine.config import config_from_dict

NEEDED_BY = {"bitsandbytes": "qlora", "torchao": "qat"}
"""Each optional quantization library and the one training method that uses it."""


def is_prequantized(folder: Path) -> bool:
    """Whether the model folder's ``config.json`` names a quantization (loading it needs its library)."""
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and bool(config.get("quantization_config"))


def unused_quantizers(method: str, model_folders: Iterable[Path]) -> list[str]:
    """The quantization libraries a train job with ``method`` on these model folders never imports."""
    if any(is_prequantized(folder) for folder in model_folders):
        return []
    return [name for name, user in NEEDED_BY.items() if user != method]


def hide(names: Iterable[str]) -> list[str]:
    """Mark libraries absent for this process unless already imported; returns those hidden."""
    hidden = []
    for name in names:
        if name not in sys.modules:
            sys.modules[name] = None  # type: ignore[assignment]
            hidden.append(name)
    return hidden


def hide_for_train_job(stored: Mapping[str, Any]) -> list[str]:
    """Hide what a train run (its stored config) does not need; call before transformers is imported."""
    settings = dict(stored)
    job = settings.pop("job", None) or {}
    config = config_from_dict(settings)
    folders = [Path(str(path)).expanduser() for path in (config.model.path, job.get("resume_from")) if path]
    return hide(unused_quantizers(config.training.method, folders))
