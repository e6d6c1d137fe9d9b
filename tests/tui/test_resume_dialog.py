"""The resume dialog (max steps, learning rate; a finished run says it has no step left) and the
evaluate prompt starting with the run's own eval file."""

from __future__ import annotations

from history import fake_run
from support import fake_checkpoint
from textual.widgets import Input, Static

from llamahome_tui.screens.checkpoints import CheckpointsScreen
from llamahome_tui.screens.dialogs import PromptScreen
from llamahome_tui.screens.resume_dialog import ResumeChoice, ResumeScreen, parse
from llamahome_tui.widgets.filter_table import FilterTable

CONFIG = {"training": {"method": "lora", "max_steps": 40, "learning_rate": 1e-3},
          "job": {"data": "/x/train.jsonl", "eval_data": "/x/held.jsonl"}}


def finished_40_step_run(engine) -> str:
    """A finished run of 40 steps whose step-40 checkpoint is whole."""
    run_id = fake_run(engine, "20260101-000000-aaaa", 40, 3.0)
    engine.store.update_run(run_id, config=CONFIG)
    folder = engine.workspace.run_dir(run_id) / "checkpoints" / "step-000040"
    fake_checkpoint(folder, run_id, step=40, config=CONFIG)
    return run_id


def no_worker(engine, started: list) -> None:
    """``Engine.start_run`` records what it was asked and starts nothing."""
    def start_run(kind, config, model, dataset_path="", output_dir="", resumed_from=None, fingerprint=""):
        started.append((kind, config, resumed_from))
        engine.store.create_run("20260101-000300-new", kind, config, model, dataset_path, resumed_from=resumed_from)
        engine.store.update_run("20260101-000300-new", status="stopped")
        return "20260101-000300-new"
    engine.start_run = start_run


async def open_resume_on_last_checkpoint(app, pilot) -> None:
    screen = app.screen
    assert isinstance(screen, CheckpointsScreen)
    table = screen.query_one("#ckpt-table", FilterTable)
    table.focus()
    table.move_cursor(row=table.row_count - 1)
    await pilot.pause()
    await pilot.press("r")
    await pilot.pause(0.2)


async def test_a_finished_run_says_it_has_no_step_left_until_max_steps_is_raised(make_app, engine):
    run_id = finished_40_step_run(engine)
    started: list = []
    no_worker(engine, started)
    app = make_app("checkpoints", run_id=run_id)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_resume_on_last_checkpoint(app, pilot)
        dialog = app.screen
        assert isinstance(dialog, ResumeScreen)
        assert dialog.plan["step"] == 40 and dialog.plan["max_steps"] == 40
        note = str(dialog.query_one("#resume-note", Static).render())
        assert "already made all its 40 steps" in note
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is dialog, "Enter with the same max steps is refused"
        assert "not past the checkpoint's step 40" in str(dialog.query_one("#resume-note", Static).render())
        steps = dialog.query_one("#resume-steps", Input)
        steps.value = "80"
        await pilot.pause()
        note = str(dialog.query_one("#resume-note", Static).render())
        assert "it trains 40 more steps (to step 80)" in note, "the note follows the max steps typed"
        dialog.query_one("#resume-rate", Input).value = "5e-4"
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await pilot.pause(0.2)
    assert len(started) == 1
    kind, config, resumed_from = started[0]
    assert (kind, resumed_from) == ("train", run_id)
    assert config["training"]["max_steps"] == 80 and config["training"]["learning_rate"] == 5e-4
    assert config["job"]["resume_from"].endswith("step-000040")


async def test_evaluate_starts_with_the_runs_own_eval_file(make_app, engine):
    run_id = finished_40_step_run(engine)
    app = make_app("checkpoints", run_id=run_id)
    async with app.run_test(size=(80, 24)) as pilot:
        app.screen.query_one("#ckpt-table", FilterTable).focus()
        await pilot.press("e")
        await pilot.pause(0.2)
        assert isinstance(app.screen, PromptScreen)
        assert app.screen.query_one(Input).value == "/x/held.jsonl"
        assert "the run's eval file" in app.screen.question


def test_the_dialog_fields_are_checked():
    plan = {"step": 20, "max_steps": 40, "learning_rate": 1e-3}
    assert parse(plan, "40", "0.001") == ResumeChoice(None, None), "unchanged settings stay the run's"
    assert parse(plan, "1,000", "2e-4") == ResumeChoice(1000, 2e-4)
    assert parse(plan, "ten", "1e-3") == "max steps: ten is not a whole number"
    assert parse(plan, "40", "fast") == "learning rate: fast is not a number"
    assert "not past the checkpoint's step 20" in parse(plan, "20", "1e-3")
