"""A training run that needs the built-in base waits for the build-base run (worker, no torch import)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from test_engine_control import wait_for

from engine.api import Engine
from engine.builtin import base_dir
from engine.config import Config
from engine.events import Failed, Log
from engine.workspace import Workspace


@pytest.fixture
def engine(tmp_path: Path):
    engine = Engine(Workspace(tmp_path / "ws"))
    yield engine
    engine.close()


def _fake_build(engine: Engine, config: Config) -> str:
    """A live build-base run 'worked on' by this test process."""
    folder = base_dir(engine.workspace.models_dir, config.model.builtin)
    engine.store.create_run("build", "build-base", {}, config.model.builtin, "", output_dir=str(folder))
    engine.store.update_run("build", status="running", pid=os.getpid(), started_at=time.time(),
                            heartbeat_at=time.time())
    return "build"


def test_training_waits_for_the_live_build_and_fails_when_it_fails(engine: Engine, chat_files) -> None:
    config = Config()
    build = _fake_build(engine, config)
    run_id = engine.start_training(chat_files[0], config)
    assert engine.waits_for(run_id) == build
    assert [r.id for r in engine.list_runs(kind="build-base")] == [build], "the live build is reused"
    wait_for(lambda: engine.get_run(run_id).heartbeat_at, "the waiting worker's heartbeat")
    assert engine.get_run(run_id).status == "pending"
    engine.store.update_run(build, status="failed", ended_at=time.time())
    wait_for(lambda: engine.get_run(run_id).status == "failed", "the waiting run to fail")
    events = [s.event for s in engine.store.events(run_id)]
    assert isinstance(events[0], Log) and build in events[0].message
    assert isinstance(events[-1], Failed) and events[-1].error == f"the base model was not built: run {build} failed"


def test_a_waiting_run_can_be_stopped(engine: Engine, chat_files) -> None:
    config = Config()
    _fake_build(engine, config)
    run_id = engine.start_training(chat_files[0], config)
    wait_for(lambda: engine.get_run(run_id).heartbeat_at, "the waiting worker")
    engine.stop(run_id)
    wait_for(lambda: engine.get_run(run_id).status == "stopped", "the stop")
    assert engine.get_run(run_id).error == "stopped while waiting for the base model"
    assert wait_for(lambda: engine.exit_code(run_id) is not None, "the worker's exit") and engine.exit_code(run_id) == 2
