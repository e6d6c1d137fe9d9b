"""sqlite-utils, imported without pandas.

sqlite-utils imports pandas (when installed) only to convert pandas values on insert, which this
project never does. pandas comes in with ``datasets`` and costs about a quarter of a second at
import, which the console would pay before its first frame. Hiding it during this one import
leaves pandas importable for everyone else afterwards.
"""

from __future__ import annotations

import sys


def _import_without_pandas() -> None:
    """Import sqlite_utils while ``import pandas`` is made to fail."""
    if "pandas" in sys.modules or "sqlite_utils" in sys.modules:
        return
    sys.modules["pandas"] = None  # type: ignore[assignment]
    try:
        import sqlite_utils  # noqa: F401
    finally:
        del sys.modules["pandas"]


_import_without_pandas()

from sqlite_utils import Database  # noqa: E402
from sqlite_utils.db import NotFoundError  # noqa: E402

__all__ = ["Database", "NotFoundError"]
