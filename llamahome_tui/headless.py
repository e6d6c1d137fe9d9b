"""The headless renderer: follow a run's events and print them.

On a terminal a rich progress bar shows step, loss, learning rate, tokens/s and ETA; when stdout
is not a terminal (a log file, CI) it prints plain lines instead, with no carriage returns. Either
way a line says each stage the worker enters (loading the model, tokenizing k/N records,
evaluating k/N batches, saving a checkpoint...), with its progress every few seconds and when it
completes. The ETA is taken from the steps' own training time, so evaluations do not swing it.
Ctrl-C asks the run to checkpoint and stop; a second Ctrl-C detaches and leaves it running.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Table

from engine.api import Engine
from engine.errors import UserError
from engine.events import CheckpointSaved, Eval, Failed, Finished, Log, Paused, Resumed, Stage, Started, Step
from engine.launch.rank import group_label
from engine.log_lines import EventLines
from engine.metrics import eval_values, step_values
from engine.metrics import line as metric_line
from engine.metrics import summary as metric_summary
from engine.monitor import Throughput
from engine.store import LIVE_STATUSES, RunRecord

STATUS_CODES = {"finished": 0, "stopped": 0, "failed": 1, "crashed": 1}
STAGE_EVERY_S = 5.0
"""A running stage's progress is printed at most this often (its start and end always), as in worker.log."""


class RunPrinter:
    """Turns a run's events into progress bars or plain lines."""

    def __init__(self, console: Console, quiet: bool = False) -> None:
        self.console = console
        self.quiet = quiet
        self.live = console.is_terminal and not quiet
        self.progress: Progress | None = None
        self.task: Any = None
        self.last_line = 0.0
        self.run_id = "RUN_ID"
        self.stages = EventLines(STAGE_EVERY_S)
        self.trained = False
        """Training has begun (its stage is said once, not again after each evaluation)."""
        self.pace = Throughput()

    def show(self, event: Any) -> None:
        """Render one event."""
        if isinstance(event, Step):
            self._step(event)
        elif isinstance(event, Stage):
            self._stage(event)
        elif isinstance(event, Failed):
            self._close()
            self.console.print(f"[red]error:[/red] {escape(event.error)}", highlight=False)
        elif self.quiet:
            return
        elif isinstance(event, Started):
            self.run_id = event.run_id
            self.console.print(f"run {event.run_id} ({event.kind}) started", highlight=False)
        elif isinstance(event, Eval):
            self._line(f"eval  step {event.step}: {metric_line(eval_values(event))}")
        elif isinstance(event, CheckpointSaved):
            best = " (best)" if event.is_best else ""
            self._line(f"checkpoint step {event.step}{best}: {event.path}")
        elif isinstance(event, Log):
            self._line(event.message)
        elif isinstance(event, Paused):
            self._line(f"paused at step {event.step}: checkpoint {event.path} "
                       f"(continue: llamahome-tui --no-ui resume {self.run_id})")
        elif isinstance(event, Resumed):
            self._line(f"resumed at step {event.step}")
        elif isinstance(event, Finished):
            self._close()

    def _line(self, text: str) -> None:
        """A line above the progress bar (or on its own when plain), as written (no markup: torch's
        errors hold ``[/path/file.cc:78]``, which rich would read as a closing tag)."""
        (self.progress.console if self.progress else self.console).print(text, highlight=False, markup=False)

    def _stage(self, event: Stage) -> None:
        """A line when a stage begins or completes, and its progress every ``STAGE_EVERY_S``."""
        if self.quiet or (event.name == "training" and self.trained):
            return
        self.trained |= event.name == "training"
        line = self.stages.line(event, time.monotonic())
        if line is not None:
            self._line(line.text)

    def _step(self, event: Step) -> None:
        """Advance the bar, or print a plain line at most every two seconds and at the end."""
        if self.quiet:
            return
        self.pace.observe(event)
        eta = self.pace.eta_s()
        fields = {"loss": event.loss, "lr": event.lr, "tps": event.tokens_per_s,
                  "eta": format_duration(eta) if eta is not None else "-:--"}
        if self.live:
            if self.progress is None:
                self.progress = _progress_bar(self.console)
                self.progress.start()
                self.task = self.progress.add_task("train", total=event.total_steps, **fields)
            self.progress.update(self.task, completed=event.step, total=event.total_steps, **fields)
            return
        now = time.monotonic()
        if now - self.last_line >= 2.0 or event.step == event.total_steps:
            self.last_line = now
            eta = f"  ETA {fields['eta']}" if eta is not None and event.step < event.total_steps else ""
            self.console.print(f"step {event.step}/{event.total_steps}  {metric_line(step_values(event))}{eta}",
                               highlight=False)

    def _close(self) -> None:
        """Stop the live bar so later text prints below it."""
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


