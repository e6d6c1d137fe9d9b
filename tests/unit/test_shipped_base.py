"""The pre-built base shipped in data/base/: it matches the shape and corpus, and workspaces use it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from engine.api import Engine
from engine.builtin import (
    MARKER,
    SHIPPED_DIR,
    base_dir,
    file_checksums,
    install_shipped,
    is_built,
    shipped_base,
    source_hash,
)
from engine.config import load_config
from engine.workspace import Workspace


def test_the_shipped_base_was_built_from_the_current_shape_and_corpus() -> None:
    marker = json.loads((SHIPPED_DIR / "tiny-llama" / MARKER).read_text())
    assert marker["source"] == source_hash("tiny-llama"), (
        "config/models/tiny-llama.toml or its corpus changed: run `make base` to rebuild data/base/tiny-llama")
    assert shipped_base("tiny-llama") == SHIPPED_DIR / "tiny-llama", "a shipped file does not match its checksum"


def test_install_copies_it_into_the_workspace_folder(tmp_path: Path) -> None:
    folder = base_dir(tmp_path / "models", "tiny-llama")
    assert install_shipped("tiny-llama", folder)
    assert is_built(folder)
    assert file_checksums(folder) == file_checksums(SHIPPED_DIR / "tiny-llama")
    assert not list(folder.parent.glob(".tmp-*"))


@pytest.mark.parametrize("damage", ["file", "source"])
def test_a_damaged_or_stale_copy_is_not_used(tmp_path: Path, damage: str) -> None:
    shipped = tmp_path / "shipped"
    shutil.copytree(SHIPPED_DIR / "tiny-llama", shipped / "tiny-llama")
    if damage == "file":
        weights = shipped / "tiny-llama" / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[:-10])
    else:
        marker = shipped / "tiny-llama" / MARKER
        marker.write_text(json.dumps({**json.loads(marker.read_text()), "source": "0123456789"}))
    assert shipped_base("tiny-llama", shipped) is None
    assert not install_shipped("tiny-llama", tmp_path / "ws" / "tiny-llama-x", shipped)


def _engine_without_workers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Engine, list[str]]:
    engine = Engine(Workspace(tmp_path / "ws"))
    started: list[str] = []
    monkeypatch.setattr(engine, "start_run", lambda kind, *a, **k: started.append(kind) or "build-id")
    return engine, started


def test_a_new_workspace_gets_the_shipped_base_not_a_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    engine, started = _engine_without_workers(tmp_path, monkeypatch)
    assert engine._ensure_base(load_config()) is None
    assert started == []
    assert is_built(base_dir(engine.workspace.models_dir, "tiny-llama"))
    engine.close()


def test_prebuilt_false_builds_the_base_here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    engine, started = _engine_without_workers(tmp_path, monkeypatch)
    assert engine._ensure_base(load_config(overrides=["model.prebuilt=false"])) == "build-id"
    assert started == ["build-base"]
    engine.close()
