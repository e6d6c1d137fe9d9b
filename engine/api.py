"""``Engine``: the one door the console and the headless mode use to drive runs.

It never imports torch: a run is a worker process (``python -m engine.worker``) started in its
own session, and everything about it is read back from the run store. Control requests (stop,
pause, resume, checkpoint) are rows the worker polls (see ``engine.control`` for why rows and
not signals). Every method but ``attach`` is a short synchronous call (a few SQLite queries, at
most a data-file check); ``attach`` is an async iterator that replays a run's history and then
follows it live until it ends. A UI should call the synchronous methods off its event loop when
they check data files (``start_training``, ``evaluate``).

Statuses: ``pending`` (no worker yet, or waiting for the base model), ``running``, ``paused``,
then one of ``finished``, ``stopped``, ``failed`` or ``crashed`` (the worker died without
saying so; ``refresh_statuses`` finds those from the pid and the heartbeat's age).
"""

from __future__ import annotations

import asyncio
import importlib
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.checkpoint_meta import read_checkpoint_meta
from engine.control import looks_dead, process_alive, status_after_death
from engine.errors import ConfigError, DiskFullError, UserError
from engine.launch.command import GroupShape, worker_command
from engine.project import PROJECT_ROOT, child_pythonpath
from engine.resume import (
    adopt_workspace,
    latest_checkpoint_dir,
    remove_partial_checkpoints,
    resumable,
)
from engine.run_requests import RunRequests, resolve_config
from engine.store import LIVE_STATUSES, CheckpointRecord, RunRecord, RunStore
from engine.workspace import Workspace, new_run_id

if TYPE_CHECKING:  # loaded on first use (see LAZY): the console's first frame does not wait for them
    from engine.chat_client import ChatProcess, GenerationSettings
    from engine.chat_models import ChatModel
    from engine.config import (
        DEFAULT_FILE,
        SECTIONS,
        Config,
        check_value,
        config_from_dict,
        config_to_dict,
        load_config,
        model_family,
        parse_text,
        set_value,
    )
    from engine.data.formats import open_binary
    from engine.data.shapes import Message
    from engine.data.stats import DatasetStats, compute_stats, histogram_text
    from engine.data.validate import Issue, ValidationReport, check_file, new_report, valid_conversations
    from engine.events import Generation, StoredEvent
    from engine.launch.rank import group_label
    from engine.log_lines import EventLines, LogLine
    from engine.metrics import eval_values, screen_line
    from engine.metrics import line as metric_line
    from engine.metrics import summary as metric_summary
    from engine.run_info import RunDetail
    from engine.train.export import default_output

__all__ = [
    "CRASHED_MESSAGE", "DEFAULT_FILE", "LIVE_STATUSES", "PROJECT_ROOT", "SECTIONS", "ChatModel", "ChatProcess",
    "CheckpointRecord", "Config", "ConfigError", "DatasetStats", "DiskFullError", "Engine", "EventLines",
    "GenerationSettings", "Issue", "LogLine", "Message", "RunDetail", "RunRecord", "StoredEvent", "UserError",
    "ValidationReport", "Workspace", "check_file", "check_value", "compute_stats", "config_from_dict",
    "config_to_dict", "default_output", "eval_values", "group_label", "histogram_text", "latest_checkpoint_dir",
    "load_config", "metric_line", "metric_summary", "model_family", "new_report", "open_binary", "parse_text",
    "resolve_config", "screen_line", "set_value", "valid_conversations",
]

LAZY: dict[str, tuple[str, str]] = {
    **{name: ("engine.config", name) for name in (
        "DEFAULT_FILE", "SECTIONS", "Config", "check_value", "config_from_dict", "config_to_dict", "load_config",
        "model_family", "parse_text", "set_value")},
    "Message": ("engine.data.shapes", "Message"),
    **{name: ("engine.data.stats", name) for name in ("DatasetStats", "compute_stats", "histogram_text")},
    **{name: ("engine.data.validate", name) for name in (
        "Issue", "ValidationReport", "check_file", "new_report", "valid_conversations")},
    "eval_values": ("engine.metrics", "eval_values"),
    "StoredEvent": ("engine.events", "StoredEvent"),
    "metric_line": ("engine.metrics", "line"),
    "screen_line": ("engine.metrics", "screen_line"),
    "metric_summary": ("engine.metrics", "summary"),
    "default_output": ("engine.train.export", "default_output"),
    "open_binary": ("engine.data.formats", "open_binary"),
    **{name: ("engine.log_lines", name) for name in ("EventLines", "LogLine")},
    "RunDetail": ("engine.run_info", "RunDetail"),
    "group_label": ("engine.launch.rank", "group_label"),
    "ChatModel": ("engine.chat_models", "ChatModel"),
    **{name: ("engine.chat_client", name) for name in ("ChatProcess", "GenerationSettings")},
}
"""What the console reaches through this module besides ``Engine``, imported when first asked for.

The console imports the engine only through ``engine.api`` and ``engine.events`` (a test checks
it); these names are loaded on first use, so a screen that needs the data statistics (numpy)
or the config (tomlkit) pays for them when it is first shown, not before the first frame.
"""


