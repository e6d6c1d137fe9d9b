"""The checkpoints screen: a run's checkpoints (step, eval loss, best, size); resume, evaluate, export.

The top table lists training runs; the next one the highlighted run's checkpoints, then where its
checkpoints were exported or merged to (full paths: ``y`` copies the highlighted one). Keys (on a
checkpoint): r resume from it (a new run, followed on the training screen), e evaluate it on a
dataset (asked for; the result shows here and is stored as an eval run), x export it as an
adapter and M merge it into its base (an ``export`` run, like ``train-export``; the output folder
is asked for, its progress and result show here), d delete (confirmed).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rich.markup import escape
from textual import work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.widgets import Static

from engine.api import CheckpointRecord, Config, RunRecord, UserError, config_from_dict, default_output, load_config
from engine.events import Log, Stage
from llamahome_tui.messages import TaskDone
from llamahome_tui.paths import shown_path
from llamahome_tui.screens.base import ConsoleScreen
from llamahome_tui.screens.datasets import human_size
from llamahome_tui.screens.dialogs import ConfirmScreen, PromptScreen
from llamahome_tui.screens.resume_dialog import ResumeChoice, ResumeScreen
from llamahome_tui.screens.runs import status_text
from llamahome_tui.widgets.filter_table import ELASTIC, FilterTable


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
        Binding("x", "export(False)", "Export"),
        Binding("M", "export(True)", "Merge"),
        Binding("d", "delete", "Delete"),
        Binding("y", "copy_path", "Copy path", show=False),
        Binding("slash", "filter", "Filter"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.paths: dict[str, str] = {}
        self.followed: str | None = None
        """The state's run as last brought into view: the cursor moves to it only when it changes
        (not back from where the user moved it each time the screen resumes, as after a dialog)."""
        self.checkpoints_of: str | None = None
        """The run whose checkpoints the table lists."""

    def compose_body(self) -> ComposeResult:
        """Runs, their checkpoints and a status line."""
        yield FilterTable("run", "status", "dataset", id="ckpt-runs")
        yield FilterTable("step", "eval loss", "best", "size", "folder", id="ckpt-table")
        exports = FilterTable("export", "from", "status", ("path (y copies)", ELASTIC), id="ckpt-exports",
                              keep_end=True)
        exports.display = False
        yield exports
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
        yield SystemCommand("Export checkpoint", "the adapter (or model) to a folder",
                            lambda: self.action_export(False))
        yield SystemCommand("Merge checkpoint", "the adapter folded into its base: a standalone model",
                            lambda: self.action_export(True))

    def refresh_runs(self) -> None:
        """Training runs, newest first; the state's run first highlighted."""
        runs = self.engine.list_runs(kind="train")
        table = self.query_one("#ckpt-runs", FilterTable)
        table.set_rows([(r.id, (r.id, status_text(r.status), Path(r.dataset_path).name or "-")) for r in runs])
        if self.state.run_id != self.followed and self.state.run_id in table.keys:
            self.followed = self.state.run_id
            table.move_cursor(row=table.keys.index(self.state.run_id))
        self.refresh_checkpoints()

    def refresh_checkpoints(self) -> None:
        """The highlighted run's checkpoints."""
        run_id = self.query_one("#ckpt-runs", FilterTable).selected_key
        checkpoints = self.engine.checkpoints(run_id) if run_id else []
        self.paths = {c.path: c.path for c in checkpoints}
        listed = self.query_one("#ckpt-table", FilterTable)
        if run_id != self.checkpoints_of and checkpoints:  # another run: its newest checkpoint, where it stopped
            listed.wanted_key = max(checkpoints, key=lambda c: c.step).path
        self.checkpoints_of = run_id
        listed.set_rows([(c.path, checkpoint_cells(c)) for c in checkpoints])
        exports = self.engine.exports(run_id) if run_id else []
        table = self.query_one("#ckpt-exports", FilterTable)
        table.set_rows([(e["path"], (e["kind"], e["source"], e["status"], shown_path(Path(e["path"]))))
                        for e in exports])
        table.display = bool(exports)

    def action_copy_path(self) -> None:
        """Copy the highlighted export's (or checkpoint's) full path to the clipboard."""
        focused = self.focused
        table = focused if isinstance(focused, FilterTable) and focused.id != "ckpt-runs" else \
            self.query_one("#ckpt-table", FilterTable)
        path = table.selected_key
        if path is None:
            self.notify("nothing highlighted to copy", severity="warning")
            return
        self.app.copy_to_clipboard(path)
        self.notify(f"copied {path}")

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

    def named(self, path: Path) -> str:
        """``step-000020 of run ID``: a dialog says whose checkpoint it acts on."""
        run_id = self.query_one("#ckpt-runs", FilterTable).selected_key
        return f"{path.name} of run {run_id}" if run_id else path.name

    def action_resume(self) -> None:
        """Show what a resume from the highlighted checkpoint would do; start it as changed there."""
        path = self.selected
        if path is None:
            return
        try:
            plan = self.engine.resume_plan(str(path))
        except UserError as exc:
            self.status(f"[red]resume:[/red] {escape(str(exc))}")
            return

        def chosen(choice: ResumeChoice | None) -> None:
            if choice is not None:
                self.run_task("resume", str(path), options=choice)

        self.app.push_screen(ResumeScreen(plan), chosen)

    def action_evaluate(self) -> None:
        """Ask for a dataset (the run's own eval file first), then evaluate the highlighted checkpoint on it."""
        path = self.selected
        if path is None:
            return
        default, whose = self.run_eval_file()

        def chosen(answer: str | None) -> None:
            if answer:
                self.run_task("evaluate", str(path), answer)

        self.app.push_screen(PromptScreen(f"Evaluate {self.named(path)} on which data file? ({whose})", default),
                             chosen)

    def run_eval_file(self) -> tuple[str, str]:
        """The highlighted run's eval file (else its training file), and where that default comes from."""
        run_id = self.query_one("#ckpt-runs", FilterTable).selected_key
        job = self.engine.get_run(run_id).config.get("job", {}) if run_id else {}
        if job.get("eval_data"):
            return job["eval_data"], "the run's eval file"
        if job.get("data"):
            return job["data"], ("the run's training file, all of it: the records it trained on too, "
                                 "not only its held-out part")
        return str(self.state.eval_data or self.state.dataset or ""), "the chosen dataset"

    def action_export(self, merge: bool) -> None:
        """Ask where to, then export the highlighted checkpoint (as an adapter, or merged)."""
        path = self.selected
        if path is None:
            return
        what = "a merged model" if merge else "an adapter"

        def chosen(answer: str | None) -> None:
            if answer:
                self.run_task("merge" if merge else "export", str(path), answer)

        self.app.push_screen(PromptScreen(f"Export {self.named(path)} as {what} into which folder?",
                                          str(default_output(path, merge))), chosen)

    def run_task(self, task: str, target: str, data: str = "", options: ResumeChoice | None = None) -> None:
        """Start a resume, evaluation or export of ``target`` for the highlighted run."""
        self.status(f"{task}: starting…")
        self.start_task(task, target, data, self.query_one("#ckpt-runs", FilterTable).selected_key, options)

    @work(thread=True, group="checkpoint-task")
    def start_task(self, task: str, target: str, data: str, run_id: str | None,
                   options: ResumeChoice | None = None) -> None:
        """Start a resume, evaluation or export run off the UI thread (``data``: the file or output)."""
        try:
            config = config_of(self.engine.get_run(run_id).config if run_id else None)
            if task == "resume":
                choice = options or ResumeChoice(None, None)
                new_id = self.engine.resume_run(target, max_steps=choice.max_steps,
                                                learning_rate=choice.learning_rate)
            elif task in ("export", "merge"):
                new_id = self.engine.export_checkpoint(Path(target), task == "merge", config,
                                                       Path(data).expanduser().resolve())
            else:
                new_id = self.engine.evaluate(Path(target), Path(data).expanduser().resolve(), config)
        except UserError as exc:
            self.post_message(TaskDone(task, error=str(exc)))
            return
        self.post_message(TaskDone(task, result=new_id))

    def status(self, text: str) -> None:
        """The status line under the tables."""
        self.query_one("#ckpt-status", Static).update(text)

    def on_task_done(self, message: TaskDone) -> None:
        """Follow a resumed run; watch an evaluation or export until its result is in."""
        if message.error:
            self.status(f"[red]{message.task} failed:[/red] {escape(message.error)}")
            return
        if message.task in ("job-progress", "job-result"):
            self.status(escape(str(message.result)))
            if message.task == "job-result":
                self.refresh_checkpoints()  # an export is listed once it is written
            return
        run_id = str(message.result)
        self.state.watched.add(run_id)
        if message.task == "resume":
            self.status(f"resumed as run {run_id} (3: Training follows it)")
            self.state.run_id = run_id
            self.console.action_mode("training")
        else:
            doing = {"evaluate": "evaluating", "export": "exporting", "merge": "merging"}[message.task]
            self.status(f"{doing}: run {run_id}…")
            self.follow_job(run_id, doing)

    @work(group="job-wait")
    async def follow_job(self, run_id: str, doing: str) -> None:
        """Follow an evaluation or export run to its end: its stages and log lines, then its result."""
        async for stored in self.engine.attach(run_id):
            event = stored.event
            if isinstance(event, Log | Stage):
                words = event.message if isinstance(event, Log) else event.words()
                self.post_message(TaskDone("job-progress", result=f"{doing} (run {run_id}): {words}"))
        self.post_message(TaskDone("job-result", result=job_result(self.engine.get_run(run_id))))

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

        self.app.push_screen(ConfirmScreen(f"Delete {self.named(path)} and its files?"), answer)


def job_result(run: RunRecord) -> str:
    """One line for an ended evaluation (its metrics) or export (what it wrote, where)."""
    metrics = run.final_metrics or {}
    if run.kind == "export" and run.status == "finished":
        kind, output = metrics.get("kind", "export"), metrics.get("output", run.output_dir)
        return f"export run {run.id} finished: {kind} in {output}"
    shown = "  ".join(f"{k} {v:.4f}" for k, v in sorted(metrics.items()) if isinstance(v, float))
    return f"{run.kind} run {run.id} {run.status}: {shown or run.error or 'no metrics'}"


def config_of(stored: dict[str, Any] | None) -> Config:
    """The Config a run was trained with (an evaluation uses the same data settings)."""
    if not stored:
        return load_config(None)
    return config_from_dict({k: v for k, v in stored.items() if k != "job"})
