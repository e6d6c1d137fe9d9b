"""The log view (``l``): one run's log lines and warnings, live, scrollable and filterable.

Opened over the training, runs or checkpoints screen for the run in view. An async worker follows
the run with ``Engine.attach`` (its history, then live events) and folds each event into a
``RunLog``: the same lines ``worker.log`` holds (log messages, warnings, stages, steps,
evaluations, checkpoints, samples, how it ended). Keys: ``/`` filters (as you type; a level such
as ``warning`` works too), ``w`` shows only warnings and errors, Esc clears the filter first and
closes the view after; arrows, PgUp/PgDn, Home/End scroll, and ``j`` / ``k`` / ``g`` / ``G`` as in
the tables. New lines keep the view at the bottom
only while it is there, so reading older lines is not interrupted.
"""

from __future__ import annotations

import asyncio

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import RichLog, Static

from engine.api import LogLine, UserError
from llamahome_tui.messages import LogGrew
from llamahome_tui.screens.base import ConsoleScreen
from llamahome_tui.widgets.filter_table import FilterBar
from llamahome_tui.widgets.run_log import RunLog, line_text, matches

YIELD_EVERY = 200
"""Replaying history, give the event loop a turn every this many events."""
SHOWN_LINES = 5_000
"""Lines the view holds at most (the log keeps more for the filter)."""


class RunLogScreen(ConsoleScreen):
    """A run's log: every line, live; ``/`` filters, ``w`` warnings only, Esc back."""

    HELP = ("The run's log: the lines its worker.log holds (messages, warnings, stages, steps, evaluations, "
            "checkpoints, samples). / filters, w shows warnings and errors only.")
    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("slash", "filter", "Filter"),
        Binding("w", "warnings", "Warnings only"),
        Binding("j", "scroll_log('down')", "Down", show=False),
        Binding("k", "scroll_log('up')", "Up", show=False),
        Binding("g", "scroll_log('home')", "First line", show=False),
        Binding("G", "scroll_log('end')", "Last line", show=False),
    ]

    def __init__(self, run_id: str, mode: str) -> None:
        super().__init__()
        self.MODE = mode
        self.run_log = RunLog(run_id)
        self.filter_text = ""
        self.only_warnings = False

    def compose_body(self) -> ComposeResult:
        """A head line and the log."""
        yield Static(id="log-head")
        yield RichLog(id="log-lines", max_lines=SHOWN_LINES, wrap=True, min_width=20)

    def on_mount(self) -> None:
        """Follow the run; the log takes the keys."""
        self.query_one(RichLog).focus()
        self.draw_head()
        self.follow()

    @work(exclusive=True, group="log")
    async def follow(self) -> None:
        """Fold the run's events into the log, posting a notice when none is waiting."""
        log = self.run_log
        count = 0
        try:
            async for stored in self.engine.attach(log.run_id):
                log.apply(stored.event, stored.time)
                if log.announce():
                    self.post_message(LogGrew(log))
                count += 1
                if count % YIELD_EVERY == 0:
                    await asyncio.sleep(0)
        except UserError as exc:
            self.notify(str(exc), severity="error")
        log.ended = True
        self.post_message(LogGrew(log))

    def on_log_grew(self, message: LogGrew) -> None:
        """Write the new lines that pass the filter."""
        if message.log is self.run_log:
            self.write(self.run_log.take_new())
            self.draw_head()

    def shows(self, line: LogLine) -> bool:
        """Whether a line passes the filter and the warnings switch."""
        if self.only_warnings and line.level not in ("warning", "error"):
            return False
        return not self.filter_text or matches(line, self.filter_text)

    def write(self, lines: list[LogLine], scroll: bool | None = None) -> None:
        """Add lines to the view; it follows them only when it was at the bottom."""
        view = self.query_one(RichLog)
        view.auto_scroll = view.is_vertical_scroll_end if scroll is None else scroll
        for line in lines:
            if self.shows(line):
                view.write(line_text(line))

    def redraw(self) -> None:
        """Every line again, through the new filter (the view ends at the bottom)."""
        self.query_one(RichLog).clear()
        self.write(self.run_log.matching(""), scroll=True)
        self.draw_head()

    def draw_head(self) -> None:
        """``Log of run ID  live  120 lines  2 warnings  filter: eval``."""
        log = self.run_log
        text = Text.assemble(("Log of run ", "dim"), (log.run_id, "bold"), "  ",
                             ("ended" if log.ended else "live", "dim" if log.ended else "bold green"),
                             f"  {len(log.lines) + log.dropped:,} lines")
        if log.warnings:
            text.append(f"  {log.warnings} warning{'s' if log.warnings != 1 else ''}/errors", style="yellow")
        if self.only_warnings:
            text.append("  warnings only (w: all)", style="bold yellow")
        if self.filter_text:
            text.append(f"  filter: {self.filter_text}", style="bold")
        self.query_one("#log-head", Static).update(text)

    # keys

    async def action_filter(self) -> None:
        """Open the filter bar."""
        await self.open_filter_bar()

    def on_filter_bar_filter(self, message: FilterBar.Filter) -> None:
        """Filter as the text changes; back to the log when done."""
        message.stop()
        if message.text.strip().lower() != self.filter_text:
            self.filter_text = message.text.strip().lower()
            self.redraw()
        if message.done:
            self.query_one(RichLog).focus()

    def action_scroll_log(self, where: str) -> None:
        """``j`` / ``k`` / ``g`` / ``G``: a line down or up, the first or the newest line."""
        view = self.query_one(RichLog)
        {"down": view.scroll_down, "up": view.scroll_up,
         "home": view.scroll_home, "end": view.scroll_end}[where](animate=False)

    def action_warnings(self) -> None:
        """Show only warnings and errors, or every line again."""
        self.only_warnings = not self.only_warnings
        self.redraw()

    def action_back(self) -> None:
        """Esc: clear the filter (and the warnings switch) first; close the view when there is none."""
        if self.filter_text or self.only_warnings:
            for bar in self.query(FilterBar):
                bar.value, bar.display = "", False
            self.filter_text, self.only_warnings = "", False
            self.redraw()
            return
        self.app.pop_screen()
