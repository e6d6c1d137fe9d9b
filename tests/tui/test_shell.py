"""The app shell: modes, help, command palette, filter, Esc, quitting with a live run."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from textual.command import CommandPalette

from llamahome_tui.screens.datasets import DatasetsScreen
from llamahome_tui.screens.dialogs import HelpScreen, QuitScreen
from llamahome_tui.screens.runs import RunsScreen
from llamahome_tui.widgets.filter_table import FilterTable


def fake_live_run(engine, run_id: str = "20260101-000000-live") -> str:
    """A run that looks live: status running, this test process as its worker, a fresh heartbeat."""
    engine.store.create_run(run_id, "train", {"training": {"method": "lora"}}, "tiny", "/x/chat.jsonl")
    import psutil

    # started with this process (a later start reads as a pid reused by another process: crashed)
    started = psutil.Process().create_time()
    engine.store.update_run(run_id, status="running", pid=os.getpid(), started_at=started, heartbeat_at=time.time())
    return run_id


def test_ui_process_never_imports_torch():
    code = ("import sys, llamahome_tui.app, llamahome_tui.cli; "
            "sys.exit(any(m in sys.modules for m in ('torch', 'transformers')))")
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


async def test_number_keys_switch_screens_and_esc_goes_back(make_app):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        assert isinstance(app.screen, DatasetsScreen)
        await pilot.press("5")
        assert isinstance(app.screen, RunsScreen)
        await pilot.press("2")
        assert app.current_mode == "config"
        await pilot.press("escape")
        assert app.current_mode == "runs"
        await pilot.press("escape")
        assert app.current_mode == "datasets"


async def test_help_lists_the_keys_of_the_screen_in_view(make_app):
    app = make_app("runs")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        described = dict((d, k) for k, d in app.screen.keys)
        assert described["Compare"] == "c" and described["Delete"] == "d"
        await pilot.press("escape")
        assert isinstance(app.screen, RunsScreen)


async def test_colon_opens_the_palette_and_jumps_to_a_screen(make_app):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("colon")
        assert isinstance(app.screen, CommandPalette)
        await pilot.press(*"go to checkpoints")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await pilot.pause()
        assert app.current_mode == "checkpoints"


async def test_slash_filters_the_table_and_esc_clears_it(make_app):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.screen.query_one(FilterTable)
        assert table.keys == ["data/broken.jsonl", "data/chat.jsonl"]
        await pilot.press("slash", *"chat")
        assert table.keys == ["data/chat.jsonl"]
        await pilot.press("escape")
        assert table.keys == ["data/broken.jsonl", "data/chat.jsonl"]
        assert app.focused is table


async def test_quit_without_live_runs_exits_at_once(make_app):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("q")
        await pilot.pause()
        assert app.return_code == 0


async def test_quit_with_a_live_run_asks_and_leave_keeps_it_running(make_app, engine, monkeypatch):
    run_id = fake_live_run(engine)
    stopped = []
    monkeypatch.setattr(engine, "stop", stopped.append)
    app = make_app("runs", watched={run_id})
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("q")
        assert isinstance(app.screen, QuitScreen) and app.screen.run_ids == [run_id]
        await pilot.press("escape")
        assert isinstance(app.screen, RunsScreen)
        await pilot.press("q", "l")
        await pilot.pause()
    assert app.return_code == 0 and stopped == []
    assert engine.get_run(run_id).status == "running"


async def test_quit_with_a_live_run_can_stop_it(make_app, engine, monkeypatch):
    run_id = fake_live_run(engine)
    stopped = []
    monkeypatch.setattr(engine, "stop", stopped.append)
    app = make_app("runs", watched={run_id})
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("q", "s")
        await pilot.pause()
    assert stopped == [run_id]


def test_train_data_opens_the_training_screen_with_that_data(tmp_path, workspace):
    from llamahome_tui.app import COMMAND_MODES, state_from_args
    from llamahome_tui.cli import build_parser

    args = build_parser().parse_args(["train", "d.jsonl", "--eval-data", "e.jsonl", "--max-steps", "7",
                                      "--set", "lora.r=8"])
    state = state_from_args(args, workspace)
    assert COMMAND_MODES[args.command] == "training"
    assert state.dataset is not None and state.dataset.name == "d.jsonl" and state.eval_data.name == "e.jsonl"
    assert state.overrides == ["lora.r=8", "training.max_steps=7"]
    assert state.config_file == workspace.root / "config.toml"


async def test_every_footer_fits_80_columns_and_shows_what_enter_does(make_app, engine):
    from history import fake_run
    from screen_text import screen_lines

    run_id = fake_run(engine, "20260101-000000-aaaa", 20, 3.0)
    enter = {"datasets": "⏎ Train", "config": "⏎ Edit", "runs": "⏎ Attach"}
    app = make_app(run_id=run_id)
    async with app.run_test(size=(80, 24)) as pilot:
        for key, mode in zip("12345", ("datasets", "config", "training", "checkpoints", "runs"), strict=True):
            await pilot.press(key)
            await pilot.pause()
            footer = screen_lines(app)[-1]
            assert footer.rstrip().endswith("? Help  q Quit"), (mode, footer)
            assert enter.get(mode, "") in footer, (mode, footer)
        await pilot.press("2", "question_mark")
        assert isinstance(app.screen, HelpScreen)
        listed = dict((d, k) for k, d in app.screen.keys)
        assert listed["Edit"] == "⏎" and listed["LoRA"] == "f5" and listed["Reset key"] == "del"
