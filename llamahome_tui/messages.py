"""Messages the console's workers post to its screens (toolong-style: small dataclasses).

Workers never touch widgets: they fold events into a ``RunFeed`` and post one of these. The
high-rate ones (step metrics, resource samples) override ``can_replace`` so that, while the
screen is busy, queued updates for the same run merge into the newest one: the feed keeps every
point, the message only says "draw again".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from textual.message import Message

if TYPE_CHECKING:
    from llamahome_tui.widgets.run_feed import RunFeed


@dataclass
class RunMessage(Message):
    """Base of the messages about one run's feed."""

    feed: RunFeed


@dataclass
class StepMetrics(RunMessage):
    """New step metrics arrived (merged with queued ones of the same run)."""

    def can_replace(self, message: Message) -> bool:
        """A newer step update supersedes an older one for the same run."""
        return isinstance(message, StepMetrics) and message.feed is self.feed


@dataclass
class ResourceSample(RunMessage):
    """A new CPU/RAM/GPU sample arrived (merged with queued ones of the same run)."""

    def can_replace(self, message: Message) -> bool:
        """A newer resource sample supersedes an older one for the same run."""
        return isinstance(message, ResourceSample) and message.feed is self.feed


@dataclass
class RunNews(RunMessage):
    """A discrete event arrived: eval, checkpoint, log line, sample generation or start."""


@dataclass
class RunEnded(RunMessage):
    """The run ended (finished, failed, stopped or crashed) and the feed is complete."""


@dataclass
class TaskDone(Message):
    """A background task (validate, start, evaluate...) finished with a result or an error."""

    task: str
    result: Any = None
    error: str | None = None
