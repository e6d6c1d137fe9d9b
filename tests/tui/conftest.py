"""Fixtures for the console tests: a real Engine on a temporary workspace, data files, a frozen clock."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from engine.api import Engine
from engine.workspace import Workspace
from llamahome_tui.app import LlamaHomeApp
from llamahome_tui.screens.base import ConsoleState

FROZEN_NOW = 1_767_225_600.0
"""2026-01-01 00:00 UTC: the clock every console test sees."""


def write_chat(path: Path, count: int) -> Path:
    """``count`` deterministic question/answer records as JSONL."""
    records = [{"messages": [{"role": "user", "content": f"What is {i} + {i}?"},
                             {"role": "assistant", "content": f"{i} + {i} = {2 * i}"}]} for i in range(count)]
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@pytest.fixture(autouse=True)
def in_test_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run each console test from its temporary folder: the console shows paths relative to the
    current folder (so they can be typed back), and they must read the same on every machine."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    """An empty workspace."""
    return Workspace(tmp_path / "ws").ensure()


@pytest.fixture
def engine(workspace: Workspace) -> Iterator[Engine]:
    """A real Engine on the workspace."""
    engine = Engine(workspace)
    yield engine
    engine.close()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A data folder with a good chat file and one with a bad line 3."""
    folder = tmp_path / "data"
    folder.mkdir()
    write_chat(folder / "chat.jsonl", 12)
    bad = folder / "broken.jsonl"
    lines = (folder / "chat.jsonl").read_text().splitlines()[:4]
    lines[2] = '{"messages": [{"role": "user", "content": "hi"}'
    bad.write_text("\n".join(lines) + "\n")
    return folder


@pytest.fixture
def make_app(engine: Engine, workspace: Workspace, data_dir: Path) -> Callable[..., LlamaHomeApp]:
    """Build the console on the test workspace: ``make_app(mode, **state fields)``."""
    def build(mode: str = "datasets", **fields: object) -> LlamaHomeApp:
        state = ConsoleState(config_file=workspace.root / "config.toml", data_roots=[data_dir],
                             clock=lambda: FROZEN_NOW)
        for name, value in fields.items():
            setattr(state, name, value)
        return LlamaHomeApp(engine, state, mode=mode)
    return build
