"""The run's pre-check streams the file and honours data.on_invalid and data.format like the worker."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.data.validate import precheck
from engine.errors import DataError

GOOD = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}

OTHER = {"messages": [{"role": "user", "content": "yo"}, {"role": "assistant", "content": "hey"}]}


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_one_bad_record_fails_by_default_and_is_skipped_on_request(tmp_path: Path) -> None:
    path = _write(tmp_path / "d.jsonl", [json.dumps(GOOD), "{not json", json.dumps(OTHER)])
    with pytest.raises(DataError, match=r"d\.jsonl:2"):
        precheck(path)
    report = precheck(path, on_invalid="skip")
    assert (report.valid, report.invalid) == (2, 1)


def test_json_lines_named_json_with_format_given(tmp_path: Path) -> None:
    path = _write(tmp_path / "d.json", [json.dumps(GOOD), json.dumps(OTHER)])
    assert precheck(path, fmt="jsonl").valid == 2


def test_no_usable_record_is_an_error_naming_the_first(tmp_path: Path) -> None:
    path = _write(tmp_path / "d.jsonl", ["{bad"])
    with pytest.raises(DataError, match=r"no usable records.*d\.jsonl:1"):
        precheck(path, on_invalid="skip")
