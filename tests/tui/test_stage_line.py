"""The stage line: the training screen says what the run is doing, live; evaluation jobs on the
checkpoints screen say it too."""

from __future__ import annotations

import os
import time

from history import live_run_in_stage
from screen_text import line_with, screen_lines
from textual.widgets import Static

from engine.events import Paused, Stage, Started
from llamahome_tui.screens.checkpoints import CheckpointsScreen
from llamahome_tui.widgets.stage_line import mini_bar


def stage_line(app) -> str:
    return str(app.screen.query_one("#run-stage", Static).render())


async def until(pilot, condition, timeout: float = 5.0) -> None:
    """Let the app run until ``condition()`` holds (the attach polls every 0.2 s)."""
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        await pilot.pause(0.1)


async def test_the_training_screen_says_the_stage_and_follows_it_live(make_app, engine):
    run_id = live_run_in_stage(engine, "20260101-000000-live", 30, Stage("evaluating", 3, 12))
    app = make_app("training", run_id=run_id)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: "evaluating 3/12" in stage_line(app))
        row = line_with(app, "evaluating 3/12 batches")
        assert row.strip().startswith("▶ evaluating 3/12 batches") and row.rstrip().endswith("25%"), row
        assert "ETA 0:05" in line_with(app, "step 30/40")
        engine.store.add_event(run_id, Stage("evaluating", 12, 12))
        engine.store.add_event(run_id, Stage("saving_checkpoint", detail="step-000040"))
        await until(pilot, lambda: "saving" in stage_line(app))
        assert stage_line(app) == "▶ saving checkpoint step-000040"
        assert any("… saving checkpoint step-000040" in row for row in screen_lines(app)), "the log tail says it"
        engine.store.add_event(run_id, Paused(40, "/x/step-000040"))
        await until(pilot, lambda: "paused" in stage_line(app))
        assert stage_line(app) == "⏸ paused at step 40  p resumes"


async def test_before_any_step_the_stage_replaces_the_silence(make_app, engine):
    run_id = live_run_in_stage(engine, "20260101-000000-tok", 0, Stage("tokenizing", 1536, 4096, "of chat.jsonl"))
    app = make_app("training", run_id=run_id)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: "tokenizing" in stage_line(app))
        assert stage_line(app).startswith("▶ tokenizing 1,536/4,096 records of chat.jsonl")
        assert stage_line(app).endswith("38%")


async def test_an_ended_run_has_no_stage_line(make_app, engine):
    from history import fake_run

    run_id = fake_run(engine, "20260101-000000-done", 20, 3.0)
    app = make_app("training", run_id=run_id)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause(0.3)
        assert stage_line(app) == ""


async def test_an_evaluation_job_on_the_checkpoints_screen_shows_its_stage(make_app, engine):
    store, run_id = engine.store, "20260101-000000-eval"
    store.create_run(run_id, "eval", {}, "/x/step-000040", "/x/held.jsonl")
    now = time.time()
    store.update_run(run_id, status="running", pid=os.getpid(), started_at=now, heartbeat_at=now)
    store.add_event(run_id, Started(run_id, "eval", 0, "/x/step-000040", "/x/held.jsonl"))
    store.add_event(run_id, Stage("evaluating", 5, 20))
    app = make_app("checkpoints")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        assert isinstance(screen, CheckpointsScreen)
        screen.follow_job(run_id, "evaluating")
        await until(pilot, lambda: "batches" in str(screen.query_one("#ckpt-status", Static).render()))
        status = str(screen.query_one("#ckpt-status", Static).render())
        assert status == f"evaluating (run {run_id}): evaluating 5/20 batches", status


def test_the_mini_bar_fills_in_eighths():
    assert mini_bar(0.0, 4) == "    " and mini_bar(1.0, 4) == "████" and mini_bar(0.25 + 1 / 32, 4) == "█▏  "


async def test_a_stop_asked_for_shows_until_the_run_ends(make_app, engine):
    """The worker stops at the end of its step (after that step's samples, evaluation and checkpoint):
    until then the stage line says the stop is on its way, not only a toast that fades."""
    run_id = live_run_in_stage(engine, "20260101-000000-stop", 30, Stage("evaluating", 3, 12))
    app = make_app("training", run_id=run_id)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: "evaluating 3/12" in stage_line(app))
        await pilot.press("s", "y")
        await until(pilot, lambda: "stopping" in stage_line(app))
        assert stage_line(app).startswith("⏹ stopping · evaluating 3/12 batches"), stage_line(app)
        assert [row["command"] for row in engine.store.db["controls"].rows] == ["stop"]
        engine.store.add_event(run_id, Stage("saving_checkpoint", detail="step-000031"))
        await until(pilot, lambda: "saving" in stage_line(app))
        assert stage_line(app) == "⏹ stopping · saving checkpoint step-000031", "it stays while the run goes on"


async def test_a_pause_asked_for_shows_until_the_run_pauses(make_app, engine):
    run_id = live_run_in_stage(engine, "20260101-000000-paus", 30, Stage("training"))
    app = make_app("training", run_id=run_id)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: "training" in stage_line(app))
        await pilot.press("p")
        await until(pilot, lambda: "pausing" in stage_line(app))
        assert stage_line(app) == "⏸ pausing · training"
        engine.store.add_event(run_id, Paused(31, "/x/step-000031"))
        await until(pilot, lambda: "paused at" in stage_line(app))
        assert stage_line(app) == "⏸ paused at step 31  p resumes"
        assert "step 31/40" in line_with(app, "ETA"), "the progress says the step it paused at, not the last logged"


async def test_a_queued_run_says_what_it_waits_for(make_app, engine):
    from engine.events import Log

    ahead = live_run_in_stage(engine, "20260101-000000-ahed", 5, Stage("training"))
    queued = "20260101-000100-queu"
    store = engine.store
    store.create_run(queued, "train", {"job": {"data": "/nowhere/chat.jsonl", "queue_after": [ahead]}}, "tiny",
                     "/nowhere/chat.jsonl")
    now = time.time()
    store.update_run(queued, status="queued", pid=os.getpid(), heartbeat_at=now)
    store.add_event(queued, Log("info", f"queued: starts when {ahead} ends"))
    app = make_app("training", run_id=queued)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: "queued" in stage_line(app))
        assert stage_line(app) == f"⏳ queued: starts when run {ahead} ends"


async def test_the_elapsed_clock_goes_on_between_steps_and_stops_when_paused(make_app, engine):
    """An evaluation can take a minute between two steps: the clock keeps going meanwhile (the
    console's clock, frozen in tests; here moved by hand), and stands still while paused."""
    run_id = live_run_in_stage(engine, "20260101-000000-tick", 30, Stage("evaluating", 3, 12))
    clock = [1_767_225_600.0]
    app = make_app("training", run_id=run_id, clock=lambda: clock[0])
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: "elapsed 0:15" in line_with(app, "ETA"))
        clock[0] += 65
        await until(pilot, lambda: "elapsed 1:20" in line_with(app, "ETA"), timeout=3)
        assert "elapsed 1:20" in line_with(app, "ETA"), line_with(app, "ETA")
        engine.store.add_event(run_id, Paused(30, "/x/step-000030"))
        await until(pilot, lambda: "paused" in stage_line(app))
        clock[0] += 100
        await pilot.pause(1.3)
        assert "elapsed 1:20" in line_with(app, "ETA"), "paused: the clock stands"
