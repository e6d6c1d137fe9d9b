"""The datasets screen: data files under data/ and the workspace, each one's report and preview.

Keys: enter train on the file (it becomes the dataset of the next run and is checked), e use it
as evaluation data, o open any path, t go to training with it, v the dataset versions runs
recorded (and which runs used each). The report (verdict, stats, this file's versions, a preview
rendered as conversations) is built off the UI thread; a file with issues lists them in a table
under the files, where Enter (or ``r``; ``j`` / ``k`` move in every table) shows the offending
record in its file.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text
from textual import work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.timer import Timer
from textual.widget import MountError
from textual.widgets import Static

from llamahome_tui.messages import TaskDone
from llamahome_tui.paths import shown_path
from llamahome_tui.place import PLACE_FILE
from llamahome_tui.screens.base import ConsoleScreen
from llamahome_tui.widgets.filter_table import FilterTable

if TYPE_CHECKING:
    from engine.api import Issue
    from llamahome_tui.widgets.data_report import FileReport

DATA_SUFFIXES = (".jsonl", ".json", ".csv", ".tsv", ".txt", ".parquet", ".arrow", ".feather")
COMPRESSED = (".gz", ".zst")
SKIP_DIRS = {"runs", "models", "cache", "checkpoints", "__pycache__"}
WORKSPACE_DB = "llamahome.db"
"""A folder holding this is a workspace: its ``console.json`` is the console's state, not data."""
REPORT_DELAY_S = 0.15
"""The cursor rests this long on a file before its report is built."""


def is_data_file(path: Path) -> bool:
    """A file with a data extension, also compressed (``chat.jsonl.gz``)."""
    inner = path.with_suffix("") if path.suffix in COMPRESSED else path
    return inner.suffix in DATA_SUFFIXES and path.is_file()


def is_saved_dataset(path: Path) -> bool:
    """A ``datasets`` ``save_to_disk`` folder (a Dataset or a DatasetDict), read as one dataset."""
    return path.is_dir() and ((path / "state.json").is_file() or (path / "dataset_dict.json").is_file())


def data_files(roots: Iterable[Path]) -> Iterator[tuple[Path, str]]:
    """``(path, shown name)`` of every data file under the roots; a ``save_to_disk`` folder is one
    entry, its files are not listed.

    Skipped: run outputs and caches, hidden files, saved model folders (their ``config.json`` and
    tokenizer files are not data) and a workspace's own state (``console.json`` beside its
    ``llamahome.db``). The shown name is a valid path (``shown_path``), so it can be typed into
    any path prompt.
    """
    seen: set[Path] = set()
    for root in roots:
        for folder, dirs, files in os.walk(root):
            dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.startswith("."))
            if is_model_folder(files):
                dirs[:] = []
                continue
            saved = [d for d in dirs if is_saved_dataset(Path(folder) / d)]
            dirs[:] = [d for d in dirs if d not in saved]  # a save_to_disk folder is one entry
            for path in [Path(folder) / d for d in saved] + [Path(folder) / n for n in sorted(files)]:
                name = path.name
                if name.startswith(".") or path.resolve() in seen:
                    continue
                if not (path.is_dir() or is_data_file(path)):
                    continue
                if name == PLACE_FILE and WORKSPACE_DB in files:
                    continue
                seen.add(path.resolve())
                yield path, shown_path(path)


