"""The datasets screen: data files under data/ and the workspace, each one's report and preview.

Keys: enter train on the file (it becomes the dataset of the next run and is checked), e use it
as evaluation data, o open any path, t go to training with it. The report (validation with the
offending ``file:line``, stats, a preview rendered as conversations) is built off the UI thread.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from textual import work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Static

from llamahome_tui.messages import TaskDone
from llamahome_tui.screens.base import ConsoleScreen
from llamahome_tui.screens.dialogs import PromptScreen
from llamahome_tui.widgets.filter_table import FilterTable

DATA_SUFFIXES = (".jsonl", ".json", ".csv", ".tsv", ".txt", ".parquet")
SKIP_DIRS = {"runs", "models", "cache", "checkpoints", "__pycache__"}


def data_files(roots: Iterable[Path]) -> Iterator[tuple[Path, str]]:
    """``(path, shown name)`` of every data file under the roots (run outputs and caches skipped)."""
    seen: set[Path] = set()
    for root in roots:
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*")):
            parts = path.relative_to(root).parts
            if any(p in SKIP_DIRS or p.startswith(".") for p in parts[:-1]) or parts[-1].startswith("."):
                continue
            if path.suffix in DATA_SUFFIXES and path.is_file() and path.resolve() not in seen:
                seen.add(path.resolve())
                yield path, f"{root.name}/{path.relative_to(root).as_posix()}"


def human_size(size: int) -> str:
    """``12.3 KB``-style size."""
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


class DatasetsScreen(ConsoleScreen):
    """Browse data files; validate, inspect and choose one for training."""

    MODE = "datasets"
    HELP = "Data files under data/ and the workspace. The highlighted file's report shows below."
    BINDINGS = [
        Binding("enter", "choose", "Train on it"),
        Binding("e", "choose_eval", "Eval data"),
        Binding("t", "train", "To training"),
        Binding("o", "open", "Open path"),
        Binding("slash", "filter", "Filter"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.paths: dict[str, Path] = {}

    def compose_body(self) -> ComposeResult:
        """The file table and the report of the highlighted file."""
        yield FilterTable("file", "size", "", id="data-files")
        with VerticalScroll(id="data-report"):
            yield Static("Highlight a file to see its report.", id="report-text", classes="muted")

    def on_mount(self) -> None:
        """List the files."""
        self.refresh_files()

    def commands(self) -> Iterable[SystemCommand]:
        """Palette entries for this screen."""
        yield SystemCommand("Open a data file", "any path: validate, preview, train on it", self.action_open)

    def refresh_files(self, extra: Path | None = None) -> None:
        """Fill the table (plus a file opened by path) and mark the chosen ones."""
        found = list(data_files(self.state.data_roots))
        for path in (extra, self.state.dataset, self.state.eval_data):
            if path is not None and path.resolve() not in {p.resolve() for p, _ in found}:
                found.append((path, path.name))
        self.paths = {name: path for path, name in found}
        rows = [(name, (name, human_size(path.stat().st_size), self.role_of(path))) for path, name in found]
        self.query_one(FilterTable).set_rows(rows)

    def role_of(self, path: Path) -> str:
        """``train`` / ``eval`` when the file is the chosen dataset or evaluation data."""
        resolved = path.resolve()
        if self.state.dataset and self.state.dataset.resolve() == resolved:
            return "train"
        return "eval" if self.state.eval_data and self.state.eval_data.resolve() == resolved else ""

    @property
    def selected(self) -> tuple[str, Path] | None:
        """The highlighted file's shown name and path."""
        name = self.query_one(FilterTable).selected_key
        return (name, self.paths[name]) if name in self.paths else None

    def on_data_table_row_highlighted(self) -> None:
        """Build the report of the newly highlighted file."""
        chosen = self.selected
        if chosen is not None:
            self.query_one("#report-text", Static).update(f"checking {chosen[0]}…")
            self.load_report(*chosen)

    @work(thread=True, exclusive=True, group="report")
    def load_report(self, name: str, path: Path) -> None:
        """Validate the file and compute its stats off the UI thread."""
        from llamahome_tui.widgets.data_report import build_report  # numpy: kept off the first frame

        self.post_message(TaskDone("report", result=(name, build_report(path, name))))

    def on_task_done(self, message: TaskDone) -> None:
        """Show a finished report if it is still the highlighted file's."""
        chosen = self.selected
        if message.task == "report" and chosen and message.result[0] == chosen[0]:
            self.query_one("#report-text", Static).update(message.result[1])

    def on_data_table_row_selected(self) -> None:
        """Enter chooses the file for training."""
        self.action_choose()

    def action_choose(self) -> None:
        """Make the highlighted file the next run's training data."""
        chosen = self.selected
        if chosen:
            self.state.dataset = chosen[1]
            self.notify(f"training data: {chosen[0]} (3: Training, n starts a run)")
            self.refresh_files()

    def action_choose_eval(self) -> None:
        """Make the highlighted file the next run's evaluation data."""
        chosen = self.selected
        if chosen:
            self.state.eval_data = chosen[1]
            self.notify(f"evaluation data: {chosen[0]}")
            self.refresh_files()

    def action_train(self) -> None:
        """Choose the highlighted file and go to the training screen."""
        self.action_choose()
        self.console.action_mode("training")

    def action_open(self) -> None:
        """Ask for a path and show that file."""
        def opened(answer: str | None) -> None:
            if not answer:
                return
            path = Path(answer).expanduser()
            if not path.is_file():
                self.notify(f"{answer}: no such file", severity="error")
                return
            self.refresh_files(extra=path.resolve())
            table = self.query_one(FilterTable)
            key = next((k for k, p in self.paths.items() if p.resolve() == path.resolve()), None)
            if key in table.keys:
                table.move_cursor(row=table.keys.index(key))

        self.app.push_screen(PromptScreen("Open a data file", placeholder="path/to/data.jsonl"), opened)
