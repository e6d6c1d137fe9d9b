"""Habits: Esc clears a filter first, the palette reaches every screen's actions, j/k/g/G, ctrl+c, start-while-live."""

from __future__ import annotations

from history import fake_run
from screen_text import line_with
from test_keep_place import fake_live_run
from textual.command import CommandPalette

from llamahome_tui.screens.dialogs import QuitScreen, StartScreen
from llamahome_tui.screens.runs import RunsScreen
from llamahome_tui.screens.training import TrainingScreen
from llamahome_tui.widgets.filter_table import FilterTable


async def test_esc_clears_an_applied_filter_before_it_goes_back(make_app):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("5", "1")
        table = app.screen.query_one(FilterTable)
        await pilot.press("slash", *"chat", "enter")
        assert table.keys == ["data/chat.jsonl"] and app.focused is table
        await pilot.press("escape")
        assert app.current_mode == "datasets", "the first Esc clears the filter"
        assert table.keys == ["data/broken.jsonl", "data/chat.jsonl"]
        await pilot.press("escape")
        assert app.current_mode == "runs", "the next one goes back"


async def test_esc_on_runs_closes_the_comparison_then_the_filter_then_goes_back(make_app, engine):
    fake_run(engine, "20260101-000000-aaaa", 20, 3.0)
    fake_run(engine, "20260101-000100-bbbb", 20, 2.0)
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("5", "m", "j", "m", "c", "slash", *"bbbb", "enter")
        screen = app.screen
        assert isinstance(screen, RunsScreen)
        assert screen.query_one("#compare").has_class("shown")
        await pilot.press("escape")
        assert not screen.query_one("#compare").has_class("shown")
        assert screen.query_one(FilterTable).keys == ["20260101-000100-bbbb"]
        await pilot.press("escape")
        assert len(screen.query_one(FilterTable).keys) == 2 and app.current_mode == "runs"
        await pilot.press("escape")
        assert app.current_mode == "datasets"


async def test_j_k_g_and_shift_g_move_in_tables(make_app, engine):
    for n in range(5):
        fake_run(engine, f"20260101-00000{n}-run{n}", 5, 2.0)
    app = make_app("runs")
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.screen.query_one(FilterTable)
        keys = table.keys
        await pilot.press("j", "j")
        assert table.selected_key == keys[2]
        await pilot.press("k")
        assert table.selected_key == keys[1]
        await pilot.press("G")
        assert table.selected_key == keys[-1]
        await pilot.press("g")
        assert table.selected_key == keys[0]


async def test_the_palette_runs_another_screens_action_from_here(make_app, data_dir):
    app = make_app("datasets")
    async with app.run_test(size=(80, 24)) as pilot:
        titles = [command.title for command in app.get_system_commands(app.screen)]
        for wanted in ("Start a training run (Training)", "Stop the run (Training)",
                       "Evaluate checkpoint (Checkpoints)", "Compare marked runs (Runs)", "Save config (Config)",
                       "Preset: LoRA (Config)"):
            assert wanted in titles, wanted
        await pilot.press("colon")
        assert isinstance(app.screen, CommandPalette)
        await pilot.press(*"start a training")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await pilot.pause(0.3)
        assert isinstance(app.screen, TrainingScreen), "it switched to the training screen"
        assert "choose a dataset first" in " ".join(str(n.message) for n in app._notifications), \
            "and ran the screen's own start action there"
        await pilot.press("escape")
        assert app.current_mode == "datasets", "Esc goes back to where the palette was opened"


async def test_the_palette_lists_this_screens_own_actions_unsuffixed(make_app):
    app = make_app("training")
    async with app.run_test(size=(80, 24)):
        titles = [command.title for command in app.get_system_commands(app.screen)]
        assert "Start a training run" in titles and "Start a training run (Training)" not in titles
        assert "Open a data file (Datasets)" in titles


async def test_ctrl_c_opens_the_consoles_own_quit_dialog(make_app, engine):
    run_id = fake_live_run(engine)
    app = make_app("runs", watched={run_id})
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("ctrl+c")
        assert isinstance(app.screen, QuitScreen) and app.screen.run_ids == [run_id]
        await pilot.press("ctrl+c")
        assert isinstance(app.screen, QuitScreen), "a second ctrl+c keeps the one dialog"
        await pilot.press("escape")
        assert isinstance(app.screen, RunsScreen)
    assert not any("ctrl+q" in str(n.message) for n in app._notifications)


async def test_ctrl_c_with_nothing_live_quits(make_app):
    app = make_app("runs")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("ctrl+c")
        await pilot.pause()
    assert app.return_code == 0


async def start_while_live(make_app, engine, data_dir, answer: str, monkeypatch):
    """Press n on the training screen while a run is live, answer the dialog; the engine calls made."""
    live = fake_live_run(engine)
    calls: list[dict] = []

    def start_training(data, config, eval_data=None, output=None, queue_after=()):
        calls.append({"data": data, "queue_after": list(queue_after)})
        engine.store.create_run("20260101-000900-next", "train", {"job": {}}, "tiny", str(data))
        engine.store.update_run("20260101-000900-next", status="failed")
        return "20260101-000900-next"

    monkeypatch.setattr(engine, "start_training", start_training)
    app = make_app("training", dataset=data_dir / "chat.jsonl", run_id=live)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("n")
        assert isinstance(app.screen, StartScreen)
        assert live in line_with(app, "already live")
        await pilot.press(answer)
        for worker in [w for w in app.workers if w.group == "start"]:
            await worker.wait()
        await pilot.pause()
        assert isinstance(app.screen, TrainingScreen)
    return live, calls


async def test_starting_while_a_run_is_live_asks_and_cancel_starts_nothing(make_app, engine, data_dir, monkeypatch):
    _, calls = await start_while_live(make_app, engine, data_dir, "escape", monkeypatch)
    assert calls == []


async def test_starting_while_a_run_is_live_can_queue_it(make_app, engine, data_dir, monkeypatch):
    live, calls = await start_while_live(make_app, engine, data_dir, "q", monkeypatch)
    assert calls == [{"data": data_dir / "chat.jsonl", "queue_after": [live]}]


async def test_starting_while_a_run_is_live_can_run_beside_it(make_app, engine, data_dir, monkeypatch):
    _, calls = await start_while_live(make_app, engine, data_dir, "b", monkeypatch)
    assert calls == [{"data": data_dir / "chat.jsonl", "queue_after": []}]
