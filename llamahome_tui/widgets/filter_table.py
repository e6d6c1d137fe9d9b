"""``FilterTable``: a DataTable that keeps all its rows and shows those matching a filter (k9s ``/``).

``FilterBar`` is the one-line input a screen docks at its bottom: ``/`` opens it, typing filters
the screen's table as you type, Enter keeps the filter and returns to the table, Esc clears it.
Tables refresh by key: the cursor stays on its row (not its index) and the view keeps its scroll
as rows come and go. ``j`` / ``k`` / ``g`` / ``G`` move down, up, to the first and the last row.
One column may be elastic: it takes the width the others leave, so a table uses a wide terminal
and still fits 80 columns.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable, Input

from llamahome_tui.textual_hooks import replace_key_binding

Cell = str | Text
ELASTIC = 0
"""A column given as ``(label, ELASTIC)`` takes the width the other columns leave."""
MIN_ELASTIC = 4
"""An elastic column is never narrower than this."""


def cell_width(cell: Cell) -> int:
    """Terminal cells a cell's text takes."""
    return cell.cell_len if isinstance(cell, Text) else Text(cell).cell_len


def clip(cell: Cell, width: int, keep_end: bool = False) -> Cell:
    """A cell cut to ``width`` terminal cells with an ellipsis (at its start when ``keep_end``: a path's tail)."""
    if cell_width(cell) <= width:
        return cell
    text = cell.copy() if isinstance(cell, Text) else Text(cell)
    if keep_end and width > 1:
        return Text("…").append_text(text[len(text) - (width - 1):])
    text.truncate(width, overflow="ellipsis")
    return text


class FilterTable(DataTable[Cell]):
    """A table of keyed rows with a case-insensitive substring filter over every cell.

    ``enter`` names what Enter on a row does (``Train``, ``Edit``...): the footer and the ``?``
    help then list it while the table has focus (DataTable's own Enter binding is hidden). A
    column given as ``(label, width)`` has a fixed width (a marker column that starts empty
    needs one: DataTable can keep drawing a column that grew after its rows were first drawn at
    its old width); ``(label, ELASTIC)`` makes it take the width left by the others.
    """

    BINDINGS = [
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
        Binding("g", "scroll_top", "First row", show=False),
        Binding("G", "scroll_bottom", "Last row", show=False),
    ]

    def __init__(self, *columns: str | tuple[str, int], id: str | None = None, enter: str = "",
                 keep_end: bool = False) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.keep_end = keep_end
        """Cut the elastic column's cells at their start (paths: the folder name is what differs)."""
        if enter:
            replace_key_binding(self, Binding("enter", "select_cursor", enter, key_display="⏎"))
        self._columns = [(c, None) if isinstance(c, str) else c for c in columns]
        self._rows: list[tuple[str, tuple[Cell, ...]]] = []
        self._widths: list[int | None] = []
        self.filter_text = ""
        self.wanted_key: str | None = None
        """The row the cursor belongs on: kept while that row is filtered out or not listed yet."""
        self._refilling = False

    @property
    def elastic(self) -> int | None:
        """The index of the elastic column, if any."""
        return next((i for i, (_, width) in enumerate(self._columns) if width == ELASTIC), None)

    def on_mount(self) -> None:
        """Add the columns (unless rows came first); follow the user's cursor moves."""
        if not self.columns:
            self._add_columns()
        self.watch(self, "cursor_coordinate", self._cursor_moved, init=False)

    def _add_columns(self) -> None:
        """(Re)create the columns at their current widths."""
        self._widths = self._column_widths()
        for (label, _), width in zip(self._columns, self._widths, strict=True):
            self.add_column(label, width=width)

    def _column_widths(self) -> list[int | None]:
        """Fixed widths as given, else DataTable's own sizing; with an elastic column, every width is set.

        With one, the others are sized to their content here (DataTable would size them itself,
        but keeps drawing a re-added column at its label's width) and the elastic one gets the
        room left, up to its own content's width.
        """
        elastic = self.elastic
        if elastic is None:
            return [width or None for _, width in self._columns]
        widths: list[int | None] = [
            width or max([cell_width(label), *(cell_width(cells[i]) for _, cells in self._rows if i < len(cells))])
            for i, (label, width) in enumerate(self._columns)]
        used = sum(w or 0 for i, w in enumerate(widths) if i != elastic)
        padding = 2 * self.cell_padding * len(self._columns)
        room = (self.size.width or 80) - self.styles.scrollbar_size_vertical  # as if a scrollbar showed
        widths[elastic] = max(min(room - used - padding, widths[elastic] or 0), MIN_ELASTIC)
        return widths

    def on_resize(self) -> None:
        """A new width: re-share it with the elastic column."""
        if self.elastic is not None and self._column_widths() != self._widths:
            self._show(rebuild_columns=True)

    def set_rows(self, rows: Sequence[tuple[str, Sequence[Cell]]]) -> None:
        """Replace every row (key, cells), keeping the cursor on the same key when it remains."""
        self._rows = [(key, tuple(cells)) for key, cells in rows]
        self._show(rebuild_columns=self.elastic is not None and self._column_widths() != self._widths)

    def apply_filter(self, text: str) -> None:
        """Show only rows with a cell containing ``text`` (any case)."""
        self.filter_text = text.strip().lower()
        self._show()

    def _show(self, rebuild_columns: bool = False) -> None:
        """Redraw the visible rows; the cursor stays on its key, the view on its scroll position."""
        scroll_y, row = self.scroll_y, self.cursor_row
        self._refilling = True
        try:
            rebuild_columns = rebuild_columns or not self.columns
            self.clear(columns=rebuild_columns)
            if rebuild_columns:
                self._add_columns()
            self._add_visible_rows()
            keys = self.keys
            if self.wanted_key in keys:
                row = keys.index(self.wanted_key)
            elif keys:
                row = min(row, len(keys) - 1)  # the row is gone: stay at its place, not the top
            if keys:
                self.call_after_refresh(self.scroll_to, y=scroll_y, animate=False)  # once the height is known
                self.move_cursor(row=row)
        finally:
            self._refilling = False

    def _add_visible_rows(self) -> None:
        """Add the rows the filter lets through (the elastic column's cells clipped to its width)."""
        elastic = self.elastic
        width = self._widths[elastic] if elastic is not None else None
        for key, cells in self._rows:
            if not self.filter_text or any(self.filter_text in str(c).lower() for c in cells):
                shown = cells if width is None else tuple(
                    clip(c, width, self.keep_end) if i == elastic else c for i, c in enumerate(cells))
                self.add_row(*shown, key=key)

    def _cursor_moved(self) -> None:
        """The user moved the cursor: that row is now the one to keep."""
        if not self._refilling:
            self.wanted_key = self.selected_key or self.wanted_key

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
