"""Real runs driven from the console: start, pause, resume, checkpoint now, stop; evaluate and resume."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from textual.pilot import Pilot
from textual.widgets import Static

from engine.config import load_config
from llamahome_tui.screens.dialogs import ConfirmScreen, PromptScreen
from llamahome_tui.screens.resume_dialog import ResumeScreen
from llamahome_tui.screens.training import TrainingScreen
from llamahome_tui.widgets.filter_table import FilterTable
from llamahome_tui.widgets.line_chart import LineChart


async def wait_for(pilot: Pilot, condition: Callable[[], object], timeout: float = 90.0) -> None:
    """Let the app run until ``condition()`` is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the run"
        await pilot.pause(0.2)


async def test_live_run_from_the_training_screen(make_app, engine, tiny_model_dir, chat_files):
    train, held_out = chat_files
    overrides = [f'model.path="{tiny_model_dir}"', "training.max_steps=2000", "training.log_steps=1",
                 "training.batch_size=4", "eval.steps=0", "eval.generate_samples=0",
                 "checkpoint.save_steps=5000"]
    app = make_app("training", dataset=train, eval_data=held_out, overrides=overrides)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        assert isinstance(screen, TrainingScreen)
        await pilot.press("n")
        await wait_for(pilot, lambda: screen.feed is not None and len(screen.feed.losses) >= 2)
        run_id = screen.feed.run_id
        assert app.state.watched == {run_id}
        assert screen.query_one(LineChart).series[0].values
        await pilot.press("p")
        await wait_for(pilot, lambda: engine.get_run(run_id).status == "paused")
        await pilot.press("p")
        await wait_for(pilot, lambda: engine.get_run(run_id).status == "running")
        await pilot.press("c")
        await wait_for(pilot, lambda: len(engine.checkpoints(run_id)) >= 2)
        await pilot.press("s")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await wait_for(pilot, lambda: screen.feed.ended)
        assert app.live_runs() == []
    run = engine.get_run(run_id)
    assert run.status == "stopped"
    assert len(engine.checkpoints(run_id)) >= 2


async def wait_ended(engine, run_id: str) -> None:
    """Wait for a run started outside the app to end."""
    async for _ in engine.attach(run_id):
        pass


@pytest.mark.slow
async def test_checkpoints_evaluate_and_resume_real_runs(make_app, engine, tiny_model_dir, chat_files):
    train, held_out = chat_files
    config = load_config(None, [f'model.path="{tiny_model_dir}"', "training.max_steps=4", "training.batch_size=8",
                                "checkpoint.save_steps=2", "eval.steps=0", "eval.generate_samples=0"], env={})
    first = engine.start_training(train, config, eval_data=held_out)
    await wait_ended(engine, first)
    app = make_app("checkpoints", run_id=first, eval_data=held_out)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        table = screen.query_one("#ckpt-table", FilterTable)
        assert table.keys, "the run wrote no checkpoint"
        table.focus()
        table.move_cursor(row=0)
        await pilot.press("e")
        assert isinstance(app.screen, PromptScreen)
        await pilot.press("enter")
        status = screen.query_one("#ckpt-status", Static)
        await wait_for(pilot, lambda: "eval_loss" in str(status.render()), timeout=120)
        assert "finished" in str(status.render())
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, ResumeScreen), timeout=10)
        await pilot.press("enter")  # the dialog's settings unchanged: the run's own
        await wait_for(pilot, lambda: app.current_mode == "training", timeout=60)
        training = app.screen
        await wait_for(pilot, lambda: training.feed is not None and training.feed.ended, timeout=120)
        resumed = training.feed.run_id
    assert engine.get_run(resumed).resumed_from == first
    assert engine.get_run(resumed).status == "finished"
    assert [r.kind for r in engine.list_runs()].count("eval") == 1
