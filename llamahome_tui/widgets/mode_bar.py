"""``ModeBar``: the top line listing the six screens and their keys, the current one lit (k9s-like).

On the right it says how many runs are live in the workspace (``● 1 live``), on every screen: a
run is its own process, so one may be going that this console did not start. The app counts
them every few seconds and publishes the count (``LIVE_SIGNAL``); every mode bar redraws.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

MODE_TITLES: dict[str, str] = {
    "datasets": "Datasets",
    "config": "Config",
    "training": "Training",
    "checkpoints": "Checkpoints",
    "runs": "Runs",
    "chat": "Try it",
}
"""Mode name -> title, in key order (1..6)."""
BRAND = " LlamaHome "
SCREENS_WIDTH = sum(len(f" {n} {title} ") for n, title in enumerate(MODE_TITLES.values(), start=1))
"""Columns the screen list takes."""


def live_text(live: int, queued: int = 0) -> Text:
    """``● 2 live · 1 queued`` (green), or nothing when no run is live."""
    if not live and not queued:
        return Text()
    parts = [f"{live} live"] if live else []
    parts += [f"{queued} queued"] if queued else []
    return Text.assemble(("● ", "bold green" if live else "yellow"), (" · ".join(parts), "bold"))


def mode_bar_text(current: str, status: str = "", live: int = 0, queued: int = 0, width: int = 80) -> Text:
    """``1 Datasets  2 Config ...`` with ``current`` highlighted, a status, and the live count on the right.

    When the line is short of room the status is cut first, then the brand goes, then the queued
    count (the live one stays); the screens stay.
    """
    right = live_text(live, queued)
    if live and queued and SCREENS_WIDTH + right.cell_len + 3 > width:
        right = live_text(live)
    text = Text()
    if width - SCREENS_WIDTH - (right.cell_len + 3 if right.cell_len else 0) >= len(BRAND):
        text.append(BRAND, style="bold reverse")
    for number, (mode, title) in enumerate(MODE_TITLES.items(), start=1):
        style = "bold reverse" if mode == current else ""
        text.append(" ")
        text.append(f"{number}", style="bold")
        text.append(f" {title} ", style=style)
    room = width - text.cell_len - (right.cell_len + 3 if right.cell_len else 0)
    if status and room > 3:  # the status gives way to the live count, the screens never do
        shown = Text("  " + status, style="dim")
        shown.truncate(room, overflow="ellipsis")
        text.append_text(shown)
    if right.cell_len:
        text.append(" " * max(width - text.cell_len - right.cell_len - 1, 2)).append_text(right).append(" ")
    return text


class ModeBar(Static):
    """The screens and their number keys; the current screen highlighted; the live run count."""

    def __init__(self, mode: str) -> None:
        super().__init__(id="mode-bar")
        self.mode = mode
        self.status = ""
        self.live = (0, 0)

    def on_mount(self) -> None:
        """Draw with the app's latest live count, and follow it."""
        from llamahome_tui.app import LlamaHomeApp  # the app imports this module

        app = self.app
        if isinstance(app, LlamaHomeApp):
            self.live = app.live_count
            app.live_signal.subscribe(self, self.set_live)
        self.redraw()

    def on_resize(self) -> None:
        """The live count stays on the right edge."""
        self.redraw()

    def set_status(self, status: str) -> None:
        """Show a short status after the screen list (e.g. the attached run)."""
        self.status = status
        self.redraw()

    def set_live(self, live: tuple[int, int]) -> None:
        """Runs live and queued in the workspace."""
        if live != self.live:
            self.live = live
            self.redraw()

    def redraw(self) -> None:
        """Draw the line at the current width."""
        self.update(mode_bar_text(self.mode, self.status, *self.live, width=self.size.width or 80))
