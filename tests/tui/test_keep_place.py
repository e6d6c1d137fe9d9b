"""Keeping the user's place: the live run re-attached, "N live" everywhere, the place file, cursors, config reload."""

from __future__ import annotations

import json
import os

from history import fake_run
from screen_text import line_with, screen_lines

from llamahome_tui.place import Place, PlaceFile, restore
from llamahome_tui.screens.base import ConsoleState
from llamahome_tui.screens.config import ConfigScreen
from llamahome_tui.screens.dialogs import ConfirmScreen
from llamahome_tui.screens.training import TrainingScreen
from llamahome_tui.widgets.filter_table import FilterTable
from llamahome_tui.widgets.mode_bar import ModeBar, mode_bar_text


def fake_live_run(engine, run_id: str = "20260101-000000-live") -> str:
    """A run that looks live: running, this test process as its worker (started after it), a fresh heartbeat."""
    import time

    import psutil

    engine.store.create_run(run_id, "train", {"training": {"method": "lora"}}, "tiny", "/x/chat.jsonl")
    engine.store.update_run(run_id, status="running", pid=os.getpid(), started_at=psutil.Process().create_time(),
                            heartbeat_at=time.time())
    return run_id


async def test_the_live_run_is_followed_at_start_and_counted_on_every_screen(make_app, engine):
    fake_run(engine, "20260101-000000-aaaa", 20, 3.0)
    run_id = fake_live_run(engine)
    app = make_app("training")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.2)
        screen = app.screen
        assert isinstance(screen, TrainingScreen)
        assert app.state.run_id == run_id and run_id in app.state.watched
        assert "No run in view" not in "\n".join(screen_lines(app))
        assert run_id in line_with(app, "run 2026")
        assert line_with(app, "1 Datasets").rstrip().endswith("● 1 live")
        for key in ("1", "5", "2"):
            await pilot.press(key)
            assert app.screen.query_one(ModeBar).live == (1, 0)
            assert "● 1 live" in line_with(app, "1 Datasets"), f"screen {key}"


async def test_the_live_count_follows_runs_ending(make_app, engine):
    run_id = fake_live_run(engine)
    app = make_app("runs")
    async with app.run_test(size=(80, 24)) as pilot:
        assert "1 live" in line_with(app, "1 Datasets")
        engine.store.update_run(run_id, status="finished")
        app.tick()
        await pilot.pause()
        assert "live" not in line_with(app, "1 Datasets")


def test_the_mode_bar_keeps_the_live_count_on_the_right_edge():
    text = mode_bar_text("runs", status="attached to a run with a very long status line here", live=2, queued=1)
    assert text.cell_len == 80 and text.plain.rstrip().endswith("● 2 live"), "at 80 columns the queued count gives way"
    text = mode_bar_text("runs", status="attached to a run with a very long status line here", live=2, queued=1,
                         width=100)
    assert text.cell_len == 100 and text.plain.rstrip().endswith("● 2 live · 1 queued")
    assert "live" not in mode_bar_text("runs").plain


def test_the_place_file_is_written_atomically_and_read_back(tmp_path):
    place_file = PlaceFile(tmp_path)
    data = tmp_path / "chat.jsonl"
    data.write_text("{}\n")
    assert place_file.load() == Place()
    assert place_file.save(Place(str(data), None, "20260101-000000-aaaa"))
    assert not place_file.save(Place(str(data), None, "20260101-000000-aaaa")), "unchanged: not written again"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".console-")] == [], "no temporary file left"
    assert oct(place_file.path.stat().st_mode & 0o777) == "0o600"
    again = PlaceFile(tmp_path).load()
    assert again == Place(str(data), None, "20260101-000000-aaaa")
    state = ConsoleState(config_file=tmp_path / "config.toml", data_roots=[])
    restore(state, again, lambda run_id: run_id == "20260101-000000-aaaa")
    assert state.dataset == data and state.run_id == "20260101-000000-aaaa"
    data.unlink()
    state = ConsoleState(config_file=tmp_path / "config.toml", data_roots=[])
    restore(state, again, lambda run_id: False)
    assert state.dataset is None and state.run_id is None, "a file or run gone since is left out"


def test_a_damaged_place_file_is_ignored(tmp_path):
    (tmp_path / "console.json").write_text("{not json")
    assert PlaceFile(tmp_path).load() == Place()
    (tmp_path / "console.json").write_text(json.dumps({"version": 99, "dataset": "/x"}))
    assert PlaceFile(tmp_path).load() == Place()


