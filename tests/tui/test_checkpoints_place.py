"""The checkpoints screen keeps the user's place: the run they moved to stays highlighted after a
dialog, a run shows its newest checkpoint first, and the palette acts on what the screen shows."""

from __future__ import annotations

from history import fake_run

from llamahome_tui.screens.checkpoints import CheckpointsScreen
from llamahome_tui.screens.dialogs import PromptScreen
from llamahome_tui.widgets.filter_table import FilterTable

OLD, NEW = "20260101-000000-aaaa", "20260101-000100-bbbb"


def tables(app) -> tuple[FilterTable, FilterTable]:
    screen = app.screen if isinstance(app.screen, CheckpointsScreen) else app.screen_stack[-2]
    return screen.query_one("#ckpt-runs", FilterTable), screen.query_one("#ckpt-table", FilterTable)


async def test_a_run_shows_with_its_newest_checkpoint_highlighted(make_app, engine):
    fake_run(engine, OLD, 30, 3.0)
    fake_run(engine, NEW, 20, 2.0)
    app = make_app("checkpoints", run_id=NEW)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.2)
        runs, checkpoints = tables(app)
        assert runs.selected_key == NEW and checkpoints.selected_key.endswith("step-000020")
        await pilot.press("j")
        await pilot.pause(0.2)
        assert runs.selected_key == OLD
        assert checkpoints.selected_key.endswith(f"{OLD}/checkpoints/step-000030"), "r resumes where it stopped"


async def test_the_run_moved_to_stays_highlighted_after_a_dialog(make_app, engine):
    fake_run(engine, OLD, 30, 3.0)
    fake_run(engine, NEW, 20, 2.0)
    app = make_app("checkpoints", run_id=NEW)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.2)
        await pilot.press("j", "e")
        await pilot.pause(0.2)
        assert isinstance(app.screen, PromptScreen)
        assert OLD in app.screen.question and "step-000030" in app.screen.question
        assert app.screen.value == "/nowhere/chat.jsonl", "no eval file of its own: the run's training file"
        assert "all of it" in app.screen.question, "it does not pretend to evaluate on the held-out part only"
        await pilot.press("escape")
        await pilot.pause(0.2)
        runs, checkpoints = tables(app)
        assert runs.selected_key == OLD, "closing a dialog does not move the cursor back to the followed run"
        assert checkpoints.selected_key.endswith(f"{OLD}/checkpoints/step-000030")


async def test_the_palette_acts_on_the_run_the_screen_shows(make_app, engine):
    fake_run(engine, OLD, 30, 3.0)
    fake_run(engine, NEW, 20, 2.0)
    app = make_app("checkpoints", run_id=OLD)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.2)
        await pilot.press("1")
        app.state.run_id = NEW  # a run followed meanwhile (a resume, an attach on Runs)
        await app.run_command_in("checkpoints", "Evaluate checkpoint")
        await pilot.pause(0.2)
        assert isinstance(app.screen, PromptScreen)
        runs, _ = tables(app)
        assert runs.selected_key == NEW
        assert NEW in app.screen.question and "step-000020" in app.screen.question, app.screen.question
