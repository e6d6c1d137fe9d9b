"""The background process that runs one job: ``python -m engine.worker RUN_ID --workspace DIR``.

It is started in a session of its own so that it outlives the terminal that started it. It
writes every event to the run store, marks the run's status, keeps a heartbeat, and turns
SIGINT/SIGTERM into "checkpoint, then stop".
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from engine.errors import UserError
from engine.events import CheckpointSaved, Failed, Finished, Log, Started
from engine.quiet import quiet_libraries
from engine.store import RunStore
from engine.workspace import Workspace

HEARTBEAT_S = 2.0


class Worker:
    """Runs one job of the run store and reports it there."""

    def __init__(self, run_id: str, workspace: Workspace) -> None:
        self.workspace = workspace
        self.store = RunStore(workspace.db_path)
        run = self.store.get_run(run_id)
        if run is None:
            raise UserError(f"no run {run_id} in {workspace.db_path}")
        self.run = run
        self.stop_requested = False
        self.recipe: Any = None
        self._beating = threading.Event()

    def emit(self, event: Any) -> None:
        """Store an event (and a checkpoint row for CheckpointSaved)."""
        self.store.add_event(self.run.id, event)
        if isinstance(event, CheckpointSaved):
            size = sum(p.stat().st_size for p in Path(event.path).rglob("*") if p.is_file())
            self.store.add_checkpoint(self.run.id, event.step, event.path, event.eval_loss,
                                      event.is_best, size)
            for row in self.store.checkpoints(self.run.id):
                if not Path(row.path).exists():
                    self.store.remove_checkpoint(row.path)

    def request_stop(self, signum: int, _frame: Any) -> None:
        """Signal handler: ask the job to checkpoint and stop at the next step boundary."""
        self.stop_requested = True
        if self.recipe is not None:
            self.recipe.stop_requested = True

    def _adopt(self, recipe: Any) -> None:
        """Keep the training recipe so a stop request can reach it."""
        self.recipe = recipe
        recipe.stop_requested = self.stop_requested

    def execute(self) -> int:
        """Run the job; returns the process exit code."""
        self.store.update_run(self.run.id, status="running", pid=os.getpid(), started_at=time.time())
        self._start_heartbeat()
        self.emit(Started(run_id=self.run.id, kind=self.run.kind, total_steps=0,
                          model=self.run.model, dataset=self.run.dataset_path))
        try:
            metrics = self._dispatch()
        except (UserError, KeyboardInterrupt) as exc:
            message = str(exc) or "stopped before the base model was built"
            return self._end("failed" if isinstance(exc, UserError) else "stopped", message, 2)
        except Exception as exc:  # noqa: BLE001 - the run must record any failure
            traceback.print_exc()
            return self._end("failed", f"{type(exc).__name__}: {exc}", 1)
        status = "stopped" if metrics.get("stopped_reason") == "stopped" else "finished"
        self.emit(Finished(metrics=metrics))
        self.store.update_run(self.run.id, status=status, ended_at=time.time(), final_metrics=metrics)
        return 0

    def _dispatch(self) -> dict[str, Any]:
        """Run the job that the run's kind names."""
        from engine import jobs

        if self.run.kind == "build-base":
            return jobs.build_base_job(self.run, self.workspace, self.emit, lambda: self.stop_requested)
        if self.run.kind == "train":
            return jobs.train_job(self.run, self.workspace, self.emit, self._adopt)
        if self.run.kind == "eval":
            return jobs.eval_job(self.run, self.workspace, self.emit)
        raise UserError(f"run {self.run.id}: unknown kind {self.run.kind!r}")

    def _end(self, status: str, message: str, code: int) -> int:
        """Record a failure or an early stop."""
        if status == "failed":
            self.emit(Failed(error=message))
        else:
            self.emit(Log("info", message))
        self.store.update_run(self.run.id, status=status, ended_at=time.time(), error=message)
        return code

    def _start_heartbeat(self) -> None:
        """A daemon thread that stamps the run's heartbeat (its own connection)."""
        def beat() -> None:
            store = RunStore(self.workspace.db_path)
            while not self._beating.wait(HEARTBEAT_S):
                store.heartbeat(self.run.id)
            store.close()
        threading.Thread(target=beat, name="heartbeat", daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the worker process."""
    parser = argparse.ArgumentParser(prog="python -m engine.worker")
    parser.add_argument("run_id")
    parser.add_argument("--workspace", default=None)
    args = parser.parse_args(argv)
    quiet_libraries()
    worker = Worker(args.run_id, Workspace.resolve(args.workspace))
    signal.signal(signal.SIGTERM, worker.request_stop)
    signal.signal(signal.SIGINT, worker.request_stop)
    return worker.execute()


if __name__ == "__main__":
    sys.exit(main())
