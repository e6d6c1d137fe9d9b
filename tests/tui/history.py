"""Deterministic run history for console tests: fake runs, events, metrics and checkpoints.

Written through the real RunStore, with fixed ids and times, so that screens and snapshots show
the same thing on every machine.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

from engine.api import Engine
from engine.events import CheckpointSaved, Eval, Event, Finished, Generation, Log, Resources, Stage, Started, Step

T0 = 1_767_222_000.0
"""One hour before the frozen clock."""


def fake_run(engine: Engine, run_id: str, steps: int, base_loss: float, *, status: str = "finished",
             data: str = "/nowhere/chat.jsonl", method: str = "lora", extra: Sequence[Event] = ()) -> str:
    """A finished training run with ``steps`` step events, an eval every 10 steps and checkpoints
    (``extra`` events come last before it finishes)."""
    store = engine.store
    store.create_run(run_id, "train", {"training": {"method": method}, "job": {"data": data}}, "tiny", data,
                     output_dir=str(engine.workspace.run_dir(run_id)))
    store.add_event(run_id, Started(run_id, "train", steps, "tiny", data))
    for step in range(1, steps + 1):
        loss = base_loss * math.exp(-step / 25) + 0.5 + 0.05 * math.sin(step)
        store.add_event(run_id, Step(step, steps, step / 20, loss, 1e-3, 1.0, 1234.0, step * 0.5))
        if step % 10 == 0:
            store.add_event(run_id, Eval(step, loss + 0.1, math.exp(loss + 0.1)))
            store.add_event(run_id, fake_checkpoint(engine, run_id, step, loss + 0.1, step == steps))
    store.add_event(run_id, Resources(150.0, 512.0, None, None))
    store.add_event(run_id, Log("info", "lora: training 32,768 of 126,016 parameters"))
    store.add_event(run_id, Generation(steps, "What is 2 + 2?", "2 + 2 = 4"))
    for event in extra:
        store.add_event(run_id, event)
    store.add_event(run_id, Finished({"last_loss": loss, "eval_loss": loss + 0.1, "steps": steps}))
    store.update_run(run_id, status=status, started_at=T0, ended_at=T0 + steps * 0.5 + 30,
                     created_at=T0, final_metrics={"last_loss": loss, "eval_loss": loss + 0.1})
    return run_id


def fake_checkpoint(engine: Engine, run_id: str, step: int, eval_loss: float, best: bool) -> CheckpointSaved:
    """A checkpoint folder on disk (with its progress.json) and its row; returns its event."""
    folder = engine.workspace.run_dir(run_id) / "checkpoints" / f"step-{step:06d}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "progress.json").write_text(json.dumps({"run_id": run_id, "step": step}))
    engine.store.add_checkpoint(run_id, step, str(folder), eval_loss, is_best=best, size_bytes=4096 * step)
    return CheckpointSaved(step, str(folder), eval_loss, best)


def checkpoint_dirs(engine: Engine, run_id: str) -> list[Path]:
    """The run's checkpoint folders on disk."""
    return sorted((engine.workspace.run_dir(run_id) / "checkpoints").glob("step-*"))


def live_run_in_stage(engine: Engine, run_id: str, steps: int, *stages: Stage) -> str:
    """A running training run (this process as its worker, a fresh heartbeat) that made ``steps``
    steps of 40 and then reported ``stages``; its attach follows it live until the test ends."""
    import os
    import time

    store = engine.store
    data = "/nowhere/chat.jsonl"
    store.create_run(run_id, "train", {"training": {"method": "lora"}, "job": {"data": data}}, "tiny", data,
                     output_dir=str(engine.workspace.run_dir(run_id)))
    store.add_event(run_id, Started(run_id, "train", 0, "tiny", data))
    store.add_event(run_id, Stage("tokenizing", 4000, 4000, "of chat.jsonl"))
    store.add_event(run_id, Stage("loading_model", detail="tiny-llama"))
    if steps:
        store.add_event(run_id, Stage("training"))
    for step in range(1, steps + 1):
        loss = 3.0 * math.exp(-step / 25) + 0.5
        store.add_event(run_id, Step(step, 40, step / 20, loss, 1e-3, 1.0, 1234.0, step * 0.5, train_s=step * 0.5))
    store.add_event(run_id, Resources(150.0, 512.0, None, None, eta_s=(40 - steps) * 0.5))
    for stage in stages:
        store.add_event(run_id, stage)
    now = time.time()
    store.update_run(run_id, status="running", pid=os.getpid(), started_at=now, heartbeat_at=now, created_at=T0)
    return run_id
