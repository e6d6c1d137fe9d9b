"""Where the built-in base model lives in the workspace, and whether it is built (no torch).

The folder name carries a hash of the model shape file and the base corpus, so changing either
builds a new base instead of silently reusing a stale one.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from engine.config import CONFIG_DIR, PROJECT_ROOT, load_model_shape
from engine.errors import ConfigError

MARKER = "llamahome_base.json"


def corpus_path(shape: dict[str, Any]) -> Path:
    """The base corpus a built-in shape pre-trains on (relative paths are from the project root)."""
    path = Path(shape["pretrain"]["corpus"])
    path = path if path.is_absolute() else PROJECT_ROOT / path
    if not path.is_file():
        raise ConfigError(f"model.builtin: pre-training corpus {path.name} is missing")
    return path


def base_dir(models_dir: Path, name: str) -> Path:
    """The workspace folder of built-in base ``name`` for the current shape and corpus."""
    shape = load_model_shape(name)
    digest = hashlib.sha256((CONFIG_DIR / "models" / f"{name}.toml").read_bytes())
    digest.update(corpus_path(shape).read_bytes())
    return models_dir / f"{name}-{digest.hexdigest()[:10]}"


def is_built(folder: Path) -> bool:
    """Whether a built-in base folder is complete (the marker is written last)."""
    return (folder / MARKER).is_file()


def read_marker(folder: Path) -> dict[str, Any]:
    """What was recorded when the base was built (run id, steps, final loss)."""
    return json.loads((folder / MARKER).read_text())
