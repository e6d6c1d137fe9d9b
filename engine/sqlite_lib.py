"""sqlite-utils, imported without pandas and numpy.

sqlite-utils imports pandas and numpy (when installed) only to map their value types to column
types when it creates a table from values, which this project never does (the store's tables are
made by its migrations with Python types). pandas comes in with ``datasets`` and costs about a
quarter of a second at import, numpy about as much: the console would pay both before its first
frame. Each one not imported yet is hidden during this one import (the first import of this
module, made by the first ``RunStore``, before any thread that could import them starts), and
stays importable for everyone else afterwards.
"""

from __future__ import annotations

import sys

HIDDEN = ("pandas", "numpy")


def _import_without(modules: tuple[str, ...]) -> None:
    """Import sqlite_utils while importing any of ``modules`` not loaded yet is made to fail."""
    if "sqlite_utils" in sys.modules:
        return
    hidden = [name for name in modules if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        import sqlite_utils  # noqa: F401
    finally:
        for name in hidden:
            del sys.modules[name]


_import_without(HIDDEN)

from sqlite_utils import Database  # noqa: E402
from sqlite_utils.db import NotFoundError  # noqa: E402

__all__ = ["Database", "NotFoundError"]