def __getattr__(name: str) -> Any:
    """Load a ``LAZY`` name on first use (PEP 562)."""
    if name not in LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, attribute = LAZY[name]
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value
    return value


NO_PROGRESS_BARS = {"HF_HUB_DISABLE_PROGRESS_BARS": "1", "TQDM_DISABLE": "1"}
"""A worker's output is worker.log: the run's lines, not library progress bars."""
CRASHED_MESSAGE = "the worker ended without reporting (killed, or out of memory?); see its worker.log"


class Engine(RunRequests):
    """Start, follow, control and clean up the runs of one workspace (``RunRequests``: asking for each kind)."""

    def __init__(self, workspace: Workspace) -> None:
        """Open the workspace (made private: see ``Workspace.ensure``) and its run history.

        When the database is missing but run folders are there, the runs with checkpoints are
        adopted back into the new history (``recovered`` lists them).
        """
        self.workspace = workspace
        workspace.ensure()
        fresh = not workspace.db_path.exists()
        self.store = RunStore(workspace.db_path)
        self.recovered = adopt_workspace(self.store, workspace.runs_dir) if fresh else []
        self._children: dict[str, subprocess.Popen[bytes]] = {}

    def close(self) -> None:
        """Close the store connection (running workers are not touched)."""
        self.store.close()

    # Starting runs (what each kind of run is asked with and checked for: engine.run_requests)

    def start_run(self, kind: str, config: dict[str, Any], model: str, dataset_path: str = "",
                  output_dir: str = "", resumed_from: str | None = None, fingerprint: str = "") -> str:
        """Record a run and start its worker; returns the run id (the low-level door).

        UserError when ``resumed_from`` names a run that a live run already continues.
        """
        run_id = new_run_id()
        run_dir = self.workspace.run_dir(run_id)
        self.store.create_run(run_id, kind, config, model, dataset_path, fingerprint,
                              output_dir or str(run_dir), resumed_from)
        run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # private whatever the umask is now
        log = os.fdopen(os.open(run_dir / "worker.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab")
        shape = GroupShape.from_config(config.get("distributed", {})) if kind == "train" else GroupShape()
        command = worker_command(run_id, str(self.workspace.root), shape)
        env = {**os.environ, "PYTHONPATH": child_pythonpath(), **NO_PROGRESS_BARS}
        if shape.world_size > 1:
            env.setdefault("OMP_NUM_THREADS", "1")  # each rank sets its own share; torchrun warns without it
        self._children[run_id] = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, cwd=str(PROJECT_ROOT), env=env)
        log.close()
        return run_id

    # Following and controlling runs

    async def attach(self, run_id: str, poll_s: float = 0.2, after_id: int = 0) -> AsyncIterator[StoredEvent]:
        """The run's events after ``after_id``: its history first, then live ones until it ends.

        Any number of viewers may attach to one run; a paused run keeps them attached.
        """
        from engine.events import Failed, Finished

        run_id = self.get_run(run_id).id
        after = after_id
        while True:
            events = self.store.events(run_id, after_id=after)
            for stored in events:
                after = stored.id
                yield stored
                if isinstance(stored.event, Finished | Failed):
                    return
            if not events:
                if self.get_run(run_id).status not in LIVE_STATUSES:
                    for stored in self.store.events(run_id, after_id=after):
                        yield stored
                    return
                await asyncio.sleep(poll_s)

    def stop(self, run_id: str) -> None:
        """Ask a run to write a checkpoint and stop (also while it is paused or pending)."""
        self._control(run_id, "stop", kinds=("train", "build-base", "eval"))

    def pause(self, run_id: str) -> None:
        """Ask a training run to checkpoint, free accelerator memory and wait for ``resume``.

        On a GPU the model and optimizer state move to host memory and the CUDA cache is
        emptied; on a CPU the worker keeps its memory (``stop`` + ``resume_run`` frees it all).
        The status turns ``paused`` (and a ``Paused`` event is stored) once the checkpoint is
        written; a request made before the training loop starts waits for it.
        """
        self._control(run_id, "pause")

    def resume(self, run_id: str) -> None:
        """Let a paused training run continue (``resume_run`` continues an ended one)."""
        self._control(run_id, "resume")

    def checkpoint_now(self, run_id: str) -> None:
        """Ask a training run to write a checkpoint after its current optimizer step."""
        self._control(run_id, "checkpoint")

    def _control(self, run_id: str, command: str, kinds: tuple[str, ...] = ("train",)) -> None:
        """Queue a control request for a live run; UserError when the run cannot take it."""
        run = self.get_run(run_id)
        if run.kind not in kinds:
            raise UserError(f"run {run.id} is a {run.kind} run; only training runs can {command}")
        if run.status not in LIVE_STATUSES:
            hint = f"; continue it with train-resume {run.id}" if command == "resume" else ""
            raise UserError(f"run {run.id} is {run.status}{hint}")
        self.store.add_control(run.id, command)

    # The run history

    def get_run(self, run_id: str) -> RunRecord:
        """A run by id or unique id prefix, its status refreshed; UserError when there is none."""
        run = self.store.find_run(run_id)
        if run is None:
            raise UserError(f"no run matches {run_id!r} (see: llamahome-tui --no-ui runs)")
        if run.status in LIVE_STATUSES and self._refresh(run):
            run = self.store.get_run(run.id) or run
        return run

    def live_runs(self) -> list[RunRecord]:
        """The runs still going (pending, queued, running, paused) whose worker is alive, newest first.

        Reads only the live rows (a console asks every few seconds, whatever the history's size);
        a run whose worker is gone is marked as it ended on the way.
        """
        return [run for run in self.store.live_runs() if not self._refresh(run)]

    def list_runs(self, kind: str | None = None) -> list[RunRecord]:
        """Runs (of one kind, if given), newest first, with statuses refreshed."""
        self.refresh_statuses()
        return self.store.list_runs(kind=kind)

    def refresh_statuses(self) -> list[str]:
        """Mark live runs whose worker is gone (pid, heartbeat) as crashed; returns their ids."""
        return [run.id for run in self.store.list_runs(limit=1000)
                if run.status in LIVE_STATUSES and self._refresh(run)]

    def _refresh(self, run: RunRecord) -> bool:
        """End a live run whose worker is gone; True when its status changed.

        Its half-written checkpoint folders go once its process is gone. On a full disk the
        status cannot be written: it stays as it was, and the next look tries again.
        """
        if not self._dead(run):
            return False
        if not process_alive(run.pid, run.started_at):
            remove_partial_checkpoints(run)
        status = status_after_death(self.store.last_event_type(run.id))
        try:
            return self.store.end_if_live(run.id, status, CRASHED_MESSAGE if status == "crashed" else None)
        except DiskFullError:
            return False

    def _dead(self, run: RunRecord) -> bool:
        """Whether a live run's worker is gone (a child of this engine is checked, and reaped)."""
        child = self._children.get(run.id)
        if child is not None:
            return child.poll() is not None
        return looks_dead(run)

    def worker_alive(self, run: RunRecord) -> bool:
        """Whether the run's worker process still exists."""
        return not self._dead(run)

    def exit_code(self, run_id: str) -> int | None:
        """The worker's exit code when this engine started it and it has ended."""
        child = self._children.get(run_id)
        return None if child is None else child.poll()

    def resumable(self) -> dict[str, str]:
        """Stopped or crashed training runs that no run continues yet: id -> checkpoint name."""
        return resumable(self.list_runs(kind="train"))

    def metrics(self, run_id: str) -> list[dict[str, Any]]:
        """The run's per-step metrics (loss, lr, grad norm, tokens/s, eval loss), by step."""
        return self.store.metrics(self.get_run(run_id).id)

    def samples(self, run_id: str) -> list[Generation]:
        """The run's sample answers (with those of the runs it continues): base first, then by step."""
        from engine import run_info

        return run_info.samples(self.store, self.get_run(run_id))

    def run_detail(self, run_id: str) -> RunDetail:
        """A run's config, job, dataset versions and world size, for a detail view."""
        from engine import run_info

        return run_info.run_detail(self.store, self.get_run(run_id))

    def exports(self, run_id: str) -> list[dict[str, Any]]:
        """Where a training run's checkpoints were exported or merged to (see ``run_info.exports``)."""
        from engine import run_info

        return run_info.exports(self.store, self.get_run(run_id))

    def checkpoints(self, run_id: str) -> list[CheckpointRecord]:
        """The run's checkpoints still on disk, by step."""
        return [c for c in self.store.checkpoints(self.get_run(run_id).id) if Path(c.path).is_dir()]

    def datasets(self, path: Path | str | None = None) -> list[dict[str, Any]]:
        """Dataset versions (of one data file, if given), newest first.

        Each is a dict: ``fingerprint``, ``path``, ``samples``, ``tokens``, ``invalid``,
        ``created_at`` and ``runs``, the ids of the runs still in the history that used it.
        """
        known = {run.id for run in self.store.list_runs(limit=100_000)}
        where = str(Path(path).resolve()) if path is not None else None
        versions = self.store.dataset_versions(where)
        return [{**row, "runs": [r for r in row["runs"] if r in known]} for row in versions]

    def delete_run(self, run_id: str) -> None:
        """Delete a run's rows and files; refuses a live run.

        Files shared with another run (an output folder a resumed run writes into too, a built
        base model) are kept; the run's own checkpoints and its folder go, with the history rows
        of the export and evaluation jobs run on them (an export written outside them is kept).
        """
        from engine import run_info

        run = self.get_run(run_id)
        if run.status in LIVE_STATUSES:
            raise UserError(f"run {run.id} is {run.status}; stop it before deleting it")
        paths = self._files_of(run)
        jobs = run_info.jobs_on(self.store, paths)
        for job in jobs:
            if job.status in LIVE_STATUSES and self.get_run(job.id).status in LIVE_STATUSES:  # refreshed
                raise UserError(f"{job.kind} run {job.id} is {job.status} on run {run.id}'s files; "
                                "stop it before deleting the run")
        for path in paths + [self.workspace.run_dir(job.id) for job in jobs]:
            shutil.rmtree(path, ignore_errors=True)
        for job in jobs:
            self.store.delete_run(job.id)
        self.store.delete_run(run.id)

    def _files_of(self, run: RunRecord) -> list[Path]:
        """The folders that belong to this run alone."""
        own = self.workspace.run_dir(run.id)
        if run.kind == "build-base":
            return [own]
        paths = [Path(c.path) for c in self.store.checkpoints(run.id)]
        output = Path(run.output_dir)
        shared = [r for r in self.store.runs_with_output(run.output_dir) if r != run.id]
        if not shared:
            paths += [output / "checkpoints", output / "final"]
        if output != own or not shared:
            paths.append(own)
        return paths

    def delete_checkpoint(self, path: Path) -> None:
        """Delete a checkpoint folder and its row; refuses one of a live run."""
        folder = Path(path).resolve()
        try:
            run = self.store.find_run(read_checkpoint_meta(folder).get("run_id", ""))
        except UserError:  # a damaged checkpoint can still be deleted; a live run's is never damaged
            run = None
        if run is not None and self.get_run(run.id).status in LIVE_STATUSES:
            raise UserError(f"{folder}: run {run.id} is still live; stop it first")
        shutil.rmtree(folder)
        self.store.remove_checkpoint(str(folder))
        self.store.remove_checkpoint(str(path))

    # Trying a model (a chat in a process of its own)

    def chat_models(self) -> list[ChatModel]:
        """The run finals, exports and checkpoints on disk that a chat can load, newest run first."""
        from engine.chat_models import list_chat_models

        return list_chat_models(self.store, self.workspace, self.list_runs())

    def chat_target(self, name: str) -> Path:
        """The folder a chat loads for ``name`` (a folder, or a run id), checked loadable; UserError names it."""
        from engine.chat_models import chat_source, resolve_chat_target

        folder = resolve_chat_target(name, self.store, self.workspace)
        chat_source(folder, self.workspace.models_dir)
        return folder

    def open_chat(self) -> ChatProcess:
        """A chat process for this workspace: ``start`` it, ``load`` a ``chat_target``, ``close`` it."""
        from engine.chat_client import ChatProcess

        return ChatProcess(self.workspace.root)
