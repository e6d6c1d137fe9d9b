"""Read raw records from JSONL and JSON files, each tagged with where it came from.

Readers are streaming for JSONL (one line at a time) and yield ``(where, record)`` pairs, where
``where`` is ``file:line`` (or ``file: record N`` inside a JSON array), so that every later error
can name it. Nothing here imports torch.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from engine.errors import DataError

Record = dict[str, Any]


def read_records(path: Path) -> Iterator[tuple[str, Record]]:
    """Yield ``(where, record)`` from a JSONL or JSON file; raise DataError on bad input."""
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if path.is_dir():
        raise DataError(f"{path}: is a folder, expected a data file (.jsonl or .json)")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: file is empty")
    if path.suffix.lower() == ".json":
        yield from _read_json(path)
    else:
        yield from _read_jsonl(path)


def _read_jsonl(path: Path) -> Iterator[tuple[str, Record]]:
    """One JSON object per line; blank lines are skipped; a UTF-8 byte-order mark is allowed."""
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror}") from None
    with handle:
        for number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                raise DataError(f"{path}:{number}: not UTF-8 ({exc.reason})") from None
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{number}: invalid JSON: {exc.msg} (column {exc.colno})") from None
            if not isinstance(record, dict):
                raise DataError(f"{path}:{number}: expected a JSON object, got {type(record).__name__}")
            yield f"{path}:{number}", record


def _read_json(path: Path) -> Iterator[tuple[str, Record]]:
    """A JSON array of records (or an object whose single list value holds them)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 ({exc.reason})") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}: invalid JSON: {exc.msg} (column {exc.colno})") from None
    if isinstance(data, dict):
        lists = [value for value in data.values() if isinstance(value, list)]
        if len(lists) != 1:
            raise DataError(f"{path}: expected a JSON array of records or an object holding one")
        data = lists[0]
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON array of records")
    for index, record in enumerate(data, start=1):
        if not isinstance(record, dict):
            raise DataError(f"{path}: record {index}: expected a JSON object")
        yield f"{path}: record {index}", record
