"""A real run driven from the training screen: start, pause, resume, checkpoint now, stop."""

from __future__ import annotations

import time
from collections.abc import Callable

from textual.pilot import Pilot

from llamahome_tui.screens.dialogs import ConfirmScreen
from llamahome_tui.screens.training import TrainingScreen
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
        await wait_for(pilot, lambda: screen.feed.paused)
        assert engine.get_run(run_id).status == "paused"
        await pilot.press("p")
        await wait_for(pilot, lambda: not screen.feed.paused)
        await pilot.press("c")
        await wait_for(pilot, lambda: len(screen.feed.checkpoints) >= 2)
        await pilot.press("s")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await wait_for(pilot, lambda: screen.feed.ended)
        assert app.live_runs() == []
    run = engine.get_run(run_id)
    assert run.status == "stopped"
    assert len(engine.checkpoints(run_id)) >= 2
