"""Messages the console's workers post to its screens (toolong-style: small dataclasses).

Workers never touch widgets: they fold events into a ``RunFeed`` and post one of these. Textual
merges a queued message only into the one right behind it (``can_replace``), so a message per
event type would not merge when steps and resource samples alternate. Instead every event of a
run is announced by one ``FeedChanged``, and only when none is waiting (``RunFeed.announce``):
the message carries no numbers, it says "draw the feed again", and the feed remembers what changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from textual.message import Message

if TYPE_CHECKING:
    from llamahome_tui.widgets.run_feed import RunFeed
    from llamahome_tui.widgets.run_log import RunLog


@dataclass
class RunMessage(Message):
    """Base of the messages about one run's feed."""

    feed: RunFeed


@dataclass
class FeedChanged(RunMessage):
    """The feed changed (steps, resources, evals, log...); ``feed.changes`` says which parts."""

    def can_replace(self, message: Message) -> bool:
        """A newer change notice supersedes an older one for the same run."""
        return isinstance(message, FeedChanged) and message.feed is self.feed


@dataclass
class RunEnded(RunMessage):
    """The run ended (finished, failed, stopped or crashed) and the feed is complete."""


@dataclass
class TaskDone(Message):
    """A background task (validate, start, evaluate...) finished with a result or an error."""

    task: str
    result: Any = None
    error: str | None = None


@dataclass
class LogGrew(Message):
    """A run's log view has new lines (``RunLog.take_new``); one notice stands for many events."""

    log: RunLog

    def can_replace(self, message: Message) -> bool:
        """A newer notice supersedes an older one for the same log."""
        return isinstance(message, LogGrew) and message.log is self.log


class ChatArrived(Message):
    """The chat process said something (events wait in the Try it screen's inbox); one notice a batch."""