def disk_size(path: Path) -> int:
    """Bytes of a file, or of the files under a folder."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


def is_model_folder(files: list[str]) -> bool:
    """Whether a folder's files are a saved model or adapter (``save_pretrained``), not data."""
    names = set(files)
    configs = {"config.json", "adapter_config.json"} & names
    return bool(configs) and ("tokenizer.json" in names or any(n.endswith(".safetensors") for n in names))


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
        Binding("e", "choose_eval", "Eval"),
        Binding("t", "train", "Training"),
        Binding("o", "open", "Open"),
        Binding("v", "versions", "Versions"),
        Binding("r", "jump", "Show record", show=False),
        Binding("escape", "close", "Back", show=False),
        Binding("slash", "filter", "Filter"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.paths: dict[str, Path] = {}
        self.issues: list[Issue] = []
        """The issues of the file in the report (the issue table's rows, by index)."""
        self.issues_of = ""
        """The shown name of the file those issues belong to."""
        self.report_timer: Timer | None = None

    def compose_body(self) -> ComposeResult:
        """The file table, its issues (when it has some), the report or the versions panel."""
        yield FilterTable("file", "size", "", id="data-files", enter="Train")
        with VerticalScroll(id="data-report"):
            yield Static("Highlight a file to see its report.", id="report-text", classes="muted")

    def on_mount(self) -> None:
        """List the files, the chosen dataset highlighted."""
        table = self.query_one("#data-files", FilterTable)
        if self.state.dataset is not None:
            table.wanted_key = shown_path(self.state.dataset)
        self.refresh_files()

    def commands(self) -> Iterable[SystemCommand]:
        """Palette entries for this screen."""
        yield SystemCommand("Open a data file", "any path: validate, preview, train on it", self.action_open)
        yield SystemCommand("Dataset versions", "every recorded version and the runs that used it",
                            self.action_versions)

    def refresh_files(self, extra: Path | None = None) -> None:
        """Fill the table (plus a file opened by path) and mark the chosen ones."""
        found = list(data_files(self.state.data_roots))
        for path in (extra, self.state.dataset, self.state.eval_data):
            if path is not None and path.resolve() not in {p.resolve() for p, _ in found}:
                found.append((path, shown_path(path)))
        self.paths = {name: path for path, name in found}
        rows = [(name, (name, human_size(disk_size(path)), self.role_of(path))) for path, name in found]
        self.query_one("#data-files", FilterTable).set_rows(rows)

    def role_of(self, path: Path) -> str:
        """``train`` / ``eval`` when the file is the chosen dataset or evaluation data."""
        resolved = path.resolve()
        if self.state.dataset and self.state.dataset.resolve() == resolved:
            return "train"
        return "eval" if self.state.eval_data and self.state.eval_data.resolve() == resolved else ""

    @property
    def selected(self) -> tuple[str, Path] | None:
        """The highlighted file's shown name and path."""
        name = self.query_one("#data-files", FilterTable).selected_key
        return (name, self.paths[name]) if name in self.paths else None

    def on_data_table_row_highlighted(self, event: FilterTable.RowHighlighted) -> None:
        """Build the report of the newly highlighted file, once the cursor rests on it.

        The short wait also keeps the report's work (numpy, the statistics) out of the first
        frame, and skips the files the cursor only passes over.
        """
        chosen = self.selected
        if event.data_table.id == "data-files" and chosen is not None:
            self.query_one("#report-text", Static).update(f"checking {chosen[0]}…")
            if self.report_timer is not None:
                self.report_timer.stop()
            self.report_timer = self.set_timer(REPORT_DELAY_S, self.report_highlighted)

    def report_highlighted(self) -> None:
        """Start the report of the file under the cursor."""
        self.report_timer = None
        chosen = self.selected
        if chosen is not None:
            self.load_report(*chosen)

    @work(thread=True, exclusive=True, group="report")
    def load_report(self, name: str, path: Path) -> None:
        """Validate the file, compute its stats and read its versions off the UI thread."""
        from engine.api import ConfigError, load_config
        from llamahome_tui.widgets.data_report import build_report  # numpy: kept off the first frame

        config_file = self.state.config_file if self.state.config_file.is_file() else None
        try:
            keep = load_config(config_file, self.state.overrides).data.duplicates == "keep"
        except ConfigError:
            keep = True  # the default; the config screen shows the error
        versions = self.engine.datasets(path)
        self.post_message(TaskDone("report", result=(name, build_report(path, name, keep, versions))))

    async def on_task_done(self, message: TaskDone) -> None:
        """Show a finished report if it is still the highlighted file's."""
        chosen = self.selected
        if message.task == "report" and chosen and message.result[0] == chosen[0]:
            if message.result[1].issues and not self.query("#data-issues"):
                try:  # built for the first file with issues
                    await self.mount(FilterTable("record", "problem", id="data-issues", enter="Show record"),
                                     after=self.query_one("#data-files"))
                except MountError:
                    return  # the console is closing
            self.show_report(chosen[0], chosen[1], message.result[1])

    def show_report(self, name: str, path: Path, report: FileReport) -> None:
        """The report text, and the issue table filled (shown only when there are issues)."""
        self.query_one("#report-text", Static).update(report.text)
        self.issues, self.issues_of = report.issues, name
        rows = []
        for index, issue in enumerate(report.issues):
            kept = report.kept_duplicates and issue.code == "duplicate"
            problem = f"{issue.field}: {issue.reason}" if issue.field else issue.reason
            rows.append((str(index), (issue.where.replace(str(path), name),
                                      Text(f"{issue.code} (kept) " if kept else f"{issue.code}: {problem}",
                                           style="yellow" if kept else "red"))))
        tables = self.query("#data-issues").results(FilterTable)
        for table in tables:
            table.set_rows(rows)
            table.display = len(report.issues) > report.kept_duplicates  # kept duplicates alone: r shows one

    def on_data_table_row_selected(self, event: FilterTable.RowSelected) -> None:
        """Enter chooses a file for training, or shows an issue's record."""
        if event.data_table.id == "data-files":
            self.action_choose()
        elif event.data_table.id == "data-issues":
            self.action_jump()

    def action_jump(self) -> None:
        """Show the highlighted issue's record in its file (the first issue's, from the file table)."""
        if not self.issues:
            self.notify("no issue to show in this file", severity="warning")
            return
        table = self.query_one("#data-issues", FilterTable)
        key = table.selected_key if self.focused is table and table.display else None
        issue = self.issues[int(key) if key is not None else 0]
        chosen = self.selected
        shown = issue.where.replace(str(chosen[1]), self.issues_of) if chosen else issue.where
        from llamahome_tui.screens.record import RecordScreen  # dialogs and panels load on first use

        self.app.push_screen(RecordScreen(issue, shown))

    async def action_versions(self) -> None:
        """Show (or hide) every dataset version and the runs that used it (the panel is made on first use)."""
        from llamahome_tui.widgets.dataset_versions import DatasetVersions

        panels = self.query("#data-versions").results(DatasetVersions)
        panel = next(iter(panels), None)
        if panel is None:
            panel = DatasetVersions()
            await self.mount(panel, after=self.query_one("#data-report"))
        elif panel.display:
            self.action_close()
            return
        panel.show(self.engine.datasets())
        panel.display = True
        self.query_one("#data-report").display = False
        panel.query_one(FilterTable).focus()

    def action_close(self) -> None:
        """Esc: close the versions panel, else go back like everywhere else."""
        panel = next(iter(self.query("#data-versions")), None)
        if panel is None or not panel.display:
            self.console.action_back()
            return
        panel.display = False
        self.query_one("#data-report").display = True
        self.query_one("#data-files", FilterTable).focus()

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
        """Ask for a path and show that file (or folder)."""
        def opened(answer: str | None) -> None:
            if not answer:
                return
            path = Path(answer).expanduser()
            if not path.exists():  # a file, or a folder of them (save_to_disk, data files)
                self.notify(f"{answer}: no such file or folder", severity="error")
                return
            self.refresh_files(extra=path.resolve())
            table = self.query_one("#data-files", FilterTable)
            key = next((k for k, p in self.paths.items() if p.resolve() == path.resolve()), None)
            if key in table.keys:
                table.move_cursor(row=table.keys.index(key))

        from llamahome_tui.screens.dialogs import PromptScreen

        self.app.push_screen(PromptScreen("Open a data file", placeholder="path/to/data.jsonl"), opened)
