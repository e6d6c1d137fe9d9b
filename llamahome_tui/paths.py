"""Paths as the console shows them: ones the user can type back into any path prompt or shell."""

from __future__ import annotations

from pathlib import Path


def shown_path(path: Path) -> str:
    """A path relative to the current folder when under it, else absolute."""
    absolute = path.resolve()
    try:
        return absolute.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(absolute)
