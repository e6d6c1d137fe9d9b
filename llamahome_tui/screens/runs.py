"""The runs screen: the run history from SQLite; attach, compare two loss curves, delete.

Keys: enter/a attach (opens the training screen on the run, live or ended), m mark for compare,
c compare the two marked runs (Esc closes the comparison), d delete (confirmed), r refresh. The
table refreshes itself every two seconds so a live run's status and time move without a key.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Static

from engine.api import LIVE_STATUSES, RunRecord, UserError, group_label
from llamahome_tui.screens.base import ConsoleScreen
from llamahome_tui.screens.dialogs import ConfirmScreen
from llamahome_tui.screens.log_view import RunLogScreen
from llamahome_tui.screens.samples import SamplesScreen
from llamahome_tui.widgets.filter_table import ELASTIC, FilterTable
from llamahome_tui.widgets.line_chart import LineChart, Series
from llamahome_tui.widgets.run_detail import detail_text
from llamahome_tui.widgets.run_feed import format_duration

STATUS_STYLE = {"running": "bold green", "pending": "yellow", "queued": "yellow", "paused": "yellow",
                "finished": "green", "stopped": "cyan", "failed": "bold red", "crashed": "bold red"}
COMPARE_COLORS = ("cyan", "magenta")


def status_text(status: str) -> Text:
    """A run status, coloured."""
    return Text(status, style=STATUS_STYLE.get(status, ""))


def best_eval(run: RunRecord, checkpoint_losses: Iterable[float | None]) -> float | None:
    """The lowest eval loss a run reached: its final one or any checkpoint's."""
    losses = [loss for loss in checkpoint_losses if loss is not None]
    final = (run.final_metrics or {}).get("eval_loss")
    if isinstance(final, int | float):
        losses.append(float(final))
    return min(losses) if losses else None


def run_cells(run: RunRecord, best: float | None, now: float) -> tuple[str | Text, ...]:
    """A run's row: id, kind, status, dataset, method, best eval loss, duration (so far, when live)."""
    method = str(run.config.get("training", {}).get("method", "")) if run.kind == "train" else ""
    if method and (group := group_label(run.runtime)):
        method = f"{method} ({group})"
    end = run.ended_at if run.ended_at is not None else (now if run.status in LIVE_STATUSES else None)
    duration = format_duration(end - run.started_at) if run.started_at and end else "-"
    return (run.id, run.kind, status_text(run.status), Path(run.dataset_path).name if run.dataset_path else "-",
            method or "-", f"{best:.4f}" if best is not None else "-", duration)


