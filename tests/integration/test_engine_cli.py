"""The headless commands on a detached run: --detach, attach, pause, resume, checkpoint, stop, Ctrl-C."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

from test_engine_control import LIMIT_S, wait_for

from engine.api import Engine
from engine.workspace import Workspace

LONG = ["--max-steps", "400", "--set", "training.batch_size=4", "--set", "training.log_steps=1",
        "--set", "eval.steps=0", "--set", "eval.generate_samples=0", "--set", "lora.r=4",
        "--set", "checkpoint.save_steps=1000"]


def command(workspace: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "llamahome_tui", "--no-ui", "--workspace", str(workspace), *args]


def as_from_a_terminal() -> None:
    """Give a child the signal dispositions of a terminal's foreground job.

    A runner that starts the tests in the background (or under nohup) hands them SIGINT and
    SIGHUP ignored, and a process started with a signal ignored keeps it ignored.
    """
    for number in (signal.SIGINT, signal.SIGHUP):
        signal.signal(number, signal.SIG_DFL)


def cli(workspace: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command(workspace, *args), capture_output=True, text=True, timeout=LIMIT_S)


def test_detached_run_is_followed_paused_resumed_and_stopped(tiny_model_dir, chat_files, tmp_path):
    workspace = tmp_path / "ws"
    detached = cli(workspace, "train", str(chat_files[0]), "--model", str(tiny_model_dir), *LONG, "--detach")
    assert detached.returncode == 0, detached.stderr
    run_id = detached.stdout.strip()
    assert re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{4}", run_id)
    engine = Engine(Workspace(workspace))
    pid = wait_for(lambda: engine.get_run(run_id).pid, "the worker's pid")
    assert os.getsid(pid) != os.getsid(0), "the worker must live in a session of its own"
    follower = subprocess.Popen(command(workspace, "attach", run_id), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    for args, expected in ((("pause", "--wait"), "is paused"), (("checkpoint",), "will write a checkpoint"),
                           (("resume", "--wait"), "is running"), (("stop", "--wait"), "is stopped")):
        result = cli(workspace, *args[:1], run_id, *args[1:])
        assert result.returncode == 0 and expected in result.stdout, (args, result.stdout, result.stderr)
    out, err = follower.communicate(timeout=LIMIT_S)
    assert follower.returncode == 0, err
    assert "ended by: stopped" in out
    replay = cli(workspace, "attach", run_id[:15])
    assert replay.returncode == 0, replay.stderr
    for fragment in (f"run {run_id} (train) started", "paused at step", "resumed at step", "ended by: stopped"):
        assert fragment in replay.stdout
    stopped = cli(workspace, "stop", run_id)
    assert stopped.returncode == 2 and stopped.stderr.strip() == f"error: run {run_id} is stopped"
    engine.close()


def test_ctrl_c_stops_the_run_and_a_second_ctrl_c_detaches(tiny_model_dir, chat_files, tmp_path):
    workspace = tmp_path / "ws"
    out, err = tmp_path / "out.txt", tmp_path / "err.txt"
    with out.open("w") as stdout, err.open("w") as stderr:
        train = subprocess.Popen(command(workspace, "train", str(chat_files[0]), "--model", str(tiny_model_dir),
                                         *LONG), stdout=stdout, stderr=stderr, text=True,
                                 preexec_fn=as_from_a_terminal)
    wait_for(lambda: "step 1/400" in out.read_text(), "the first step")
    train.send_signal(signal.SIGINT)
    wait_for(lambda: "stopping: writing a checkpoint" in err.read_text(), "the stop message")
    train.send_signal(signal.SIGINT)
    assert train.wait(timeout=LIMIT_S) == 0
    assert "detached; run" in err.read_text() and "Traceback" not in err.read_text()
    engine = Engine(Workspace(workspace))
    run = engine.list_runs()[0]
    wait_for(lambda: engine.get_run(run.id).status == "stopped", "the stop asked by the first Ctrl-C")
    assert engine.checkpoints(run.id)[-1].step == engine.get_run(run.id).final_metrics["steps"]
    engine.close()


def test_a_detached_run_outlives_the_shell_that_started_it(tiny_model_dir, chat_files, tmp_path):
    workspace = tmp_path / "ws"
    args = shlex.join(command(workspace, "train", str(chat_files[0]), "--model", str(tiny_model_dir), *LONG[2:],
                            "--max-steps", "12", "--detach"))
    shell = subprocess.Popen(["bash", "-c", f"{args}; sleep 60"], stdout=subprocess.PIPE, text=True,
                             start_new_session=True, preexec_fn=as_from_a_terminal)
    run_id = shell.stdout.readline().strip()
    os.killpg(shell.pid, signal.SIGHUP)  # the terminal goes away, and the shell's whole group with it
    assert shell.wait(timeout=LIMIT_S) != 0
    followed = cli(workspace, "attach", run_id)
    assert followed.returncode == 0, followed.stderr
    assert "step 12/12" in followed.stdout and "ended by: finished" in followed.stdout
    engine = Engine(Workspace(workspace))
    assert engine.get_run(run_id).status == "finished"
    engine.close()
