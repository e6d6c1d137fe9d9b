"""Headless commands that act on a run already started: attach, stop, pause, resume, checkpoint.

``resume`` lets a *paused* run continue in its own worker; ``train-resume`` (in
``llamahome_tui.commands``) starts a *new* run from the checkpoint of an ended one. Each control
command queues a request the run's worker takes within a fraction of a second; ``--wait`` waits
until the run has acted on it.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from engine.api import Engine
from engine.errors import UserError
from engine.store import LIVE_STATUSES, RunRecord
from llamahome_tui.commands import with_engine

WAIT_LIMIT_S = 600.0

# command: (help, Engine method name, what the user is told, the state --wait waits for)
_CONTROLS: dict[str, tuple[str, str, str, Callable[[RunRecord], bool] | None]] = {
    "stop": ("ask a run to write a checkpoint and stop", "stop", "will write a checkpoint and stop",
             lambda run: run.status not in LIVE_STATUSES),
    "pause": ("ask a training run to checkpoint, free memory and wait", "pause",
              "will write a checkpoint and pause", lambda run: run.status != "running"),
    "resume": ("let a paused training run continue (train-resume starts a new run from an ended one)",
               "resume", "will continue", lambda run: run.status != "paused"),
    "checkpoint": ("ask a training run to write a checkpoint now", "checkpoint_now",
                   "will write a checkpoint after its current step", None),
}


def register(commands: Any) -> None:
    """Add attach, stop, pause, resume and checkpoint to the command line."""
    attach = commands.add_parser("attach", help="follow a run: its history, then live until it ends")
    attach.add_argument("run_id", metavar="RUN_ID")
    attach.set_defaults(handler=with_engine(attach_run))
    for name, (text, _, _, waits) in _CONTROLS.items():
        parser = commands.add_parser(name, help=text)
        parser.add_argument("run_id", metavar="RUN_ID")
        if waits is not None:
            parser.add_argument("--wait", action="store_true", help="return once the run has done it")
        parser.set_defaults(handler=with_engine(control_run), control=name)


def attach_run(engine: Engine, args: argparse.Namespace) -> int:
    """Follow a run (Ctrl-C: checkpoint and stop; a second Ctrl-C detaches)."""
    from llamahome_tui import headless  # rich's progress bars load only for a headless command

    return headless.follow_training(engine, engine.get_run(args.run_id).id)


def control_run(engine: Engine, args: argparse.Namespace) -> int:
    """Send one control request to a run, and optionally wait for its effect."""
    _, method, effect, waits = _CONTROLS[args.control]
    run = engine.get_run(args.run_id)
    getattr(engine, method)(run.id)
    print(f"run {run.id} {effect}")
    if getattr(args, "wait", False) and waits is not None:
        run = _wait(engine, run.id, waits, pending_ok=args.control == "pause")
        print(f"run {run.id} is {run.status}")
    return 0


def _wait(engine: Engine, run_id: str, done: Callable[[RunRecord], bool], pending_ok: bool) -> RunRecord:
    """Poll the run until ``done`` holds (a pending run has not started yet, so keep waiting)."""
    deadline = time.monotonic() + WAIT_LIMIT_S
    while time.monotonic() < deadline:
        run = engine.get_run(run_id)
        if done(run) and not (pending_ok and run.status == "pending"):
            return run
        time.sleep(0.2)
    raise UserError(f"run {run_id}: still {engine.get_run(run_id).status} after {WAIT_LIMIT_S:.0f} s")
