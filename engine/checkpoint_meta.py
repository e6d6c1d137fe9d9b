"""Read what a checkpoint says about itself (``progress.json``) without importing torch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from engine.errors import UserError

PROGRESS_FILE = "progress.json"


def read_checkpoint_meta(folder: Path) -> dict[str, Any]:
    """``progress.json`` of a checkpoint; UserError when the folder is not one."""
    path = folder / PROGRESS_FILE
    if not path.is_file():
        raise UserError(f"{folder}: not a LlamaHome checkpoint (no {PROGRESS_FILE})")
    return json.loads(path.read_text())
