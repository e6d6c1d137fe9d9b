"""``ModeBar``: the top line listing the five screens and their keys, the current one lit (k9s-like)."""

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


def mode_bar_text(current: str, status: str = "") -> Text:
    """``1 Datasets  2 Config ...`` with ``current`` highlighted, then a status on the right."""
    text = Text()
    text.append(" LlamaHome ", style="bold reverse")
    for number, (mode, title) in enumerate(MODE_TITLES.items(), start=1):
        style = "bold reverse" if mode == current else ""
        text.append(" ")
        text.append(f"{number}", style="bold")
        text.append(f" {title} ", style=style)
    if status:
        text.append("  " + status, style="dim")
    return text


class ModeBar(Static):
    """The screens and their number keys; the current screen highlighted."""

    def __init__(self, mode: str) -> None:
        super().__init__(mode_bar_text(mode), id="mode-bar")
        self.mode = mode

    def set_status(self, status: str) -> None:
        """Show a short status after the screen list (e.g. the attached run)."""
        self.update(mode_bar_text(self.mode, status))
