"""The samples history (``S``): every answer by step and prompt, beside the base model's answer."""

from __future__ import annotations

from history import fake_run
from screen_text import screen_lines
from textual.widgets import Static

from engine.events import Generation
from llamahome_tui.screens.runs import RunsScreen
from llamahome_tui.screens.samples import SamplesScreen
from llamahome_tui.screens.training import TrainingScreen
from llamahome_tui.widgets.filter_table import FilterTable

PROMPTS = ("What is 2 + 3?", "What is the capital of Peru?")


def answers() -> list[Generation]:
    """Base answers, then answers at steps 10 and 20."""
    base = [Generation(0, PROMPTS[0], "2 + 3 = 23", base=True), Generation(0, PROMPTS[1], "Paris Paris", base=True)]
    return [*base, Generation(10, PROMPTS[0], "2 + 3 = 6"), Generation(10, PROMPTS[1], "The capital is Lima."),
            Generation(20, PROMPTS[0], "2 + 3 = 5"), Generation(20, PROMPTS[1], "The capital of Peru is Lima.")]


def text(app, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())


async def test_s_lists_every_answer_newest_first_beside_the_base_answer(make_app, engine):
    run_id = fake_run(engine, "20260101-000000-aaaa", 9, 3.0, extra=answers())
    app = make_app("training", run_id=run_id)
    async with app.run_test(size=(120, 40)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.press("S")
        await pilot.pause(0.2)
        assert isinstance(app.screen, SamplesScreen)
        table = app.screen.query_one(FilterTable)
        steps = [str(table.get_row_at(i)[0]) for i in range(table.row_count)]
        assert steps == ["20", "20", "10", "10", "9"], "every fine-tuned answer, newest step first"
        await pilot.press("down")
        await pilot.pause(0.1)
        assert "What is 2 + 3?" in text(app, "#samples-prompt")
        assert "Base model" in text(app, "#samples-base") and "2 + 3 = 23" in text(app, "#samples-base")
        assert "Step 20" in text(app, "#samples-tuned") and "2 + 3 = 5" in text(app, "#samples-tuned")
        row = next(r for r in screen_lines(app) if "2 + 3 = 23" in r)
        assert "2 + 3 = 5" in row, "base and fine-tuned answers side by side"
        await pilot.press("slash", *"peru", "enter")
        await pilot.pause(0.1)
        assert table.row_count == 2
        await pilot.press("escape")
        await pilot.pause(0.1)
        assert isinstance(app.screen, SamplesScreen) and table.row_count == 5, "Esc clears the filter first"
        await pilot.press("escape")
        await pilot.pause(0.1)
        assert isinstance(app.screen, TrainingScreen)


async def test_a_run_without_samples_says_how_to_get_them(make_app, engine):
    store = engine.store
    run_id = "20260101-000000-none"
    store.create_run(run_id, "train", {"training": {"method": "lora"}}, "tiny", "/x/chat.jsonl")
    store.update_run(run_id, status="finished")
    app = make_app("runs")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.2)
        assert isinstance(app.screen, RunsScreen)
        await pilot.press("S")
        await pilot.pause(0.2)
        assert "eval.sample_prompts" in text(app, "#samples-prompt")


def test_a_resumed_run_shows_the_answers_of_the_run_it_continues(engine):
    source = fake_run(engine, "20260101-000000-aaaa", 9, 3.0, extra=answers()[:4])
    engine.store.create_run("20260101-000100-bbbb", "train", {}, "tiny", "/x/chat.jsonl", resumed_from=source)
    engine.store.add_event("20260101-000100-bbbb", Generation(20, PROMPTS[0], "2 + 3 = 5"))
    got = [(g.step, g.base, g.text) for g in engine.samples("20260101-000100-bbbb") if g.prompt == PROMPTS[0]]
    assert got == [(0, True, "2 + 3 = 23"), (10, False, "2 + 3 = 6"), (20, False, "2 + 3 = 5")]
