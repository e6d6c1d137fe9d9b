"""The background process that runs one job: ``python -m engine.worker RUN_ID --workspace DIR``.

It is started in a session of its own so that it outlives the terminal that started it. It
writes every event to the run store and marks the run's status. A watch thread (its own store
connection) stamps the heartbeat and takes control requests (stop, pause, resume, checkpoint; see
``engine.control``) and re-counts the runs sharing the cores (``engine.threads``); a monitor
thread stores ``Resources`` samples. SIGINT/SIGTERM mean
"checkpoint, then stop". A run that must wait for another (a train run for the built-in base
being built) stays ``pending`` with a live heartbeat until that one ends.

Started by torchrun, every rank of the group runs this module (``engine.launch.rank`` names the
roles): rank 0 is the worker described above; a local rank 0 on another machine keeps that
machine's history row (status, heartbeat, resources) without training events; the other ranks
write nothing. A rank that loses the group (a rank died: torchrun ends the others, or a
collective timed out) records the run as ``crashed``, resumable with ``train-resume``.
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

from engine.control import CONTROL_POLL_S, HEARTBEAT_S, ControlState, TrainingControl, looks_dead
from engine.disk import SpaceReserve, disk_full
from engine.errors import UserError
from engine.events import (
    CheckpointSaved,
    Failed,
    Finished,
    Log,
    Paused,
    Resources,
    Resumed,
    Runtime,
    Stage,
    Started,
)
from engine.launch.rank import RankInfo, die_with_parent, lost_group, lost_reason
from engine.log_lines import EventLines
from engine.monitor import GpuProbe, MonitorThread, ResourceMonitor, interval_s
from engine.quiet import quiet_libraries
from engine.store import LIVE_STATUSES, RunStore
from engine.threads import RECOUNT_S, ThreadBudget
from engine.unused_libs import hide_for_train_job
from engine.workspace import Workspace


class Worker:
    """Runs one job of the run store and reports it there."""

    def __init__(self, run_id: str, workspace: Workspace, rank: RankInfo | None = None) -> None:
        self.rank = rank or RankInfo()
        self.role = "lead" if self.rank.lead else "node" if self.rank.node_lead else "rank"
        """lead: records the run; node: keeps another machine's row (status only); rank: writes nothing."""
        self.workspace = workspace
        self.store = RunStore(workspace.db_path)
        run = self.store.get_run(run_id)
        if run is None:
            raise UserError(f"no run {run_id} in {workspace.db_path}")
        self.run = run
        self.control = ControlState()
        self.monitor = ResourceMonitor(gpu=GpuProbe.open(), group=self.rank.grouped)
        self.threads = ThreadBudget(run_id, fixed=int(run.config.get("resources", {}).get("threads", 0) or 0),
                                    ranks=self.rank.local_world)
        self.reserve = SpaceReserve(workspace.run_dir(run_id) / ".space-reserve")
        """Room set aside to record the run's end when the disk fills up (released at the end)."""
        self.lines = EventLines()
        """Words the run's events as worker.log lines (the console's log view words them the same)."""
        self._lines_lock = threading.Lock()
        self._done = threading.Event()

    @property
    def stop_requested(self) -> bool:
        """Whether a stop was asked for (by signal or control request)."""
        return self.control.stop

    def emit(self, event: Any) -> None:
        """Store an event (and a checkpoint row for CheckpointSaved); log it in worker.log."""
        if self.role == "rank" or (self.role == "node" and not isinstance(event, NODE_EVENTS)):
            return
        self.monitor.observe(event)
        with self._lines_lock:
            line = self.lines.line(event, time.time())
        if line is not None:
            _say(line.stamped())
        self.store.add_event(self.run.id, event)
        if isinstance(event, Runtime):
            self.store.merge_runtime(self.run.id, event.values())
        if isinstance(event, CheckpointSaved):
            size = sum(p.stat().st_size for p in Path(event.path).rglob("*") if p.is_file())
            self.store.add_checkpoint(self.run.id, event.step, event.path, event.eval_loss,
                                      event.is_best, size)
            for row in self.store.checkpoints(self.run.id):
                if not Path(row.path).exists():
                    self.store.remove_checkpoint(row.path)

    def request_stop(self, signum: int = 0, _frame: Any = None) -> None:
        """Signal handler: ask the job to checkpoint and stop at the next step boundary."""
        self.control.apply(["stop"])

    def _adopt(self, recipe: Any) -> None:
        """Hook the training recipe up to the control requests and the thread budget."""
        if recipe.group is not None:
            from engine.train.group_step import GroupControl

            state = self.control if self.rank.lead else None
            recipe.control = GroupControl(recipe.group, state, self._paused, self._resumed)
        else:
            recipe.control = TrainingControl(self.control, self._paused, self._resumed)
            recipe.interrupt = self._stop_asked_alone  # a stop need not wait for a whole evaluation
        recipe.stop_requested = recipe.stop_requested or self.control.stop
        recipe.step_hooks.append(lambda _recipe: self.apply_threads())

    def apply_threads(self) -> None:
        """Take the thread budget's latest plan (on the computing thread) and record a change."""
        changed = self.threads.apply()
        if changed is not None:
            self.emit(Runtime(threads=changed.threads, threads_reason=changed.reason))
            self.emit(Log("info", f"compute threads: {changed.threads} ({changed.reason})"))

    def _stop_asked_alone(self) -> bool:
        """Whether a stop was asked for, to cut short work one process may stop in the middle of
        (evaluations, generations); never in a group, whose ranks agree on a stop once per step."""
        return not self.rank.grouped and self.control.stop

    def _between_steps(self) -> bool:
        """Called by the base build and evaluation between batches: threads, then whether to stop."""
        self.apply_threads()
        return self.control.stop

    def _paused(self, step: int, path: Path) -> None:
        """The recipe paused: record it."""
        if self.role == "rank":
            return
        self.emit(Paused(step=step, path=str(path)))
        self.store.update_run(self.run.id, status="paused")

    def _resumed(self, step: int) -> None:
        """The recipe continues after a pause."""
        if self.role == "rank":
            return
        self.store.update_run(self.run.id, status="running")
        self.emit(Resumed(step=step))

    def execute(self) -> int:
        """Run the job; returns the process exit code."""
        if self.role == "rank":
            return self._execute_rank()
        try:
            self.reserve.hold()
            self.store.update_run(self.run.id, pid=os.getpid(), started_at=time.time())
        except UserError as exc:  # a full disk before the job began
            return self._end("failed", str(exc), 2)
        self._start_watch()
        interval = interval_s()
        monitor = MonitorThread(self.workspace.db_path, self.run.id, self.monitor, interval).start()
        try:
            return self._execute()
        finally:
            monitor.stop()
            self._done.set()
            self.reserve.release()

    def _execute(self) -> int:
        """Wait for a prerequisite run, then run the job and record how it ended."""
        try:
            self._wait_in_queue()
            self._wait_for_prerequisite()
            self.store.update_run(self.run.id, status="running")
            self.emit(Started(run_id=self.run.id, kind=self.run.kind, total_steps=0,
                              model=self.run.model, dataset=self.run.dataset_path))
            metrics = self._dispatch()
            status = "stopped" if metrics.get("stopped_reason") == "stopped" else "finished"
            self.emit(Finished(metrics=metrics))
            self.store.update_run(self.run.id, status=status, ended_at=time.time(), final_metrics=metrics)
            return 0
        except (UserError, KeyboardInterrupt) as exc:
            message = str(exc) or "stopped before the base model was built"
            return self._end("failed" if isinstance(exc, UserError) else "stopped", message, 2)
        except Exception as exc:  # noqa: BLE001 - the run must record any failure
            full = disk_full(exc)
            if full is not None:
                return self._end("failed", str(full), 2)
            traceback.print_exc()
            if self.rank.grouped and lost_group(exc):
                return self._end("crashed", self._lost_message(exc), 1)
            return self._end("failed", f"{type(exc).__name__}: {exc}", 1)

    def _lost_message(self, exc: BaseException) -> str:
        """Why a group run ended when a rank was lost, and how to continue it."""
        return (f"the group lost a rank (killed, out of memory, or its machine failed): {lost_reason(exc)}; "
                f"continue with: llamahome-tui --no-ui train-resume {self.run.id}")

    def _execute_rank(self) -> int:
        """A rank that records nothing: run the job, say in worker.log how it ended."""
        try:
            self._wait_in_queue()  # as rank 0 does, or the group's first collective would time out
            self._wait_for_prerequisite()  # a base model being built: join the group once it is there
            self._dispatch()
            return 0
        except (UserError, KeyboardInterrupt) as exc:
            _say(f"{self.rank.describe()}: {exc}")
            return 2
        except Exception as exc:  # noqa: BLE001 - rank 0 records the run; this rank says why it ended
            if not lost_group(exc):
                traceback.print_exc()
            _say(f"{self.rank.describe()}: {type(exc).__name__}: {str(exc).strip()[:300]}")
            return 1

    def _wait_in_queue(self) -> None:
        """A queued run (``job.queue_after``): status ``queued`` until every run ahead has ended.

        However they end (finished, stopped, failed, crashed or deleted), this one then starts;
        a stop request while queued ends it ``stopped`` without loading anything.
        """
        ahead = [str(r) for r in self.run.config.get("job", {}).get("queue_after", []) if r]
        if not ahead:
            return
        recording = self.role != "rank"  # the other ranks of a group wait alike, recording nothing
        if recording:
            self.store.update_run(self.run.id, status="queued")
        self.emit(Log("info", f"queued: starts when {', '.join(ahead)} {'end' if len(ahead) > 1 else 'ends'}"))
        while any(self._still_live(run_id) for run_id in ahead):
            if self.control.stop:
                raise KeyboardInterrupt("stopped while queued")
            self.control.wake.wait(CONTROL_POLL_S)
            self.control.wake.clear()
        if recording:
            self.store.update_run(self.run.id, started_at=time.time())
        self.emit(Log("info", "the queue ahead ended: starting"))

    def _still_live(self, run_id: str) -> bool:
        """Whether a run is still live with its worker alive."""
        other = self.store.get_run(run_id)
        return other is not None and other.status in LIVE_STATUSES and not looks_dead(other)

    def _wait_for_prerequisite(self) -> None:
        """Wait while the run this one needs (``job.after``) is live; fail unless it finished."""
        after = self.run.config.get("job", {}).get("after")
        if not after:
            return
        self.emit(Log("info", f"waiting for run {after} to build the base model"))
        self.emit(Stage("waiting", detail=f"(run {after})"))
        while True:
            other = self.store.get_run(after)
            if other is None or other.status in ("failed", "stopped", "crashed", "finished"):
                break
            if looks_dead(other):
                break
            if self.control.stop:
                raise KeyboardInterrupt("stopped while waiting for the base model")
            self.control.wake.wait(CONTROL_POLL_S)
            self.control.wake.clear()
        if other is None or other.status != "finished":
            status = "deleted" if other is None else other.status
            raise UserError(f"the base model was not built: run {after} {status}")

    def _dispatch(self) -> dict[str, Any]:
        """Run the job that the run's kind names."""
        if self.run.kind == "train":
            hide_for_train_job(self.run.config)  # before jobs imports transformers
        from engine import jobs

        self.threads.recount(self.store)
        self.apply_threads()
        if self.run.kind == "build-base":
            return jobs.build_base_job(self.run, self.workspace, self.emit, self._between_steps)
        if self.run.kind == "train":
            return jobs.train_job(self.run, self.workspace, self.emit, self._adopt, self._stop_asked_alone)
        if self.run.kind == "eval":
            return jobs.eval_job(self.run, self.workspace, self.emit, self._between_steps)
        if self.run.kind == "export":
            return jobs.export_job(self.run, self.workspace, self.emit)
        raise UserError(f"run {self.run.id}: unknown kind {self.run.kind!r}")

    def _end(self, status: str, message: str, code: int) -> int:
        """Record a failure or an early stop (first giving back the space set aside for it)."""
        self.reserve.release()
        try:
            if status == "failed":
                self.emit(Failed(error=message))
            else:
                self.emit(Log("error" if status == "crashed" else "info", message))
            self.store.update_run(self.run.id, status=status, ended_at=time.time(), error=message)
        except UserError as exc:  # the history itself cannot be written (a full disk)
            _say(f"{status}: {message} (not recorded: {exc})")
        return code

    def _start_watch(self) -> None:
        """A daemon thread (its own connection) that beats the heartbeat and takes control requests."""
        def watch() -> None:
            store = RunStore(self.workspace.db_path)
            next_beat = next_count = 0.0
            while not self._done.is_set():
                try:
                    if time.monotonic() >= next_beat:
                        store.heartbeat(self.run.id)
                        next_beat = time.monotonic() + HEARTBEAT_S
                    if time.monotonic() >= next_count:
                        self.threads.recount(store)
                        next_count = time.monotonic() + RECOUNT_S
                    commands = store.take_controls(self.run.id)
                    if commands:
                        self.control.apply(commands)
                except Exception as exc:  # noqa: BLE001 - keep watching; the log shows why
                    _say(f"watch: {type(exc).__name__}: {exc}")
                self._done.wait(CONTROL_POLL_S)
            store.close()
        threading.Thread(target=watch, name="watch", daemon=True).start()


NODE_EVENTS = (Started, Finished, Failed, Log, Resources, Paused, Resumed)
"""What a node lead (another machine's local rank 0) records in that machine's history row."""


def _say(text: str) -> None:
    """Print a line to worker.log; never fails (the disk holding it may be full)."""
    try:
        print(text, flush=True)
    except (OSError, ValueError):
        pass


def main(argv: list[str] | None = None) -> int:
    """Entry point of the worker process."""
    parser = argparse.ArgumentParser(prog="python -m engine.worker")
    parser.add_argument("run_id")
    parser.add_argument("--workspace", default=None)
    args = parser.parse_args(argv)
    quiet_libraries()
    rank = RankInfo.from_env()
    if rank.grouped:
        die_with_parent()
    worker = Worker(args.run_id, Workspace.resolve(args.workspace).ensure(), rank)  # ensure: a private umask
    signal.signal(signal.SIGTERM, worker.request_stop)
    signal.signal(signal.SIGINT, worker.request_stop)
    return worker.execute()


if __name__ == "__main__":
    sys.exit(main())
