"""Sharded checkpoints of an FSDP group (``torch.distributed.checkpoint``) and reading them back anywhere.

An FSDP group writes each checkpoint **sharded**: every rank saves its own shards of the model
state dict and the optimizer state (``get_state_dict``, then ``dcp.save`` into ``sharded/``, one
``__<rank>_0.distcp`` file per rank plus DCP's ``.metadata``), so no rank ever holds the whole
model or optimizer state. Rank 0 writes the rest of the folder as a one-process checkpoint has
it: ``trainer_state.pt`` (scheduler, every rank's RNG, no optimizer), ``progress.json``, the
adapter's ``adapter_config.json`` or the model's ``config.json`` and ``generation_config.json``,
and ``sharded.json`` (what it holds, the world size, each file of ``sharded/`` with its size, so
``engine.checkpoint_meta.check_checkpoint`` refuses a truncated shard with one line naming it).
The folder is written in a hidden temporary folder and renamed, like any checkpoint.

Reading one back:

- ``load_sharded``: a resumed run loads it into its model and optimizer as they are, at any
  world size (``dcp.load`` reshards: 2 FSDP ranks -> 4, or -> DDP), or in one process with no
  process group at all (DCP then reads every shard into the whole model).
- ``one_process_copy``: ``train-export``, ``train-eval`` and ``chat`` read the checkpoint through
  ``ExportSource.weights`` (``engine.train.export``), which converts it once into a temporary
  folder in the one-process layout: the model is made on the CPU (the adapter over its base, or
  the model from its config), the shards are loaded into it with ``dcp.load`` and it is saved
  with ``save_pretrained``, so it is byte for byte what a gathered checkpoint would have held.

DCP's ``.metadata`` is a pickle; it is read with an unpickler that allows DCP's own metadata
classes and torch's dtypes only, so a crafted file cannot run code.
"""

from __future__ import annotations

import copy
import io
import json
import pickle
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch
from torch.distributed.checkpoint import FileSystemReader
from torch.distributed.checkpoint.metadata import StorageMeta

from engine.checkpoint_meta import DAMAGED, MANIFEST_FILE, SHARDED_DIR, read_manifest
from engine.errors import UserError
from engine.train import checkpoint as ckpt
from engine.train.model import save_options

FORMAT = "torch.distributed.checkpoint"


def save_sharded(folder: Path, model: Any, optimizer: torch.optim.Optimizer, trainer_state: dict[str, Any],
                 progress: ckpt.TrainingProgress, meta: dict[str, Any], group: Any, adapter: bool) -> Path:
    """Write a sharded checkpoint into ``folder`` (a folder every rank sees); every rank calls it.

    ``adapter``: only the trained weights are kept (the frozen base is the run's base model).
    """
    from torch.distributed import checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

    with ckpt.staged(folder, group.lead) as tmp:
        group.barrier()  # the lead has cleared and made ``tmp``
        model_state, optimizer_state = get_state_dict(model, optimizer,
                                                      options=StateDictOptions(ignore_frozen_params=adapter))
        dcp.save({"model": model_state, "optimizer": optimizer_state}, checkpoint_id=tmp / SHARDED_DIR)
        if group.lead:
            write_model_files(model, tmp, adapter)
            write_manifest(tmp, group.world, adapter, model)
            ckpt.write_state(tmp, trainer_state, progress, meta)
    return folder


def write_model_files(model: Any, folder: Path, adapter: bool) -> None:
    """What ``save_pretrained`` writes besides the weights: the adapter's config, or the model's configs."""
    if adapter:
        config = copy.deepcopy(model.peft_config["default"])
        config.inference_mode = True  # as peft saves it
        config.save_pretrained(str(folder))
        return
    root = model.get_base_model() if hasattr(model, "get_base_model") else model
    config = copy.deepcopy(root.config)
    config.dtype = str(next(root.parameters()).dtype).split(".")[1]
    config.architectures = [type(root).__name__.removeprefix("FSDP")]
    config.save_pretrained(str(folder))
    if getattr(root, "generation_config", None) is not None:
        root.generation_config.save_pretrained(str(folder))


def write_manifest(folder: Path, world: int, adapter: bool, model: Any) -> None:
    """``sharded.json``: the kind, the world size, the vocabulary the weights have, every shard file's size."""
    shards = folder / SHARDED_DIR
    files = {path.name: path.stat().st_size for path in sorted(shards.iterdir()) if path.is_file()}
    manifest = {"format": FORMAT, "kind": "adapter" if adapter else "model", "world_size": world,
                "vocab_size": int(model.get_input_embeddings().weight.shape[0]), "files": files}
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2))


def load_sharded(folder: Path, model: Any, optimizer: torch.optim.Optimizer | None, adapter: bool) -> None:
    """Load a sharded checkpoint's weights (and optimizer state) into ``model`` as it is now.

    In a group every rank calls it, whatever the strategy and world size; in one process it runs
    with no process group. A shard that cannot be read is a UserError naming the folder.
    """
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        get_model_state_dict,
        get_state_dict,
        set_model_state_dict,
        set_state_dict,
    )

    read = StateDictOptions(ignore_frozen_params=adapter)
    write = StateDictOptions(ignore_frozen_params=adapter, strict=not adapter)
    if optimizer is None:
        state = {"model": get_model_state_dict(model, options=read)}
        _read(folder, state)
        set_model_state_dict(model, state["model"], options=write)
        return
    model_state, optimizer_state = get_state_dict(model, optimizer, options=read)
    state = {"model": model_state, "optimizer": optimizer_state}
    _read(folder, state)
    set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optimizer"],
                   options=write)


