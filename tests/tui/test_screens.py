"""Each screen's main flows on a real Engine and a workspace with a deterministic history."""

from __future__ import annotations

from history import checkpoint_dirs, fake_run
from textual.widgets import Input, Label, Static

from llamahome_tui.screens.checkpoints import CheckpointsScreen
from llamahome_tui.screens.dialogs import ConfirmScreen, PromptScreen
from llamahome_tui.screens.training import TrainingScreen
from llamahome_tui.widgets.config_form import ValueEditor
from llamahome_tui.widgets.filter_table import FilterTable
from llamahome_tui.widgets.line_chart import LineChart


def text_of(screen, selector: str) -> str:
    """The plain text a Static shows."""
    return str(screen.query_one(selector, Static).render())


async def test_datasets_report_points_at_the_bad_line_and_enter_chooses(make_app, data_dir):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.5)
        report = text_of(app.screen, "#report-text")
        assert "broken.jsonl" in report and "bad_json 1" in report
        assert app.screen.query_one("#data-issues", FilterTable).keys == ["0"]
        await pilot.press("down")
        await pilot.pause(0.5)
        report = text_of(app.screen, "#report-text")
        assert "✓ valid" in report and "12 of 12" in report and "What is 0 + 0?" in report
        await pilot.press("enter")
        assert app.state.dataset == data_dir / "chat.jsonl"
        await pilot.press("t")
        assert app.current_mode == "training"
        assert "chat.jsonl" in text_of(app.screen, "#run-head")


async def test_config_edits_are_checked_as_typed_and_saved_keeping_comments(make_app, workspace):
    config_file = workspace.root / "config.toml"
    config_file.write_text("# my settings\n[training]\n# faster\nepochs = 3\n")
    app = make_app("config")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        assert screen.text_of("training.epochs") == "3"
        table = screen.query_one(FilterTable)
        await pilot.press("slash", *"learning_rate", "enter")
        assert table.keys == ["training.learning_rate"]
        assert "Peak learning rate" in text_of(screen, "#config-help")
        await pilot.press("enter")
        editor = app.screen
        assert isinstance(editor, ValueEditor)
        editor.query_one(Input).value = "-1"
        await pilot.pause()
        assert "training.learning_rate = -1: must be > 0" in str(editor.query_one("#value-error", Label).render())
        await pilot.press("enter")
        assert app.screen is editor, "a bad value must not be accepted"
        editor.query_one(Input).value = "2e-4"
        await pilot.press("enter")
        assert screen.edits == {"training.learning_rate": "2e-4"}
        await pilot.press("f8", "ctrl+s")
        await pilot.pause()
        assert screen.edits == {}
    saved = config_file.read_text()
    assert "# my settings" in saved and "# faster" in saved and "epochs = 3" in saved
    assert 'method = "full"' in saved and "learning_rate = 0.0001" in saved


async def test_runs_compare_and_delete(make_app, engine):
    fake_run(engine, "20260101-000000-aaaa", 40, 3.0)
    fake_run(engine, "20260101-000100-bbbb", 20, 2.5, status="stopped")
    app = make_app("runs")
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.screen.query_one(FilterTable)
        assert table.keys == ["20260101-000100-bbbb", "20260101-000000-aaaa"]
        await pilot.press("m", "down", "m", "c")
        chart = app.screen.query_one(LineChart)
        lines = [s for s in chart.series if not s.markers]
        assert [s.label for s in lines] == ["20260101-000100-bbbb", "20260101-000000-aaaa"]
        assert len(lines[1].values) == 40
        assert [len(s.values) for s in chart.series if s.markers] == [2, 4], "each run's evaluations, as points"
        await pilot.press("d")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        assert len(engine.list_runs()) == 2
        await pilot.press("d", "y")
        await pilot.pause()
        assert table.keys == ["20260101-000100-bbbb"]
    assert [r.id for r in engine.list_runs()] == ["20260101-000100-bbbb"]


