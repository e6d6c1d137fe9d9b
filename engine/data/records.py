"""Read raw records from any supported file, each tagged with where it came from (strict).

``read_records`` yields ``(where, record)`` pairs, where ``where`` is ``file:line`` (or
``file: record N`` inside a JSON array, ``file: row N`` in Parquet), and raises ``DataError`` at
the first record that cannot be read. The readers themselves live in ``engine.data.formats``;
the validation report (``engine.data.validate``) reads leniently instead. Nothing here imports
torch.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from engine.data.formats import BadRecord, read_items
from engine.errors import DataError

Record = dict[str, Any]


def read_records(path: Path, fmt: str | None = None) -> Iterator[tuple[str, Record]]:
    """Yield ``(where, record)`` from ``path`` (format ``fmt`` or detected); DataError on bad input."""
    for where, item in read_items(path, fmt):
        if isinstance(item, BadRecord):
            raise DataError(f"{where}: {item.reason}")
        yield where, item
