"""What every main screen shares: the console state, the mode bar, the ``/`` filter and the footer.

``ConsoleState`` is the small shared memory between screens (the chosen dataset, config file and
run); it lives on the app. ``ConsoleScreen`` is the base of the five main screens: subclasses
give ``compose_body`` and, if they have a table to filter, ``filter_table``. Below 80×24 every
main screen shows a "terminal too small" notice instead of a cut-off layout (the app's
breakpoint classes ``-narrow`` / ``-short`` switch it on; see app.tcss).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, cast

from textual import events
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.widgets import Static

from engine.api import Engine
from llamahome_tui.textual_hooks import ResumeWithoutRestyle, breakpoint_classes
from llamahome_tui.widgets.filter_table import FilterBar, FilterTable
from llamahome_tui.widgets.footer import KeyFooter
from llamahome_tui.widgets.mode_bar import ModeBar

if TYPE_CHECKING:
    from llamahome_tui.app import LlamaHomeApp


@dataclass
class ConsoleState:
    """What the screens share: the chosen dataset and config, the run in view, the runs started."""

    config_file: Path
    """The user's config file, layered over config/default.toml; the config screen saves here."""
    data_roots: list[Path]
    """Folders the datasets screen lists data files from."""
    dataset: Path | None = None
    eval_data: Path | None = None
    overrides: list[str] = field(default_factory=list)
    """``section.key=value`` overrides from the command line (``--set``, ``--max-steps``...)."""
    run_id: str | None = None
    """The run the training and checkpoints screens show."""
    watched: set[str] = field(default_factory=set)
    """Runs this console started or attached to: quitting asks about those still live."""
    config_edits: dict[str, str | None] = field(default_factory=dict)
    """Config keys edited on the config screen and not saved yet (key path -> typed text; None:
    take the key out of the file)."""
    clock: Callable[[], float] = time.time
    """Wall clock for durations and ages (frozen in snapshot tests)."""


MIN_SIZE = (80, 24)
"""The smallest terminal the console lays out for; below it, the notice."""


class ConsoleScreen(ResumeWithoutRestyle):
    """Base of the main screens: mode bar on top, body, filter bar and footer at the bottom."""

    MODE = ""
    """The app mode this screen is the base of."""
    HELP = ""
    """One paragraph shown at the top of the ``?`` help."""
    BINDINGS = [Binding("slash", "filter", "Filter", show=False)]
    HORIZONTAL_BREAKPOINTS: ClassVar[list[tuple[int, str]]] = [(0, "-narrow"), (80, "-normal"), (120, "-wide")]
    """Classes by width: below 80 columns the screen shows the "too small" notice."""
    VERTICAL_BREAKPOINTS: ClassVar[list[tuple[int, str]]] = [(0, "-short"), (24, "-tall"), (40, "-taller")]
    """Classes by height: below 24 rows the notice; from 40 rows some panels grow."""

    def __init__(self) -> None:
        super().__init__()
        self.add_class(*breakpoint_classes(tuple(self.app.size), self.HORIZONTAL_BREAKPOINTS,
                                           self.VERTICAL_BREAKPOINTS))

    @property
    def console(self) -> LlamaHomeApp:
        """The app, typed."""
        return cast("LlamaHomeApp", self.app)

    @property
    def engine(self) -> Engine:
        """The engine facade."""
        return self.console.engine

    @property
    def state(self) -> ConsoleState:
        """The shared console state."""
        return self.console.state

    def compose(self) -> ComposeResult:
        """Mode bar, the screen's body, the footer and the too-small notice (the filter bar comes with ``/``)."""
        yield ModeBar(self.MODE)
        yield from self.compose_body()
        yield KeyFooter()
        yield Static(id="too-small")

    def on_resize(self, event: events.Resize) -> None:
        """Keep the too-small notice's size figures current (CSS shows it below 80×24)."""
        width, height = event.size
        need_w, need_h = MIN_SIZE
        self.query_one("#too-small", Static).update(
            f"Terminal too small: {width}×{height}, LlamaHome needs {need_w}×{need_h}.\n\n"
            "Enlarge the window (or make the font smaller).\nq quits; runs carry on without the console.")

    def compose_body(self) -> ComposeResult:
        """The screen's own widgets."""
        return iter(())

    def filter_table(self) -> FilterTable | None:
        """The table ``/`` filters (None when the screen has none)."""
        tables = self.query(FilterTable)
        focused = self.focused
        if isinstance(focused, FilterTable):
            return focused
        return tables.first() if tables else None

    async def action_filter(self) -> None:
        """Open the filter bar for this screen's table (made on the first ``/``: less to build at start)."""
        if self.filter_table() is None:
            self.notify("nothing to filter here", severity="warning")
            return
        await self.open_filter_bar()

    async def open_filter_bar(self) -> FilterBar:
        """Show and focus the filter bar, mounting it above the footer the first time."""
        bars = self.query(FilterBar)
        bar = bars.first() if bars else FilterBar()
        if not bars:
            await self.mount(bar, before=self.query_one(KeyFooter))
        bar.display = True
        bar.focus()
        return bar

    def clear_filter(self) -> bool:
        """Esc: clear an applied filter of this screen's table; False when none was applied."""
        table = self.filter_table()
        bars = self.query(FilterBar)
        if not bars or ((table is None or not table.filter_text) and not bars.first().display):
            return False
        bars.first().action_clear()
        return True

    def on_filter_bar_filter(self, message: FilterBar.Filter) -> None:
        """Filter the table as the text changes; back to the table when done."""
        table = self.filter_table()
        if table is None:
            return
        table.apply_filter(message.text)
        if message.done:
            table.focus()

    def commands(self) -> Iterable[SystemCommand]:
        """This screen's actions for the command palette."""
        return ()

    def set_status(self, status: str) -> None:
        """A short status line in the mode bar."""
        self.query_one(ModeBar).set_status(status)