async def test_the_chosen_data_and_the_run_in_view_survive_a_restart(make_app, engine, workspace, data_dir):
    fake_run(engine, "20260101-000000-aaaa", 20, 3.0)
    app = make_app("datasets")
    app.place = PlaceFile(workspace.root)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("down", "enter")
        assert app.state.dataset == data_dir / "chat.jsonl"
        await pilot.press("5", "enter")
        assert app.state.run_id == "20260101-000000-aaaa"
        await pilot.press("q")
    saved = json.loads((workspace.root / "console.json").read_text())
    assert saved["dataset"] == str(data_dir / "chat.jsonl") and saved["run_id"] == "20260101-000000-aaaa"
    state = ConsoleState(config_file=workspace.root / "config.toml", data_roots=[data_dir])
    restore(state, PlaceFile(workspace.root).load(), lambda run_id: True)
    app = make_app("training", dataset=state.dataset, run_id=state.run_id)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.3)
        assert "20260101-000000-aaaa" in line_with(app, "run 2026")


async def test_the_cursor_stays_on_its_run_as_runs_come_and_go(make_app, engine):
    fake_run(engine, "20260101-000000-aaaa", 10, 3.0)
    fake_run(engine, "20260101-000100-bbbb", 10, 2.0)
    app = make_app("runs")
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.screen.query_one(FilterTable)
        await pilot.press("j")
        assert table.selected_key == "20260101-000000-aaaa"
        fake_run(engine, "20260101-000200-cccc", 10, 1.0)  # newest first: lands above the cursor
        app.screen.action_refresh()
        await pilot.pause()
        assert table.keys[0] == "20260101-000200-cccc"
        assert table.selected_key == "20260101-000000-aaaa", "the cursor kept its row, not its index"
        await pilot.press("slash", *"bbbb", "enter")
        assert table.keys == ["20260101-000100-bbbb"]
        await pilot.press("escape")
        assert table.selected_key == "20260101-000000-aaaa", "back on its row when the filter goes"


async def test_checkpoints_keep_the_highlighted_run_when_runs_refresh(make_app, engine):
    fake_run(engine, "20260101-000000-aaaa", 20, 3.0)
    fake_run(engine, "20260101-000100-bbbb", 10, 2.0)
    app = make_app("checkpoints")
    async with app.run_test(size=(80, 24)) as pilot:
        runs = app.screen.query_one("#ckpt-runs", FilterTable)
        await pilot.press("j")
        assert runs.selected_key == "20260101-000000-aaaa"
        fake_run(engine, "20260101-000200-cccc", 10, 1.0)
        app.screen.refresh_runs()
        await pilot.pause()
        assert runs.selected_key == "20260101-000000-aaaa"
        checkpoints = app.screen.query_one("#ckpt-table", FilterTable)
        assert all("20260101-000000-aaaa" in key for key in checkpoints.keys)


async def test_a_config_file_changed_on_disk_is_reloaded(make_app, workspace):
    config_file = workspace.root / "config.toml"
    config_file.write_text("[lora]\nalpha = 32\n")
    app = make_app("config")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        assert isinstance(screen, ConfigScreen)
        assert screen.text_of("lora.alpha") == "32"
        config_file.write_text("[lora]\nalpha = 64\n")
        os.utime(config_file, ns=(1, 2_000_000_000_000_000_000))
        screen.check_file()
        await pilot.pause()
        assert screen.text_of("lora.alpha") == "64"


async def test_a_config_changed_on_disk_with_unsaved_edits_asks_first(make_app, workspace):
    config_file = workspace.root / "config.toml"
    config_file.write_text("[lora]\nalpha = 32\n")
    app = make_app("config")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        screen.edits["lora.r"] = "4"
        config_file.write_text("[lora]\nalpha = 64\n")
        os.utime(config_file, ns=(1, 2_000_000_000_000_000_000))
        screen.check_file()
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen) and "changed on disk" in app.screen.question
        await pilot.press("n")
        assert screen.edits == {"lora.r": "4"} and screen.text_of("lora.alpha") == "32", "kept as it was"
        screen.check_file()
        await pilot.pause()
        assert app.screen is screen, "asked once per change"
        config_file.write_text("[lora]\nalpha = 16\n")
        os.utime(config_file, ns=(1, 2_100_000_000_000_000_000))
        screen.check_file()
        await pilot.pause()
        await pilot.press("y")
        assert screen.edits == {} and screen.text_of("lora.alpha") == "16"


async def test_a_remembered_run_gives_way_to_a_live_one_but_a_named_run_does_not(make_app, engine, workspace):
    fake_run(engine, "20260101-000000-aaaa", 10, 3.0)
    live = fake_live_run(engine)
    place = PlaceFile(workspace.root)
    place.save(Place(None, None, "20260101-000000-aaaa"))
    place = PlaceFile(workspace.root)
    state = ConsoleState(config_file=workspace.root / "config.toml", data_roots=[])
    restore(state, place.load(), lambda run_id: True)
    app = make_app("runs", run_id=state.run_id)
    app.place = place
    async with app.run_test(size=(80, 24)):
        assert app.state.run_id == live
    app = make_app("checkpoints", run_id="20260101-000000-aaaa")  # as train-resume names it
    async with app.run_test(size=(80, 24)):
        assert app.state.run_id == "20260101-000000-aaaa" and live in app.state.watched
