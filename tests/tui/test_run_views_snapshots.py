"""SVG snapshots of the views that say what a run is doing and has done, at 80×24 and 120×40.

The stage line, the log view, the samples history, the resume dialog and the runs' detail pane.
Deterministic as in test_snapshots.py: fixed ids, a frozen clock, event times fixed by the
store's clock, UTC, and the gauges' machine scales pinned. A live run's attach never ends, so
those snapshots wait a fixed time instead of waiting for the workers. Update the baselines with
``pytest tests/tui/test_run_views_snapshots.py --snapshot-update`` and review them.
"""

from __future__ import annotations

import time
import types
from collections.abc import Iterator

import pytest
from history import T0, fake_run, live_run_in_stage
from test_snapshots import MACHINE
from textual.pilot import Pilot

import engine.store
from engine.events import Eval, Log, Stage
from llamahome_tui.widgets import run_panels

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((120, 40), id="120x40")]


@pytest.fixture(autouse=True)
def pinned_machine(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Gauges scale by the machine's cores and RAM and show its load: pin them; events are stamped
    T0 + 1 s each, in UTC."""
    monkeypatch.setattr(run_panels, "_cores", lambda: 4)
    monkeypatch.setattr(run_panels, "total_memory_mb", lambda: 8192.0)
    monkeypatch.setattr(run_panels, "system_sample", lambda folder: MACHINE)
    ticks = iter(range(1_000_000))
    monkeypatch.setattr(engine.store, "time", types.SimpleNamespace(time=lambda: T0 + next(ticks)))
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


async def live(pilot: Pilot) -> None:
    """Let a live run's history replay and draw (its attach keeps polling, so wait for the stage)."""
    for _ in range(50):
        feed = getattr(pilot.app.screen, "feed", None)
        if feed is not None and feed.stage is not None and feed.stage.name == "evaluating" and not feed.changes:
            break
        await pilot.pause(0.1)
    await pilot.pause(0.3)


@pytest.mark.parametrize("size", SIZES)
def test_stage_line_while_evaluating(snap_compare, make_app, engine, size):
    run_id = live_run_in_stage(engine, "20260101-000000-live", 30, Stage("evaluating", 3, 12))
    assert snap_compare(make_app("training", run_id=run_id), terminal_size=size, run_before=live)


async def settle(pilot: Pilot) -> None:
    """Wait for the workers of an ended run (attach, log) to finish and the screen to redraw."""
    await pilot.app.workers.wait_for_complete()
    await pilot.pause(0.3)
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def ended_run_with_stages(engine) -> str:
    """A finished 9-step run (no checkpoint: their paths are the test's) with stages, a warning, an evaluation."""
    extra = [Stage("evaluating", 0, 4), Stage("evaluating", 4, 4), Eval(9, 1.42, 4.14),
             Log("warning", "3 records were cut to data.max_length"),
             Stage("saving_model", detail="/ws/runs/20260101-000000-aaaa/final")]
    return fake_run(engine, "20260101-000000-aaaa", 9, 3.0, extra=extra)


@pytest.mark.parametrize("size", SIZES)
def test_log_view(snap_compare, make_app, engine, size):
    run_id = ended_run_with_stages(engine)
    assert snap_compare(make_app("training", run_id=run_id), terminal_size=size, press=["l"], run_before=settle)


@pytest.mark.parametrize("size", SIZES)
def test_log_view_filtered_to_warnings(snap_compare, make_app, engine, size):
    run_id = ended_run_with_stages(engine)
    assert snap_compare(make_app("runs", run_id=run_id), terminal_size=size, press=["l", "w"], run_before=settle)


@pytest.mark.parametrize("size", SIZES)
def test_samples_history(snap_compare, make_app, engine, size):
    from test_samples_view import answers

    run_id = fake_run(engine, "20260101-000000-aaaa", 9, 3.0, extra=answers())
    assert snap_compare(make_app("training", run_id=run_id), terminal_size=size, press=["S", "down"],
                        run_before=settle)


@pytest.mark.parametrize("size", SIZES)
def test_resume_dialog_of_a_finished_run(snap_compare, make_app, engine, size):
    from test_resume_dialog import finished_40_step_run, open_resume_on_last_checkpoint

    run_id = finished_40_step_run(engine)

    async def open_dialog(pilot: Pilot) -> None:
        await pilot.pause(0.2)
        await open_resume_on_last_checkpoint(pilot.app, pilot)
        await pilot.press("enter")  # refused: the note says why
        await pilot.pause(0.2)

    assert snap_compare(make_app("checkpoints", run_id=run_id), terminal_size=size, run_before=open_dialog)


@pytest.mark.parametrize("size", SIZES)
def test_runs_detail_pane_of_a_resumed_run(snap_compare, make_app, engine, size):
    from test_run_detail import resumed_run

    resumed_run(engine)
    assert snap_compare(make_app("runs"), terminal_size=size, run_before=settle)
