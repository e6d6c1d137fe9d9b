"""A queued run: ``Engine.start_training(queue_after=...)`` records the runs ahead; the worker waits, ``queued``."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from engine.api import LIVE_STATUSES, Engine
from engine.store import STATUSES
from engine.worker import Worker
from engine.workspace import Workspace


def live_run(engine: Engine, run_id: str) -> str:
    """A run that looks live: running, this process as its worker, a fresh heartbeat."""
    engine.store.create_run(run_id, "train", {"training": {"method": "lora"}}, "tiny", "/x/a.jsonl")
    now = time.time()
    engine.store.update_run(run_id, status="running", pid=os.getpid(), started_at=now - 5, heartbeat_at=now)
    return run_id


@pytest.fixture
def engine(tmp_path: Path):
    engine = Engine(Workspace(tmp_path / "ws").ensure())
    yield engine
    engine.close()


def test_queued_is_a_live_status():
    assert "queued" in STATUSES and "queued" in LIVE_STATUSES


def test_start_training_records_the_runs_to_wait_for(engine: Engine, tmp_path: Path, monkeypatch):
    ahead = live_run(engine, "20260101-000000-live")
    started = {}
    monkeypatch.setattr(engine, "start_run", lambda kind, config, *a, **k: started.update(config["job"]) or "new")
    data = tmp_path / "chat.jsonl"
    data.write_text('{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}\n')
    from engine.api import load_config

    config = load_config(None, ["model.path=\"/nowhere\""])
    monkeypatch.setattr("engine.config.model_family", lambda config: "llama")
    assert engine.start_training(data, config, queue_after=["20260101-000000-li"]) == "new"
    assert started["queue_after"] == [ahead], "a prefix is resolved to the run's id"
    assert engine.live_runs()[0].id == ahead


def wait_in_thread(worker: Worker) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def wait() -> None:
        try:
            worker._wait_in_queue()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            errors.append(exc)

    thread = threading.Thread(target=wait, daemon=True)
    thread.start()
    return thread, errors


def queued_worker(engine: Engine, ahead: str) -> Worker:
    engine.store.create_run("20260101-000100-next", "train", {"job": {"queue_after": [ahead]}}, "tiny", "/x/a.jsonl")
    return Worker("20260101-000100-next", engine.workspace)


def test_the_worker_waits_queued_until_the_run_ahead_ends(engine: Engine):
    ahead = live_run(engine, "20260101-000000-live")
    worker = queued_worker(engine, ahead)
    thread, errors = wait_in_thread(worker)
    time.sleep(0.6)
    assert thread.is_alive(), "it waits while the run ahead is live"
    assert engine.get_run("20260101-000100-next").status == "queued"
    engine.store.update_run(ahead, status="stopped", ended_at=time.time())
    thread.join(5)
    assert not thread.is_alive() and not errors
    run = engine.get_run("20260101-000100-next")
    assert run.started_at is not None and run.started_at >= engine.get_run(ahead).ended_at - 1


def test_a_stop_while_queued_ends_the_wait(engine: Engine):
    worker = queued_worker(engine, live_run(engine, "20260101-000000-live"))
    thread, errors = wait_in_thread(worker)
    time.sleep(0.3)
    worker.control.apply(["stop"])
    thread.join(5)
    assert not thread.is_alive() and len(errors) == 1 and isinstance(errors[0], KeyboardInterrupt)


def test_a_run_with_nothing_ahead_does_not_wait(engine: Engine):
    engine.store.create_run("20260101-000100-solo", "train", {"job": {}}, "tiny", "/x/a.jsonl")
    worker = Worker("20260101-000100-solo", engine.workspace)
    worker._wait_in_queue()
    assert engine.get_run("20260101-000100-solo").status == "pending"
