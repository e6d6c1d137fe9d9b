"""A run's log as human lines, one per event: ``worker.log`` and the console's log view (no torch).

``EventLines`` turns each event a run reports into a ``LogLine`` (time, level, text), or None for
the events that are not log material (resource samples, the runtime record, which a log line
already announced). A stage's progress updates are folded: a stage gets a line when it begins,
when it completes and at most every ``stage_every_s`` seconds in between, so tokenizing a large
file writes a handful of lines, not a progress bar. The worker writes these lines as the events
happen; the console's log view builds the same lines from the run history.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from engine.events import (
    CheckpointSaved,
    Eval,
    Event,
    Failed,
    Finished,
    Generation,
    Log,
    Paused,
    Resumed,
    Stage,
    Started,
    Step,
)
from engine.metrics import eval_values, step_values
from engine.metrics import line as metric_line
from engine.stages import describe

STAGE_EVERY_S = 5.0
"""A running stage's progress gets a line at most this often."""
LEVELS = ("info", "warning", "error", "stage", "step", "eval", "sample")
"""The levels a line can have: a Log event's own, or the kind of event it words."""


@dataclass(frozen=True)
class LogLine:
    """One line of a run's log."""

    time: float
    """Unix time of the event."""
    level: str
    text: str

    def stamped(self) -> str:
        """``2026-01-01 00:00:00 stage: tokenizing 512/4,000 records`` (a worker.log line)."""
        return f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(self.time))} {self.level}: {self.text}"


class EventLines:
    """Words a run's events, in order, as log lines (it remembers the stage to fold its progress)."""

    def __init__(self, stage_every_s: float = STAGE_EVERY_S) -> None:
        self.stage_every_s = stage_every_s
        self.stage: Stage | None = None
        """The newest stage seen."""
        self.stage_line_at = 0.0
        """When the stage last got a line."""

    def line(self, event: Event, at: float) -> LogLine | None:
        """The line for ``event``, stored at unix time ``at``; None when it gets none."""
        if isinstance(event, Stage):
            return self._stage(event, at)
        text = event_text(event)
        if text is None:
            return None
        level = event.level if isinstance(event, Log) else LINE_LEVELS.get(type(event), "info")
        return LogLine(at, level, text)

    def _stage(self, stage: Stage, at: float) -> LogLine | None:
        """A line when the stage begins or completes, else at most every ``stage_every_s``."""
        previous, self.stage = self.stage, stage
        new = previous is None or (previous.name, previous.detail) != (stage.name, stage.detail)
        complete = stage.total > 0 and stage.done >= stage.total and (new or previous.done < stage.done)
        if new or complete or at - self.stage_line_at >= self.stage_every_s:
            self.stage_line_at = at
            return LogLine(at, "stage", describe(stage))
        return None


LINE_LEVELS: dict[type, str] = {Step: "step", Eval: "eval", Generation: "sample", Failed: "error"}


def event_text(event: Event) -> str | None:
    """One event in words (no stage folding); None for resource samples and runtime records."""
    if isinstance(event, Log):
        return event.message
    if isinstance(event, Step):
        return f"step {event.step:,}/{event.total_steps:,}  {metric_line(step_values(event))}"
    if isinstance(event, Eval):
        return f"eval step {event.step:,}: {metric_line(eval_values(event))}"
    if isinstance(event, Started):
        return f"run {event.run_id} ({event.kind}) started"
    if isinstance(event, CheckpointSaved):
        return f"checkpoint step {event.step:,}{' (best)' if event.is_best else ''}: {event.path}"
    if isinstance(event, Stage):
        return describe(event)
    return _rare_text(event)


def _rare_text(event: Event) -> str | None:
    """The less frequent events in words."""
    if isinstance(event, Generation):
        who = "base" if event.base else f"step {event.step:,}"
        return f"sample ({who}): {_one_line(event.prompt)} -> {_one_line(event.text)}"
    if isinstance(event, Paused):
        return f"paused at step {event.step:,} (checkpoint {event.path})"
    if isinstance(event, Resumed):
        return f"resumed at step {event.step:,}"
    if isinstance(event, Finished):
        return "stopped (checkpoint written)" if event.metrics.get("stopped_reason") == "stopped" else "finished"
    if isinstance(event, Failed):
        return f"failed: {event.error}"
    return None


def _one_line(text: str) -> str:
    """A text on one line (newlines shown as ⏎)."""
    return " ⏎ ".join(part for part in text.strip().splitlines()) or "(empty)"
