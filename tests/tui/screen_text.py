"""The console as plain text, row by row, the way a terminal of the test's size shows it."""

from __future__ import annotations

import io

from rich.console import Console
from textual.app import App


def screen_lines(app: App) -> list[str]:
    """Every row of the screen in view (modals included) as plain text."""
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True, color_system=None,
                      record=True, legacy_windows=False, safe_box=False)
    console.print(app.screen._compositor.render_update(full=True))
    return console.export_text().splitlines()


def line_with(app: App, text: str) -> str:
    """The first screen row containing ``text`` (AssertionError when none does)."""
    rows = screen_lines(app)
    found = next((row for row in rows if text in row), None)
    assert found is not None, f"{text!r} is not on screen:\n" + "\n".join(rows)
    return found