class RunsScreen(ConsoleScreen):
    """The run history: attach, compare, delete."""

    MODE = "runs"
    HELP = "Every run in this workspace, newest first. Mark two with m, then c compares their loss."
    BINDINGS = [
        Binding("a", "attach", "Attach", show=False),
        Binding("escape", "close", "Close compare", show=False),
        Binding("m", "mark", "Mark"),
        Binding("c", "compare", "Compare"),
        Binding("d", "delete", "Delete"),
        Binding("l", "log", "Log"),
        Binding("S", "samples", "Samples history", show=False),
        Binding("r", "refresh", "Refresh", show=False),  # it refreshes itself every 2 s
        Binding("slash", "filter", "Filter"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.marked: list[str] = []
        self.best_cache: dict[tuple[str, str], float | None] = {}

    def compose_body(self) -> ComposeResult:
        """The history table and the (hidden) comparison chart."""
        yield FilterTable("", "run", "kind", "status", ("dataset", ELASTIC), "method", "best eval", "time",
                          id="runs-table", enter="Attach")
        yield Static(id="run-detail")
        with Vertical(id="compare"):
            yield Static(id="compare-legend")
            yield LineChart(id="compare-chart", with_legend=False)

    def on_mount(self) -> None:
        """Fill the table and keep it fresh."""
        self.action_refresh()
        self.set_interval(2.0, self.action_refresh)

    def on_screen_resume(self) -> None:
        """Refresh when the screen comes back into view."""
        self.action_refresh()

    def commands(self) -> Iterable[SystemCommand]:
        """Palette entries for this screen."""
        yield SystemCommand("Compare marked runs", "loss curves of the two marked runs", self.action_compare)
        yield SystemCommand("Refresh runs", "read the run history again", self.action_refresh)
        yield SystemCommand("Show the run's samples", "every sample answer, base and fine-tuned side by side",
                            self.action_samples)
        yield SystemCommand("Show the run's log", "the highlighted run's lines and warnings", self.action_log)

    def action_refresh(self) -> None:
        """Read the history again."""
        now = self.state.clock()
        rows = []
        for run in self.engine.list_runs():
            best = self.best_of(run)
            mark = "*" if run.id in self.marked else ""
            rows.append((run.id, (mark, *run_cells(run, best, now))))
        self.query_one(FilterTable).set_rows(rows)
        self.draw_detail()

    def on_data_table_row_highlighted(self) -> None:
        """Another run highlighted: show its details."""
        self.draw_detail()

    def draw_detail(self) -> None:
        """The highlighted run's details in the pane under the table."""
        run_id = self.selected
        try:
            detail = self.engine.run_detail(run_id) if run_id else None
        except UserError:
            detail = None
        self.query_one("#run-detail", Static).update(detail_text(detail, self.state.clock()))

    def best_of(self, run: RunRecord) -> float | None:
        """A run's best eval loss; read once for ended runs (the table refreshes every 2 s)."""
        key = (run.id, run.status)
        if key not in self.best_cache:
            losses = (c.eval_loss for c in self.engine.checkpoints(run.id))
            best = best_eval(run, losses)
            if run.status in LIVE_STATUSES:
                return best
            self.best_cache[key] = best
        return self.best_cache[key]

    @property
    def selected(self) -> str | None:
        """The run under the cursor."""
        return self.query_one(FilterTable).selected_key

    def on_data_table_row_selected(self) -> None:
        """Enter on a row attaches to it."""
        self.action_attach()

    def action_attach(self) -> None:
        """Open the training screen following the selected run."""
        run_id = self.selected
        if run_id is None:
            return
        self.state.run_id = run_id
        self.state.watched.add(run_id)
        self.console.action_mode("training")

    def action_log(self) -> None:
        """Open the log view of the highlighted run."""
        run_id = self.selected
        if run_id is not None:
            self.app.push_screen(RunLogScreen(run_id, self.MODE))

    def action_samples(self) -> None:
        """Open the samples history of the highlighted run."""
        run_id = self.selected
        if run_id is not None:
            self.app.push_screen(SamplesScreen(run_id, self.MODE))

    def action_mark(self) -> None:
        """Mark (or unmark) the selected run for comparison; two at most."""
        run_id = self.selected
        if run_id is None:
            return
        if run_id in self.marked:
            self.marked.remove(run_id)
        else:
            self.marked = [*self.marked[-1:], run_id]
        self.action_refresh()

    def action_compare(self) -> None:
        """Draw the loss curves of the two marked runs over each other."""
        if len(self.marked) != 2:
            self.notify("mark two runs with m first", severity="warning")
            return
        series, legend = [], Text()
        for run_id, color in zip(self.marked, COMPARE_COLORS, strict=True):
            metrics = self.engine.metrics(run_id)
            rows = [row for row in metrics if row["loss"] is not None]
            losses = [row["loss"] for row in rows]
            series.append(Series(run_id, losses, color, [row["step"] for row in rows]))
            evals = [row for row in metrics if row["eval_loss"] is not None]  # its evaluations, as points
            series.append(Series(f"{run_id} eval", [r["eval_loss"] for r in evals], color,
                                 [r["step"] for r in evals], markers=True))
            last = f"{losses[-1]:.4f}" if losses else "-"
            legend.append(f"■ {run_id} {last}  ", style=color)
        legend.append("esc closes", style="dim")
        self.query_one("#compare-legend", Static).update(legend)
        self.query_one("#compare", Vertical).add_class("shown")
        self.query_one(LineChart).plot(series)

    def action_close(self) -> None:
        """Esc: close the comparison when it is open, else go back like everywhere else."""
        compare = self.query_one("#compare", Vertical)
        if compare.has_class("shown"):
            compare.remove_class("shown")
        else:
            self.console.action_back()

    def action_delete(self) -> None:
        """Delete the selected run and its files, after a confirmation."""
        run_id = self.selected
        if run_id is None:
            return

        def answer(yes: bool | None) -> None:
            if not yes:
                return
            try:
                self.engine.delete_run(run_id)
            except UserError as exc:
                self.notify(str(exc), severity="error")
                return
            self.marked = [m for m in self.marked if m != run_id]
            self.notify(f"deleted run {run_id}")
            self.action_refresh()

        self.app.push_screen(ConfirmScreen(f"Delete run {run_id} and its files?"), answer)
