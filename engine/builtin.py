"""Where the built-in base model lives, whether it is built, and the pre-built copy we ship (no torch).

The workspace folder's name carries a hash of the model shape file and the base corpus, so
changing either builds a new base instead of silently reusing a stale one.

Pre-training the base takes minutes on a CPU with native bf16 and far longer on one without, so
the repository ships it pre-built under ``data/base/<name>/`` (bf16 safetensors, a few MB): its
marker records the source hash it was built from and a SHA-256 of every file. When the hash
matches the current shape and corpus and every checksum holds, a workspace gets a copy of it
instead of a build; otherwise (or with ``model.prebuilt = false``) the base is built as before.
``make base`` rebuilds the shipped copy after the shape or the corpus changes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from engine.config import CONFIG_DIR, PROJECT_ROOT, load_model_shape
from engine.errors import ConfigError

MARKER = "llamahome_base.json"
SHIPPED_DIR = PROJECT_ROOT / "data" / "base"
"""Where the pre-built bases are shipped, one folder per built-in model name."""


def corpus_path(shape: dict[str, Any]) -> Path:
    """The base corpus a built-in shape pre-trains on (relative paths are from the project root)."""
    path = Path(shape["pretrain"]["corpus"])
    path = path if path.is_absolute() else PROJECT_ROOT / path
    if not path.is_file():
        raise ConfigError(f"model.builtin: pre-training corpus {path.name} is missing")
    return path


def source_hash(name: str) -> str:
    """A short hash of built-in ``name``'s shape file and corpus: what its base is built from."""
    shape = load_model_shape(name)
    digest = hashlib.sha256((CONFIG_DIR / "models" / f"{name}.toml").read_bytes())
    digest.update(corpus_path(shape).read_bytes())
    return digest.hexdigest()[:10]


def base_dir(models_dir: Path, name: str) -> Path:
    """The workspace folder of built-in base ``name`` for the current shape and corpus."""
    return models_dir / f"{name}-{source_hash(name)}"


def is_built(folder: Path) -> bool:
    """Whether a built-in base folder is complete (the marker is written last)."""
    return (folder / MARKER).is_file()


def file_checksums(folder: Path) -> dict[str, str]:
    """SHA-256 of every file of a folder but the marker, by file name."""
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.iterdir()) if path.is_file() and path.name != MARKER}


def shipped_base(name: str, shipped_dir: Path = SHIPPED_DIR) -> Path | None:
    """The shipped pre-built base of ``name`` when it matches the current source and its checksums."""
    folder = shipped_dir / name
    if not is_built(folder):
        return None
    marker = json.loads((folder / MARKER).read_text())
    if marker.get("source") != source_hash(name):
        return None
    files = marker.get("files") or {}
    return folder if files and file_checksums(folder) == files else None


def install_shipped(name: str, folder: Path, shipped_dir: Path = SHIPPED_DIR) -> bool:
    """Copy the shipped base of ``name`` into workspace ``folder`` if it is usable; True when done."""
    source = shipped_base(name, shipped_dir)
    if source is None:
        return False
    tmp = folder.parent / f".tmp-{folder.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    folder.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source, tmp, copy_function=shutil.copyfile)  # files made under the umask, not 0644
    tmp.chmod(0o700)
    if is_built(folder):  # another process installed it meanwhile
        shutil.rmtree(tmp, ignore_errors=True)
        return True
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return True
