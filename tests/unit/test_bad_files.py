"""Files users have: ragged CSV/TSV rows and too-deep JSON name their line; JSON Lines named .json; .gz files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.data.formats import read_items
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
    assert lines == [f"{path}:3: 4 fields, the header names 2", f"{path}:4: 1 field, the header names 2"]


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


def test_json_lines_read_as_json_on_request_say_what_the_file_is(tmp_path: Path) -> None:
    path = tmp_path / "saved_by_datasets.json"
    path.write_text("\n".join(json.dumps({"messages": json.loads(chat(n))}) for n in range(3)) + "\n")
    with pytest.raises(DataError) as info:
        check_file(path, fmt="json")
    assert str(info.value) == (f"{path}:2: invalid JSON: Extra data (column 1); the file is JSON Lines (an object "
                               'a line): set data.format = "jsonl", or "" to detect it')


def test_a_json_document_on_one_line_stays_json(tmp_path: Path) -> None:
    path = tmp_path / "one.json"
    path.write_text(json.dumps({"data": [{"messages": json.loads(chat(n))} for n in range(2)]}) + "\n")
    report = check_file(path)
    assert (report.format, report.valid) == ("json", 2)


def _gzip(path: Path, text: str) -> Path:
    import gzip

    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write(text)
    return path


def test_gzip_compressed_files_are_read_as_their_inner_format(tmp_path: Path) -> None:
    lines = "\n".join(json.dumps({"messages": json.loads(chat(n))}) for n in range(3)) + "\n"
    jsonl = check_file(_gzip(tmp_path / "d.jsonl.gz", lines))
    assert (jsonl.format, jsonl.valid, jsonl.issues) == ("jsonl", 3, [])
    rows = "messages\n" + "\n".join(quoted(n) for n in range(2)) + "\n"
    table = check_file(_gzip(tmp_path / "d.csv.gz", rows))
    assert (table.format, table.valid) == ("csv", 2)
    text = check_file(_gzip(tmp_path / "corpus.txt.gz", "one line\nanother line\n"), objective="pretrain")
    assert (text.format, text.valid) == ("text", 2)


def test_a_truncated_gzip_file_is_one_line(tmp_path: Path) -> None:
    lines = "\n".join(json.dumps({"messages": json.loads(chat(n))}) for n in range(400)) + "\n"
    whole = _gzip(tmp_path / "whole.jsonl.gz", lines).read_bytes()
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DataError, match=r"cut\.jsonl\.gz: damaged gzip file"):
        check_file(cut)


def test_an_arrow_file_written_by_datasets_is_read_as_rows(tmp_path: Path) -> None:
    import datasets

    rows = [{"messages": json.loads(chat(n))} for n in range(3)]
    folder = tmp_path / "saved"
    datasets.Dataset.from_list(rows).save_to_disk(str(folder))
    arrow = sorted(folder.glob("*.arrow"))[0]
    report = check_file(arrow)
    assert (report.format, report.valid, report.issues) == ("arrow", 3, [])
    saved = check_file(folder)  # the folder itself, as datasets.load_from_disk reads it
    assert (saved.format, saved.valid, saved.issues) == ("arrow", 3, [])


def test_save_to_disk_folders_dataset_dicts_and_folders_of_files(tmp_path: Path) -> None:
    import datasets

    from engine.data.dataset import fingerprint

    rows = [{"messages": json.loads(chat(n))} for n in range(5)]
    big = datasets.Dataset.from_list(rows * 40)
    big.save_to_disk(str(tmp_path / "shards"), num_shards=3)
    wheres = [where for where, _ in read_items(tmp_path / "shards")]
    assert len(wheres) == 200 and wheres[0].endswith("data-00000-of-00003.arrow: row 1")
    loaded = datasets.load_from_disk(str(tmp_path / "shards"))
    assert [record for _, record in read_items(tmp_path / "shards")] == loaded.to_list()
    datasets.DatasetDict({"train": datasets.Dataset.from_list(rows[:3]),
                          "test": datasets.Dataset.from_list(rows[3:])}).save_to_disk(str(tmp_path / "dict"))
    assert check_file(tmp_path / "dict").valid == 3  # its train split
    files = tmp_path / "files"
    files.mkdir()
    (files / "b.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[2:]))
    _gzip(files / "a.jsonl.gz", "".join(json.dumps(r) + "\n" for r in rows[:2]))
    (files / "README.doc").write_text("not data")
    report = check_file(files)
    assert report.valid == 5 and [i.where for i in report.issues] == []
    assert [w for w, _ in read_items(files)][0] == f"{files / 'a.jsonl.gz'}:1"
    before = fingerprint(files)
    (files / "b.jsonl").write_text(json.dumps(rows[0]) + "\n")
    assert fingerprint(files) != before


def test_a_zstd_file_without_zstandard_is_one_line(tmp_path: Path) -> None:
    try:
        import zstandard  # noqa: F401
    except ImportError:
        path = tmp_path / "d.jsonl.zst"
        path.write_bytes(b"\x28\xb5\x2f\xfd")
        with pytest.raises(DataError, match=r"d\.jsonl\.zst: zstd-compressed, and the zstandard package is not "
                                            r"installed; decompress it first"):
            check_file(path)
        return
    pytest.skip("zstandard is installed: .zst files are read")


def test_multimodal_and_tool_calling_records_are_counted_and_refused_by_a_run(tmp_path: Path) -> None:
    from engine.data.validate import precheck

    plain = [{"messages": json.loads(chat(n))} for n in range(3)]
    image = {"messages": [{"role": "user", "content": "<image>What is this?"},
                          {"role": "assistant", "content": "A cat."}], "images": ["cat.png"]}
    tool = {"messages": [{"role": "user", "content": "Weather?"}, {"role": "assistant", "content": "Sunny."}],
            "tools": [{"name": "weather"}]}
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in [plain[0], image, plain[1], tool, image | {"id": 2}]) + "\n")
    report = check_file(path)
    assert report.unsupported == {"multimodal": [2, f"{path}:2"], "tool-calling": [1, f"{path}:4"]}
    with pytest.raises(DataError, match=rf"{path}:2: 2 multimodal records \(first here\)"):
        precheck(path)
    clean = tmp_path / "clean.jsonl"
    clean.write_text("\n".join(json.dumps(r) for r in plain) + "\n")
    assert precheck(clean).unsupported == {}


def test_a_folder_as_a_dataset_repository_has_it(tmp_path: Path) -> None:
    """A dataset repository's README.md and LICENSE are not records; data in a subfolder is named."""
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "README.md").write_text("---\nlicense: mit\n---\n# My data\nSome notes.\n")
    (repo / "LICENSE.txt").write_text("MIT License\n")
    (repo / "train.jsonl").write_text("".join(json.dumps({"messages": json.loads(chat(n))}) + "\n" for n in range(3)))
    report = check_file(repo)
    assert (report.format, report.valid, report.issues) == ("jsonl", 3, [])
    nested = tmp_path / "nested"
    (nested / "data").mkdir(parents=True)
    (nested / "README.md").write_text("# My data\n")
    (nested / "data" / "train.jsonl").write_text(json.dumps({"messages": json.loads(chat(1))}) + "\n")
    with pytest.raises(DataError, match=rf"^{nested}: no data files in this folder \(its folders: data; name "
                                        rf"one, e.g. {nested / 'data'}\)"):
        check_file(nested)