async def test_runs_enter_attaches_and_training_replays_history(make_app, engine):
    fake_run(engine, "20260101-000000-aaaa", 40, 3.0)
    app = make_app("runs")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("enter")
        assert app.current_mode == "training"
        screen = app.screen
        assert isinstance(screen, TrainingScreen)
        await pilot.pause(0.5)
        assert screen.feed is not None and screen.feed.ended
        assert len(screen.feed.losses) == 40 and screen.feed.eval_steps == [10, 20, 30, 40]
        assert "step 40/40" in text_of(screen, "#progress-text")
        assert "finished" in text_of(screen, "#run-head")
        assert "2 + 2 = 4" in text_of(screen, "#samples")


async def test_checkpoints_list_delete_and_evaluate_prompt(make_app, engine, data_dir):
    run_id = fake_run(engine, "20260101-000000-aaaa", 30, 3.0)
    app = make_app("checkpoints", run_id=run_id)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        assert isinstance(screen, CheckpointsScreen)
        table = screen.query_one("#ckpt-table", FilterTable)
        assert len(table.keys) == 3
        assert table.selected_key.endswith("step-000030"), "the newest checkpoint is highlighted"
        table.focus()
        await pilot.press("g")  # the oldest
        await pilot.press("e")
        assert isinstance(app.screen, PromptScreen)
        await pilot.press("escape")
        await pilot.press("d", "y")
        await pilot.pause()
        assert len(table.keys) == 2
    assert [p.name for p in checkpoint_dirs(engine, run_id)] == ["step-000020", "step-000030"]


async def test_training_start_without_dataset_says_what_to_do(make_app, engine):
    app = make_app("training")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("n")
        await pilot.pause()
        assert engine.list_runs() == []
        assert any("choose a dataset" in str(n.message) for n in app._notifications)


async def test_prompt_answers_with_text(make_app):
    app = make_app()
    answers = []
    async with app.run_test(size=(80, 24)) as pilot:
        app.push_screen(PromptScreen("Path?"), answers.append)
        await pilot.pause()
        app.screen.query_one(Input).value = "x.jsonl"
        await pilot.press("enter")
    assert answers == ["x.jsonl"]


async def test_runs_paused_time_counts_and_esc_closes_the_comparison(make_app, engine, monkeypatch):
    from conftest import FROZEN_NOW

    fake_run(engine, "20260101-000000-aaaa", 40, 3.0)
    fake_run(engine, "20260101-000100-bbbb", 20, 2.5)
    engine.store.create_run("20260101-000200-paus", "train", {"training": {"method": "lora"}}, "tiny", "/x/c.jsonl")
    engine.store.update_run("20260101-000200-paus", status="paused", started_at=FROZEN_NOW - 125, pid=None)
    monkeypatch.setattr(engine, "_dead", lambda run: False)  # the paused run's worker is alive
    app = make_app("runs")
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.screen.query_one(FilterTable)
        assert table.keys[0] == "20260101-000200-paus"
        assert [str(c) for c in table.get_row_at(0)][-1] == "2:05"
        await pilot.press("down", "m", "down", "m", "c")
        compare = app.screen.query_one("#compare")
        assert compare.has_class("shown")
        await pilot.press("escape")
        assert not compare.has_class("shown") and app.current_mode == "runs"
        await pilot.press("escape")
        assert app.current_mode == "runs", "nowhere to go back to: Esc stays"


async def test_help_says_when_more_keys_are_below(make_app):
    from textual.containers import VerticalScroll
    from textual.widgets import Label

    from llamahome_tui.screens.dialogs import HelpScreen

    for size, more in (((80, 24), True), ((120, 40), False)):
        app = make_app("training")
        async with app.run_test(size=size) as pilot:
            await pilot.press("question_mark")
            await pilot.pause(0.2)
            assert isinstance(app.screen, HelpScreen)
            keys = str(app.screen.query_one(".dialog-keys", Label).render())
            assert ("more keys" in keys) is more, (size, keys)
            if more:
                await pilot.press("j", "j", "j", "j", "j", "j", "j", "j")
                await pilot.pause(0.1)
                scroll = app.screen.query_one(VerticalScroll)
                assert scroll.scroll_y == scroll.max_scroll_y > 0, "j scrolls to the global keys"
