"""Torture: kill -9 the worker at 20 random points of a short fp32 run, resume each time to the end.

The kills land mid-step, inside a checkpoint write (its ``.tmp-step-*`` folder exists), mid-eval
(right after an eval step's Step event) and in the final save (``.tmp-final`` exists). After each
kill the run is resumed in a new run (``train-resume`` of the killed one); every step's loss in
every part, and the final weights, must equal the uninterrupted run's exactly (CPU, fp32), and
no resume may start from a half-written checkpoint (``resume_point`` checks each one whole).
"""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from test_engine_control import LIMIT_S, tiny_config, wait_for

from engine.api import Engine
from engine.store import LIVE_STATUSES
from engine.workspace import Workspace

pytestmark = pytest.mark.slow

TOTAL_STEPS = 60
EVAL_STEPS = 3
KILLS = 20
PHASES = ("step", "checkpoint", "eval")


def _losses(engine: Engine, run_id: str) -> dict[int, float]:
    return {m["step"]: m["loss"] for m in engine.metrics(run_id) if m["loss"] is not None}


def _last_step(engine: Engine, run_id: str) -> int:
    return max(_losses(engine, run_id), default=0)


def _kill_when(engine: Engine, run_id: str, phase: str, rng: random.Random) -> bool:
    """Wait for ``phase`` in the run, then SIGKILL its worker; False if the run ended first."""
    run = engine.get_run(run_id)
    checkpoints = Path(run.output_dir) / "checkpoints"
    target = _last_step(engine, run_id) + rng.randint(1, 3)
    while True:
        run = engine.get_run(run_id)
        if run.status not in LIVE_STATUSES:
            return False
        if run.pid and _due(engine, run_id, phase, checkpoints, target):
            if phase in ("step", "eval"):
                time.sleep(rng.uniform(0.0, 0.02))
            os.kill(run.pid, signal.SIGKILL)
            wait_for(lambda: engine.get_run(run_id).status not in LIVE_STATUSES, "the kill to show")
            return True
        time.sleep(0.001)


def _due(engine: Engine, run_id: str, phase: str, checkpoints: Path, target: int) -> bool:
    """Whether the run is at the point ``phase`` names."""
    if phase == "checkpoint":
        return _last_step(engine, run_id) >= target - 1 and any(checkpoints.glob(".tmp-step-*"))
    if phase == "final":
        return (checkpoints.parent / ".tmp-final").exists()
    step = _last_step(engine, run_id)
    return step >= target and (phase == "step" or step % EVAL_STEPS == 0)


def test_twenty_kills_resume_to_the_same_losses_and_weights(tiny_model_dir, chat_files, tmp_path):
    rng = random.Random(16)
    engine = Engine(Workspace(tmp_path / "ws"))
    config = tiny_config(tiny_model_dir, f"training.max_steps={TOTAL_STEPS}", "checkpoint.save_steps=1",
                         "checkpoint.keep_last_n=2", f"eval.steps={EVAL_STEPS}")
    straight = engine.start_training(chat_files[0], config, eval_data=chat_files[1])
    wait_for(lambda: engine.get_run(straight).status not in LIVE_STATUSES, "the uninterrupted run", LIMIT_S * 3)
    assert engine.get_run(straight).status == "finished"
    reference = _losses(engine, straight)

    current = engine.start_training(chat_files[0], config, eval_data=chat_files[1])
    parts, hit = [current], []
    phases = [rng.choice(PHASES) for _ in range(KILLS - 1)] + ["final"]
    for phase in phases:
        if not _kill_when(engine, current, phase, rng):
            break
        hit.append(phase)
        current = engine.resume_run(current)
        parts.append(current)
    wait_for(lambda: engine.get_run(current).status not in LIVE_STATUSES, "the last part", LIMIT_S * 3)
    assert engine.get_run(current).status == "finished", engine.get_run(current).error
    assert len(hit) == KILLS and set(hit) == {*PHASES, "final"}, hit

    for part in parts:
        for step, loss in _losses(engine, part).items():
            assert loss == reference[step], (part, step)
    covered = set().union(*(_losses(engine, part) for part in parts))
    assert covered == set(range(1, TOTAL_STEPS + 1))
    final = Path(engine.get_run(current).output_dir) / "final" / "adapter_model.safetensors"
    expected = load_file(str(Path(engine.get_run(straight).output_dir) / "final" / "adapter_model.safetensors"))
    got = load_file(str(final))
    assert expected.keys() == got.keys()
    for name, tensor in expected.items():
        assert torch.equal(tensor, got[name]), name
    engine.close()
