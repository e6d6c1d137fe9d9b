"""Read and check what a checkpoint folder holds without importing torch.

``read_checkpoint_meta`` reads ``progress.json`` (what a checkpoint says about itself);
``check_checkpoint`` also checks that its weight files (safetensors: the header and the size it
promises) and ``trainer_state.pt`` (a zip archive, as ``torch.save`` writes it) are whole, so a
damaged checkpoint is refused with one line naming the file before any run starts from it.

A checkpoint of an FSDP group is **sharded** (``engine.train.dcp_format``): its weights and
optimizer state are a ``torch.distributed.checkpoint`` folder (``sharded/``, a file per rank)
and ``sharded.json`` lists each of its files with its size, which the check holds them to.
"""

from __future__ import annotations

import json
import struct
import zipfile
from pathlib import Path
from typing import Any

from engine.errors import UserError

PROGRESS_FILE = "progress.json"
STATE_FILE = "trainer_state.pt"
TMP_PREFIX = ".tmp-"
"""The name start of a checkpoint folder still being written."""
DAMAGED = "the checkpoint is damaged; resume from another one"
SHARDED_DIR = "sharded"
"""The ``torch.distributed.checkpoint`` folder of a sharded checkpoint (model and optimizer state)."""
MANIFEST_FILE = "sharded.json"
"""What a sharded checkpoint holds: its kind, the world size that wrote it, its files and their sizes."""


def is_sharded(folder: Path) -> bool:
    """Whether ``folder`` is a sharded checkpoint (an FSDP group's, written with DCP)."""
    return (Path(folder) / MANIFEST_FILE).is_file()


def read_manifest(folder: Path) -> dict[str, Any]:
    """``sharded.json`` of a sharded checkpoint; UserError naming it when it is not whole."""
    path = Path(folder) / MANIFEST_FILE
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, OSError):
        raise UserError(f"{path}: unreadable; {DAMAGED}") from None
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict) or not files or manifest.get("kind") not in ("adapter", "model"):
        raise UserError(f"{path}: not a sharded checkpoint manifest; {DAMAGED}")
    return manifest


def read_checkpoint_meta(folder: Path) -> dict[str, Any]:
    """``progress.json`` of a checkpoint; UserError when the folder is not one or the file is bad."""
    path = Path(folder) / PROGRESS_FILE
    if not path.is_file():
        raise UserError(f"{folder}: not a LlamaHome checkpoint (no {PROGRESS_FILE})")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text; {DAMAGED}") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg}); {DAMAGED}") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("progress"), dict):
        raise UserError(f"{path}: no 'progress' object; {DAMAGED}")
    if not isinstance(meta.get("run_id", ""), str):
        raise UserError(f"{path}: 'run_id' is not a string; {DAMAGED}")
    return meta


def check_checkpoint(folder: Path) -> dict[str, Any]:
    """``read_checkpoint_meta``, after checking every weight file and the trainer state."""
    meta = read_checkpoint_meta(folder)
    if is_sharded(folder):
        check_sharded(Path(folder))
        check_trainer_state(Path(folder) / STATE_FILE)
        return meta
    weights = sorted(Path(folder).glob("*.safetensors"))
    if not weights:
        raise UserError(f"{folder}: no *.safetensors weights; {DAMAGED}")
    for path in weights:
        check_safetensors(path)
    check_trainer_state(Path(folder) / STATE_FILE)
    return meta


def check_sharded(folder: Path) -> None:
    """UserError naming the first file of a sharded checkpoint that is missing or not the size it was written."""
    manifest = read_manifest(folder)
    config = "adapter_config.json" if manifest["kind"] == "adapter" else "config.json"
    if not (folder / config).is_file():
        raise UserError(f"{folder / config}: missing; {DAMAGED}")
    for name, size in sorted(manifest["files"].items()):
        path = folder / SHARDED_DIR / name
        if not path.is_file():
            raise UserError(f"{path}: missing; {DAMAGED}")
        if path.stat().st_size != size:
            raise UserError(f"{path}: {path.stat().st_size} bytes, written as {size}; {DAMAGED}")


def check_safetensors(path: Path) -> None:
    """UserError unless ``path`` is a whole safetensors file (header parses, size matches)."""
    size = path.stat().st_size
    try:
        with path.open("rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            if length > size - 8:
                raise ValueError("header longer than the file")
            header = json.loads(handle.read(length))
        ends = [int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"]
    except (struct.error, ValueError, TypeError, KeyError, IndexError, AttributeError):
        raise UserError(f"{path}: not a safetensors file; {DAMAGED}") from None
    expected = 8 + length + max(ends, default=0)
    if size < expected:
        raise UserError(f"{path}: truncated ({size} of {expected} bytes); {DAMAGED}")


def check_trainer_state(path: Path) -> None:
    """UserError unless ``path`` is a readable ``torch.save`` archive."""
    if not path.is_file():
        raise UserError(f"{path}: missing; {DAMAGED}")
    try:
        with zipfile.ZipFile(path) as archive:
            archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError):
        raise UserError(f"{path}: not a trainer state archive (truncated or overwritten); {DAMAGED}") from None
