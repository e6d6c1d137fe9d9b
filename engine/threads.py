"""How many compute threads a worker uses: its share of the machine's cores (no torch at import).

torch gives every process one intra-op thread per core, so two runs side by side each take every
core and their OpenMP threads spin against each other: on 2 cores two LoRA runs started
together moved 0.12x of one run alone in total; with one thread each, 1.45x. So a worker sizes
its threads to its share of the physical cores among the workspace's runs that are computing
(``running``; not paused, not pending), at least one each, the oldest runs taking the cores that
do not divide evenly (a torchrun group's ranks on one machine split their run's share); its
watch thread re-counts while it runs, and the training loop applies a
change between two optimizer steps (``torch.set_num_threads`` acts on the calling thread's
OpenMP team, so it must be called from the thread that computes). ``resources.threads`` > 0
fixes the number instead.

OpenMP's wait policy is left as it is (spinning briefly between parallel regions): with the
threads of all runs adding up to the cores, nothing else wants the core a thread spins on, and
``OMP_WAIT_POLICY=PASSIVE`` was measured to cost a lone 2-thread LoRA run 42 % (100 steps in
42.0 s instead of 29.6 s; bench/side_by_side.py's set-up), about all that its second thread gave.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import psutil

from engine.control import STALE_HEARTBEAT_S, process_alive
from engine.store import RunRecord, RunStore

RECOUNT_S = 1.0
"""How often a worker re-counts the runs it shares the cores with."""


def physical_cores() -> int:
    """Physical cores this process may run on (hyper-threads do not add matmul throughput)."""
    allowed = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    physical = psutil.cpu_count(logical=False) or allowed
    return max(1, min(physical, allowed))


def share(cores: int, rank: int, computing: int) -> int:
    """Threads of the ``rank``-th oldest (0-based) of ``computing`` runs on ``cores`` cores."""
    computing = max(computing, 1)
    base, extra = divmod(cores, computing)
    return max(1, base + (1 if rank < extra else 0))


def computing_runs(store: RunStore, now: float | None = None) -> list[RunRecord]:
    """The workspace's runs that are computing now (``running``, worker alive), oldest first."""
    now = time.time() if now is None else now
    alive = [run for run in store.running_runs()
             if process_alive(run.pid, run.started_at)
             and now - (run.heartbeat_at or run.started_at or run.created_at) <= STALE_HEARTBEAT_S]
    return sorted(alive, key=lambda run: (run.started_at or run.created_at, run.id))


@dataclass(frozen=True)
class ThreadPlan:
    """How many threads a run should use, and why, in words for the run's log."""

    threads: int
    reason: str


def plan(run_id: str, runs: Sequence[RunRecord], cores: int, fixed: int = 0) -> ThreadPlan:
    """The threads of run ``run_id`` among the computing ``runs`` (``fixed`` > 0 wins)."""
    if fixed > 0:
        return ThreadPlan(fixed, f"resources.threads = {fixed}")
    ids = [run.id for run in runs]
    if run_id not in ids:
        ids.append(run_id)
    count, rank = len(ids), ids.index(run_id)
    threads = share(cores, rank, count)
    if count == 1:
        return ThreadPlan(threads, f"the only run computing: all {cores} physical cores")
    return ThreadPlan(threads, f"{count} runs computing share {cores} physical cores")


class ThreadBudget:
    """A worker's thread count: re-planned by its watch thread, applied by the computing thread."""

    def __init__(self, run_id: str, fixed: int = 0, cores: int | None = None, ranks: int = 1) -> None:
        """``ranks``: the run's ranks on this machine (a torchrun group), which split the run's share."""
        self.run_id = run_id
        self.fixed = fixed
        self.ranks = max(1, ranks)
        self.cores = cores or physical_cores()
        self._lock = threading.Lock()
        self._wanted = ThreadPlan(fixed or self.cores, "not counted yet")
        self.applied: int | None = None

    def recount(self, store: RunStore) -> ThreadPlan:
        """Plan again from the runs computing now (call from any thread)."""
        wanted = plan(self.run_id, computing_runs(store), self.cores, self.fixed)
        if self.ranks > 1 and not self.fixed:
            wanted = ThreadPlan(max(1, wanted.threads // self.ranks),
                                f"{wanted.reason}, split among the run's {self.ranks} ranks here")
        with self._lock:
            self._wanted = wanted
        return wanted

    def apply(self) -> ThreadPlan | None:
        """Set torch's threads to the plan if it changed; returns the new plan, else None.

        Call from the thread that computes (the training loop), between two steps.
        """
        with self._lock:
            wanted = self._wanted
        if wanted.threads == self.applied:
            return None
        import torch

        torch.set_num_threads(wanted.threads)
        self.applied = wanted.threads
        note_applied(wanted.threads)
        return wanted


_current: int | None = None


def current() -> int:
    """The threads this process computes with (set by ``note_applied``), else the physical cores."""
    return _current or physical_cores()


def note_applied(threads: int) -> None:
    """Remember the thread count applied in this process (data preparation sizes its pool by it)."""
    global _current
    _current = threads