def _progress_bar(console: Console) -> Progress:
    """step, loss, lr, tokens/s and ETA (from training-step time: see ``Throughput``)."""
    return Progress(TextColumn("step {task.completed}/{task.total}"), BarColumn(),
                    TextColumn("loss {task.fields[loss]:.4f}  lr {task.fields[lr]:.2e}  "
                               "tok/s {task.fields[tps]:,.0f}"),
                    TextColumn("ETA {task.fields[eta]}"), console=console)


def format_duration(seconds: float) -> str:
    """``1:02:03`` / ``2:03``."""
    hours, rest = divmod(int(round(seconds)), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def follow(engine: Engine, run_id: str, quiet: bool = False) -> int:
    """Follow a run to its end; returns the exit code the command should give."""
    return _follow(engine, run_id, quiet)[0]


def follow_training(engine: Engine, run_id: str) -> int:
    """Follow a training run, and first the base-model build it waits for, if any."""
    build = engine.waits_for(run_id)
    if build and engine.get_run(build).status in LIVE_STATUSES:
        print(f"Building the built-in base model in run {build} (first time only)")
        _, detached = _follow(engine, build, also_stop=(run_id,))
        if detached:
            return 0
    return follow(engine, run_id)


def _follow(engine: Engine, run_id: str, quiet: bool = False,
            also_stop: tuple[str, ...] = ()) -> tuple[int, bool]:
    """Follow a run; Ctrl-C stops it (and ``also_stop``), a second one detaches.

    Returns the exit code and whether the user detached.
    """
    printer = RunPrinter(Console(soft_wrap=True), quiet)
    last_id, stopping = 0, False
    while True:
        try:
            last_id = asyncio.run(_consume(engine, run_id, printer, last_id))
            break
        except KeyboardInterrupt:
            printer._close()
            if stopping:
                print(f"detached; run {run_id} goes on (llamahome-tui --no-ui attach {run_id})",
                      file=sys.stderr)
                return 0, True
            stopping = True
            print("stopping: writing a checkpoint (Ctrl-C again to detach)", file=sys.stderr)
            for target in (run_id, *also_stop):
                _request_stop(engine, target)
    printer._close()
    run = engine.get_run(run_id)
    code = engine.exit_code(run_id)
    if code is None:
        code = STATUS_CODES.get(run.status, 1)
    if not quiet and run.kind == "train" and run.final_metrics:
        print_summary(run.final_metrics)
    return code, False


def _request_stop(engine: Engine, run_id: str) -> None:
    """Ask a run to stop unless it has already ended."""
    try:
        engine.stop(run_id)
    except UserError:
        pass


async def _consume(engine: Engine, run_id: str, printer: RunPrinter, after_id: int) -> int:
    """Print events after ``after_id`` until the run ends; returns the last id seen."""
    async for stored in engine.attach(run_id, after_id=after_id):
        printer.show(stored.event)
        after_id = stored.id
    deadline = time.monotonic() + 30
    while engine.get_run(run_id).status in LIVE_STATUSES and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    while engine.exit_code(run_id) is None and engine.worker_alive(engine.get_run(run_id)):
        await asyncio.sleep(0.05)
    return after_id


def print_summary(metrics: dict[str, Any] | None, as_json: bool = False) -> None:
    """A run's final metrics, as aligned lines or JSON."""
    metrics = metrics or {}
    if as_json:
        print(json.dumps(metrics, indent=2, sort_keys=True))
        return
    for label, text in metric_summary(metrics):
        print(f"{label:>18}: {text}")


def print_runs(records: list[RunRecord], resumable: dict[str, str] | None = None) -> None:
    """The run history as a table, then how to continue runs that ended early.

    ``resumable`` maps the id of a stopped or crashed run to its last checkpoint's folder name.
    """
    table = Table(box=None)
    for name in ("id", "kind", "status"):
        table.add_column(name, no_wrap=True)
    for name in ("model", "dataset", "final"):
        table.add_column(name)
    for run in records:
        metrics = run.final_metrics or {}
        final = ", ".join(f"{k}={metrics[k]:.3f}" for k in ("last_loss", "eval_loss", "eval_reward_accuracy",
                                                             "exact_match")
                          if isinstance(metrics.get(k), int | float))
        group = group_label(run.runtime)
        kind = f"{run.kind} ({group})" if group else run.kind
        table.add_row(run.id, kind, run.status, _short(run.model), _short(run.dataset_path or ""), final)
    console = Console(soft_wrap=True)
    console.print(table)
    for run_id, checkpoint in (resumable or {}).items():
        console.print(f"{run_id}: continue from {checkpoint} with: llamahome-tui --no-ui train-resume {run_id}",
                      highlight=False)


def _short(text: str, width: int = 28) -> str:
    """The tail of a long path."""
    return text if len(text) <= width else "…" + text[-(width - 1):]