def _read(folder: Path, state: dict[str, Any]) -> None:
    """``dcp.load`` of ``state`` from the checkpoint's shards (through the safe metadata reader)."""
    import torch.distributed as dist
    from torch.distributed import checkpoint as dcp

    shards = Path(folder) / SHARDED_DIR
    alone = not dist.is_initialized()
    try:
        with warnings.catch_warnings():  # DCP warns that one process loads alone, which is the intent here
            warnings.filterwarnings("ignore", "torch.distributed is disabled", UserWarning)
            dcp.load(state, storage_reader=SafeReader(shards), no_dist=alone)
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - a shard that does not read is one problem to the user
        raise UserError(f"{shards}: unreadable sharded state ({type(exc).__name__}); {DAMAGED}") from None


def one_process_copy(folder: Path, base: Path | None, out: Path | None = None) -> Path:
    """The sharded checkpoint ``folder`` converted into the one-process layout, in ``out`` (else a new
    temporary folder): the adapter (over ``base``) or the whole model in safetensors, with its config.

    The model is made on the CPU with no process group, the shards are loaded into it and it is
    written with ``save_pretrained``: what a checkpoint gathered on rank 0 would have held.
    """
    manifest = read_manifest(folder)
    out = out if out is not None else Path(tempfile.mkdtemp(prefix="llamahome-sharded-"))
    try:
        model = _cpu_model(folder, manifest, base)
        load_sharded(folder, model, None, manifest["kind"] == "adapter")
        model.save_pretrained(str(out), safe_serialization=True, **save_options(model))
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    return out


def _cpu_model(folder: Path, manifest: dict[str, Any], base: Path | None) -> Any:
    """The model a sharded checkpoint's weights load into, on the CPU, each weight in the dtype it was saved in."""
    from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig

    dtypes = _saved_dtypes(folder)
    if manifest["kind"] == "adapter":
        from peft import PeftConfig, get_peft_model

        from engine.config import Config
        from engine.train.model import fit_embeddings, load_model

        if base is None:
            raise UserError(f"{folder}: the adapter's base model is not a local model folder")
        model = load_model(base, Config())
        fit_embeddings(model, int(manifest["vocab_size"]), 0)  # the added rows come from the adapter
        config = PeftConfig.from_pretrained(str(folder))
        config.inference_mode = False  # trainable, as it was saved (its weights are the trained ones)
        model = get_peft_model(model, config)
    else:
        config = AutoConfig.from_pretrained(str(folder), local_files_only=True)
        model = AutoModelForCausalLM.from_config(config, dtype=next(iter(dtypes.values())))
        if (folder / "generation_config.json").is_file():
            model.generation_config = GenerationConfig.from_pretrained(str(folder))
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        if name in dtypes and tensor.dtype != dtypes[name]:
            tensor.data = tensor.data.to(dtypes[name])
    return model


def _saved_dtypes(folder: Path) -> dict[str, torch.dtype]:
    """The dtype of every weight the shards hold, by its name in the model."""
    metadata = SafeReader(folder / SHARDED_DIR).read_metadata()
    dtypes = {name.removeprefix("model."): item.properties.dtype
              for name, item in metadata.state_dict_metadata.items()
              if name.startswith("model.") and hasattr(item, "properties")}
    if not dtypes:
        raise UserError(f"{folder / SHARDED_DIR}: holds no weights; {DAMAGED}")
    return dtypes


class _MetadataUnpickler(pickle.Unpickler):
    """Unpickles DCP's ``.metadata``: its own classes, torch's dtypes, sizes and layouts, paths, nothing else."""

    MODULES = ("torch.distributed.checkpoint.metadata", "torch.distributed.checkpoint.filesystem",
               "torch.distributed.checkpoint.planner")
    TORCH = (torch.dtype, torch.layout, torch.memory_format)
    ALLOWED = {("torch.serialization", "_get_layout"), ("pathlib", "PosixPath"), ("pathlib", "PurePosixPath"),
               ("pathlib", "WindowsPath"), ("pathlib", "PureWindowsPath"), ("builtins", "set"),
               ("builtins", "frozenset"), ("builtins", "slice")}
    """Plain constructors the metadata uses (a layout by its name, the checkpoint's path)."""

    def find_class(self, module: str, name: str) -> Any:
        if module in self.MODULES or (module == "collections" and name == "OrderedDict"):
            return super().find_class(module, name)
        if module == "torch":
            found = getattr(torch, name, None)
            if found is torch.Size or isinstance(found, self.TORCH):
                return found
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not checkpoint metadata")


class SafeReader(FileSystemReader):
    """A DCP storage reader whose ``read_metadata`` goes through ``_MetadataUnpickler`` (it cannot run code)."""

    def read_metadata(self, *args: Any, **kwargs: Any) -> Any:
        """DCP's ``.metadata`` of the folder; UserError naming it when it is not whole or not metadata."""
        path = Path(self.path) / ".metadata"
        try:
            metadata = _MetadataUnpickler(io.BytesIO(path.read_bytes())).load()
        except Exception:  # noqa: BLE001 - truncated, overwritten or crafted: the same problem to the user
            raise UserError(f"{path}: not checkpoint metadata; {DAMAGED}") from None
        if getattr(metadata, "storage_meta", None) is None:
            metadata.storage_meta = StorageMeta()
        metadata.storage_meta.load_id = self.load_id
        return metadata
