"""``RunFeed``: everything the training screen draws about one run, folded from its events.

Plain Python (no Textual): the attach worker calls ``apply`` for each event (with the time the
store gave it) and, through ``announce``, posts at most one "feed changed" message at a time;
the screen redraws the parts named in ``changes``. Series are append-only lists, so the updates
that one message stands for lose no points.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from engine.api import eval_values, metric_line
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
    Stage,
    Started,
    Step,
)

LOG_LINES = 200
"""Log lines kept for the log tail."""
PROGRESS, RESOURCES, STAGE, NEWS = "progress", "resources", "stage", "news"
"""The parts of the training screen a change touches: step numbers and chart, gauges, the stage line, the rest."""


@dataclass
class RunFeed:
    """The live state of one run as its events arrive."""

    run_id: str
    kind: str = ""
    total_steps: int = 0
    last_step: Step | None = None
    reached: int = 0
    """The newest step any event names: steps are logged every ``logging.steps``, but a checkpoint,
    an evaluation or a pause says where the run is between them."""
    steps: list[int] = field(default_factory=list)
    """Step numbers of ``losses``."""
    losses: list[float] = field(default_factory=list)
    eval_steps: list[int] = field(default_factory=list)
    eval_losses: list[float] = field(default_factory=list)
    last_eval: Eval | None = None
    """The newest evaluation (its objective metrics show beside the loss)."""
    resources: Resources | None = None
    stage: Stage | None = None
    """What the worker is doing now (None before it says, and once the run has ended)."""
    paused_at: int | None = None
    """The step the run is paused at, while it is paused."""
    asked: str = ""
    """``stop`` / ``pause`` / ``resume`` asked of the run from here and not done yet (the worker
    acts at the end of a step, after its samples, evaluation and checkpoint)."""
    queued_behind: tuple[str, ...] = ()
    """The runs this one waits for, while it is queued."""
    log: deque[str] = field(default_factory=lambda: deque(maxlen=LOG_LINES))
    generations: list[Generation] = field(default_factory=list)
    finished: dict[str, object] | None = None
    error: str | None = None
    ended: bool = False
    log_count: int = 0
    """Log lines ever added (the deque keeps the last ``LOG_LINES``)."""
    first_at: float | None = None
    """Store time of the first event (the start when there is no ``Started``)."""
    started_at: float | None = None
    """Store time of the ``Started`` event."""
    last_step_at: float | None = None
    """Store time of the newest ``Step``."""
    first_step: Step | None = None
    """The first ``Step`` of this run (after a resume, not step 1: the pace starts from here)."""
    first_step_at: float | None = None
    """Store time of ``first_step``."""
    changes: set[str] = field(default_factory=set)
    """Parts changed since the screen last drew them (``PROGRESS``, ``RESOURCES``, ``NEWS``)."""
    announced: bool = False
    """A change notice for this feed is posted and not handled yet."""

    def _say(self, line: str) -> None:
        """Add a line to the log tail."""
        self.log.append(line)
        self.log_count += 1

    def apply(self, event: Event, at: float | None = None) -> None:
        """Fold one event, stored at unix time ``at``, into the feed."""
        if at is not None and self.first_at is None:
            self.first_at = at
        if isinstance(event, Step):
            if self.first_step is None:
                self.first_step, self.first_step_at = event, at
            self.last_step, self.last_step_at = event, at
            self.reached = max(self.reached, event.step)
            self.total_steps = event.total_steps
            self.steps.append(event.step)
            self.losses.append(event.loss)
            self.changes.add(PROGRESS)
            return
        if isinstance(event, Resources):
            self.resources = event
            self.changes.add(RESOURCES)
            return
        if isinstance(event, Stage):
            self._stage(event)
            return
        self.changes.add(NEWS)
        step = getattr(event, "step", None)
        if isinstance(step, int) and step > self.reached:
            self.reached = step
            self.changes.add(PROGRESS)
        if isinstance(event, Started) and at is not None:
            self.started_at = at
        if isinstance(event, Eval):
            self.eval_steps.append(event.step)
            self.eval_losses.append(event.eval_loss)
            self.last_eval = event
            self._say(f"eval step {event.step}: {metric_line(eval_values(event))}")
        else:
            self._apply_other(event)

    def _stage(self, event: Stage) -> None:
        """A new stage (or progress in one); a stage's beginning goes into the log tail."""
        previous, self.stage = self.stage, event
        self.changes.add(STAGE)
        if previous is None or (previous.name, previous.detail) != (event.name, event.detail):
            if event.name != "training" or self.last_step is None:  # not again after each evaluation
                self._say(f"… {event.words()}")
                self.changes.add(NEWS)

    def _apply_other(self, event: Event) -> None:
        """Fold the less frequent events."""
        if isinstance(event, Started):
            self.kind, self.total_steps = event.kind, event.total_steps
            self._say(f"run {event.run_id} ({event.kind}) started")
        elif isinstance(event, Log):
            self._say(event.message if event.level == "info" else f"{event.level}: {event.message}")
        elif isinstance(event, CheckpointSaved):
            self._say(f"checkpoint step {event.step}{' (best)' if event.is_best else ''}")
        elif isinstance(event, Generation):
            self.generations.append(event)
        elif isinstance(event, Paused):
            self.paused_at, self.asked = event.step, "stop" if self.asked == "stop" else ""
            self.changes.add(STAGE)
            self._say(f"paused at step {event.step} (checkpoint written)")
        elif isinstance(event, Resumed):
            self.paused_at, self.asked = None, "stop" if self.asked == "stop" else ""
            self.changes.add(STAGE)
            self._say(f"resumed at step {event.step}")
        elif isinstance(event, Finished):
            self.finished, self.ended, self.stage = dict(event.metrics), True, None
            stopped = event.metrics.get("stopped_reason") == "stopped"
            self._say("stopped (checkpoint written)" if stopped else "finished")
        elif isinstance(event, Failed):
            self.error, self.ended, self.stage = event.error, True, None
            self._say(f"error: {event.error}")

    def ask(self, what: str) -> None:
        """Note that ``what`` (stop, pause, resume) was asked of the run: the stage line says so until done."""
        self.asked = what
        self.changes.add(STAGE)

    def announce(self) -> bool:
        """Whether to post a change notice now: True unless one is already waiting (then it covers this)."""
        if self.announced:
            return False
        self.announced = True
        return True

    def take_changes(self) -> set[str]:
        """The parts to redraw; clears them and lets the next change post a new notice."""
        changes, self.changes, self.announced = self.changes, set(), False
        return changes

    def end(self, status: str, error: str | None = None) -> None:
        """The run is over with ``status``; say so in the log when its events did not."""
        if not self.ended and status in ("stopped", "crashed", "failed"):
            self._say(f"{status}: {error}" if error else status)
        self.ended, self.stage, self.asked = True, None, ""
        self.changes.update((NEWS, STAGE))

    @property
    def best_eval(self) -> float | None:
        """The lowest eval loss so far."""
        return min(self.eval_losses) if self.eval_losses else None

    def eta_s(self) -> float | None:
        """Seconds left: the worker's estimate when it sent one, else this run's own pace.

        The pace is training-step time (``Step.train_s``) where the steps carry it, so the time
        spent evaluating, generating samples and saving checkpoints is left out. It is taken
        between this run's first and newest steps, never as the whole elapsed time over the
        global step: a resumed run starts at step k, and the part before it ran in another
        process, at another speed (or, with no ``elapsed_s``, not at all).
        """
        if self.resources is not None and self.resources.eta_s is not None:
            return self.resources.eta_s
        first, last = self.first_step, self.last_step
        if first is None or last is None or last.step <= first.step or not last.total_steps:
            return None
        if last.train_s > 0 and first.train_s > 0:
            spent = last.train_s - first.train_s
        elif last.elapsed_s > 0 and first.elapsed_s > 0:
            spent = last.elapsed_s - first.elapsed_s
        elif self.first_step_at is not None and self.last_step_at is not None:
            spent = self.last_step_at - self.first_step_at
        else:
            return None
        return max(spent, 0.0) / (last.step - first.step) * max(last.total_steps - last.step, 0)

    def elapsed_s(self) -> float | None:
        """Seconds from the start to the newest step: the worker's figure, else the store's times."""
        step = self.last_step
        if step is None:
            return None
        if step.elapsed_s > 0:
            return step.elapsed_s
        start = self.started_at if self.started_at is not None else self.first_at
        if start is None or self.last_step_at is None:
            return None
        return max(self.last_step_at - start, 0.0)


@dataclass
class StepClock:
    """Seconds since the newest step was first drawn, on the console's clock: the elapsed time
    goes on between steps (an evaluation can take a minute), and stands still while paused."""

    step: int | None = None
    since: float = 0.0
    held: float | None = None
    """The seconds counted when the run paused (kept until it resumes)."""

    def since_step(self, feed: RunFeed, now: float) -> float:
        """Seconds to add to the newest step's elapsed time (0 for an ended run)."""
        last = feed.last_step
        if feed.ended or last is None:
            return 0.0
        if last.step != self.step:
            self.step, self.since, self.held = last.step, now, None
        if feed.paused_at is not None:
            if self.held is None:
                self.held = max(now - self.since, 0.0)
            return self.held
        if self.held is not None:
            self.since, self.held = now - self.held, None
        return max(now - self.since, 0.0)


def format_duration(seconds: float | None) -> str:
    """``1:02:03`` / ``2:03``; ``-`` when unknown."""
    if seconds is None or seconds < 0:
        return "-"
    total = int(round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
