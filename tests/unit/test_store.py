"""The run store, the events it carries and the workspace layout."""

from __future__ import annotations

import multiprocessing
import re
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from engine import store_schema
from engine.errors import UserError
from engine.events import (
    CheckpointSaved,
    Eval,
    Failed,
    Finished,
    Generation,
    Log,
    Resources,
    Started,
    Step,
    event_from_row,
)
from engine.store import SCHEMA_VERSION, RunStore
from engine.workspace import Workspace, new_run_id

PROJECT_ROOT = Path(__file__).resolve().parents[2]

ALL_EVENTS = [
    Started(run_id="r1", kind="train", total_steps=10, model="tiny", dataset="data.jsonl"),
    Step(step=1, total_steps=10, epoch=0.1, loss=2.5, lr=1e-4, grad_norm=None, tokens_per_s=900.0,
         elapsed_s=0.5),
    Eval(step=1, eval_loss=2.25, perplexity=9.49),
    CheckpointSaved(step=1, path="runs/r1/checkpoint-1", eval_loss=2.25, is_best=True),
    Log(level="warning", message="ünïcode and \"quotes\""),
    Resources(cpu_percent=50.0, rss_mb=1024.5, gpu_util=None, gpu_mem_mb=None),
    Generation(step=1, prompt="Hi", text="Hello there"),
    Finished(metrics={"loss": 1.5, "nested": {"a": [1, 2]}}),
    Failed(error="boom"),
]


def step_event(step: int, loss: float = 1.0) -> Step:
    return Step(step=step, total_steps=300, epoch=step / 300, loss=loss, lr=1e-3, grad_norm=0.5,
                tokens_per_s=100.0, elapsed_s=step * 0.01)


@pytest.fixture
def store(tmp_path: Path):
    with RunStore(tmp_path / "llamahome.db") as opened:
        opened.create_run("r1", "train", {"lr": 1e-3, "lora": {"r": 8}}, "tiny", "data.jsonl")
        yield opened


