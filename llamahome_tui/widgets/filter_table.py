"""``FilterTable``: a DataTable that keeps all its rows and shows those matching a filter (k9s ``/``).

``FilterBar`` is the one-line input a screen docks at its bottom: ``/`` opens it, typing filters
the screen's table as you type, Enter keeps the filter and returns to the table, Esc clears it.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable, Input

Cell = str | Text


class FilterTable(DataTable[Cell]):
    """A table of keyed rows with a case-insensitive substring filter over every cell.

    ``enter`` names what Enter on a row does (``Train``, ``Edit``...): the footer and the ``?``
    help then list it while the table has focus (DataTable's own Enter binding is hidden). A
    column given as ``(label, width)`` has a fixed width: DataTable can keep drawing a column
    that grew after its rows were first drawn at its old width, so a marker column that starts
    empty ("changed") needs one.
    """

    def __init__(self, *columns: str | tuple[str, int], id: str | None = None, enter: str = "") -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        if enter:
            self._bindings.key_to_bindings["enter"] = [
                Binding("enter", "select_cursor", enter, key_display="⏎")]
        self._columns = columns
        self._rows: list[tuple[str, tuple[Cell, ...]]] = []
        self.filter_text = ""

    def on_mount(self) -> None:
        """Add the columns."""
        for column in self._columns:
            label, width = (column, None) if isinstance(column, str) else column
            self.add_column(label, width=width)

    def set_rows(self, rows: Sequence[tuple[str, Sequence[Cell]]]) -> None:
        """Replace every row (key, cells), keeping the cursor on the same key when it remains."""
        self._rows = [(key, tuple(cells)) for key, cells in rows]
        self._show()

    def apply_filter(self, text: str) -> None:
        """Show only rows with a cell containing ``text`` (any case)."""
        self.filter_text = text.strip().lower()
        self._show()

    def _show(self) -> None:
        """Redraw the visible rows."""
        current = self.selected_key
        self.clear()
        for key, cells in self._rows:
            if not self.filter_text or any(self.filter_text in str(c).lower() for c in cells):
                self.add_row(*cells, key=key)
        keys = [str(k.value) for k in self.rows]
        if current in keys:
            self.move_cursor(row=keys.index(current))

    @property
    def selected_key(self) -> str | None:
        """The key of the row under the cursor, or None when the table is empty."""
        if not self.row_count:
            return None
        try:
            return str(self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value)
        except Exception:  # noqa: BLE001 - a cursor past the end after a refill
            return None

    @property
    def keys(self) -> list[str]:
        """Keys of the visible rows, top to bottom."""
        return [str(k.value) for k in self.rows]


class FilterBar(Input):
    """The ``/`` filter input; posts ``FilterBar.Changed`` as the text changes."""

    BINDINGS = [Binding("escape", "clear", "Clear filter", show=False)]

    class Filter(Message):
        """The filter text changed; ``done`` when the user left the bar (Enter or Esc)."""

        def __init__(self, text: str, done: bool = False) -> None:
            super().__init__()
            self.text = text
            self.done = done

    def __init__(self) -> None:
        super().__init__(placeholder="/ filter", id="filter-bar")

    def on_input_changed(self, event: Input.Changed) -> None:
        """Tell the screen the new filter."""
        event.stop()
        self.post_message(self.Filter(event.value))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Keep the filter and go back to the table."""
        event.stop()
        self.display = bool(self.value)
        self.post_message(self.Filter(self.value, done=True))

    def action_clear(self) -> None:
        """Clear the filter, hide the bar and go back to the table."""
        self.value = ""
        self.display = False
        self.post_message(self.Filter("", done=True))
