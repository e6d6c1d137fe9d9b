"""Two runs at once under a busy viewer, one of them killed with SIGKILL mid-run.

The viewer polls the database ten times a second while both workers write: nobody may see
"database is locked". The killed run must show as ``crashed``, and ``train-resume`` of it must
finish with the same losses as the run that was never interrupted (CPU, fp32).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch
from test_engine_control import LIMIT_S, tiny_config, wait_for

from engine.api import Engine
from engine.workspace import Workspace

TOTAL_STEPS = 24
SAVE_STEPS = 8


class Viewer(threading.Thread):
    """Polls events and the run list ten times a second on its own connection."""

    def __init__(self, workspace: Workspace, run_ids: list[str]) -> None:
        super().__init__(daemon=True)
        self.workspace, self.run_ids = workspace, run_ids
        self.done = threading.Event()
        self.polls, self.errors, self.cursor = 0, [], dict.fromkeys(run_ids, 0)

    def run(self) -> None:
        engine = Engine(self.workspace)
        while not self.done.wait(0.1):
            try:
                for run_id in self.run_ids:
                    events = engine.store.events(run_id, after_id=self.cursor[run_id])
                    self.cursor[run_id] = events[-1].id if events else self.cursor[run_id]
                engine.list_runs()
                engine.store.metrics(self.run_ids[0])
                self.polls += 1
            except Exception as exc:  # noqa: BLE001 - recorded and asserted on
                self.errors.append(repr(exc))
        engine.close()


@pytest.fixture(scope="module")
def runs(tiny_model_dir, chat_files, tmp_path_factory):
    """An uninterrupted run and a twin killed with SIGKILL after its first checkpoint."""
    workspace = Workspace(tmp_path_factory.mktemp("crash") / "ws")
    engine = Engine(workspace)
    config = tiny_config(tiny_model_dir, f"training.max_steps={TOTAL_STEPS}",
                         f"checkpoint.save_steps={SAVE_STEPS}", "checkpoint.keep_last_n=0")
    straight = engine.start_training(chat_files[0], config, eval_data=chat_files[1])
    killed = engine.start_training(chat_files[0], config, eval_data=chat_files[1])
    viewer = Viewer(workspace, [straight, killed])
    viewer.start()
    wait_for(lambda: engine.store.checkpoints(killed), "the first checkpoint")
    os.kill(engine.get_run(killed).pid, signal.SIGKILL)
    last_step = max(m["step"] for m in engine.store.metrics(killed) if m["loss"] is not None)
    wait_for(lambda: engine.get_run(straight).status != "running", "the uninterrupted run", LIMIT_S)
    viewer.done.set()
    viewer.join()
    engine.close()
    return {"workspace": workspace.root, "straight": straight, "killed": killed, "viewer": viewer,
            "killed_at": last_step}


def cli(workspace: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "llamahome_tui", "--no-ui", "--workspace", str(workspace), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=LIMIT_S)


def test_two_runs_and_a_polling_viewer_never_see_a_locked_database(runs):
    viewer = runs["viewer"]
    assert viewer.errors == []
    assert viewer.polls >= 20
    workspace = Workspace(runs["workspace"])
    for run_id in (runs["straight"], runs["killed"]):
        assert "database is locked" not in (workspace.run_dir(run_id) / "worker.log").read_text()
    engine = Engine(workspace)
    assert engine.get_run(runs["straight"]).status == "finished"
    engine.close()


def test_killed_worker_shows_as_crashed_with_its_checkpoint_offered(runs):
    assert SAVE_STEPS <= runs["killed_at"] < TOTAL_STEPS, "the kill must land mid-run"
    listed = cli(runs["workspace"], "runs", "--json")
    assert listed.returncode == 0, listed.stderr
    crashed = {r["id"]: r for r in json.loads(listed.stdout)}[runs["killed"]]
    assert crashed["status"] == "crashed" and "worker" in crashed["error"]
    table = cli(runs["workspace"], "runs").stdout
    assert f"train-resume {runs['killed']}" in table


def test_train_resume_after_the_kill_matches_the_uninterrupted_run(runs):
    resumed = cli(runs["workspace"], "train-resume", runs["killed"])
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    engine = Engine(Workspace(runs["workspace"]))
    new = engine.list_runs()[0]
    assert new.resumed_from == runs["killed"] and new.status == "finished"
    start = int(Path(new.config["job"]["resume_from"]).name.removeprefix("step-"))
    assert start % SAVE_STEPS == 0 and start <= runs["killed_at"]

    def losses(run_id: str) -> dict[int, float]:
        return {m["step"]: m["loss"] for m in engine.store.metrics(run_id) if m["loss"] is not None}
    straight, again = losses(runs["straight"]), losses(new.id)
    assert sorted(again) == list(range(start + 1, TOTAL_STEPS + 1))
    torch.testing.assert_close(torch.tensor([again[s] for s in sorted(again)]),
                               torch.tensor([straight[s] for s in sorted(again)]))
    final = engine.get_run(runs["straight"]).final_metrics
    torch.testing.assert_close(torch.tensor(new.final_metrics["last_loss"]), torch.tensor(final["last_loss"]))
    engine.close()
