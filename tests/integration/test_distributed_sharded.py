"""An FSDP group's sharded checkpoints after ``kill -9`` of a rank (slow).

The group writes its checkpoints sharded (``torch.distributed.checkpoint``, each rank its shards).
Resumed from one by 2 FSDP ranks, the run continues bit for bit (CPU, fp32); resumed by one process
(DCP reads every shard into the whole model), it continues on the same global batches with one
process's losses (within 1e-5).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from group_runs import (
    assert_close_losses,
    ended,
    group_config,
    losses,
    rank_pid,
    reference,
    step_losses,
    wait_for,
)

from engine.api import Engine
from engine.checkpoint_meta import is_sharded
from engine.workspace import Workspace

pytestmark = pytest.mark.slow
STEPS = "training.max_steps=400"


def _fsdp(model_dir, *extra: str):
    return group_config(model_dir, "training.batch_size=4", "distributed.nproc_per_node=2",
                        "distributed.strategy=fsdp", STEPS, *extra)


def _run_to(engine: Engine, run_id: str, step: int) -> dict[int, float]:
    """Let the run train up to ``step``, stop it, and return its losses up to there."""
    wait_for(lambda: max(losses(engine, run_id), default=0) >= step, f"step {step} of {run_id}")
    engine.stop(run_id)
    assert ended(engine, run_id) == "stopped", engine.get_run(run_id).error
    return {s: loss for s, loss in losses(engine, run_id).items() if s <= step}


def test_a_killed_fsdp_group_resumes_from_its_shards_at_two_ranks_and_in_one_process(
        tiny_model_dir, chat_files, tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    engine = Engine(Workspace(tmp_path / "ws"))
    killed = engine.start_training(chat_files[0], _fsdp(tiny_model_dir, "checkpoint.save_steps=3"),
                                   eval_data=chat_files[1])
    wait_for(lambda: engine.checkpoints(killed), "a checkpoint")
    os.kill(rank_pid(engine, killed, 1), signal.SIGKILL)
    assert ended(engine, killed, limit=120) == "crashed"
    checkpoint = Path(engine.checkpoints(killed)[-1].path)
    assert is_sharded(checkpoint)
    start = int(checkpoint.name.rsplit("-", 1)[1])
    end = start + 4

    again = engine.resume_run(str(checkpoint))
    got_two = _run_to(engine, again, end)
    alone = engine.resume_run(str(checkpoint), distributed={"nproc_per_node": 1})
    got_one = _run_to(engine, alone, end)
    straight = engine.start_training(chat_files[0], _fsdp(tiny_model_dir), eval_data=chat_files[1])
    want_two = _run_to(engine, straight, end)

    assert sorted(got_two) == list(range(start + 1, end + 1))
    assert got_two == {s: want_two[s] for s in got_two}, "resumed by 2 FSDP ranks: bit for bit"
    one = group_config(tiny_model_dir, STEPS, "training.batch_size=8")
    want_one = step_losses(reference(Workspace(tmp_path / "ref"), one, chat_files[0], chat_files[1], end))
    assert sorted(got_one) == list(range(start + 1, end + 1))
    assert_close_losses(got_one, want_one)
