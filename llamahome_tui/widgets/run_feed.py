"""``RunFeed``: everything the training screen draws about one run, folded from its events.

Plain Python (no Textual): the attach worker calls ``apply`` for each event, then posts a small
message; the screen redraws from the feed. Series are append-only lists, so merged messages lose
no points.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from engine.events import (
    CheckpointSaved,
    Eval,
    Event,
    Failed,
    Finished,
    Generation,
    Log,
    Paused,
    Resources,
    Resumed,
    Started,
    Step,
)

LOG_LINES = 200
"""Log lines kept for the log tail."""


@dataclass
class RunFeed:
    """The live state of one run as its events arrive."""

    run_id: str
    kind: str = ""
    total_steps: int = 0
    last_step: Step | None = None
    steps: list[int] = field(default_factory=list)
    """Step numbers of ``losses``."""
    losses: list[float] = field(default_factory=list)
    eval_steps: list[int] = field(default_factory=list)
    eval_losses: list[float] = field(default_factory=list)
    resources: Resources | None = None
    log: deque[str] = field(default_factory=lambda: deque(maxlen=LOG_LINES))
    generations: list[Generation] = field(default_factory=list)
    checkpoints: list[CheckpointSaved] = field(default_factory=list)
    finished: dict[str, object] | None = None
    error: str | None = None
    ended: bool = False
    paused: bool = False
    log_count: int = 0
    """Log lines ever added (the deque keeps the last ``LOG_LINES``)."""

    def _say(self, line: str) -> None:
        """Add a line to the log tail."""
        self.log.append(line)
        self.log_count += 1

    def apply(self, event: Event) -> None:
        """Fold one event into the feed."""
        if isinstance(event, Step):
            self.last_step = event
            self.total_steps = event.total_steps
            self.steps.append(event.step)
            self.losses.append(event.loss)
        elif isinstance(event, Resources):
            self.resources = event
        elif isinstance(event, Eval):
            self.eval_steps.append(event.step)
            self.eval_losses.append(event.eval_loss)
            self._say(f"eval step {event.step}: loss {event.eval_loss:.4f} "
                            f"ppl {event.perplexity:.2f}")
        else:
            self._apply_other(event)

    def _apply_other(self, event: Event) -> None:
        """Fold the less frequent events."""
        if isinstance(event, Started):
            self.kind, self.total_steps = event.kind, event.total_steps
            self._say(f"run {event.run_id} ({event.kind}) started")
        elif isinstance(event, Log):
            self._say(event.message if event.level == "info" else f"{event.level}: {event.message}")
        elif isinstance(event, CheckpointSaved):
            self.checkpoints.append(event)
            self._say(f"checkpoint step {event.step}{' (best)' if event.is_best else ''}")
        elif isinstance(event, Generation):
            self.generations.append(event)
        elif isinstance(event, Paused):
            self.paused = True
            self._say(f"paused at step {event.step} (checkpoint written)")
        elif isinstance(event, Resumed):
            self.paused = False
            self._say(f"resumed at step {event.step}")
        elif isinstance(event, Finished):
            self.finished, self.ended = dict(event.metrics), True
            self._say("finished")
        elif isinstance(event, Failed):
            self.error, self.ended = event.error, True
            self._say(f"error: {event.error}")

    @property
    def best_eval(self) -> float | None:
        """The lowest eval loss so far."""
        return min(self.eval_losses) if self.eval_losses else None

    def eta_s(self) -> float | None:
        """Seconds left: the worker's estimate when it sent one, else the pace so far."""
        if self.resources is not None and self.resources.eta_s is not None:
            return self.resources.eta_s
        step = self.last_step
        if step is None or step.step <= 0 or not step.total_steps:
            return None
        return step.elapsed_s / step.step * max(step.total_steps - step.step, 0)


def format_duration(seconds: float | None) -> str:
    """``1:02:03`` / ``2:03``; ``-`` when unknown."""
    if seconds is None or seconds < 0:
        return "-"
    total = int(round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
