"""The checkpoints screen: a run's checkpoints (step, eval loss, best, size); resume, evaluate, delete.

The top table lists training runs; the bottom one the highlighted run's checkpoints. Keys (on a
checkpoint): r resume from it (a new run, followed on the training screen), e evaluate it on a
dataset (asked for; the result shows here and is stored as an eval run), d delete (confirmed).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from textual import work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.widgets import Static

from engine.config import Config, config_from_dict, load_config
from engine.errors import UserError
from engine.store import CheckpointRecord
from llamahome_tui.messages import TaskDone
from llamahome_tui.screens.base import ConsoleScreen
from llamahome_tui.screens.datasets import human_size
from llamahome_tui.screens.dialogs import ConfirmScreen, PromptScreen
from llamahome_tui.screens.runs import status_text
from llamahome_tui.widgets.filter_table import FilterTable


def checkpoint_cells(ckpt: CheckpointRecord) -> tuple[str, ...]:
    """A checkpoint's row: step, eval loss, best, size, folder name."""
    return (f"{ckpt.step:,}", f"{ckpt.eval_loss:.4f}" if ckpt.eval_loss is not None else "-",
            "★" if ckpt.is_best else "", human_size(ckpt.size_bytes) if ckpt.size_bytes else "-",
            Path(ckpt.path).name)


class CheckpointsScreen(ConsoleScreen):
    """Checkpoints per run: resume from one, evaluate one, delete one."""

    MODE = "checkpoints"
    HELP = "Training runs on top, the highlighted run's checkpoints below (tab switches table)."
    BINDINGS = [
        Binding("r", "resume", "Resume"),
        Binding("e", "evaluate", "Evaluate"),
        Binding("d", "delete", "Delete"),
        Binding("slash", "filter", "Filter"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.paths: dict[str, str] = {}

    def compose_body(self) -> ComposeResult:
        """Runs, their checkpoints and a status line."""
        yield FilterTable("run", "status", "dataset", id="ckpt-runs")
        yield FilterTable("step", "eval loss", "best", "size", "folder", id="ckpt-table")
        yield Static("", id="ckpt-status")

    def on_mount(self) -> None:
        """Fill the run table."""
        self.refresh_runs()

    def on_screen_resume(self) -> None:
        """Refresh when the screen comes back into view."""
        self.refresh_runs()

    def commands(self) -> Iterable[SystemCommand]:
        """Palette entries for this screen."""
        yield SystemCommand("Resume from checkpoint", "continue training from the highlighted one", self.action_resume)
        yield SystemCommand("Evaluate checkpoint", "loss and perplexity on a dataset", self.action_evaluate)

    def refresh_runs(self) -> None:
        """Training runs, newest first; the state's run first highlighted."""
        runs = self.engine.list_runs(kind="train")
        table = self.query_one("#ckpt-runs", FilterTable)
        table.set_rows([(r.id, (r.id, status_text(r.status), Path(r.dataset_path).name or "-")) for r in runs])
        if self.state.run_id in table.keys and table.selected_key != self.state.run_id:
            table.move_cursor(row=table.keys.index(self.state.run_id))
        self.refresh_checkpoints()

    def refresh_checkpoints(self) -> None:
        """The highlighted run's checkpoints."""
        run_id = self.query_one("#ckpt-runs", FilterTable).selected_key
        checkpoints = self.engine.checkpoints(run_id) if run_id else []
        self.paths = {c.path: c.path for c in checkpoints}
        self.query_one("#ckpt-table", FilterTable).set_rows([(c.path, checkpoint_cells(c)) for c in checkpoints])

    def on_data_table_row_highlighted(self, event: FilterTable.RowHighlighted) -> None:
        """A new run highlighted: show its checkpoints."""
        if event.data_table.id == "ckpt-runs":
            self.refresh_checkpoints()

    @property
    def selected(self) -> Path | None:
        """The highlighted checkpoint folder."""
        key = self.query_one("#ckpt-table", FilterTable).selected_key
        if key is None:
            self.notify("no checkpoint highlighted", severity="warning")
        return Path(key) if key else None

    def action_resume(self) -> None:
        """Start a run continuing from the highlighted checkpoint and follow it."""
        path = self.selected
        if path is not None:
            self.run_task("resume", str(path))

    def action_evaluate(self) -> None:
        """Ask for a dataset, then evaluate the highlighted checkpoint on it."""
        path = self.selected
        if path is None:
            return
        default = str(self.state.eval_data or self.state.dataset or "")

        def chosen(answer: str | None) -> None:
            if answer:
                self.run_task("evaluate", str(path), answer)

        self.app.push_screen(PromptScreen(f"Evaluate {path.name} on which data file?", default), chosen)

    def run_task(self, task: str, target: str, data: str = "") -> None:
        """Start a resume or evaluation of ``target`` for the highlighted run."""
        self.status(f"{task}: starting…")
        self.start_task(task, target, data, self.query_one("#ckpt-runs", FilterTable).selected_key)

    @work(thread=True, group="checkpoint-task")
    def start_task(self, task: str, target: str, data: str, run_id: str | None) -> None:
        """Start a resume or evaluation run off the UI thread."""
        try:
            if task == "resume":
                new_id = self.engine.resume_run(target)
            else:
                config = config_of(self.engine.get_run(run_id).config if run_id else None)
                new_id = self.engine.evaluate(Path(target), Path(data).expanduser().resolve(), config)
        except UserError as exc:
            self.post_message(TaskDone(task, error=str(exc)))
            return
        self.post_message(TaskDone(task, result=new_id))

    def status(self, text: str) -> None:
        """The status line under the tables."""
        self.query_one("#ckpt-status", Static).update(text)

    def on_task_done(self, message: TaskDone) -> None:
        """Follow a resumed run; watch an evaluation until its result is in."""
        if message.error:
            self.status(f"[red]{message.task} failed:[/red] {message.error}")
            return
        run_id = str(message.result)
        self.state.watched.add(run_id)
        if message.task == "resume":
            self.state.run_id = run_id
            self.console.action_mode("training")
        elif message.task == "evaluate":
            self.status(f"evaluating: run {run_id}…")
            self.wait_for_eval(run_id)
        elif message.task == "eval-result":
            self.status(str(message.result))

    @work(group="eval-wait")
    async def wait_for_eval(self, run_id: str) -> None:
        """Follow the evaluation run to its end and show its result."""
        async for _ in self.engine.attach(run_id):
            pass
        run = self.engine.get_run(run_id)
        metrics = run.final_metrics or {}
        shown = "  ".join(f"{k} {v:.4f}" for k, v in sorted(metrics.items()) if isinstance(v, float))
        result = f"eval run {run_id} {run.status}: {shown or run.error or 'no metrics'}"
        self.post_message(TaskDone("eval-result", result=result))

    def action_delete(self) -> None:
        """Delete the highlighted checkpoint folder after a confirmation."""
        path = self.selected
        if path is None:
            return

        def answer(yes: bool | None) -> None:
            if not yes:
                return
            try:
                self.engine.delete_checkpoint(path)
            except UserError as exc:
                self.notify(str(exc), severity="error")
                return
            self.notify(f"deleted {path.name}")
            self.refresh_checkpoints()

        self.app.push_screen(ConfirmScreen(f"Delete checkpoint {path.name} and its files?"), answer)


def config_of(stored: dict[str, Any] | None) -> Config:
    """The Config a run was trained with (an evaluation uses the same data settings)."""
    if not stored:
        return load_config(None)
    return config_from_dict({k: v for k, v in stored.items() if k != "job"})
