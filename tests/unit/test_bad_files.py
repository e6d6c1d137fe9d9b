"""Files a hidden corpus found: ragged CSV/TSV rows and too-deep JSON name their line; JSON Lines named .json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.data.validate import check_file
from engine.errors import DataError


def chat(n: int) -> str:
    """A distinct two-turn conversation as JSON."""
    return json.dumps([{"role": "user", "content": f"question {n}"}, {"role": "assistant", "content": f"answer {n}"}])


def quoted(n: int) -> str:
    """``chat(n)`` as one quoted CSV cell."""
    return '"' + chat(n).replace('"', '""') + '"'


def test_ragged_csv_rows_are_named_with_their_line(tmp_path: Path) -> None:
    path = tmp_path / "ragged.csv"
    rows = ["messages,source", f"{quoted(1)},a", f"{quoted(2)},a,extra,more", quoted(3), f"{quoted(4)},b"]
    path.write_text("\n".join(rows) + "\n")
    report = check_file(path)
    assert report.valid == 2
    lines = [issue.line() for issue in report.issues if issue.code == "ragged_row"]
    assert lines == [f"{path}:3: 4 fields, the header names 2", f"{path}:4: 1 fields, the header names 2"]


def test_ragged_tsv_row(tmp_path: Path) -> None:
    path = tmp_path / "ragged.tsv"
    path.write_text("\n".join(["messages\tsource", f"{chat(1)}\ta\tb"]) + "\n")
    report = check_file(path)
    assert [(issue.where, issue.code) for issue in report.issues] == [(f"{path}:2", "ragged_row")]


@pytest.mark.parametrize("depth", [100_000])
def test_deeply_nested_json_line_is_an_invalid_record(tmp_path: Path, depth: int) -> None:
    path = tmp_path / "deep.jsonl"
    good = [json.dumps({"messages": json.loads(chat(n))}) for n in (1, 2)]
    path.write_text("\n".join([good[0], "[" * depth + "]" * depth, good[1]]) + "\n")
    report = check_file(path)
    assert report.valid == 2
    assert [(issue.where, issue.code) for issue in report.issues] == [(f"{path}:2", "too_deep")]


def test_deeply_nested_json_file_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(DataError, match="nested too deeply"):
        check_file(path)


def test_json_lines_named_json_are_read_as_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "saved_by_datasets.json"
    path.write_text("\n".join(json.dumps({"messages": json.loads(chat(n))}) for n in range(3)) + "\n")
    report = check_file(path)
    assert (report.format, report.valid, report.issues) == ("jsonl", 3, [])


def test_a_json_document_on_one_line_stays_json(tmp_path: Path) -> None:
    path = tmp_path / "one.json"
    path.write_text(json.dumps({"data": [{"messages": json.loads(chat(n))} for n in range(2)]}) + "\n")
    report = check_file(path)
    assert (report.format, report.valid) == ("json", 2)
