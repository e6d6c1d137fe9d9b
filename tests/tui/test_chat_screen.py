"""The Try it screen with the chat process replaced by an in-process fake: pick, stream, stop, settings, clear."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from fake_chat import FakeChat
from history import checkpoint_dirs, fake_run
from textual.pilot import Pilot
from textual.widgets import Input, Label, Static

from engine.api import Engine, GenerationSettings
from llamahome_tui.screens.chat import NO_MODEL, ChatScreen
from llamahome_tui.screens.chat_dialogs import ChatSettingsScreen, ModelPickScreen

RUN = "20260101-000000-aaaa"
QUESTION = "What is the capital of Peru?"


def adapter_run(engine: Engine, base: Path) -> str:
    """A finished run whose checkpoints are LoRA adapters over a local base (with a tokenizer)."""
    run_id = fake_run(engine, RUN, 30, 3.0)
    base.mkdir(parents=True, exist_ok=True)
    (base / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (base / "tokenizer.json").write_text("{}")
    for folder in checkpoint_dirs(engine, run_id):
        (folder / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(base)}))
    return run_id


@pytest.fixture
def fake(engine: Engine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeChat:
    """The fake the screen gets from ``Engine.open_chat``; a run with adapter checkpoints to pick."""
    chat = FakeChat(hold=True)
    monkeypatch.setattr(engine, "open_chat", lambda: chat)
    adapter_run(engine, tmp_path / "tiny")
    return chat


async def wait_until(pilot: Pilot, done: Callable[[], bool], what: str) -> None:
    """Let the app run until ``done()`` (the reader thread never ends, so no waiting on workers)."""
    for _ in range(100):
        if done():
            return
        await pilot.pause(0.05)
    raise AssertionError(f"never happened: {what}")


def text_of(app, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())


def conversation(app) -> list[str]:
    return [str(turn.render()) for turn in app.screen.query(".chat-turn")]


async def pick_first(pilot: Pilot) -> None:
    """ctrl+o, Enter on the first model listed, until it is ready."""
    await pilot.press("ctrl+o")
    assert isinstance(pilot.app.screen, ModelPickScreen)
    await pilot.press("enter")
    await wait_until(pilot, lambda: "ready" in text_of(pilot.app, "#chat-status"), "the model is ready")


async def send(pilot: Pilot, text: str) -> None:
    pilot.app.screen.query_one("#chat-input", Input).value = text
    await pilot.press("enter")
    await pilot.pause()


async def test_pick_a_checkpoint_then_watch_the_answer_stream_in_and_stop_it(make_app, fake):
    app = make_app("chat")
    async with app.run_test(size=(80, 24)) as pilot:
        assert text_of(app, "#chat-status") == NO_MODEL
        await pick_first(pilot)
        assert fake.requests == [("load", "step-000030")]
        assert text_of(app, "#chat-status") == (f"ready · step-000030 (run {RUN}) · adapter over tiny, "
                                                "109.6 k params, cpu")
        await send(pilot, QUESTION)
        fake.stream(2)
        await wait_until(pilot, lambda: "The capital" in "".join(conversation(app)), "the first words")
        assert conversation(app) == [f"you  {QUESTION}", "model The capital▌"]
        assert app.screen.query_one("#chat-input", Input).value == ""
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen.request is None, "the answer ended")
        assert fake.requests[-1] == ("stop",)
        assert conversation(app)[-1] == "model The capital  (2 tokens in 0.5 s, 4 tokens/s, stopped)"
        assert isinstance(app.screen, ChatScreen), "Esc stopped the answer; it did not leave the screen"
        await send(pilot, "And of Spain?")
        fake.stream(6)
        fake.finish()
        await wait_until(pilot, lambda: app.screen.request is None, "the second answer ended")
        assert fake.requests[-1][1] == [{"role": "user", "content": QUESTION},
                                        {"role": "assistant", "content": "The capital"},
                                        {"role": "user", "content": "And of Spain?"}]
        assert conversation(app)[-1] == "model The capital of Peru is Lima.  (6 tokens in 0.5 s, 12 tokens/s)"
    assert fake.closed, "closing the console ends the chat process"


async def test_ctrl_c_stops_an_answer_and_esc_goes_back_when_none_is_generated(make_app, fake):
    app = make_app("runs")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("6")
        assert isinstance(app.screen, ChatScreen)
        await pick_first(pilot)
        await send(pilot, QUESTION)
        await pilot.press("ctrl+c")
        await wait_until(pilot, lambda: app.screen.request is None, "ctrl+c stopped the answer")
        assert fake.requests[-1] == ("stop",)
        await pilot.press("escape")
        assert app.current_mode == "runs"


async def test_settings_are_checked_shown_and_used(make_app, fake):
    app = make_app("chat")
    async with app.run_test(size=(80, 24)) as pilot:
        assert "max new tokens 128 · greedy (temperature 0)" in text_of(app, "#chat-settings")
        await pilot.press("ctrl+g")
        dialog = app.screen
        assert isinstance(dialog, ChatSettingsScreen)
        dialog.query_one("#setting-temperature", Input).value = "hot"
        dialog.query_one("#setting-temperature", Input).focus()
        await pilot.press("enter")
        assert app.screen is dialog
        assert str(dialog.query_one("#settings-error", Label).render()) == \
            "temperature = 'hot': expected a number in 0..5"
        dialog.query_one("#setting-temperature", Input).value = "0.7"
        dialog.query_one("#setting-max_new_tokens", Input).value = "64"
        await pilot.press("enter")
        assert isinstance(app.screen, ChatScreen)
        assert "max new tokens 64 · temperature 0.7 · top-p 0.9" in text_of(app, "#chat-settings")
        await pick_first(pilot)
        await send(pilot, QUESTION)
        assert fake.requests[-1][2] == GenerationSettings(max_new_tokens=64, temperature=0.7, top_p=0.9)


async def test_clear_forgets_the_conversation(make_app, fake):
    fake.hold = False
    app = make_app("chat")
    async with app.run_test(size=(80, 24)) as pilot:
        await pick_first(pilot)
        await send(pilot, QUESTION)
        await wait_until(pilot, lambda: app.screen.request is None, "the answer ended")
        assert len(conversation(app)) == 2
        await pilot.press("ctrl+l")
        await pilot.pause()
        assert conversation(app) == [] and app.screen.messages == []
        await send(pilot, "hello")
        assert fake.requests[-1][1] == [{"role": "user", "content": "hello"}]


async def test_a_bad_path_is_one_line_naming_it_and_nothing_starts(make_app, fake, tmp_path):
    app = make_app("chat")
    async with app.run_test(size=(80, 24)) as pilot:
        await send(pilot, "hello?")
        assert text_of(app, "#chat-status") == NO_MODEL
        assert fake.requests == []
        await pilot.press("ctrl+o")
        app.screen.query_one("#pick-path", Input).value = str(tmp_path / "nope")
        app.screen.query_one("#pick-path", Input).focus()
        await pilot.press("enter")
        await wait_until(pilot, lambda: "error" in text_of(app, "#chat-status"), "the error")
        assert text_of(app, "#chat-status") == (f"error: {tmp_path / 'nope'}: no such model folder, checkpoint "
                                                "or run id (see: llamahome-tui --no-ui runs)")
        assert not fake.started and fake.requests == []


async def test_a_chat_process_that_dies_is_said_and_the_next_pick_starts_another(make_app, fake):
    app = make_app("chat")
    async with app.run_test(size=(80, 24)) as pilot:
        await pick_first(pilot)
        await send(pilot, QUESTION)
        fake.die()
        await wait_until(pilot, lambda: "ended" in text_of(app, "#chat-status"), "the death is said")
        assert text_of(app, "#chat-status").startswith("the chat process ended (its output: chat.log)")
        assert conversation(app)[-1] == "model   (error: the chat process ended)"
        assert app.screen.messages == [], "the unanswered question left the conversation"
        await send(pilot, "hello?")
        assert text_of(app, "#chat-status") == NO_MODEL
        await pick_first(pilot)
        assert [r[0] for r in fake.requests] == ["load", "generate", "load"]


async def test_a_ctrl_c_just_after_an_answer_ended_does_not_quit(make_app, fake):
    """A ctrl+c meant to stop an answer that ended a moment before it arrived stops nothing and
    quits nothing (the conversation would be lost); one more ctrl+c quits as everywhere."""
    app = make_app("chat")
    exits: list[object] = []
    app.exit = lambda *args, **kwargs: exits.append(args)  # type: ignore[method-assign]
    async with app.run_test(size=(80, 24)) as pilot:
        await pick_first(pilot)
        await send(pilot, QUESTION)
        fake.stream(3)
        fake.finish()
        await wait_until(pilot, lambda: app.screen.request is None, "the answer ended")
        await pilot.press("ctrl+c")
        await pilot.pause()
        assert exits == [] and isinstance(app.screen, ChatScreen)
        assert len(conversation(app)) == 2
        await pilot.press("ctrl+c")
        await pilot.pause()
        assert len(exits) == 1, "the next ctrl+c quits"


async def test_a_long_model_list_leaves_the_path_input_and_keys_in_view_at_80x24(make_app, engine, fake):
    for n in range(3):
        fake_run(engine, f"20260101-00010{n}-run{n}", 30, 2.0)
    app = make_app("chat")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("ctrl+o")
        await pilot.pause()
        dialog = app.screen.query_one(".chat-pick")
        assert app.screen.query_one("#pick-list").option_count >= 12
        for part in (app.screen.query_one("#pick-path", Input), app.screen.query_one(".dialog-keys", Label)):
            assert part.region.bottom <= dialog.content_region.bottom, f"{part} is cut off"
            assert part.region.height >= 1


def test_an_export_is_listed_under_the_run_it_came_from_with_a_short_path(tmp_path):
    from engine.api import ChatModel
    from llamahome_tui.screens.chat_dialogs import model_option

    root = tmp_path / "ws"
    folder = root / "runs" / RUN / "exports" / "step-000020-merged"
    option = model_option(ChatModel(str(folder), "export", "20260101-000500-xprt", "step-000020-merged"), root)
    assert str(option.prompt) == f"{RUN}  export       exports/step-000020-merged", "it fits 80 columns on one line"
    assert option.id == str(folder)
