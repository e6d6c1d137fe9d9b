"""The runs screen's detail pane: config used, data and dataset version, resumed-from, output, dates."""

from __future__ import annotations

import time

import pytest
from history import T0, fake_run
from textual.widgets import Static

from llamahome_tui.screens.runs import RunsScreen

SOURCE, RESUMED = "20260101-000000-aaaa", "20260101-000100-bbbb"
CONFIG = {"model": {"path": "/models/tiny"},
          "training": {"method": "lora", "objective": "sft", "learning_rate": 5e-4, "max_steps": 80, "batch_size": 8},
          "lora": {"r": 16, "alpha": 32}, "launch": {"nproc_per_node": 2},
          "job": {"data": "/data/chat.jsonl", "eval_data": "/data/held.jsonl",
                  "resume_from": f"/ws/runs/{SOURCE}/checkpoints/step-000040"}}


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def resumed_run(engine) -> None:
    """A finished run and a run resumed from its step 40, with a dataset version and its precision."""
    fake_run(engine, SOURCE, 40, 3.0)
    store = engine.store
    store.create_run(RESUMED, "train", CONFIG, "/models/tiny", "/data/chat.jsonl",
                     output_dir=str(engine.workspace.run_dir(RESUMED)), resumed_from=SOURCE)
    store.add_dataset_version("3f2a9c1d00112233", "/data/chat.jsonl", 4000, 512_345)
    store.link_run_dataset(RESUMED, "3f2a9c1d00112233", "train")
    store.merge_runtime(RESUMED, {"precision": "fp32"})
    store.update_run(RESUMED, status="finished", created_at=T0 + 60, started_at=T0 + 60, ended_at=T0 + 150)


def pane(app) -> str:
    return str(app.screen.query_one("#run-detail", Static).render())


async def test_the_pane_shows_what_the_highlighted_run_was(make_app, engine):
    resumed_run(engine)
    app = make_app("runs")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(0.3)
        assert isinstance(app.screen, RunsScreen) and app.screen.selected == RESUMED
        text = pane(app)
        assert f"run {RESUMED}  train  finished  started 2025-12-31 23:01  took 1:30" in text
        assert "lora r 16/α 32  sft  lr 5.0e-04  max steps 80  batch 8  model /models/tiny  fp32  world size 2" in text
        assert "/data/chat.jsonl  eval /data/held.jsonl  version train 3f2a9c1d (4,000 samples, 512,345 tokens)" in text
        assert f"output  ws/runs/{RESUMED}" in text
        assert f"resumed from run {SOURCE} at step-000040" in text
        await pilot.press("down")
        await pilot.pause(0.1)
        assert f"run {SOURCE}" in pane(app) and "resumed" not in pane(app)


def test_a_live_run_says_how_long_it_has_been_running(engine):
    import os

    import psutil

    from llamahome_tui.widgets.run_detail import detail_text

    resumed_run(engine)
    start = psutil.Process().create_time()  # this process plays the worker
    engine.store.update_run(RESUMED, status="running", ended_at=None, pid=os.getpid(), started_at=start,
                            heartbeat_at=time.time())
    text = str(detail_text(engine.run_detail(RESUMED), now=start + 60))
    assert f"run {RESUMED}  train  running  started {time.strftime('%Y-%m-%d %H:%M', time.localtime(start))}" \
           "  for 1:00" in text
    engine.store.update_run(RESUMED, status="crashed", pid=None, started_at=T0, heartbeat_at=T0 + 40)
    text = str(detail_text(engine.run_detail(RESUMED), now=T0 + 9_000))
    assert "crashed  started 2025-12-31 23:00  took 0:40" in text, "a crashed run's time ends at its last sign of life"
