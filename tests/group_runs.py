"""Helpers for tests of torchrun groups: engine runs through the real launcher, one-process references.

A group run goes through ``Engine.start_training`` (the worker under ``torch.distributed.run``,
gloo on the CPU). Its reference is the same job in this process (``jobs.train_job`` on a run
record of its own), which is what a one-process worker runs, minus the process start.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from engine.api import Engine
from engine.config import Config, config_to_dict, load_config
from engine.events import CheckpointSaved, Step
from engine.workspace import Workspace, new_run_id

LIMIT_S = 240


def group_config(model_dir: Path, *extra: str) -> Config:
    """A CPU fp32 LoRA run of the tiny model: no dropout (ranks would draw other masks), no generation."""
    return load_config(overrides=[f"model.path={json.dumps(str(model_dir))}", "training.precision=fp32",
                                  "training.log_steps=1", "training.warmup_steps=2", "training.learning_rate=5e-3",
                                  "eval.steps=0", "eval.generate_samples=0", "lora.r=4", "lora.dropout=0.0",
                                  "checkpoint.save_steps=1000", "data.prefetch_depth=2", *extra])


def wait_for(check: Callable[[], Any], what: str, limit: float = LIMIT_S) -> Any:
    """Poll ``check`` until it returns something truthy."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def events(engine: Engine, run_id: str, kind: type) -> list[Any]:
    """The run's stored events of one type."""
    return [s.event for s in engine.store.events(run_id) if isinstance(s.event, kind)]


def losses(engine: Engine, run_id: str) -> dict[int, float]:
    """Step -> loss of a run."""
    return {e.step: e.loss for e in events(engine, run_id, Step)}


def grad_norms(engine: Engine, run_id: str) -> dict[int, float]:
    """Step -> gradient norm (before clipping) of a run: shows a gradient scaled wrong, which Adam hides."""
    return {e.step: e.grad_norm for e in events(engine, run_id, Step)}


def ended(engine: Engine, run_id: str, limit: float = LIMIT_S) -> str:
    """Wait until the run ends; its status."""
    return wait_for(lambda: (s := engine.get_run(run_id).status) not in ("pending", "running", "paused") and s,
                    f"run {run_id} to end", limit)


def group_processes(engine: Engine, run_id: str) -> list[psutil.Process]:
    """The launcher this engine started for the run and the ranks under it, while they live."""
    child = engine._children[run_id]
    try:
        agent = psutil.Process(child.pid)
        return [agent, *agent.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def rank_pid(engine: Engine, run_id: str, rank: int) -> int:
    """The pid of rank ``rank`` (read from the ranks' environment)."""
    def find() -> int | None:
        for process in group_processes(engine, run_id)[1:]:
            try:
                if process.environ().get("RANK") == str(rank):
                    return process.pid
            except psutil.Error:
                continue
        return None
    return wait_for(find, f"rank {rank} of run {run_id}", 60)


def reference(workspace: Workspace, config: Config, data: Path, eval_data: Path,
              stop_after: int = 0) -> list[Any]:
    """The run's events as one process: the worker's train job, in this process."""
    return reference_run(workspace, config, data, eval_data, stop_after)[1]


def reference_run(workspace: Workspace, config: Config, data: Path, eval_data: Path,
                  stop_after: int = 0) -> tuple[str, list[Any]]:
    """``(run id, events)`` of the worker's train job run in this process (stopped after ``stop_after``).

    The run is recorded ``stopped`` or ``finished`` afterwards, as its worker would have.
    """
    from engine import jobs

    engine = Engine(workspace)
    try:
        run_id = new_run_id()
        job = {"data": str(data), "eval_data": str(eval_data), "after": ""}
        engine.store.create_run(run_id, "train", {**config_to_dict(config), "job": job}, config.model.path,
                                str(data), output_dir=str(workspace.run_dir(run_id)))
        run = engine.store.get_run(run_id)
        seen: list[Any] = []

        def ready(recipe: Any) -> None:
            if stop_after:
                recipe.step_hooks.append(lambda r: setattr(r, "stop_requested", r.progress.step >= stop_after))
        metrics = jobs.train_job(run, workspace, seen.append, ready)
        status = "stopped" if metrics.get("stopped_reason") == "stopped" else "finished"
        engine.store.update_run(run_id, status=status, ended_at=time.time())
        return run_id, seen
    finally:
        engine.close()


def step_losses(seen: list[Any]) -> dict[int, float]:
    """Step -> loss of events gathered in this process."""
    return {e.step: e.loss for e in seen if isinstance(e, Step)}


def step_grad_norms(seen: list[Any]) -> dict[int, float]:
    """Step -> gradient norm of events gathered in this process."""
    return {e.step: e.grad_norm for e in seen if isinstance(e, Step)}


def checkpoints(seen: list[Any]) -> list[CheckpointSaved]:
    """CheckpointSaved events gathered in this process."""
    return [e for e in seen if isinstance(e, CheckpointSaved)]


def assert_close_losses(got: dict[int, float], want: dict[int, float], rel: float = 1e-5) -> None:
    """Every step of ``got`` has ``want``'s loss within ``rel`` (relative)."""
    assert got, "no steps to compare"
    for step, loss in got.items():
        assert abs(loss - want[step]) <= rel * abs(want[step]), f"step {step}: {loss} vs {want[step]}"
