"""A full disk under the workspace mid-run: the run ends ``failed`` with one line naming the path.

The workspace lives on a small tmpfs (this needs root; skipped with the reason where it cannot
be mounted). Once the run has written a checkpoint the disk is filled, leaving ``free`` bytes:
the next write fails, in sqlite or in a checkpoint, and the run must end ``failed`` with "no
space left" and the path, the ``train`` command exit non-zero with one error line and no
traceback, and ``runs`` keep working. With space freed, the last checkpoint resumes to the end.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from test_engine_control import LIMIT_S, wait_for

from engine.api import Engine
from engine.workspace import Workspace

ARGS = ("--set", "training.batch_size=4", "--set", "training.precision=fp32", "--set", "lora.r=4",
        "--set", "eval.steps=0", "--set", "eval.generate_samples=0", "--set", "checkpoint.save_steps=2",
        "--set", "checkpoint.keep_last_n=0", "--max-steps", "2000")


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 32 MiB tmpfs mounted for the test."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small file system here: {(done.stderr or done.stdout).strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def cli(workspace: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "llamahome_tui", "--no-ui", "--workspace", str(workspace), *args]


def fill(folder: Path, free: int) -> Path:
    """Write a file until the disk holding ``folder`` has about ``free`` bytes left."""
    filler = folder / "filler"
    with filler.open("wb", buffering=0) as handle:  # unbuffered: close() has nothing left to flush
        try:
            while True:
                handle.write(b"\1" * 65536)
        except OSError:
            pass
    with filler.open("r+b") as handle:
        handle.truncate(max(filler.stat().st_size - free, 0))
    return filler


@pytest.mark.parametrize("free", [0, pytest.param(1_500_000, marks=pytest.mark.slow)])
def test_a_full_disk_fails_the_run_in_one_line_and_the_last_checkpoint_resumes(
        small_disk, tiny_model_dir, chat_files, free):
    workspace = small_disk / "ws"
    train = subprocess.Popen(cli(workspace, "train", str(chat_files[0]), "--model", str(tiny_model_dir), *ARGS),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        engine = wait_for(lambda: workspace.joinpath("llamahome.db").exists() and Engine(Workspace(workspace)),
                          "the run history")
        run_id = wait_for(lambda: [r.id for r in engine.list_runs()], "the run")[0]
        wait_for(lambda: engine.store.checkpoints(run_id), "the first checkpoint")
        filler = fill(small_disk, free)
        out, err = train.communicate(timeout=LIMIT_S)
        run = engine.get_run(run_id)
        assert run.status == "failed", (run.status, run.error, err[-2000:])
        assert "no space left" in run.error and str(workspace) in run.error
        assert train.returncode != 0 and "Traceback" not in out + err, err[-3000:]
        errors = [line for line in (out + err).splitlines() if "error" in line.lower()]
        assert len(errors) == 1 and "no space left" in errors[0], out + err
        listed = subprocess.run(cli(workspace, "runs"), capture_output=True, text=True, timeout=LIMIT_S)
        assert listed.returncode == 0 and "Traceback" not in listed.stderr, listed.stderr
        filler.unlink()
        last = max(c.step for c in engine.checkpoints(run_id))
        resumed = subprocess.run(cli(workspace, "train-resume", run_id, "--max-steps", str(last + 2)),
                                 capture_output=True, text=True, timeout=LIMIT_S)
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        assert engine.list_runs()[0].status == "finished"
        engine.close()
    finally:  # a failed assertion must not leave the run writing to the small disk
        if train.poll() is None:
            train.kill()
            train.communicate()
