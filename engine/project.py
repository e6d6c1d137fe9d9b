"""Where the project lives, and how a child process finds it (standard library only).

The worker, the torchrun group and the chat process all run ``python -m engine...`` from the
project root; ``PROJECT_ROOT`` and ``child_pythonpath`` are their one home, light enough for the
console's first frame (no config module, no torch).
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT: Path = Path(__file__).resolve().parent.parent
"""The folder holding ``engine/``, ``config/`` and ``data/``."""


def child_pythonpath() -> str:
    """PYTHONPATH for a child process: the project root first, so ``engine`` always imports."""
    current = os.environ.get("PYTHONPATH", "")
    return str(PROJECT_ROOT) + (os.pathsep + current if current else "")
