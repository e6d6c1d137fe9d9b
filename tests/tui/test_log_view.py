"""The log view (``l``): a run's lines and warnings, live, filterable; Esc clears the filter, then leaves."""

from __future__ import annotations

from history import fake_run, live_run_in_stage
from textual.widgets import RichLog

from engine.events import Log, Stage
from llamahome_tui.screens.log_view import RunLogScreen
from llamahome_tui.screens.runs import RunsScreen
from llamahome_tui.screens.training import TrainingScreen


def shown(app) -> list[str]:
    """The log view's lines as plain text."""
    return [strip.text.rstrip() for strip in app.screen.query_one(RichLog).lines]


async def test_l_opens_the_log_filters_and_esc_clears_then_leaves(make_app, engine):
    run_id = fake_run(engine, "20260101-000000-aaaa", 20, 3.0,
                      extra=[Log("warning", "data: 3 records longer than data.max_length were cut")])
    app = make_app("training", run_id=run_id)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.press("l")
        await pilot.pause(0.3)
        assert isinstance(app.screen, RunLogScreen)
        lines = shown(app)
        assert any("run 20260101-000000-aaaa (train) started" in line for line in lines)
        assert sum("step " in line and "/20  loss" in line for line in lines) == 20
        assert any("eval step 20: loss" in line for line in lines)
        assert any("finished" in line for line in lines)
        await pilot.press("slash", *"eval", "enter")
        await pilot.pause(0.2)
        assert shown(app) and all("eval" in line for line in shown(app)), shown(app)
        await pilot.press("escape")
        await pilot.pause(0.2)
        assert isinstance(app.screen, RunLogScreen), "the first Esc clears the filter"
        assert len(shown(app)) == len(lines)
        await pilot.press("w")
        await pilot.pause(0.2)
        assert len(shown(app)) == 1 and "warning" in shown(app)[0] and "were cut" in shown(app)[0]
        await pilot.press("escape", "escape")
        await pilot.pause(0.2)
        assert isinstance(app.screen, TrainingScreen)


async def test_the_log_of_a_live_run_grows_as_it_goes(make_app, engine):
    run_id = live_run_in_stage(engine, "20260101-000000-live", 5, Stage("evaluating", 1, 4))
    app = make_app("runs")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.3)
        assert isinstance(app.screen, RunsScreen)
        await pilot.press("l")
        await pilot.pause(0.4)
        assert isinstance(app.screen, RunLogScreen)
        assert any("evaluating 1/4 batches" in line for line in shown(app))
        engine.store.add_event(run_id, Stage("evaluating", 4, 4))
        engine.store.add_event(run_id, Log("warning", "disk nearly full"))
        for _ in range(50):
            if any("disk nearly full" in line for line in shown(app)):
                break
            await pilot.pause(0.1)
        lines = shown(app)
        assert "▶ evaluating 4/4 batches" in lines[-2] and "warning: disk nearly full" in lines[-1], lines[-3:]
        assert "live" in str(app.screen.query_one("#log-head").render())


async def test_j_k_g_and_shift_g_move_in_the_log(make_app, engine):
    run_id = fake_run(engine, "20260101-000000-aaaa", 40, 3.0)
    app = make_app("training", run_id=run_id)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.press("l")
        await pilot.pause(0.3)
        view = app.screen.query_one(RichLog)
        assert view.max_scroll_y > 10 and view.scroll_y == view.max_scroll_y, "it opens at the newest line"
        await pilot.press("g")
        await pilot.pause(0.1)
        assert view.scroll_y == 0
        await pilot.press("j", "j")
        await pilot.pause(0.1)
        assert view.scroll_y == 2
        await pilot.press("k")
        await pilot.pause(0.1)
        assert view.scroll_y == 1
        await pilot.press("G")
        await pilot.pause(0.1)
        assert view.scroll_y == view.max_scroll_y
