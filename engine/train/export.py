"""Export a checkpoint as an adapter or as a merged standalone model (``train-export``).

The source is a checkpoint folder (``runs/<id>/checkpoints/step-N``), a run's ``final`` folder, or
any adapter or model folder. An adapter is copied as it is (``peft.PeftModel.from_pretrained``
loads it over its base) or, with ``merge``, folded into its base with peft's ``merge_and_unload``
and saved as safetensors that ``AutoModelForCausalLM.from_pretrained`` loads without peft. A
full-model checkpoint is already standalone and is copied. The tokenizer always goes along. The
result is written to a hidden folder first and renamed, and an existing output is never replaced.

Inspecting a folder is light (JSON only); torch, transformers and peft load only to merge.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.checkpoint_meta import PROGRESS_FILE
from engine.errors import UserError

TRAINER_FILES = ("trainer_state.pt", PROGRESS_FILE)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


@dataclass(frozen=True)
class ExportSource:
    """What a folder holds: an adapter (and its base) or a whole model, and where its tokenizer is."""

    folder: Path
    adapter: bool
    base: Path | None
    tokenizer_dir: Path


def _has_tokenizer(folder: Path) -> bool:
    return any((folder / name).is_file() for name in TOKENIZER_FILES)


def inspect_source(folder: Path, fallback_base: Path | None = None) -> ExportSource:
    """Describe an export source; UserError when it is not a checkpoint, adapter or model folder.

    ``fallback_base`` is the base to use when an adapter's recorded base is no longer a local
    model folder (a workspace moved: its built-in base is found again where it lives now).
    """
    if not folder.is_dir():
        raise UserError(f"{folder}: no such checkpoint folder")
    meta_file = folder / PROGRESS_FILE
    meta = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
    adapter_file = folder / "adapter_config.json"
    if adapter_file.is_file():
        base_name = json.loads(adapter_file.read_text()).get("base_model_name_or_path") or meta.get("base_model")
        base = Path(base_name) if base_name else None
        if (base is None or not (base / "config.json").is_file()) and fallback_base is not None:
            base = fallback_base
        if base is None or not (base / "config.json").is_file():
            raise UserError(f"{folder}: the adapter's base model {base_name!r} is not a local model folder")
    elif (folder / "config.json").is_file():
        base = Path(meta["base_model"]) if meta.get("base_model") else None
    else:
        raise UserError(f"{folder}: not a checkpoint, adapter or model folder "
                        "(no adapter_config.json or config.json)")
    candidates = [folder] + ([base] if base else [])
    tokenizer_dir = next((c for c in candidates if _has_tokenizer(c)), None)
    if tokenizer_dir is None:
        raise UserError(f"{folder}: no tokenizer here or in its base model")
    return ExportSource(folder, adapter_file.is_file(), base, tokenizer_dir)


def default_output(folder: Path, merge: bool) -> Path:
    """``<run>/exports/<checkpoint>-merged`` (or ``-adapter``/``-model``) beside the run's checkpoints."""
    run_dir = folder.parent.parent if folder.parent.name == "checkpoints" else folder.parent
    suffix = "merged" if merge else ("adapter" if (folder / "adapter_config.json").is_file() else "model")
    return run_dir / "exports" / f"{folder.name}-{suffix}"


def export_checkpoint(folder: Path, output: Path, merge: bool, config: Any) -> dict[str, Any]:
    """Write ``folder`` to ``output`` as an adapter, a merged model or a copied model; returns a summary."""
    source = inspect_source(folder)
    if output.exists() and any(output.iterdir()):
        raise UserError(f"{output}: already exists and is not empty; choose another --output")
    tmp = output.parent / f".tmp-{output.name}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    if source.adapter and merge:
        _merge(source, tmp, config)
        kind = "merged"
    else:
        _copy_weights(source.folder, tmp)
        kind = "adapter" if source.adapter else "model"
    _copy_tokenizer(source.tokenizer_dir, tmp)
    if output.exists():
        output.rmdir()
    tmp.rename(output)
    return {"output": str(output), "kind": kind, "source": str(folder),
            "base_model": str(source.base) if source.base else ""}


def _copy_weights(folder: Path, out: Path) -> None:
    """Every file of the folder but the trainer's own state."""
    for path in folder.iterdir():
        if path.is_file() and path.name not in TRAINER_FILES:
            shutil.copy2(path, out / path.name)


def _copy_tokenizer(folder: Path, out: Path) -> None:
    """The tokenizer, saved the standard way (copied files would miss nothing, but may be partial)."""
    from engine.train.model import load_tokenizer

    load_tokenizer(folder).save_pretrained(str(out))


def _merge(source: ExportSource, out: Path, config: Any) -> None:
    """Load the full-precision base, apply the adapter, fold it in and save safetensors."""
    from peft import PeftModel

    from engine.train.model import load_model

    assert source.base is not None
    model = PeftModel.from_pretrained(load_model(source.base, config), str(source.folder))
    merged = model.merge_and_unload()
    merged.save_pretrained(str(out), safe_serialization=True)
