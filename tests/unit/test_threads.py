"""The thread budget: runs computing side by side share the physical cores."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from engine.store import RunStore
from engine.threads import ThreadBudget, computing_runs, physical_cores, plan, share


@pytest.mark.parametrize(("cores", "computing", "expected"), [
    (2, 1, [2]), (2, 2, [1, 1]), (2, 3, [1, 1, 1]), (8, 3, [3, 3, 2]), (16, 2, [8, 8]), (1, 4, [1, 1, 1, 1]),
])
def test_share_splits_the_cores_oldest_first(cores: int, computing: int, expected: list[int]) -> None:
    assert [share(cores, rank, computing) for rank in range(computing)] == expected


def test_physical_cores_is_at_least_one_and_within_the_affinity() -> None:
    assert 1 <= physical_cores() <= len(os.sched_getaffinity(0))


def _running(store: RunStore, run_id: str, started: float, pid: int) -> None:
    store.create_run(run_id, "train", {}, "m", "d")
    store.update_run(run_id, status="running", pid=pid, started_at=started, heartbeat_at=time.time())


def test_computing_runs_are_the_running_ones_with_a_live_worker(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "db.sqlite")
    now = time.time()
    # (a worker's start is after its process's creation, which is what the pid check compares)
    _running(store, "b", now + 2, os.getpid())
    _running(store, "a", now + 1, os.getpid())
    _running(store, "dead", now, 2 ** 22 + 12345)  # no such pid
    store.create_run("paused", "train", {}, "m", "d")
    store.update_run("paused", status="paused", pid=os.getpid(), started_at=now - 5)
    store.create_run("pending", "train", {}, "m", "d")
    assert [run.id for run in computing_runs(store)] == ["a", "b"]


def test_a_budget_follows_the_runs_that_start_and_end(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "db.sqlite")
    now = time.time()
    _running(store, "first", now + 1, os.getpid())
    budget = ThreadBudget("first", cores=2)
    assert budget.recount(store).threads == 2
    _running(store, "second", now + 2, os.getpid())
    assert budget.recount(store).threads == 1
    assert "2 runs computing" in budget.recount(store).reason
    store.update_run("second", status="finished")
    assert budget.recount(store).threads == 2


def test_apply_sets_torchs_threads_once_per_change(tmp_path: Path) -> None:
    import torch

    store = RunStore(tmp_path / "db.sqlite")
    _running(store, "only", time.time(), os.getpid())
    before = torch.get_num_threads()
    try:
        budget = ThreadBudget("only", cores=1)
        budget.recount(store)
        assert budget.apply() is not None and torch.get_num_threads() == 1
        assert budget.apply() is None
    finally:
        torch.set_num_threads(before)


def test_a_fixed_thread_count_wins() -> None:
    assert plan("x", [], cores=8, fixed=3).threads == 3
    assert "resources.threads" in plan("x", [], cores=8, fixed=3).reason
