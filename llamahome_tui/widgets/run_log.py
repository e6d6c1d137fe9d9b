"""``RunLog``: a run's log lines as its events arrive, for the log view (plain Python, no Textual).

The lines are ``engine.log_lines``' — the same words ``worker.log`` holds: log messages and
warnings, each stage as it begins and ends, steps, evaluations, checkpoints, samples, pauses and
how the run ended. The log view's attach worker calls ``apply`` for each event and posts one
"log grew" notice at a time (``announce``); the screen draws the lines it has not drawn
(``take_new``), or all of them again when the filter changes (``matching``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from rich.table import Table
from rich.text import Text

from engine.api import EventLines, LogLine
from engine.events import Event

MAX_LINES = 20_000
"""Lines kept (the oldest go first)."""
LEVEL_MARKS = {"warning": "warning: ", "error": "error: ", "stage": "▶ "}
"""What goes before a line's words to show its level (the others read as what they are: step, eval...)."""
LEVEL_STYLES = {"warning": "bold yellow", "error": "bold red", "stage": "cyan", "step": "dim", "eval": "magenta",
                "sample": "green"}


@dataclass
class RunLog:
    """The lines of one run's log so far."""

    run_id: str
    lines: list[LogLine] = field(default_factory=list)
    drawn: int = 0
    """Lines handed to the screen so far (``take_new``)."""
    dropped: int = 0
    """Old lines let go to stay under ``MAX_LINES``."""
    ended: bool = False
    announced: bool = False
    """A "log grew" notice is posted and not handled yet."""
    words: EventLines = field(default_factory=EventLines)

    def apply(self, event: Event, at: float) -> None:
        """Add the line of an event stored at unix time ``at`` (if it has one)."""
        line = self.words.line(event, at)
        if line is None:
            return
        self.lines.append(line)
        if len(self.lines) > MAX_LINES:
            cut = len(self.lines) - MAX_LINES
            del self.lines[:cut]
            self.dropped += cut
            self.drawn = max(self.drawn - cut, 0)

    def announce(self) -> bool:
        """Whether to post a notice now: True unless one is already waiting."""
        if self.announced:
            return False
        self.announced = True
        return True

    def take_new(self) -> list[LogLine]:
        """The lines not handed out yet; lets the next change post a notice."""
        new, self.drawn, self.announced = self.lines[self.drawn:], len(self.lines), False
        return new

    def matching(self, text: str) -> list[LogLine]:
        """Every line containing ``text`` (any case; level or words); all of them when it is empty."""
        needle = text.strip().lower()
        self.drawn, self.announced = len(self.lines), False
        if not needle:
            return list(self.lines)
        return [line for line in self.lines if matches(line, needle)]

    @property
    def warnings(self) -> int:
        """Warnings and errors among the lines."""
        return sum(line.level in ("warning", "error") for line in self.lines)


def matches(line: LogLine, needle: str) -> bool:
    """Whether a line's level or words contain ``needle`` (given lower-case)."""
    return needle in line.text.lower() or needle in line.level


def line_text(line: LogLine) -> Table:
    """``12:00:03 warning: disk nearly full``, coloured by level; a long text wraps under itself."""
    stamp = time.strftime("%H:%M:%S", time.localtime(line.time))
    grid = Table.grid(padding=(0, 1))
    grid.add_column(width=8, style="dim")
    grid.add_column(ratio=1, overflow="fold")
    grid.add_row(stamp, Text(LEVEL_MARKS.get(line.level, "") + line.text, style=LEVEL_STYLES.get(line.level, "")))
    return grid
