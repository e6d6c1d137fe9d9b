"""``data validate --max-length``: an explicit value is used as is; below 1 is a one-line error, exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.config import Config
from engine.data.stats import CHARS_PER_TOKEN
from llamahome_tui.cli import main

RECORD = {"messages": [{"role": "user", "content": "Hi there"}, {"role": "assistant", "content": "Hello!"}]}


@pytest.fixture
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(RECORD) + "\n")
    return path


def validate(data: Path, *flags: str) -> int:
    return main(["--no-ui", "--workspace", str(data.parent / "ws"), "data", "validate", str(data), "--json", *flags])


@pytest.mark.parametrize("value", ["0", "-3"])
def test_max_length_below_1_is_rejected_with_exit_2(data: Path, value: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert validate(data, "--max-length", value) == 2
    err = capsys.readouterr().err
    assert err == f"error: --max-length {value}: must be at least 1\n"


def test_explicit_max_length_is_used_and_default_comes_from_config(data: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert validate(data, "--max-length", "1") == 0                # 1 token: too long, a warning (train truncates)
    first = json.loads(capsys.readouterr().out)
    assert first["max_length"] == CHARS_PER_TOKEN and first["warnings"] == 1 and first["counts"] == {"too_long": 1}
    assert validate(data) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["valid"] == 1 and report["max_length"] == Config().data.max_length * CHARS_PER_TOKEN
