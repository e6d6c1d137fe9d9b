"""``Engine``: the one door the console and the headless mode use to drive runs.

It never imports torch: a run is a worker process (``python -m engine.worker``) started in its
own session, and everything about it is read back from the run store. ``attach`` replays a run's
history and then follows it live until it ends.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from engine.config import PROJECT_ROOT
from engine.errors import UserError
from engine.events import Failed, Finished
from engine.store import RunRecord, RunStore, StoredEvent
from engine.workspace import Workspace, new_run_id

ENDED = ("finished", "failed", "stopped", "crashed")


class Engine:
    """Start, follow and stop runs in one workspace."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        workspace.ensure()
        self.store = RunStore(workspace.db_path)
        self._children: dict[str, subprocess.Popen[bytes]] = {}

    def close(self) -> None:
        """Close the store connection (running workers are not touched)."""
        self.store.close()

    def start_run(self, kind: str, config: dict[str, Any], model: str, dataset_path: str = "",
                  output_dir: str = "", resumed_from: str | None = None, fingerprint: str = "") -> str:
        """Record a run and start its worker; returns the run id."""
        run_id = new_run_id()
        run_dir = self.workspace.run_dir(run_id)
        run_dir.mkdir(parents=True, exist_ok=True)
        self.store.create_run(run_id, kind, config, model, dataset_path, fingerprint,
                              output_dir or str(run_dir), resumed_from)
        log = (run_dir / "worker.log").open("ab")
        command = [sys.executable, "-m", "engine.worker", run_id, "--workspace", str(self.workspace.root)]
        env = {**os.environ, "PYTHONPATH": _pythonpath()}
        self._children[run_id] = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, cwd=str(PROJECT_ROOT), env=env)
        log.close()
        return run_id

    def get_run(self, run_id: str) -> RunRecord:
        """A run by id or unique id prefix; UserError when there is none."""
        run = self.store.find_run(run_id)
        if run is None:
            raise UserError(f"no run matches {run_id!r} (see: llamahome-tui --no-ui runs)")
        return run

    def list_runs(self, kind: str | None = None) -> list[RunRecord]:
        """Runs, newest first."""
        return self.store.list_runs(kind=kind)

    def stop(self, run_id: str) -> None:
        """Ask a run's worker to write a checkpoint and stop."""
        run = self.get_run(run_id)
        if run.pid and run.status in ("pending", "running"):
            try:
                os.kill(run.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def exit_code(self, run_id: str) -> int | None:
        """The worker's exit code when this engine started it and it has ended."""
        child = self._children.get(run_id)
        return None if child is None else child.poll()

    def worker_alive(self, run: RunRecord) -> bool:
        """Whether the run's worker process still exists."""
        child = self._children.get(run.id)
        if child is not None:
            return child.poll() is None
        if not run.pid:
            return run.status == "pending"
        try:
            os.kill(run.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    async def attach(self, run_id: str, poll_s: float = 0.2, after_id: int = 0) -> AsyncIterator[StoredEvent]:
        """The run's events after ``after_id``: its history first, then live ones until it ends."""
        after = after_id
        while True:
            events = self.store.events(run_id, after_id=after)
            for stored in events:
                after = stored.id
                yield stored
                if isinstance(stored.event, Finished | Failed):
                    return
            if not events:
                run = self.get_run(run_id)
                if run.status in ENDED or not self.worker_alive(run):
                    for stored in self.store.events(run_id, after_id=after):
                        yield stored
                    return
                await asyncio.sleep(poll_s)


def _pythonpath() -> str:
    """PYTHONPATH for the worker: the project root first, so ``engine`` always imports."""
    current = os.environ.get("PYTHONPATH", "")
    return str(PROJECT_ROOT) + (os.pathsep + current if current else "")


def latest_checkpoint_dir(run: RunRecord) -> Path | None:
    """The newest checkpoint folder on disk of a run (by step)."""
    folder = Path(run.output_dir) / "checkpoints"
    found = sorted(p for p in folder.glob("step-*") if p.is_dir()) if folder.is_dir() else []
    return found[-1] if found else None
