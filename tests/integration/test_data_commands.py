"""The real CLI: data validate / data stats / tokenizer train, exit codes and one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support import chat_records, write_jsonl


def cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("LLAMAHOME_")}
    command = [sys.executable, "-m", "llamahome_tui", "--no-ui", "--workspace", str(tmp_path / "ws"), *args]
    return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)


def test_validate_clean_file_exits_0(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "ok.jsonl", chat_records(5, seed=9)[:1])
    result = cli(tmp_path, "data", "validate", str(path), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["valid"] == 1


def test_validate_lists_invalid_records_and_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("prompt,completion\nQ,A\nQ2,\n")
    result = cli(tmp_path, "data", "validate", str(path))
    assert result.returncode == 1
    assert f"{path}:3: unknown record shape" in result.stdout
    assert "1 valid, 1 invalid, 0 warnings" in result.stdout


def test_too_long_and_duplicate_records_are_warnings_exit_0(tmp_path: Path) -> None:
    record = chat_records(5, seed=9)[0]
    long = {"messages": [record["messages"][0], {"role": "assistant", "content": "word " * 400}]}
    path = write_jsonl(tmp_path / "warn.jsonl", [record, record, long])
    result = cli(tmp_path, "data", "validate", str(path), "--max-length", "64")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 invalid, 2 warnings" in result.stdout
    assert f"{path}:2: exact duplicate of an earlier record (warning:" in result.stdout
    assert f"{path}:3: " in result.stdout
    assert "(warning: train cuts it at data.max_length and leaves it out when no answer token is left)" in result.stdout


@pytest.mark.parametrize("name", ["missing.jsonl", "empty.jsonl"])
def test_missing_or_empty_file_is_one_line_exit_2(tmp_path: Path, name: str) -> None:
    (tmp_path / "empty.jsonl").write_bytes(b"")
    for command in ("validate", "stats"):
        result = cli(tmp_path, "data", command, name)
        assert result.returncode == 2 and len(result.stderr.splitlines()) == 1
        assert "Traceback" not in result.stderr and name in result.stderr


def test_stats_prints_estimates_histogram_and_roles(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", chat_records(20, seed=1))
    result = cli(tmp_path, "data", "stats", str(path))
    assert result.returncode == 0, result.stderr
    assert "estimated tokens (characters / 4)" in result.stdout and "roles: " in result.stdout
    assert "█" in result.stdout


def test_stats_with_model_counts_tokens(tmp_path: Path, tiny_model_dir: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", chat_records(5, seed=1))
    result = cli(tmp_path, "data", "stats", str(path), "--model", str(tiny_model_dir), "--json")
    assert json.loads(result.stdout)["token_unit"] == "tokens"


def test_tokenizer_train_saves_a_loadable_tokenizer(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("".join(f"The number after {i} is {i + 1}. <sep>\n" for i in range(300)))
    out = tmp_path / "tok"
    result = cli(tmp_path, "tokenizer", "train", str(corpus), "--vocab-size", "300",
                 "--special-tokens", "<author_x>", "--user-symbols", "<sep>", "--output", str(out))
    assert result.returncode == 0, result.stderr
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(out))
    specials = {t.content for t in tokenizer.added_tokens_decoder.values() if t.special}
    assert "<author_x>" in specials and "<sep>" not in specials
    assert len(tokenizer("a <sep> b")["input_ids"]) < len(tokenizer("a <se p> b")["input_ids"])
    assert tokenizer.convert_tokens_to_ids("<sep>") in tokenizer("x<sep>")["input_ids"]


def test_a_file_mixing_record_shapes_gets_a_warning_naming_the_first_other_line(tmp_path: Path) -> None:
    records = chat_records(5, seed=9)[:2]
    alpaca = {"instruction": "Name a colour.", "output": "Blue."}
    path = write_jsonl(tmp_path / "mixed.jsonl", [records[0], records[1], alpaca])
    result = cli(tmp_path, "data", "validate", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert (f"warning: {path}:3: record shape alpaca, while the first record's is OpenAI messages: "
            "the file mixes record shapes") in result.stdout


def test_template_placeholders_left_in_records_are_a_warning(tmp_path: Path) -> None:
    records = chat_records(5, seed=9)[:3]
    records[1] = {"messages": [{"role": "user", "content": "Hello, I am {{name}}."},
                               {"role": "assistant", "content": "Hi {{ name }}!"}]}
    path = write_jsonl(tmp_path / "placeholders.jsonl", records)
    result = cli(tmp_path, "data", "validate", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert (f"warning: {path}:2: 1 record with template placeholders like {{{{name}}}} left in (first here)"
            in result.stdout)