def test_schema_created_and_versioned(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "llamahome.db"
    with RunStore(path) as store:
        assert store.schema_version() == SCHEMA_VERSION == len(store_schema.MIGRATIONS)
        assert set(store.db.table_names()) >= {"runs", "events", "checkpoints"}
        assert "metrics" not in store.db.table_names(), "step metrics are kept once, in the events"
        assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store.db.execute("PRAGMA busy_timeout").fetchone()[0] == 10_000


def test_reopen_does_not_migrate_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "llamahome.db"
    with RunStore(path) as store:
        store.create_run("r1", "eval", {}, "m", "d")
    calls: list[object] = []
    monkeypatch.setattr(store_schema, "MIGRATIONS", [lambda db: calls.append(db)])
    with RunStore(path) as store:
        assert store.get_run("r1") is not None
    assert calls == []


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "llamahome.db"
    RunStore(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    with pytest.raises(UserError, match="newer"):
        RunStore(path)


def test_create_get_update(store: RunStore) -> None:
    run = store.get_run("r1")
    assert run is not None
    assert (run.kind, run.status, run.model, run.dataset_path) == ("train", "pending", "tiny",
                                                                    "data.jsonl")
    assert run.config == {"lr": 1e-3, "lora": {"r": 8}}
    assert run.final_metrics is None and run.started_at is None and run.created_at > 0
    store.update_run("r1", status="finished", pid=123, final_metrics={"loss": 0.5}, ended_at=2.0)
    run = store.get_run("r1")
    assert run is not None
    assert (run.status, run.pid, run.final_metrics, run.ended_at) == ("finished", 123,
                                                                      {"loss": 0.5}, 2.0)
    store.heartbeat("r1")
    assert store.get_run("r1").heartbeat_at == pytest.approx(time.time(), abs=5)
    assert store.get_run("nope") is None


def test_bad_input_is_rejected(store: RunStore) -> None:
    with pytest.raises(ValueError, match="already exists"):
        store.create_run("r1", "train", {}, "m", "d")
    with pytest.raises(ValueError, match="kind"):
        store.create_run("r2", "dance", {}, "m", "d")
    with pytest.raises(ValueError, match="unknown run field"):
        store.update_run("r1", colour="red")
    with pytest.raises(ValueError, match="status"):
        store.update_run("r1", status="sleeping")
    with pytest.raises(KeyError):
        store.update_run("nope", status="running")


def test_list_and_find(store: RunStore) -> None:
    store.create_run("20261122-011700-ab12", "eval", {}, "m", "d")
    store.create_run("20261122-011700-cd34", "train", {}, "m", "d")
    assert [r.id for r in store.list_runs()] == ["20261122-011700-cd34", "20261122-011700-ab12", "r1"]
    assert [r.id for r in store.list_runs(kind="train", limit=1)] == ["20261122-011700-cd34"]
    assert store.find_run("20261122-011700-a").id == "20261122-011700-ab12"
    assert store.find_run("r1").id == "r1"
    assert store.find_run("zz") is None
    assert store.find_run("") is None
    with pytest.raises(UserError, match="ambiguous"):
        store.find_run("2026")


def test_events_round_trip(store: RunStore) -> None:
    ids = [store.add_event("r1", event) for event in ALL_EVENTS]
    assert ids == sorted(ids)
    stored = store.events("r1")
    assert [s.event for s in stored] == ALL_EVENTS
    assert [s.id for s in stored] == ids
    assert all(s.run_id == "r1" and s.time > 0 for s in stored)
    assert [s.event for s in store.events("r1", after_id=ids[3])] == ALL_EVENTS[4:]
    assert [s.event for s in store.events("r1", after_id=ids[0], limit=2)] == ALL_EVENTS[1:3]
    assert store.events("other") == []


def test_event_from_row() -> None:
    for event in ALL_EVENTS:
        assert event_from_row(event.type, {**event.to_payload(), "future_field": 1}) == event
    with pytest.raises(ValueError, match="unknown event type"):
        event_from_row("nope", {})
    with pytest.raises(ValueError, match="payload"):
        event_from_row("log", {"level": "info"})


def test_step_and_eval_land_in_metrics(store: RunStore) -> None:
    store.add_event("r1", step_event(2, loss=1.5))
    store.add_event("r1", step_event(1, loss=2.0))
    store.add_event("r1", Eval(step=2, eval_loss=1.75, perplexity=5.75))
    store.add_event("r1", Log("info", "not a metric"))
    rows = store.metrics("r1")
    assert [(r["step"], r["loss"], r["eval_loss"]) for r in rows] == [(1, 2.0, None), (2, 1.5, None),
                                                                      (2, None, 1.75)]
    assert rows[0]["lr"] == 1e-3 and rows[0]["epoch"] == pytest.approx(1 / 300)


def test_metrics_are_stored_once_and_carry_the_objectives_own(store: RunStore) -> None:
    step = Step(step=1, total_steps=3, epoch=0.1, loss=0.69, lr=1e-3, grad_norm=1.0, tokens_per_s=10.0,
                elapsed_s=1.0, metrics={"reward_accuracy": 0.5})
    store.add_event("r1", step)
    store.add_event("r1", Eval(step=1, eval_loss=0.6, perplexity=1.8, metrics={"reward_accuracy": 0.75}))
    rows = store.metrics("r1")
    assert [r["metrics"] for r in rows] == [{"reward_accuracy": 0.5}, {"reward_accuracy": 0.75}]
    payloads = store.db.execute("SELECT count(*) FROM events WHERE run_id = 'r1'").fetchone()[0]
    assert payloads == 2


def test_a_version_4_database_loses_only_the_duplicate_metrics_table(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    from engine.sqlite_lib import Database

    db = Database(conn)
    for migrate in store_schema.MIGRATIONS[:4]:
        migrate(db)
    conn.execute("PRAGMA user_version=4")
    conn.execute("INSERT INTO events (run_id, time, type, payload) VALUES ('r', 1.0, 'step', ?)",
                 ['{"step": 3, "total_steps": 9, "epoch": 0.5, "loss": 2.5, "lr": 0.001, "grad_norm": 1.0, '
                  '"tokens_per_s": 5.0, "elapsed_s": 2.0}'])
    conn.commit()
    conn.close()
    with RunStore(path) as store:
        assert [(r["step"], r["loss"], r["metrics"]) for r in store.metrics("r")] == [(3, 2.5, {})]


def test_checkpoint_bookkeeping(store: RunStore) -> None:
    assert store.best_checkpoint("r1") is None and store.latest_checkpoint("r1") is None
    store.add_checkpoint("r1", 10, "ck-10", 2.0, True, 100)
    store.add_checkpoint("r1", 20, "ck-20", 1.5, True, 200)
    store.add_checkpoint("r1", 30, "ck-30", 1.8, False, 300)
    assert [(c.step, c.is_best) for c in store.checkpoints("r1")] == [(10, False), (20, True),
                                                                       (30, False)]
    assert store.best_checkpoint("r1").path == "ck-20"
    assert store.latest_checkpoint("r1").path == "ck-30"
    store.remove_checkpoint("ck-30")
    assert store.latest_checkpoint("r1").path == "ck-20"
    assert store.checkpoints("r1")[0].size_bytes == 100


def test_delete_run(store: RunStore) -> None:
    store.add_event("r1", step_event(1))
    store.add_checkpoint("r1", 1, "ck-1", None, False, None)
    store.add_dataset_version("fp", "d.jsonl", 10, 100)
    store.link_run_dataset("r1", "fp")
    store.delete_run("r1")
    assert store.get_run("r1") is None
    assert store.events("r1") == [] and store.metrics("r1") == [] and store.checkpoints("r1") == []
    assert store.dataset_versions()[0]["runs"] == []  # the version stays, the link goes


def _write_steps(path: str, count: int) -> None:
    """Writer process: append ``count`` Step events to run r1."""
    with RunStore(Path(path)) as store:
        for step in range(1, count + 1):
            store.add_event("r1", step_event(step))
            if step % 25 == 0:
                store.heartbeat("r1")


def test_writer_process_and_polling_reader(tmp_path: Path) -> None:
    path = tmp_path / "llamahome.db"
    with RunStore(path) as store:
        store.create_run("r1", "train", {}, "m", "d")
        process = multiprocessing.get_context("spawn").Process(target=_write_steps,
                                                               args=(str(path), 300))
        process.start()
        seen: list[int] = []
        after = 0
        deadline = time.monotonic() + 60
        while len(seen) < 300 and time.monotonic() < deadline:
            for stored in store.events("r1", after_id=after):
                after = stored.id
                seen.append(stored.event.step)
            time.sleep(0.01)
        process.join(30)
        assert process.exitcode == 0
        assert seen == list(range(1, 301))
        assert len(store.metrics("r1")) == 300


def test_engine_modules_do_not_import_torch() -> None:
    code = ("import sys, engine.store, engine.events, engine.workspace; "
            "sys.exit('torch' in sys.modules or 'transformers' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_workspace_resolve_and_layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tmp_path = tmp_path.resolve()
    explicit = Workspace.resolve(str(tmp_path / "ws"), env={"LLAMAHOME_HOME": "/elsewhere"})
    assert explicit.root == tmp_path / "ws"
    assert Workspace.resolve(None, env={"LLAMAHOME_HOME": str(tmp_path / "env")}).root == tmp_path / "env"
    monkeypatch.chdir(tmp_path)
    default = Workspace.resolve(None, env={})
    assert default.root == tmp_path / "workspace"
    assert default.db_path == default.root / "llamahome.db"
    assert default.run_dir("abc") == default.runs_dir / "abc"
    with pytest.raises(ValueError):
        default.run_dir("../x")
    default.ensure()
    assert all(p.is_dir() for p in (default.runs_dir, default.models_dir, default.cache_dir))


def test_new_run_id() -> None:
    run_id = new_run_id(datetime(2026, 11, 22, 1, 17, 0, tzinfo=timezone.utc))
    assert re.fullmatch(r"20261122-011700-[0-9a-f]{4}", run_id)
    assert re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{4}", new_run_id())
