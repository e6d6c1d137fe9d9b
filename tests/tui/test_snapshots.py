"""SVG snapshots of the console at 80×24, and of the views that use a bigger terminal at 120×40 too.

Everything shown is deterministic: fixed run ids and times, a frozen clock, data files made by
the fixtures (shown relative to their folder), and the machine-dependent gauge scales pinned.
Update the baselines with ``pytest tests/tui/test_snapshots.py --snapshot-update`` and review them.
"""

from __future__ import annotations

import pytest
from history import fake_run
from textual.pilot import Pilot

from llamahome_tui.widgets import run_detail, run_panels

SIZE = (80, 24)
WIDE = (120, 40)
MACHINE = run_panels.SystemSample((12.0, 55.0, 90.0, 3.0), 3.1 * 2**30, 8 * 2**30, 40 * 2**30, 100 * 2**30)
"""The machine the gauges show in every snapshot."""


@pytest.fixture(autouse=True)
def pinned_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    """Gauges scale by the machine's cores and RAM and show its load; a live run's start date is now: pin them."""
    monkeypatch.setattr(run_panels, "_cores", lambda: 4)
    monkeypatch.setattr(run_panels, "total_memory_mb", lambda: 8192.0)
    monkeypatch.setattr(run_panels, "system_sample", lambda folder: MACHINE)
    monkeypatch.setattr(run_detail, "start_date", lambda started_at: "2026-01-01 00:00")  # a live run's is now


async def settle(pilot: Pilot) -> None:
    """Wait for workers (reports, attach) to finish and the screen to redraw."""
    await pilot.app.workers.wait_for_complete()
    await pilot.pause(0.3)
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def test_datasets_screen_with_a_bad_file(snap_compare, make_app):
    assert snap_compare(make_app(), terminal_size=SIZE, run_before=settle)


@pytest.mark.parametrize("size", [SIZE, WIDE], ids=["80x24", "120x40"])
def test_training_screen_replaying_a_finished_run(snap_compare, make_app, engine, size):
    run_id = fake_run(engine, "20260101-000000-aaaa", 60, 3.0)
    assert snap_compare(make_app("training", run_id=run_id), terminal_size=size, run_before=settle)


def test_training_screen_empty(snap_compare, make_app):
    assert snap_compare(make_app("training"), terminal_size=SIZE)


@pytest.mark.parametrize("size", [SIZE, WIDE], ids=["80x24", "120x40"])
def test_runs_screen_comparing_two_runs(snap_compare, make_app, engine, size):
    fake_run(engine, "20260101-000000-aaaa", 60, 3.0)
    fake_run(engine, "20260101-000100-bbbb", 30, 2.0, status="stopped", method="full")
    assert snap_compare(make_app("runs"), terminal_size=size, press=["m", "down", "m", "c"])


def test_checkpoints_screen(snap_compare, make_app, engine):
    run_id = fake_run(engine, "20260101-000000-aaaa", 30, 3.0)
    assert snap_compare(make_app("checkpoints", run_id=run_id), terminal_size=SIZE)


@pytest.mark.parametrize("size", [SIZE, WIDE], ids=["80x24", "120x40"])
def test_checkpoints_screen_with_its_exports_listed(snap_compare, make_app, engine, size):
    from test_exports_list import RUN, exported_run

    exported_run(engine)
    assert snap_compare(make_app("checkpoints", run_id=RUN), terminal_size=size, run_before=settle)


@pytest.mark.parametrize("size", [SIZE, WIDE], ids=["80x24", "120x40"])
def test_config_screen_with_a_preset_filtered_to_lora(snap_compare, make_app, workspace, size):
    (workspace.root / "config.toml").write_text("[lora]\nr = 8\n")
    assert snap_compare(make_app("config"), terminal_size=size, press=["f5", "slash", *"lora", "enter"])


def test_help_on_the_training_screen(snap_compare, make_app):
    assert snap_compare(make_app("training"), terminal_size=SIZE, press=["question_mark"])


def test_quit_dialog_with_a_live_run(snap_compare, make_app, engine):
    from test_shell import fake_live_run

    run_id = fake_live_run(engine)
    assert snap_compare(make_app("runs", watched={run_id}), terminal_size=SIZE, press=["q"])



def _chat_app(make_app, engine, monkeypatch, tmp_path):
    """The Try it screen over a fake chat process, with a run whose checkpoints are adapters."""
    from fake_chat import FakeChat
    from test_chat_screen import adapter_run

    chat = FakeChat(hold=True)
    monkeypatch.setattr(engine, "open_chat", lambda: chat)
    adapter_run(engine, tmp_path / "tiny")
    return make_app("chat"), chat


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_chat_screen_streaming_an_answer(snap_compare, make_app, engine, monkeypatch, tmp_path, size):
    from test_chat_screen import QUESTION, pick_first, send, wait_until

    app, chat = _chat_app(make_app, engine, monkeypatch, tmp_path)

    async def one_answer_then_one_streaming(pilot: Pilot) -> None:
        await pick_first(pilot)
        await send(pilot, QUESTION)
        chat.stream(6)
        chat.finish()
        await wait_until(pilot, lambda: app.screen.request is None, "the first answer")
        await send(pilot, "And the capital of Spain?")
        chat.stream(3)
        await wait_until(pilot, lambda: "of▌" in str(app.screen.query(".chat-turn").last().render()), "3 words")
        app.screen.query_one("#chat-input").cursor_blink = False  # a blinking cursor is drawn or not by the clock
        await pilot.pause(0.3)

    assert snap_compare(app, terminal_size=size, run_before=one_answer_then_one_streaming)


@pytest.mark.parametrize("size", [SIZE, WIDE], ids=["80x24", "120x40"])
def test_chat_model_picker(snap_compare, make_app, engine, monkeypatch, tmp_path, size):
    app, _ = _chat_app(make_app, engine, monkeypatch, tmp_path)
    assert snap_compare(app, terminal_size=size, press=["ctrl+o"])

@pytest.mark.parametrize("size", [SIZE, WIDE], ids=["80x24", "120x40"])
def test_a_live_run_followed_at_start_and_counted_in_the_header(snap_compare, make_app, engine, size):
    from test_keep_place import fake_live_run

    fake_run(engine, "20260101-000000-aaaa", 20, 3.0)
    fake_live_run(engine)
    assert snap_compare(make_app("training"), terminal_size=size, run_before=lambda pilot: pilot.pause(0.3))


@pytest.mark.parametrize("size", [(60, 20), (79, 30)], ids=["60x20", "79x30"])
def test_too_small_notice(snap_compare, make_app, size):
    assert snap_compare(make_app("runs"), terminal_size=size)


@pytest.mark.parametrize("size", [SIZE, WIDE], ids=["80x24", "120x40"])
def test_starting_while_a_run_is_live_asks(snap_compare, make_app, engine, data_dir, size):
    from test_keep_place import fake_live_run

    run_id = fake_live_run(engine)
    app = make_app("training", dataset=data_dir / "chat.jsonl", run_id=run_id)
    assert snap_compare(app, terminal_size=size, press=["n"])
