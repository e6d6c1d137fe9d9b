"""A torchrun group that loses a rank, is stopped, paused or resumed at another world size (slow).

The data position a checkpoint keeps is global, so a run continues on the same global batches
whatever world size the resumed part runs at: a 2-rank run resumed in one process, or a
one-process run resumed by 2 FSDP ranks, continues with one process's losses (within 1e-5), and
a 2-rank run resumed by 2 ranks continues bit for bit.
"""

from __future__ import annotations

import os
import signal
import time

import pytest
from group_runs import (
    assert_close_losses,
    ended,
    events,
    group_config,
    group_processes,
    losses,
    rank_pid,
    reference,
    reference_run,
    step_losses,
    wait_for,
)

from engine.api import Engine
from engine.events import Paused, Resumed, Runtime
from engine.workspace import Workspace

pytestmark = pytest.mark.slow


def _group(model_dir, *extra: str):
    return group_config(model_dir, "training.batch_size=4", "distributed.nproc_per_node=2", *extra)


def test_a_killed_rank_crashes_the_run_and_one_process_continues_its_global_batches(
        tiny_model_dir, chat_files, tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    engine = Engine(Workspace(tmp_path / "ws"))
    config = _group(tiny_model_dir, "training.max_steps=400", "checkpoint.save_steps=3")
    run_id = engine.start_training(chat_files[0], config, eval_data=chat_files[1])
    launcher = group_processes(engine, run_id)[0]
    wait_for(lambda: engine.checkpoints(run_id), "a checkpoint")
    killed_at = time.monotonic()
    os.kill(rank_pid(engine, run_id, 1), signal.SIGKILL)
    assert ended(engine, run_id, limit=120) == "crashed"
    assert time.monotonic() - killed_at < 120
    run = engine.get_run(run_id)
    assert f"train-resume {run_id}" in run.error
    launcher.wait(timeout=60)
    assert not group_processes(engine, run_id), "no process of the group is left"

    resumed = engine.resume_run(run_id, distributed={"nproc_per_node": 1})
    start = int(engine.get_run(resumed).config["job"]["resume_from"].rsplit("-", 1)[1])
    wait_for(lambda: max(losses(engine, resumed), default=0) >= start + 4, "four steps of the resumed run")
    engine.stop(resumed)
    assert ended(engine, resumed) == "stopped"
    assert not any(e.world_size for e in events(engine, resumed, Runtime)), "resumed as one process"

    one = group_config(tiny_model_dir, "training.max_steps=400", "training.batch_size=8")
    want = step_losses(reference(Workspace(tmp_path / "ref"), one, chat_files[0], chat_files[1], start + 4))
    got = {step: loss for step, loss in losses(engine, resumed).items() if step <= start + 4}
    assert min(got) == start + 1
    assert_close_losses(got, want)


def test_a_group_paused_and_stopped_resumes_bit_for_bit(tiny_model_dir, chat_files, tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    engine = Engine(Workspace(tmp_path / "ws"))
    config = _group(tiny_model_dir, "training.max_steps=14")
    straight = engine.start_training(chat_files[0], config, eval_data=chat_files[1])
    engine.pause(straight)  # asked before its first step: the 14 tiny steps take under a second
    wait_for(lambda: engine.get_run(straight).status == "paused", "the pause")
    seen = len(losses(engine, straight))
    time.sleep(1.5)
    assert len(losses(engine, straight)) == seen, "a paused group must not train"
    engine.resume(straight)
    wait_for(lambda: events(engine, straight, Resumed), "the resume")
    engine.checkpoint_now(straight)
    assert ended(engine, straight) == "finished"
    assert events(engine, straight, Paused)

    stopped = engine.start_training(chat_files[0], config, eval_data=chat_files[1])
    engine.pause(stopped)  # held at a step boundary, then stopped there (the run is too quick to catch)
    wait_for(lambda: engine.get_run(stopped).status == "paused", "the second pause")
    engine.stop(stopped)
    assert ended(engine, stopped) == "stopped"
    cut = max(losses(engine, stopped))
    assert cut < 14
    resumed = engine.resume_run(stopped)
    assert ended(engine, resumed) == "finished"
    got = losses(engine, resumed)
    assert min(got) == cut + 1
    want = losses(engine, straight)
    assert got == {step: want[step] for step in got}, "a 2-rank run resumed at 2 ranks is bit-equal"


def test_a_one_process_run_continues_as_two_fsdp_ranks(tiny_model_dir, chat_files, tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    one = group_config(tiny_model_dir, "training.max_steps=10", "training.batch_size=8")
    workspace = Workspace(tmp_path / "ws")
    want = step_losses(reference(Workspace(tmp_path / "ref"), one, chat_files[0], chat_files[1]))
    run_id, _ = reference_run(workspace, one, chat_files[0], chat_files[1], stop_after=4)
    engine = Engine(workspace)
    resumed = engine.resume_run(run_id, distributed={"nproc_per_node": 2, "strategy": "fsdp"})
    assert ended(engine, resumed) == "finished", engine.get_run(resumed).error
    got = losses(engine, resumed)
    assert sorted(got) == list(range(5, 11))
    assert_close_losses(got, want)
    assert {e.world_size for e in events(engine, resumed, Runtime) if e.world_size} == {2}


def test_two_machines_meet_at_the_master_address(tiny_model_dir, chat_files, tmp_path, monkeypatch):
    """Two 'machines' (two workspaces, two launchers) on this host: machine 0 records the run."""
    import socket

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    machines = [Engine(Workspace(tmp_path / f"ws{node}")) for node in range(2)]
    runs = []
    for node, engine in enumerate(machines):
        config = group_config(tiny_model_dir, "training.max_steps=4", "training.batch_size=4",
                              "distributed.nnodes=2", f"distributed.node_rank={node}",
                              "distributed.master_addr='127.0.0.1'", f"distributed.master_port={port}")
        runs.append(engine.start_training(chat_files[0], config, eval_data=chat_files[1]))
    assert [ended(e, r) for e, r in zip(machines, runs, strict=True)] == ["finished", "finished"]
    one = group_config(tiny_model_dir, "training.max_steps=4", "training.batch_size=8")
    want = step_losses(reference(Workspace(tmp_path / "ref"), one, chat_files[0], chat_files[1]))
    assert_close_losses(losses(machines[0], runs[0]), want)
    assert not losses(machines[1], runs[1]), "machine 1 keeps its status only"
    assert not machines[1].checkpoints(runs[1])


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_ranks_that_cut_their_slices_into_unlike_pieces_still_meet(strategy, tiny_model_dir, chat_files, tmp_path,
                                                                   monkeypatch):
    """A one-process run that backed off after running out of memory (micro-batches in 2 pieces) continues as
    2 ranks: of a global micro-batch of 3 rows rank 0 gets 1 (one piece), rank 1 gets 2 (two pieces). Each
    reduces gradients once; a reduction per piece left rank 1 waiting in a collective rank 0 never joined."""
    import json

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    one = group_config(tiny_model_dir, "training.max_steps=6", "training.batch_size=3", "distributed.timeout_s=30")
    want = step_losses(reference(Workspace(tmp_path / "ref"), one, chat_files[0], chat_files[1]))
    workspace = Workspace(tmp_path / "ws")
    run_id, _ = reference_run(workspace, one, chat_files[0], chat_files[1], stop_after=2)
    engine = Engine(workspace)
    meta = sorted((workspace.run_dir(run_id) / "checkpoints").glob("step-*"))[-1] / "progress.json"
    saved = json.loads(meta.read_text())
    saved["progress"]["micro_batch_splits"] = 2  # as the back-off leaves it
    meta.write_text(json.dumps(saved))
    resumed = engine.resume_run(run_id, distributed={"nproc_per_node": 2, "strategy": strategy})
    assert ended(engine, resumed) == "finished", engine.get_run(resumed).error
    got = losses(engine, resumed)
    assert sorted(got) == [3, 4, 5, 6]
    assert_close_losses(got, want)
