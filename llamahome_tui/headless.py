"""The headless renderer: follow a run's events and print them.

On a terminal a rich progress bar shows step, loss, learning rate, tokens/s and ETA; when stdout
is not a terminal (a log file, CI) it prints plain lines instead, with no carriage returns.
Ctrl-C asks the run to checkpoint and stop; a second Ctrl-C detaches and leaves it running.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from engine.api import Engine
from engine.events import CheckpointSaved, Eval, Failed, Finished, Log, Started, Step
from engine.store import RunRecord

STATUS_CODES = {"finished": 0, "stopped": 0, "failed": 1, "crashed": 1}


class RunPrinter:
    """Turns a run's events into progress bars or plain lines."""

    def __init__(self, console: Console, quiet: bool = False) -> None:
        self.console = console
        self.quiet = quiet
        self.live = console.is_terminal and not quiet
        self.progress: Progress | None = None
        self.task: Any = None
        self.last_line = 0.0

    def show(self, event: Any) -> None:
        """Render one event."""
        if isinstance(event, Step):
            self._step(event)
        elif isinstance(event, Failed):
            self._close()
            self.console.print(f"[red]error:[/red] {event.error}", highlight=False)
        elif self.quiet:
            return
        elif isinstance(event, Started):
            self.console.print(f"run {event.run_id} ({event.kind}) started", highlight=False)
        elif isinstance(event, Eval):
            self._line(f"eval  step {event.step}: loss {event.eval_loss:.4f}  perplexity {event.perplexity:.2f}")
        elif isinstance(event, CheckpointSaved):
            best = " (best)" if event.is_best else ""
            self._line(f"checkpoint step {event.step}{best}: {event.path}")
        elif isinstance(event, Log):
            self._line(event.message)
        elif isinstance(event, Finished):
            self._close()

    def _line(self, text: str) -> None:
        """A line above the progress bar (or on its own when plain)."""
        (self.progress.console if self.progress else self.console).print(text, highlight=False)

    def _step(self, event: Step) -> None:
        """Advance the bar, or print a plain line at most every two seconds and at the end."""
        if self.quiet:
            return
        fields = {"loss": event.loss, "lr": event.lr, "tps": event.tokens_per_s}
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
            self.console.print(f"step {event.step}/{event.total_steps}  loss {event.loss:.4f}  "
                               f"lr {event.lr:.2e}  grad_norm {event.grad_norm:.3f}  "
                               f"tok/s {event.tokens_per_s:,.0f}", highlight=False)

    def _close(self) -> None:
        """Stop the live bar so later text prints below it."""
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


def _progress_bar(console: Console) -> Progress:
    """step, loss, lr, tokens/s and ETA."""
    return Progress(TextColumn("step {task.completed}/{task.total}"), BarColumn(),
                    TextColumn("loss {task.fields[loss]:.4f}  lr {task.fields[lr]:.2e}  "
                               "tok/s {task.fields[tps]:,.0f}"),
                    TextColumn("ETA"), TimeRemainingColumn(), console=console)


def follow(engine: Engine, run_id: str, quiet: bool = False) -> int:
    """Follow a run to its end; returns the exit code the command should give."""
    printer = RunPrinter(Console(soft_wrap=True), quiet)
    last_id, stopping = 0, False
    while True:
        try:
            last_id = asyncio.run(_consume(engine, run_id, printer, last_id))
            break
        except KeyboardInterrupt:
            printer._close()
            if stopping:
                print(f"detached; run {run_id} goes on (llamahome-tui --no-ui runs)", file=sys.stderr)
                return 0
            stopping = True
            print("stopping: writing a checkpoint (Ctrl-C again to detach)", file=sys.stderr)
            engine.stop(run_id)
    printer._close()
    run = engine.get_run(run_id)
    code = engine.exit_code(run_id)
    if code is None:
        code = STATUS_CODES.get(run.status, 1)
    if not quiet and run.kind == "train" and run.final_metrics:
        print_summary(run.final_metrics)
    return code


async def _consume(engine: Engine, run_id: str, printer: RunPrinter, after_id: int) -> int:
    """Print events after ``after_id`` until the run ends; returns the last id seen."""
    async for stored in engine.attach(run_id, after_id=after_id):
        printer.show(stored.event)
        after_id = stored.id
    while engine.exit_code(run_id) is None and engine.worker_alive(engine.get_run(run_id)):
        await asyncio.sleep(0.05)
    return after_id


def print_summary(metrics: dict[str, Any] | None, as_json: bool = False) -> None:
    """A run's final metrics, as aligned lines or JSON."""
    metrics = metrics or {}
    if as_json:
        print(json.dumps(metrics, indent=2, sort_keys=True))
        return
    for key in sorted(metrics):
        value = metrics[key]
        text = f"{value:.4f}" if isinstance(value, float) else str(value)
        print(f"{key:>18}: {text}")


def print_runs(records: list[RunRecord]) -> None:
    """The run history as a table."""
    table = Table("id", "kind", "status", "model", "dataset", "final", box=None)
    for run in records:
        metrics = run.final_metrics or {}
        final = ", ".join(f"{k}={metrics[k]:.3f}" for k in ("last_loss", "eval_loss", "exact_match")
                          if isinstance(metrics.get(k), int | float))
        table.add_row(run.id, run.kind, run.status, _short(run.model), _short(run.dataset_path or ""), final)
    Console().print(table)


def _short(text: str, width: int = 28) -> str:
    """The tail of a long path."""
    return text if len(text) <= width else "…" + text[-(width - 1):]
