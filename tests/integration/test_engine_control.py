"""A real worker under control: pause (checkpoint, wait), resume, checkpoint now, stop; attach replays.

One training run on the tiny model, driven through the ``Engine`` facade while a second viewer,
attached from another connection since the run was paused, follows it to the end.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.api import Engine
from engine.config import Config, load_config
from engine.errors import UserError
from engine.events import CheckpointSaved, Finished, Paused, Resources, Resumed, Started, Step
from engine.store import StoredEvent
from engine.workspace import Workspace

LIMIT_S = 120


def tiny_config(model_dir: Path, *extra: str) -> Config:
    """A CPU fp32 LoRA config for the tiny model with no periodic evaluation or generation."""
    return load_config(overrides=[f"model.path={json.dumps(str(model_dir))}", "training.batch_size=4",
                                  "training.precision=fp32", "training.log_steps=1", "eval.steps=0",
                                  "eval.generate_samples=0", "lora.r=4", *extra])


def wait_for(check: Callable[[], object], what: str, limit: float = LIMIT_S) -> object:
    """Poll ``check`` until it returns something truthy."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def of_type(engine: Engine, run_id: str, kind: type) -> list:
    return [s.event for s in engine.store.events(run_id) if isinstance(s.event, kind)]


def follow_in_thread(workspace: Workspace, run_id: str, out: list[StoredEvent]) -> threading.Thread:
    """A second viewer with its own connection, attached until the run ends."""
    async def collect() -> None:
        viewer = Engine(workspace)
        try:
            async for stored in viewer.attach(run_id, poll_s=0.1):
                out.append(stored)
        finally:
            viewer.close()
    thread = threading.Thread(target=lambda: asyncio.run(collect()), daemon=True)
    thread.start()
    return thread


def test_pause_resume_checkpoint_stop_and_attach(tiny_model_dir, chat_files, tmp_path, monkeypatch):
    monkeypatch.setenv("LLAMAHOME_MONITOR_S", "0.5")
    workspace = Workspace(tmp_path / "ws")
    engine = Engine(workspace)
    config = tiny_config(tiny_model_dir, "training.max_steps=400", "checkpoint.save_steps=1000")
    run_id = engine.start_training(chat_files[0], config, eval_data=chat_files[1])
    engine.pause(run_id)  # asked before the worker is even up: the request waits for it
    wait_for(lambda: engine.get_run(run_id).status == "paused", "the pause")
    paused = of_type(engine, run_id, Paused)[0]
    assert [c.step for c in engine.checkpoints(run_id)] == [paused.step]
    seen = []
    viewer = follow_in_thread(workspace, run_id, seen)
    steps_before = len(of_type(engine, run_id, Step))
    time.sleep(1.0)
    assert len(of_type(engine, run_id, Step)) == steps_before, "a paused run must not train"
    run = engine.get_run(run_id)
    assert run.status == "paused" and time.time() - run.heartbeat_at < 5
    with pytest.raises(UserError, match="stop it before deleting"):
        engine.delete_run(run_id)

    engine.resume(run_id)
    wait_for(lambda: [s for s in of_type(engine, run_id, Step) if s.step > paused.step + 2], "steps after resume")
    assert engine.get_run(run_id).status == "running"
    engine.checkpoint_now(run_id)
    asked = max(s.step for s in of_type(engine, run_id, Step))
    wait_for(lambda: [c for c in of_type(engine, run_id, CheckpointSaved) if c.step >= asked], "checkpoint now")
    engine.stop(run_id)
    wait_for(lambda: engine.get_run(run_id).status == "stopped", "the stop")
    viewer.join(timeout=30)

    events = [s.event for s in engine.store.events(run_id)]
    assert [type(e) for e in events if isinstance(e, Paused | Resumed)] == [Paused, Resumed]
    assert isinstance(events[0], Started) and isinstance(events[-1], Finished)
    last_step = max(s.step for s in of_type(engine, run_id, Step))
    assert events[-1].metrics["stopped_reason"] == "stopped" and events[-1].metrics["steps"] == last_step
    saved = sorted({c.step for c in engine.checkpoints(run_id)})
    assert saved[0] == paused.step and saved[-1] == last_step and len(saved) >= 3
    assert any(isinstance(e, Resources) and e.rss_mb > 0 for e in events)
    assert [s.id for s in seen] == [s.id for s in engine.store.events(run_id)], "history, then live, to the end"
    with pytest.raises(UserError, match="train-resume"):
        engine.resume(run_id)
    engine.close()

    replay = Engine(workspace)
    later = asyncio.run(_collect(replay, run_id, after_id=seen[len(seen) // 2].id))
    assert [s.id for s in later] == [s.id for s in seen[len(seen) // 2 + 1:]]
    replay.delete_run(run_id)
    assert replay.list_runs() == [] and not workspace.run_dir(run_id).exists()
    replay.close()


async def _collect(engine: Engine, run_id: str, after_id: int) -> list[StoredEvent]:
    return [stored async for stored in engine.attach(run_id, after_id=after_id)]
