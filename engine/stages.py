"""The one table of stages: what a run or job is doing right now, named one way everywhere (no torch).

A worker reports each piece of work it starts as a ``Stage`` event (``engine.events``): loading
the model, tokenizing records, building the base, training, evaluating batches, generating
samples, saving a checkpoint, exporting. Work with a count reports its progress too, through a
``StageTicker`` that sends at most ``TICKS_PER_S`` updates a second (and always the first and the
last), so a fast count cannot flood the run store. The console's stage line, the headless lines,
``worker.log`` and the console's log view all word a stage from this table.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from engine.events import Stage

TICKS_PER_S = 4.0
"""Progress updates of one stage per second at most."""


@dataclass(frozen=True)
class StageKind:
    """How one stage is worded."""

    name: str
    """Its key in ``Stage`` events."""
    label: str
    """What it is called: ``tokenizing``, ``evaluating``..."""
    unit: str = ""
    """What it counts (``records``, ``batches``...); empty when it has no count."""


STAGES: dict[str, StageKind] = {s.name: s for s in (
    StageKind("waiting", "waiting for the base model build"),
    StageKind("loading_model", "loading model"),
    StageKind("loading_checkpoint", "loading checkpoint"),
    StageKind("tokenizing", "tokenizing", "records"),
    StageKind("training_tokenizer", "training the tokenizer"),
    StageKind("building_base", "building the base", "steps"),
    StageKind("sizing_batch", "finding the batch size"),
    StageKind("training", "training"),
    StageKind("evaluating", "evaluating", "batches"),
    StageKind("generating", "generating samples", "prompts"),
    StageKind("exact_match", "measuring exact match", "answers"),
    StageKind("saving_checkpoint", "saving checkpoint"),
    StageKind("saving_model", "saving the final model"),
    StageKind("exporting", "exporting"),
    StageKind("merging", "merging the adapter into its base"),
)}


def stage_kind(name: str) -> StageKind:
    """The table's entry for ``name``, or one that shows the name as it is."""
    return STAGES.get(name) or StageKind(name, name.replace("_", " "))


def describe(stage: Stage) -> str:
    """``tokenizing 1,024/4,000 records``, ``saving checkpoint step-000040``, ``training``."""
    kind = stage_kind(stage.name)
    text = kind.label
    if stage.total > 0:
        text += f" {stage.done:,}/{stage.total:,}"
    elif stage.done > 0:
        text += f" {stage.done:,}"
    if kind.unit and (stage.total > 0 or stage.done > 0):
        text += f" {kind.unit}"
    if stage.detail:
        text += f" {stage.detail}"
    return text


def fraction(stage: Stage) -> float | None:
    """How far a counted stage is (0..1), or None when it has no total."""
    if stage.total <= 0:
        return None
    return min(max(stage.done / stage.total, 0.0), 1.0)


class StageTicker:
    """Reports one counted stage: the start, then progress at most ``per_s`` times a second, then the end.

    ``ticker(done)`` after each piece of work; ``ticker.end()`` when the count is complete (it
    reports the final count once, whatever the throttle said). ``emit`` None makes it silent.
    """

    def __init__(self, emit: Callable[[Any], None] | None, name: str, total: int = 0, detail: str = "",
                 per_s: float = TICKS_PER_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.emit, self.name, self.total, self.detail = emit, name, total, detail
        self.every, self.clock = 1.0 / per_s, clock
        self.done = 0
        self.sent: int | None = None
        self.last = clock()
        self._send(0)

    def _send(self, done: int) -> None:
        """Emit the stage at ``done`` (remembering when)."""
        if self.emit is not None:
            self.emit(Stage(self.name, done, self.total, self.detail))
        self.sent, self.last = done, self.clock()

    def __call__(self, done: int) -> None:
        """``done`` of ``total`` finished: report it unless the last report is too recent."""
        self.done = done
        if (self.total > 0 and done >= self.total) or self.clock() - self.last >= self.every:
            if done != self.sent:
                self._send(done)

    def add(self, count: int) -> None:
        """``count`` more finished."""
        self(self.done + count)

    def end(self) -> None:
        """The count is complete: report the final figure if it was not reported yet."""
        if self.total <= 0 or self.done > self.total:
            self.total = self.done
            self._send(self.done)
        elif self.sent != self.done:
            self._send(self.done)
