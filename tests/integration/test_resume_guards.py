"""Resume guards without a worker: one live continuation per run, damaged files refused in one
line, half-written checkpoints cleaned up, a lost history rebuilt from checkpoint folders."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import fake_checkpoint

from engine.api import Engine
from engine.errors import UserError
from engine.workspace import Workspace

CONFIG = {"model": {"path": "/models/tiny"}, "training": {"max_steps": 8}, "job": {"data": "/data/train.jsonl"}}


@pytest.fixture
def engine(tmp_path: Path):
    engine = Engine(Workspace(tmp_path / "ws"))
    yield engine
    engine.close()


def _ended_run(engine: Engine, run_id: str, status: str = "stopped", resumed_from: str | None = None) -> Path:
    """A training run with one whole checkpoint in its own folder; returns the checkpoint."""
    output = engine.workspace.run_dir(run_id)
    engine.store.create_run(run_id, "train", CONFIG, "m", "d", output_dir=str(output), resumed_from=resumed_from)
    engine.store.update_run(run_id, status=status)
    checkpoint = fake_checkpoint(output / "checkpoints" / "step-000002", run_id, config=CONFIG)
    engine.store.add_checkpoint(run_id, 2, checkpoint, None)
    return checkpoint


def cli(workspace: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "llamahome_tui", "--no-ui", "--workspace", str(workspace), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def test_a_second_resume_of_a_run_with_a_live_continuation_is_refused(engine: Engine) -> None:
    _ended_run(engine, "a")
    engine.store.create_run("b", "train", CONFIG, "m", "d", resumed_from="a")
    engine.store.update_run("b", status="running", pid=os.getpid(), started_at=time.time(),
                            heartbeat_at=time.time())
    with pytest.raises(UserError, match="run a is already being continued by run b"):
        engine.resume_run("a")
    engine.close()
    result = cli(engine.workspace.root, "train-resume", "a")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "run b" in result.stderr


def test_a_dead_continuation_does_not_block_a_new_resume(engine: Engine) -> None:
    _ended_run(engine, "a")
    engine.store.create_run("b", "train", CONFIG, "m", "d", resumed_from="a")
    engine.store.update_run("b", status="running", pid=2**22 + 17, started_at=time.time(),
                            heartbeat_at=time.time())
    checkpoint, run = engine.resume_point("a")
    assert run.id == "a" and checkpoint.name == "step-000002"
    assert engine.get_run("b").status == "crashed"


def test_runs_offers_train_resume_only_for_runs_not_continued(engine: Engine) -> None:
    _ended_run(engine, "a", status="crashed")
    _ended_run(engine, "b", status="finished", resumed_from="a")
    _ended_run(engine, "c", status="crashed")
    assert engine.resumable() == {"c": "step-000002"}


@pytest.mark.parametrize(("name", "damage", "says"), [
    ("progress.json", b"{not json", "progress.json:1: invalid JSON"),
    ("progress.json", b"[1, 2]", "progress.json: no 'progress' object"),
    ("adapter_model.safetensors", None, "adapter_model.safetensors: truncated"),
    ("adapter_model.safetensors", b"garbage!garbage!", "adapter_model.safetensors: not a safetensors file"),
    ("trainer_state.pt", b"\x80\x04garbage", "trainer_state.pt: not a trainer state archive"),
])
def test_a_damaged_checkpoint_is_refused_in_one_line_naming_the_file(engine, name, damage, says) -> None:
    checkpoint = _ended_run(engine, "a")
    target = checkpoint / name
    before = {p.name: p.read_bytes() for p in checkpoint.iterdir()}
    target.write_bytes(damage if damage is not None else target.read_bytes()[:-2])
    for how in ("a", str(checkpoint)):
        with pytest.raises(UserError, match=str(checkpoint).replace("+", r"\+") + "/" + says):
            engine.resume_run(how)
    assert [r.id for r in engine.store.list_runs()] == ["a"], "nothing may be recorded"
    engine.close()
    result = cli(engine.workspace.root, "train-resume", str(checkpoint))
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert says in result.stderr and "Traceback" not in result.stderr
    assert {p.name for p in checkpoint.iterdir()} == set(before)


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_damaged_run_history_is_one_line_naming_it(tmp_path: Path, damage: str) -> None:
    workspace = Workspace(tmp_path / "ws")
    with Engine(workspace).store as store:
        for i in range(200):
            store.create_run(f"r{i:03d}", "train", CONFIG, "m", "d")
    db = workspace.db_path
    data = db.read_bytes()
    db.write_bytes(b"this is not sqlite at all" * 100 if damage == "garbage" else data[: len(data) // 3])
    result = cli(workspace.root, "runs")
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.count("\n") == 1 and "llamahome.db" in result.stderr, result.stderr


def test_a_dead_run_leaves_no_half_written_checkpoint(engine: Engine) -> None:
    _ended_run(engine, "a")
    engine.store.update_run("a", status="running", pid=2**22 + 17, started_at=time.time(),
                            heartbeat_at=time.time())
    partial = engine.workspace.run_dir("a") / "checkpoints" / ".tmp-step-000004"
    partial.mkdir()
    (partial / "adapter_model.safetensors").write_bytes(b"half")
    assert engine.get_run("a").status == "crashed"
    assert not partial.exists()
    assert (engine.workspace.run_dir("a") / "checkpoints" / "step-000002").is_dir()


def test_a_lost_history_is_rebuilt_from_checkpoint_folders(tmp_path: Path) -> None:
    workspace = Workspace(tmp_path / "ws")
    engine = Engine(workspace)
    checkpoint = _ended_run(engine, "a")
    engine.close()
    workspace.db_path.unlink()
    engine = Engine(workspace)
    assert engine.recovered == ["a"]
    run = engine.get_run("a")
    assert run.status == "stopped" and "history was lost" in run.error
    assert [c.step for c in engine.checkpoints("a")] == [2]
    assert engine.resume_point(str(checkpoint)) == (checkpoint, run)
    engine.close()


def test_a_checkpoint_whose_run_is_unknown_is_adopted_on_resume(tmp_path: Path) -> None:
    elsewhere = fake_checkpoint(tmp_path / "old" / "checkpoints" / "step-000004", "gone", 4, CONFIG)
    engine = Engine(Workspace(tmp_path / "ws"))
    checkpoint, run = engine.resume_point(str(elsewhere))
    assert checkpoint == elsewhere and run.id == "gone" and run.output_dir == str(tmp_path / "old")
    assert run.model == "/models/tiny" and run.dataset_path == "/data/train.jsonl"
    engine.close()
