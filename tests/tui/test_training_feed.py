"""The training screen's feed: merged updates under a flood, the progress line at 80x24, elapsed
time from the store's event times, wrapped log lines, and a stop said as a stop."""

from __future__ import annotations

import asyncio
import os
import time
import types

import pytest
from history import T0
from screen_text import line_with, screen_lines
from textual.widgets import Static

import engine.store
from engine.events import Eval, Finished, Log, Resources, Started, Step
from llamahome_tui.screens.training import TrainingScreen
from llamahome_tui.widgets.run_feed import RunFeed


def text_of(screen, selector: str) -> str:
    return str(screen.query_one(selector, Static).render())


def live_run(engine, run_id: str = "20260101-000000-live") -> str:
    """A run that looks live: running, this process as its worker (started now), a fresh heartbeat."""
    engine.store.create_run(run_id, "train", {"training": {"method": "lora"}}, "tiny", "/x/chat.jsonl")
    now = time.time()
    engine.store.update_run(run_id, status="running", pid=os.getpid(), started_at=now, heartbeat_at=now)
    return run_id


@pytest.fixture
def store_clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The store stamps events with ``clock[0]`` (set it before each add_event)."""
    clock = [T0]
    monkeypatch.setattr(engine.store, "time", types.SimpleNamespace(time=lambda: clock[0]))
    return clock


async def test_a_flood_of_interleaved_updates_is_drawn_a_few_times_with_the_last_values(make_app):
    app = make_app("training")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        assert isinstance(screen, TrainingScreen)
        feed = RunFeed("20260101-000000-fast")
        screen.feed = feed
        for i in range(1, 251):
            screen.ingest(feed, Step(i, 250, i / 250, 3.0 - i / 100, 1e-3, 1.0, 100.0 * i, i * 0.1))
            screen.ingest(feed, Resources(float(i % 97), 100.0 + i, None, None))
            await asyncio.sleep(0)  # the worker gives the event loop a turn, as attach does
        await pilot.pause(0.3)
        assert len(feed.losses) == 250, "every point is kept"
        assert screen.notices < 50 and screen.redraws < 50, (screen.notices, screen.redraws)
        assert "step 250/250" in text_of(screen, "#progress-text")
        assert "0.5000" in text_of(screen, "#run-numbers")
        gauges = text_of(screen, "#gauges")
        assert f"{(250 % 97) / 100:.1f} cores" in gauges and "350M" in gauges


async def test_progress_line_fits_80_columns_with_elapsed_from_event_times(make_app, engine, store_clock):
    store = engine.store
    run_id = live_run(engine)
    store_clock[0] = T0
    store.add_event(run_id, Started(run_id, "train", 400, "tiny", "/x/chat.jsonl"))
    for step in range(1, 53):
        store_clock[0] = T0 + 2.0 * step
        store.add_event(run_id, Step(step, 400, step / 400, 2.0, 1e-3, 1.0, 1000.0, 0.0))  # elapsed_s 0.0
    store.add_event(run_id, Resources(80.0, 512.0, None, None, eta_s=785.0))
    long_line = "tokenizer: " + " ".join(f"word{i}" for i in range(30)) + " THE-END"
    store.add_event(run_id, Log("info", long_line))
    app = make_app("training", run_id=run_id)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.6)
        line = line_with(app, "step 52/400")
        assert "━ step 52/400 13%" in line, line
        assert "elapsed 1:44" in line and line.rstrip().endswith("ETA 13:05"), line
        assert any("THE-END" in row for row in screen_lines(app)), "the long log line is clipped, not wrapped"


async def test_a_stopped_run_says_stopped_in_its_log(make_app, engine):
    run_id, store = "20260101-000000-stop", engine.store
    store.create_run(run_id, "train", {"training": {"method": "lora"}}, "tiny", "/x/chat.jsonl")
    store.add_event(run_id, Started(run_id, "train", 20, "tiny", "/x/chat.jsonl"))
    store.add_event(run_id, Step(5, 20, 0.25, 2.0, 1e-3, 1.0, 1000.0, 0.0))
    store.add_event(run_id, Eval(5, 2.1, 8.2))
    store.add_event(run_id, Finished({"stopped_reason": "stopped", "steps": 5}))
    store.update_run(run_id, status="stopped", started_at=T0, ended_at=T0 + 60)
    app = make_app("training", run_id=run_id)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.5)
        screen = app.screen
        assert screen.feed is not None and screen.feed.ended
        assert "stopped" in text_of(screen, "#run-head")
        assert list(screen.feed.log)[-1] == "stopped (checkpoint written)"
        assert "finished" not in " ".join(screen.feed.log)
        line_with(app, "stopped (checkpoint written)")


@pytest.mark.parametrize("with_elapsed", [True, False])
def test_the_eta_of_a_resumed_run_comes_from_its_own_steps(with_elapsed: bool) -> None:
    """The first 40 steps took 1000 s in an earlier run; this one makes a step a second."""
    feed = RunFeed("resumed")
    feed.apply(Started("resumed", "train", 0, "tiny", "/x/chat.jsonl"), at=T0)
    for step in range(41, 51):
        at = T0 + 30.0 + (step - 41)  # 30 s to start up, then one step a second
        feed.apply(Step(step, 100, 0.5, 2.0, 1e-3, 1.0, 500.0, 1000.0 + (step - 40) if with_elapsed else 0.0), at)
    assert feed.eta_s() == pytest.approx(50.0)


async def test_an_evaluation_run_in_view_shows_its_result_under_result_not_samples(make_app, engine):
    run_id = "20260101-000000-eval"
    store = engine.store
    store.create_run(run_id, "eval", {}, "/x/step-000040", "/x/held.jsonl")
    store.add_event(run_id, Started(run_id, "eval", 0, "/x/step-000040", "/x/held.jsonl"))
    store.add_event(run_id, Finished({"eval_loss": 1.8923, "perplexity": 6.6345}))
    store.update_run(run_id, status="finished", started_at=T0, ended_at=T0 + 30)
    app = make_app("training", run_id=run_id)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause(0.2)
        panel = text_of(app.screen, "#samples")
        assert panel.startswith("Result\n") and "Samples" not in panel, panel
        assert "eval loss: 1.8923" in panel and "perplexity: 6.63" in panel, panel
