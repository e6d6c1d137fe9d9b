"""``RecordScreen``: one offending record shown in its file, the lines around it numbered.

Opened from the datasets screen's issue table (Enter on an issue, or ``r``). The offending line is
marked and shown whole (wrapped); the lines around it are cut to one row each. Esc closes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Group
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

if TYPE_CHECKING:
    from engine.api import Issue


def context_renderable(issue: Issue) -> Group | Text:
    """The numbered lines around the issue's record, the offending one marked in red."""
    from llamahome_tui.widgets.data_report import record_context  # numpy: off the first frame

    rows = record_context(issue.where)
    if not rows:
        return Text("This record has no line to show (the file changed, or its format has no lines).",
                    style="dim")
    width = max(len(str(number)) for number, _, _ in rows if number is not None) if rows[0][0] else 0
    lines = []
    for number, line, offending in rows:
        gutter = f"{number:>{width}} " if number is not None else ""
        if offending:
            lines.append(Text.assemble((f"▶{gutter}", "bold red"), (line, "red")))
        else:
            lines.append(Text(f" {gutter}{line}", style="dim", no_wrap=True, overflow="ellipsis"))
    return Group(*lines)


class RecordScreen(ModalScreen[None]):
    """An issue's record in context; Esc (or q) closes."""

    BINDINGS = [Binding("escape,q,enter", "close", "Close")]

    def __init__(self, issue: Issue, shown_where: str) -> None:
        super().__init__()
        self.issue, self.shown_where = issue, shown_where

    def compose(self) -> ComposeResult:
        """Where, why, and the lines around the record."""
        with Vertical(classes="dialog record"):
            yield Label(self.shown_where, classes="dialog-question", markup=False)
            reason = f"{self.issue.field}: {self.issue.reason}" if self.issue.field else self.issue.reason
            yield Label(f"{self.issue.code}: {reason}", classes="error", markup=False)
            with VerticalScroll(id="record-lines"):
                yield Static(context_renderable(self.issue), id="record-text")
            yield Label("[b]esc[/b] close", classes="dialog-keys")

    def action_close(self) -> None:
        """Close the view."""
        self.dismiss(None)
