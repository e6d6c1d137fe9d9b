"""The events a run emits, as small typed records (no torch).

A training worker appends events to the run store; viewers read them back in order. Each event
class has a ``type`` string (stored in the ``events.type`` column) and ``to_payload()`` (stored
as JSON); ``event_from_row`` rebuilds the event. Read back, an event comes wrapped in a
``StoredEvent`` that adds its row id, run id and time.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, ClassVar


@dataclass(frozen=True)
class Event:
    """Base class of every run event."""

    type: ClassVar[str] = ""

    def to_payload(self) -> dict[str, Any]:
        """The event's fields as a JSON-ready dict (shallow: nested dicts are shared)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class Started(Event):
    """A run has started."""

    type: ClassVar[str] = "started"
    run_id: str
    kind: str
    total_steps: int
    model: str
    dataset: str


@dataclass(frozen=True)
class Step(Event):
    """One optimizer step finished."""

    type: ClassVar[str] = "step"
    step: int
    total_steps: int
    epoch: float
    loss: float
    lr: float
    grad_norm: float | None
    tokens_per_s: float
    elapsed_s: float
    metrics: dict[str, float] = field(default_factory=dict)
    """The objective's own metrics (``engine.metrics.METRICS`` names them: reward accuracy...)."""
    train_s: float = 0.0
    """Seconds this worker spent in optimizer steps so far (no evaluation, samples or checkpoints):
    the pace an ETA is taken from. 0 when unknown (events stored before it existed)."""


@dataclass(frozen=True)
class Eval(Event):
    """An evaluation on the validation split finished."""

    type: ClassVar[str] = "eval"
    step: int
    eval_loss: float
    perplexity: float
    metrics: dict[str, float] = field(default_factory=dict)
    """The objective's own metrics on the held-out samples."""


@dataclass(frozen=True)
class CheckpointSaved(Event):
    """A checkpoint was written."""

    type: ClassVar[str] = "checkpoint"
    step: int
    path: str
    eval_loss: float | None
    is_best: bool


@dataclass(frozen=True)
class Log(Event):
    """A log line from the worker."""

    type: ClassVar[str] = "log"
    level: str
    message: str


@dataclass(frozen=True)
class Resources(Event):
    """A sample of the worker's resource use (GPU fields are None without a GPU)."""

    type: ClassVar[str] = "resources"
    cpu_percent: float
    rss_mb: float
    gpu_util: float | None
    gpu_mem_mb: float | None
    tokens_per_s: float | None = None
    eta_s: float | None = None
    ranks: list[dict[str, float]] = field(default_factory=list)
    """A torchrun group's ranks on this machine, each ``{rank, pid, cpu_percent, rss_mb}`` and, with a
    GPU, ``gpu_util`` and ``gpu_mem_mb`` of its device (then ``cpu_percent`` and ``rss_mb`` above are
    their sums); empty for one process."""


@dataclass(frozen=True)
class Runtime(Event):
    """How the worker runs its job on this machine; fields left None are unchanged.

    The worker merges these into the run's ``runtime`` record (``runs --json`` shows it).
    """

    type: ClassVar[str] = "runtime"
    precision: str | None = None
    precision_reason: str | None = None
    cpu: str | None = None
    threads: int | None = None
    threads_reason: str | None = None
    world_size: int | None = None
    """Ranks of a torchrun group (absent: one process)."""
    strategy: str | None = None
    """The group's strategy: ddp or fsdp."""
    backend: str | None = None
    """The group's collective backend: gloo or nccl."""

    def values(self) -> dict[str, Any]:
        """The fields that are set."""
        return {k: v for k, v in self.to_payload().items() if v is not None}


@dataclass(frozen=True)
class Paused(Event):
    """The run wrote a checkpoint, freed what memory it could and waits for ``resume``."""

    type: ClassVar[str] = "paused"
    step: int
    path: str


@dataclass(frozen=True)
class Resumed(Event):
    """A paused run continues from the step it paused at."""

    type: ClassVar[str] = "resumed"
    step: int


@dataclass(frozen=True)
class Stage(Event):
    """The worker began a piece of work, or moved on in one (``engine.stages`` names and words them).

    ``done`` of ``total`` counts its progress (records, batches, prompts...); both 0 when it has
    no count. ``detail`` adds what it works on (a checkpoint's folder name).
    """

    type: ClassVar[str] = "stage"
    name: str
    done: int = 0
    total: int = 0
    detail: str = ""

    def words(self) -> str:
        """The stage in words: ``tokenizing 1,024/4,000 records of chat.jsonl`` (``engine.stages``)."""
        from engine.stages import describe

        return describe(self)

    def share(self) -> float | None:
        """How far a counted stage is (0..1), or None when it has no total."""
        from engine.stages import fraction

        return fraction(self)


@dataclass(frozen=True)
class Generation(Event):
    """A sample generation from the model being trained."""

    type: ClassVar[str] = "generation"
    step: int
    prompt: str
    text: str
    base: bool = False
    """The answer of the base model before training (the fine-tuned model's answers are compared to it)."""


@dataclass(frozen=True)
class Finished(Event):
    """The run finished normally, with its final metrics."""

    type: ClassVar[str] = "finished"
    metrics: dict[str, Any]


@dataclass(frozen=True)
class Failed(Event):
    """The run failed with an error."""

    type: ClassVar[str] = "failed"
    error: str


EVENT_TYPES: dict[str, type[Event]] = {
    cls.type: cls
    for cls in (Started, Step, Eval, CheckpointSaved, Log, Resources, Runtime, Paused, Resumed, Stage,
                Generation, Finished, Failed)
}


@dataclass(frozen=True)
class StoredEvent:
    """An event as read back from the store: its row id, run, unix time and the event."""

    id: int
    run_id: str
    time: float
    event: Event


def event_from_row(event_type: str, payload: dict[str, Any]) -> Event:
    """Rebuild an event from its stored type and payload; unknown payload keys are ignored.

    Raises ``ValueError`` for an unknown type or a payload that lacks a field.
    """
    cls = EVENT_TYPES.get(event_type)
    if cls is None:
        raise ValueError(f"unknown event type {event_type!r}")
    names = {f.name for f in fields(cls)}
    try:
        return cls(**{k: v for k, v in payload.items() if k in names})
    except TypeError as exc:
        raise ValueError(f"bad {event_type!r} event payload: {exc}") from exc
