"""Export a checkpoint as an adapter or as a merged standalone model (``train-export``).

The source is a checkpoint folder (``runs/<id>/checkpoints/step-N``), a run's ``final`` folder, or
any adapter or model folder. An adapter is copied as it is (``peft.PeftModel.from_pretrained``
loads it over its base) or, with ``merge``, folded into its base with peft's ``merge_and_unload``
and saved as safetensors that ``AutoModelForCausalLM.from_pretrained`` loads without peft. A
full-model checkpoint is already standalone and is copied. The tokenizer always goes along, with
the chat template the run trained with: a checkpoint keeps no tokenizer of its own, so the base's
is changed as the run changed it (``engine.train.model.load_run_tokenizer``: ChatML markers for a
base without a template; ``data.prepend_tokens``). ``generation_config.json`` lists the tokens an
answer ends with (``engine.data.chat_tokens.stop_token_ids``), so a client's ``generate`` stops.
A run that added tokens to the tokenizer has them in its adapter; to load such an adapter over
its base, resize the base's embeddings to ``len(tokenizer)`` first (peft's documented way). The
result is written to a hidden folder first and renamed, and an existing output is never replaced.

An FSDP group's sharded checkpoint is read like any other: ``ExportSource.weights`` converts it
once into the one-process layout (``engine.train.dcp_format.one_process_copy``), so nothing that
loads a source's weights needs to know how it was written.

Inspecting a folder is light (JSON only); torch, transformers and peft load only to merge, or to
convert a sharded checkpoint.
"""

from __future__ import annotations

import functools
import json
import shutil
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.checkpoint_meta import PROGRESS_FILE, is_sharded
from engine.errors import UserError
from engine.events import Stage

TRAINER_FILES = ("trainer_state.pt", PROGRESS_FILE)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


@dataclass(frozen=True)
class ExportSource:
    """What a folder holds: an adapter (and its base) or a whole model, and where its tokenizer is."""

    folder: Path
    adapter: bool
    base: Path | None
    tokenizer_dir: Path
    run_config: dict[str, Any] | None = None
    """The config of the run that wrote the checkpoint (from its ``progress.json``), if any."""
    sharded: bool = False
    """An FSDP group's sharded checkpoint (``engine.train.dcp_format``): its weights are read through ``weights``."""

    @functools.cached_property
    def weights(self) -> Path:
        """The folder to load the weights from: ``folder`` itself, or for a sharded checkpoint a temporary
        copy of it in the one-process layout, made on first use and removed with this object."""
        if not self.sharded:
            return self.folder
        from engine.train.dcp_format import one_process_copy

        copy = one_process_copy(self.folder, self.base)
        weakref.finalize(self, shutil.rmtree, copy, True)
        return copy


def _has_tokenizer(folder: Path) -> bool:
    return any((folder / name).is_file() for name in TOKENIZER_FILES)


def inspect_source(folder: Path, fallback_base: Path | None = None) -> ExportSource:
    """Describe an export source; UserError when it is not a checkpoint, adapter or model folder.

    ``fallback_base`` is the base to use when an adapter's recorded base is no longer a local
    model folder (a workspace moved: its built-in base is found again where it lives now), or
    when a full-weights folder records none (its tokenizer is looked for there too).
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
        base = Path(meta["base_model"]) if meta.get("base_model") else fallback_base
    else:
        raise UserError(f"{folder}: not a checkpoint, adapter or model folder "
                        "(no adapter_config.json or config.json)")
    candidates = [folder] + ([base] if base else [])
    tokenizer_dir = next((c for c in candidates if _has_tokenizer(c)), None)
    if tokenizer_dir is None:
        raise UserError(f"{folder}: no tokenizer here or in its base model")
    return ExportSource(folder, adapter_file.is_file(), base, tokenizer_dir, meta.get("config"), is_sharded(folder))


def default_output(folder: Path, merge: bool) -> Path:
    """``<run>/exports/<checkpoint>-merged`` (or ``-adapter``/``-model``) beside the run's checkpoints."""
    run_dir = folder.parent.parent if folder.parent.name == "checkpoints" else folder.parent
    suffix = "merged" if merge else ("adapter" if (folder / "adapter_config.json").is_file() else "model")
    return run_dir / "exports" / f"{folder.name}-{suffix}"


