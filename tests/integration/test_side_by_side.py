"""Two real workers side by side share the cores: each drops to its share and takes the cores back."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_engine_control import of_type, tiny_config, wait_for

from engine.api import Engine
from engine.events import Runtime
from engine.store import LIVE_STATUSES
from engine.threads import physical_cores
from engine.workspace import Workspace


def threads_seen(engine: Engine, run_id: str) -> list[int]:
    return [e.threads for e in of_type(engine, run_id, Runtime) if e.threads is not None]


@pytest.mark.skipif(physical_cores() < 2, reason="needs 2 physical cores to share")
def test_runs_side_by_side_share_the_cores_and_take_them_back(tiny_model_dir: Path, chat_files, tmp_path: Path):
    engine = Engine(Workspace(tmp_path / "ws"))
    cores = physical_cores()
    config = tiny_config(tiny_model_dir, "training.max_steps=100000", "checkpoint.save_steps=100000")
    first = engine.start_training(chat_files[0], config)
    try:
        wait_for(lambda: threads_seen(engine, first) == [cores], "the lone run to take every core")
        second = engine.start_training(chat_files[0], config)
        wait_for(lambda: threads_seen(engine, second)[-1:] == [cores // 2], "the second run's share")
        wait_for(lambda: threads_seen(engine, first)[-1:] == [cores // 2], "the first run to give cores up")
        engine.stop(second)
        wait_for(lambda: engine.get_run(second).status not in LIVE_STATUSES, "the second run to stop")
        wait_for(lambda: threads_seen(engine, first)[-1:] == [cores], "the first run to take the cores back")
        assert engine.get_run(first).runtime["threads"] == cores
        assert "the only run computing" in engine.get_run(first).runtime["threads_reason"]
    finally:
        for run in engine.list_runs():
            if run.status in LIVE_STATUSES:
                engine.stop(run.id)
        wait_for(lambda: all(r.status not in LIVE_STATUSES for r in engine.list_runs()), "every run to stop")
        engine.close()
