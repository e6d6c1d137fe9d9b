"""Every reader and format detection, the strict wrapper and the plugin registry."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.data import formats
from engine.data.formats import BadRecord, detect_format, read_items, register_format
from engine.data.records import read_records
from engine.errors import DataError

PAIR = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]


def test_jsonl_lines_and_bad_lines_are_items(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'{"text": "a"}\n\n{bad\n[1]\n\xff\xfe\n')
    items = list(read_items(path))
    assert items[0] == (f"{path}:1", {"text": "a"})
    assert [(w, i.code) for w, i in items[1:] if isinstance(i, BadRecord)] == [
        (f"{path}:3", "bad_json"), (f"{path}:4", "not_object"), (f"{path}:5", "not_utf8")]


def test_a_line_cut_short_names_the_column_where_it_ends(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    line = '{"messages": [{"role": "user", "content": "cut"'
    path.write_text(line + "\r\n")
    [(_, bad)] = list(read_items(path))
    assert isinstance(bad, BadRecord) and bad.reason.endswith(f"(column {len(line) + 1})")


def test_csv_and_tsv_rows_name_their_first_line(tmp_path: Path) -> None:
    csv_path = tmp_path / "d.csv"
    csv_path.write_text('prompt,completion\nQ1,A1\n"multi\nline",A2\n')
    assert list(read_records(csv_path)) == [(f"{csv_path}:2", {"prompt": "Q1", "completion": "A1"}),
                                            (f"{csv_path}:3", {"prompt": "multi\nline", "completion": "A2"})]
    tsv = tmp_path / "d.tsv"
    tsv.write_text("messages\n" + json.dumps({"x": 1}).replace("{", "[{").replace("}", "}]") + "\n")
    assert list(read_records(tsv)) == [(f"{tsv}:2", {"messages": [{"x": 1}]})]


def test_csv_json_column_that_is_bad_json(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("messages\n[oops\n")
    (where, item), = list(read_items(path))
    assert where == f"{path}:2" and isinstance(item, BadRecord) and item.code == "bad_json"


def test_text_per_line_and_per_block(tmp_path: Path) -> None:
    lines = tmp_path / "l.txt"
    lines.write_text("one\n\ntwo\n")
    assert list(read_records(lines)) == [(f"{lines}:1", {"text": "one"}), (f"{lines}:3", {"text": "two"})]
    blocks = tmp_path / "b.txt"
    blocks.write_text("a1\na2\n\n\nb1\n")
    assert detect_format(blocks) == "text-blocks"
    assert list(read_records(blocks)) == [(f"{blocks}:1", {"text": "a1\na2"}), (f"{blocks}:5", {"text": "b1"})]
    assert list(read_records(blocks, "text"))[1] == (f"{blocks}:2", {"text": "a2"})


def test_parquet_rows_stream_with_row_numbers(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "d.parquet"
    table = pa.table({"messages": [PAIR] * 3, "text": [None, None, None]})
    pq.write_table(table, path, row_group_size=2)
    records = list(read_records(path))
    assert [w for w, _ in records] == [f"{path}: row {i}" for i in (1, 2, 3)]
    assert records[2][1] == {"messages": PAIR}


@pytest.mark.parametrize(("name", "content", "expected"), [
    ("a.data", b'{"text": "a"}\n{"text": "b"}\n', "jsonl"),
    ("a.data", b'{\n  "data": [{"text": "a"}]\n}\n', "json"),
    ("a.data", b'  [{"text": "a"}]', "json"),
    ("a.data", b"PAR1....", "parquet"),
    ("a.data", b"prompt\tcompletion\nq\ta\n", "tsv"),
    ("a.data", b"just words\nmore words\n", "text"),
    ("a.JSONL", b"x", "jsonl"),
    ("a.csv", b"x", "csv"),
])
def test_detection(tmp_path: Path, name: str, content: bytes, expected: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    assert detect_format(path) == expected


def test_forced_unknown_format_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_text("{}\n")
    with pytest.raises(DataError, match="unknown format 'xml'"):
        list(read_items(path, "xml"))


def test_plugin_registered_through_entry_points(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def read_pipes(path: Path) -> Iterator[tuple[str, dict]]:
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            prompt, answer = line.split("|")
            yield f"{path}:{number}", {"prompt": prompt, "completion": answer}

    read_pipes.extensions = (".pipes",)  # type: ignore[attr-defined]

    class Point:
        name, value = "pipes", "demo:read_pipes"

        def load(self) -> object:
            return read_pipes

    monkeypatch.setattr(formats, "_PLUGINS_LOADED", False)
    monkeypatch.setattr(formats, "_REGISTRY", dict(formats._REGISTRY))
    monkeypatch.setattr(formats, "entry_points", lambda group: [Point()] if group == "llamahome.formats" else [])
    path = tmp_path / "d.pipes"
    path.write_text("Q|A\n")
    assert detect_format(path) == "pipes"
    assert list(read_records(path)) == [(f"{path}:1", {"prompt": "Q", "completion": "A"})]


def test_register_format_directly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(formats, "_REGISTRY", dict(formats._REGISTRY))
    register_format("one", lambda path: iter([(f"{path}:1", {"text": "x"})]))
    path = tmp_path / "a.bin"
    path.write_text("?")
    assert list(read_records(path, "one")) == [(f"{path}:1", {"text": "x"})]