def export_checkpoint(folder: Path, output: Path, merge: bool, config: Any,
                      emit: Callable[[Any], None] = lambda event: None) -> dict[str, Any]:
    """Write ``folder`` to ``output`` as an adapter, a merged model or a copied model; returns a summary.

    ``emit`` gets the stages: exporting, or loading the base and merging the adapter into it.
    """
    source = inspect_source(folder)
    if output.exists() and any(output.iterdir()):
        raise UserError(f"{output}: already exists and is not empty; choose another --output")
    tmp = output.parent / f".tmp-{output.name}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    tokenizer = export_tokenizer(source)
    if source.adapter and merge:
        _merge(source, tmp, config, tokenizer, emit)
        kind = "merged"
    else:
        emit(Stage("exporting", detail=f"to {output}"))
        _copy_weights(source.weights, tmp)
        kind = "adapter" if source.adapter else "model"
    tokenizer.save_pretrained(str(tmp))
    if kind != "merged":
        save_generation_config(None, tmp, tokenizer, source.weights if kind == "model" else source.base)
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


def export_tokenizer(source: ExportSource) -> Any:
    """The tokenizer an export carries: the folder's own, else its base's as the run changed it."""
    from engine.config import config_from_dict
    from engine.data.template import add_control_tokens
    from engine.train.model import load_run_tokenizer, load_tokenizer

    if source.tokenizer_dir == source.folder or source.run_config is None:
        return load_tokenizer(source.tokenizer_dir)
    run_config = config_from_dict({k: v for k, v in source.run_config.items() if k != "job"})
    tokenizer, _ = load_run_tokenizer(source.tokenizer_dir, run_config)
    add_control_tokens(tokenizer, run_config.data.prepend_tokens)
    return tokenizer


def stop_at(model: Any, tokenizer: Any) -> None:
    """Make the model's generation config stop at the tokens an answer ends with."""
    from engine.data.chat_tokens import stop_token_ids, with_stop_tokens

    if getattr(model, "generation_config", None) is not None:
        with_stop_tokens(model.generation_config, stop_token_ids(tokenizer))


def save_generation_config(model: Any, folder: Path, tokenizer: Any, like: Path | None = None) -> None:
    """Write ``generation_config.json``: the model's (or the one in ``like``), stopping at the answer's end."""
    import copy

    from transformers import GenerationConfig

    from engine.data.chat_tokens import stop_token_ids, with_stop_tokens

    config = copy.deepcopy(getattr(model, "generation_config", None)) if model is not None else None
    if config is None and like is not None and (like / "generation_config.json").is_file():
        config = GenerationConfig.from_pretrained(str(like))
    config = config or GenerationConfig()
    with_stop_tokens(config, stop_token_ids(tokenizer))
    if config.pad_token_id is None and tokenizer.pad_token_id is not None:
        config.pad_token_id = tokenizer.pad_token_id
    config.save_pretrained(str(folder))


def _merge(source: ExportSource, out: Path, config: Any, tokenizer: Any, emit: Callable[[Any], None]) -> None:
    """Load the full-precision base (its embeddings grown to the run's tokenizer), apply the adapter,
    fold it in and save safetensors."""
    from peft import PeftModel

    from engine.train.model import fit_embeddings, load_model

    assert source.base is not None
    emit(Stage("loading_model", detail=source.base.name))
    base = load_model(source.base, config)
    fit_embeddings(base, len(tokenizer), 0)  # the rows the run added come from the adapter
    model = PeftModel.from_pretrained(base, str(source.weights))
    emit(Stage("merging"))
    merged = model.merge_and_unload()
    stop_at(merged, tokenizer)
    emit(Stage("exporting", detail=f"to {out.parent / out.name.removeprefix('.tmp-')}"))
    merged.save_pretrained(str(out), safe_serialization=True)
