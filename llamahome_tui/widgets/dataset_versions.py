"""``DatasetVersions``: every dataset version the runs recorded, and which runs used each.

A version is one data file prepared one way (its fingerprint covers the file's bytes, the
tokenizer and the data settings); ``Engine.datasets()`` lists them newest first with the ids of
the runs still in the history that trained or evaluated on them. The datasets screen shows this
panel with ``v``; the line under the table lists every run of the highlighted version.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from llamahome_tui.widgets.filter_table import FilterTable


def version_cells(version: dict[str, Any]) -> tuple[str, ...]:
    """A version's row: file name, fingerprint, samples, tokens, invalid, recorded, runs."""
    from llamahome_tui.widgets.data_report import short_runs  # numpy: off the first frame

    names = [Path(p).name for p in str(version["path"]).split(";")]
    when = time.strftime("%Y-%m-%d", time.localtime(version["created_at"]))
    return (", ".join(names), version["fingerprint"][:10], f"{version['samples']:,}", f"{version['tokens']:,}",
            f"{version.get('invalid') or 0:,}", when, short_runs(version["runs"], shown=2))


class DatasetVersions(Vertical):
    """The versions table and the runs of the highlighted version."""

    def __init__(self) -> None:
        super().__init__(id="data-versions")
        self.versions: dict[str, dict[str, Any]] = {}

    def compose(self) -> ComposeResult:
        """A title, the table and the runs line."""
        yield Static("Dataset versions (esc / v: back to the report)", classes="section-title")
        yield FilterTable("dataset", "version", "samples", "tokens", "invalid", "recorded", "runs",
                          id="versions-table")
        yield Static("", id="versions-runs", classes="muted")

    def show(self, versions: list[dict[str, Any]]) -> None:
        """Fill the table."""
        self.versions = {v["fingerprint"]: v for v in versions}
        self.query_one(FilterTable).set_rows([(v["fingerprint"], version_cells(v)) for v in versions])
        self.show_runs()
        if not versions:
            self.query_one("#versions-runs", Static).update("No version recorded yet: a run records the "
                                                            "version of the data it trains on.")

    def show_runs(self) -> None:
        """Every run of the highlighted version."""
        key = self.query_one(FilterTable).selected_key
        version = self.versions.get(key or "")
        if version is not None:
            runs = ", ".join(version["runs"]) or "no run in the history used it"
            self.query_one("#versions-runs", Static).update(f"{version['path']}\nruns: {runs}")

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        """Follow the cursor."""
        event.stop()
        self.show_runs()
