"""Engine bookkeeping without a worker: control requests, crash detection, deletion, pause hook."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest
from support import fake_checkpoint

from engine.api import Engine
from engine.control import STALE_HEARTBEAT_S, ControlState, TrainingControl, looks_dead
from engine.errors import UserError
from engine.events import Finished, Log, Paused, Resources, Resumed, event_from_row
from engine.store import RunStore
from engine.workspace import Workspace


@pytest.fixture
def engine(tmp_path: Path):
    engine = Engine(Workspace(tmp_path / "ws"))
    yield engine
    engine.close()


def _run(engine: Engine, run_id: str, kind: str = "train", output: Path | None = None, **fields) -> str:
    engine.store.create_run(run_id, kind, {}, "m", "d", output_dir=str(output or engine.workspace.run_dir(run_id)))
    if fields:
        engine.store.update_run(run_id, **fields)
    return run_id


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_control_requests_are_taken_once_in_order(engine: Engine) -> None:
    _run(engine, "r1", status="running")
    for command in ("pause", "checkpoint", "resume"):
        engine.store.add_control("r1", command)
    assert engine.store.take_controls("r1") == ["pause", "checkpoint", "resume"]
    assert engine.store.take_controls("r1") == []
    state = ControlState()
    state.apply(["pause", "checkpoint", "resume"])
    assert (state.pause, state.checkpoint, state.stop) == (False, True, False)


def test_controls_need_a_live_training_run(engine: Engine) -> None:
    _run(engine, "done", status="stopped")
    _run(engine, "base", kind="build-base", status="running", pid=os.getpid(),
         started_at=time.time(), heartbeat_at=time.time())
    with pytest.raises(UserError, match="train-resume done"):
        engine.resume("done")
    with pytest.raises(UserError, match="is stopped"):
        engine.pause("done")
    with pytest.raises(UserError, match="only training runs"):
        engine.pause("base")
    engine.stop("base")
    assert engine.store.take_controls("base") == ["stop"]


def test_dead_pid_marks_crashed_unless_the_last_event_says_otherwise(engine: Engine) -> None:
    now = time.time()
    _run(engine, "killed", status="running", pid=_dead_pid(), started_at=now, heartbeat_at=now)
    _run(engine, "done", status="running", pid=_dead_pid(), started_at=now, heartbeat_at=now)
    engine.store.add_event("killed", Log("info", "step"))
    engine.store.add_event("done", Finished(metrics={}))
    assert sorted(engine.refresh_statuses()) == ["done", "killed"]
    assert engine.get_run("killed").status == "crashed"
    assert "worker.log" in engine.get_run("killed").error
    assert engine.get_run("done").status == "finished"
    assert engine.refresh_statuses() == []


def test_liveness_checks_pid_zombie_reuse_heartbeat_and_pending_grace(engine: Engine) -> None:
    now = time.time()
    me = os.getpid()
    alive = _run(engine, "alive", status="running", pid=me, started_at=now, heartbeat_at=now)
    assert not looks_dead(engine.store.get_run(alive))
    stale = _run(engine, "stale", status="running", pid=me, started_at=now,
                 heartbeat_at=now - STALE_HEARTBEAT_S - 1)
    assert looks_dead(engine.store.get_run(stale))
    reused = _run(engine, "reused", status="running", pid=me, started_at=now - 10**6, heartbeat_at=now)
    assert looks_dead(engine.store.get_run(reused))  # this process is newer than the run's start
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])  # exits; not reaped until wait()
    deadline = time.time() + 10
    while psutil.Process(zombie.pid).status() != psutil.STATUS_ZOMBIE and time.time() < deadline:
        time.sleep(0.05)
    _run(engine, "zombie", status="running", pid=zombie.pid, started_at=now, heartbeat_at=now)
    assert looks_dead(engine.store.get_run("zombie"))
    zombie.wait()
    pending = engine.store.get_run(_run(engine, "pending"))
    assert not looks_dead(pending)
    assert looks_dead(pending, now=pending.created_at + 10**4)


def test_delete_run_refuses_live_runs_and_keeps_shared_files(engine: Engine, tmp_path: Path) -> None:
    me, now = os.getpid(), time.time()
    _run(engine, "live", status="running", pid=me, started_at=now, heartbeat_at=now)
    with pytest.raises(UserError, match="stop it before deleting"):
        engine.delete_run("live")
    shared = tmp_path / "out"
    for run_id in ("first", "second"):
        _run(engine, run_id, output=shared, status="stopped")
        engine.workspace.run_dir(run_id).mkdir(parents=True)
        folder = shared / "checkpoints" / f"step-{run_id}"
        folder.mkdir(parents=True)
        (folder / "progress.json").write_text(f'{{"run_id": "{run_id}"}}')
        engine.store.add_checkpoint(run_id, 1, folder, None)
    engine.delete_run("second")
    assert not (shared / "checkpoints" / "step-second").exists()
    assert (shared / "checkpoints" / "step-first").is_dir() and not engine.workspace.run_dir("second").exists()
    assert {r.id for r in engine.list_runs()} == {"first", "live"}
    engine.delete_checkpoint(shared / "checkpoints" / "step-first")
    assert engine.checkpoints("first") == [] and not (shared / "checkpoints" / "step-first").exists()
    engine.delete_run("first")
    assert not shared.joinpath("checkpoints").exists()
    assert engine.store.events("first") == [] and engine.store.get_run("first") is None


class FakeRecipe(SimpleNamespace):
    """The part of FineTune that the control hook touches."""

    def save(self, reason: str) -> Path:
        self.saved.append((self.progress.step, reason))
        return Path(f"step-{self.progress.step}")


def _recipe(step: int = 3) -> FakeRecipe:
    import torch

    return FakeRecipe(progress=SimpleNamespace(step=step), saved=[], stop_requested=False,
                      config=SimpleNamespace(checkpoint=SimpleNamespace(save_steps=100)),
                      model=torch.nn.Linear(2, 2), optimizer=SimpleNamespace(state={}))


def test_pause_checkpoints_waits_and_continues() -> None:
    state, seen = ControlState(), []
    hook = TrainingControl(state, lambda step, path: seen.append(("paused", step, str(path))),
                           lambda step: seen.append(("resumed", step)))
    recipe = _recipe()
    state.apply(["checkpoint", "pause"])
    threading.Timer(0.3, state.apply, [["resume"]]).start()
    started = time.monotonic()
    hook(recipe)
    assert time.monotonic() - started >= 0.25
    assert recipe.saved == [(3, "paused")]  # the pause's checkpoint serves the request too
    assert seen == [("paused", 3, "step-3"), ("resumed", 3)]
    assert not recipe.stop_requested


def test_stop_while_paused_ends_the_wait_and_stops() -> None:
    state = ControlState()
    hook = TrainingControl(state, lambda step, path: None, lambda step: pytest.fail("not resumed"))
    recipe = _recipe()
    state.apply(["pause"])
    threading.Timer(0.2, state.apply, [["stop"]]).start()
    hook(recipe)
    assert recipe.stop_requested and recipe.saved == [(3, "paused")]


def test_checkpoint_request_saves_once() -> None:
    state = ControlState()
    hook = TrainingControl(state, lambda step, path: None, lambda step: None)
    recipe = _recipe()
    state.apply(["checkpoint"])
    hook(recipe)
    hook(recipe)
    assert recipe.saved == [(3, "requested")]


def test_new_events_round_trip_and_old_resources_rows_still_load(tmp_path: Path) -> None:
    with RunStore(tmp_path / "db.sqlite") as store:
        store.create_run("r", "train", {}, "m", "d")
        for event in (Paused(step=4, path="p"), Resumed(step=4),
                      Resources(10.0, 100.0, None, None, tokens_per_s=5.0, eta_s=2.0)):
            store.add_event("r", event)
        assert [s.event for s in store.events("r")] == [
            Paused(step=4, path="p"), Resumed(step=4), Resources(10.0, 100.0, None, None, 5.0, 2.0)]
    old = event_from_row("resources", {"cpu_percent": 1.0, "rss_mb": 2.0, "gpu_util": None, "gpu_mem_mb": None})
    assert old == Resources(1.0, 2.0, None, None)


def test_a_crashed_run_whose_worker_still_lives_is_not_resumed(engine: Engine, tmp_path: Path) -> None:
    now = time.time()
    output = tmp_path / "out"
    (output / "checkpoints" / "step-000004").mkdir(parents=True)
    hung = _run(engine, "hung", status="running", pid=os.getpid(), started_at=now,
                heartbeat_at=now - STALE_HEARTBEAT_S - 1, output=output)
    assert engine.refresh_statuses() == [hung]
    assert engine.get_run(hung).status == "crashed"
    with pytest.raises(UserError, match=rf"worker \(pid {os.getpid()}\) is still alive; end it"):
        engine.resume_point(hung, exit_wait_s=0.5)


def test_a_crashed_run_whose_worker_is_still_exiting_is_waited_for(engine: Engine, tmp_path: Path) -> None:
    exiting = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1.5)"])
    folder = tmp_path / "out" / "checkpoints" / "step-000004"
    folder.mkdir(parents=True)
    _run(engine, "lost", status="crashed", pid=exiting.pid, started_at=time.time(), output=tmp_path / "out")
    engine.store.add_checkpoint("lost", 4, folder, None)
    reaper = threading.Thread(target=exiting.wait)
    reaper.start()
    with pytest.raises(UserError) as refused:  # the empty folder is refused as a damaged checkpoint...
        engine.resume_point("lost")
    assert "still alive" not in str(refused.value), refused.value  # ...once the worker has gone
    reaper.join()


def test_a_checkpoint_folder_of_a_live_run_is_not_resumed(engine: Engine, tmp_path: Path) -> None:
    now = time.time()
    live = _run(engine, "live", status="running", pid=os.getpid(), started_at=now, heartbeat_at=now)
    folder = fake_checkpoint(tmp_path / "step-000002", "live")
    with pytest.raises(UserError, match="run live is running; stop it before resuming"):
        engine.resume_point(str(folder))
    engine.store.update_run(live, status="stopped")
    assert engine.resume_point(str(folder)) == (folder.resolve(), engine.get_run(live))


def test_deleting_a_run_deletes_the_jobs_run_on_its_files_and_keeps_their_outside_exports(
        engine: Engine, tmp_path: Path) -> None:
    _run(engine, "train1", status="finished")
    checkpoint = engine.workspace.run_dir("train1") / "checkpoints" / "step-000002"
    checkpoint.mkdir(parents=True)
    engine.store.add_checkpoint("train1", 2, checkpoint, None)
    outside = tmp_path / "merged"
    outside.mkdir()
    for job, kind, out in (("exp1", "export", outside), ("ev1", "eval", None), ("other", "eval", None)):
        target = checkpoint if job != "other" else tmp_path / "elsewhere"
        engine.store.create_run(job, kind, {"job": {"target": str(target)}}, str(target), "d",
                                output_dir=str(out or engine.workspace.run_dir(job)))
        engine.store.update_run(job, status="finished")
        engine.workspace.run_dir(job).mkdir(parents=True)
    engine.store.update_run("ev1", status="running", pid=os.getpid(), heartbeat_at=time.time())
    with pytest.raises(UserError, match="eval run ev1 is running on run train1's files"):
        engine.delete_run("train1")
    assert checkpoint.is_dir()
    engine.store.update_run("ev1", status="finished")
    engine.delete_run("train1")
    assert {r.id for r in engine.list_runs()} == {"other"}
    assert outside.is_dir() and not engine.workspace.run_dir("exp1").exists()
    assert engine.workspace.run_dir("other").is_dir()
