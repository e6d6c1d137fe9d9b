"""The real CLI on bad input: one line on stderr, exit code 2, no traceback, no run, no worker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import chat_records, write_jsonl

EXIT_USAGE = 2
FAST_S = 3.0


def cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``llamahome-tui --no-ui --workspace tmp/ws ARGS`` in ``tmp_path``; fail if it is slow."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("LLAMAHOME_")}
    command = [sys.executable, "-m", "llamahome_tui", "--no-ui", "--workspace", str(tmp_path / "ws"), *args]
    started = time.monotonic()
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30)
    elapsed = time.monotonic() - started
    assert elapsed < FAST_S, f"{args} took {elapsed:.1f}s; user errors must fail before any worker starts"
    return result


def assert_user_error(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    """Exit code 2, exactly one stderr line holding every fragment, and no traceback anywhere."""
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    assert result.returncode == EXIT_USAGE, (result.returncode, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


@pytest.fixture
def good_data(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "good.jsonl", chat_records(4, seed=0))


def test_missing_dataset(tmp_path: Path) -> None:
    line = assert_user_error(cli(tmp_path, "train", "missing.jsonl"), "missing.jsonl", "no such file")
    assert line.startswith("error: ")


def test_empty_dataset(tmp_path: Path) -> None:
    (tmp_path / "empty.jsonl").write_bytes(b"")
    assert_user_error(cli(tmp_path, "train", "empty.jsonl"), "empty.jsonl", "file is empty")


def test_dataset_with_invalid_json_on_line_3(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "bad.jsonl", chat_records(2, seed=0))
    path.write_text(path.read_text() + "{not json\n" + json.dumps(chat_records(1, seed=1)[0]) + "\n")
    assert_user_error(cli(tmp_path, "train", "bad.jsonl"), f"{path}:3:", "invalid JSON")


def test_dataset_with_bad_record_names_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    records = chat_records(2, seed=0) + [{"messages": [{"role": "user", "content": "Q"}]}]
    write_jsonl(path, records)
    assert_user_error(cli(tmp_path, "train", "bad.jsonl"), f"{path}:3:", "must end with an assistant message")


def test_bad_eval_data_is_checked_too(tmp_path: Path, good_data: Path) -> None:
    assert_user_error(cli(tmp_path, "train", good_data.name, "--eval-data", "nope.jsonl"),
                      "nope.jsonl", "no such file")


def test_bad_config_value(tmp_path: Path, good_data: Path) -> None:
    assert_user_error(cli(tmp_path, "train", good_data.name, "--set", "training.learning_rate=abc"),
                      "training.learning_rate", "'abc'", "expected a number")


def test_unknown_config_key(tmp_path: Path, good_data: Path) -> None:
    assert_user_error(cli(tmp_path, "train", good_data.name, "--set", "training.lr=1"),
                      "unknown key 'training.lr'")


def test_config_file_with_toml_syntax_error(tmp_path: Path, good_data: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[training]\nepochs = 2\nlearning_rate = = 1\n")
    line = assert_user_error(cli(tmp_path, "train", good_data.name, "--config", str(config)),
                             f"{config}:3:", "invalid TOML")
    assert "\\n" not in line


def test_model_folder_without_config_json(tmp_path: Path, good_data: Path) -> None:
    (tmp_path / "not-a-model").mkdir()
    assert_user_error(cli(tmp_path, "train", good_data.name, "--model", "not-a-model"),
                      "not-a-model", "no config.json")


def test_eval_on_missing_folder(tmp_path: Path, good_data: Path) -> None:
    assert_user_error(cli(tmp_path, "train-eval", "no-such-model", good_data.name),
                      "no-such-model", "no such model or checkpoint folder")


def test_resume_unknown_run(tmp_path: Path) -> None:
    assert_user_error(cli(tmp_path, "train-resume", "20990101-000000-dead"), "20990101-000000-dead")


def test_bad_flag_value_is_one_line(tmp_path: Path, good_data: Path) -> None:
    assert_user_error(cli(tmp_path, "train", good_data.name, "--max-steps", "many"), "--max-steps", "'many'")


@pytest.mark.parametrize(("flag", "value", "key"), [("--max-steps", "-1", "training.max_steps"),
                                                     ("--nproc-per-node", "0", "distributed.nproc_per_node")])
def test_an_out_of_range_flag_is_named_as_the_user_typed_it(tmp_path: Path, good_data: Path, flag: str,
                                                             value: str, key: str) -> None:
    line = assert_user_error(cli(tmp_path, "train", good_data.name, flag, value), f"{flag} {value}: {key} = {value}")
    assert "--set" not in line


def test_failed_commands_create_no_run(tmp_path: Path, good_data: Path) -> None:
    (tmp_path / "not-a-model").mkdir()
    failing = [("train", good_data.name, "--set", "training.learning_rate=abc"),
               ("train", good_data.name, "--set", "training.lr=1"),
               ("train", good_data.name, "--model", "not-a-model"),
               ("train", "missing.jsonl")]
    for args in failing:
        assert cli(tmp_path, *args).returncode == EXIT_USAGE
    listed = cli(tmp_path, "runs", "--json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == []
    assert not any((tmp_path / "ws" / "runs").iterdir())


def test_cli_modules_do_not_import_torch() -> None:
    code = ("import sys, llamahome_tui.cli, llamahome_tui.commands, engine.data.dataset; "
            "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True)
    assert result.stdout.strip() == "[]"


def test_output_piped_into_a_reader_that_stops_early_ends_quietly(tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "dups.jsonl", chat_records(1, seed=1) * 3000)  # ~300 kB of report lines
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("LLAMAHOME_")}
    command = [sys.executable, "-m", "llamahome_tui", "--no-ui", "data", "validate", str(data)]
    with subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as child:
        assert child.stdout is not None and child.stdout.readline()  # as `| head -1` reads
        child.stdout.close()
        _, err = child.communicate(timeout=30)
    assert b"Traceback" not in err and b"BrokenPipe" not in err, err.decode()
