"""Headless lines (output to a file): each stage the worker enters, its progress, and a steady ETA."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

import llamahome_tui.headless as headless
from engine.events import Eval, Stage, Started, Step
from llamahome_tui.headless import RunPrinter


class Clock:
    """time.monotonic for the printer, moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(headless, "time", clock)
    return clock


def printed(events: list[tuple[float, object]], clock: Clock) -> list[str]:
    """The plain lines a printer writes for ``(seconds later, event)`` pairs."""
    out = io.StringIO()
    printer = RunPrinter(Console(file=out, force_terminal=False, width=200, soft_wrap=True))
    assert not printer.live
    for delay, event in events:
        clock.now += delay
        printer.show(event)
    return out.getvalue().splitlines()


def test_stages_print_their_start_progress_every_five_seconds_and_end(clock):
    events: list[tuple[float, object]] = [(0, Started("r1", "train", 0, "tiny", "/x/chat.jsonl")),
                                          (0, Stage("tokenizing", 0, 4000, "of chat.jsonl"))]
    events += [(0.5, Stage("tokenizing", 250 * i, 4000, "of chat.jsonl")) for i in range(1, 16)]
    events += [(0.5, Stage("tokenizing", 4000, 4000, "of chat.jsonl")), (0.1, Stage("loading_model", detail="tiny")),
               (3.0, Stage("training"))]
    lines = printed(events, clock)
    assert lines == ["run r1 (train) started",
                     "tokenizing 0/4,000 records of chat.jsonl",
                     "tokenizing 2,500/4,000 records of chat.jsonl",
                     "tokenizing 4,000/4,000 records of chat.jsonl",
                     "loading model tiny",
                     "training"]


def test_an_evaluation_is_said_with_its_batches_and_training_is_not_repeated(clock):
    step = Step(20, 100, 0.2, 1.5, 1e-3, 1.0, 900.0, 20.0)
    lines = printed([(0, Stage("training")), (0, step), (0, Stage("evaluating", 0, 12)),
                     (0.5, Stage("evaluating", 12, 12)), (0, Eval(20, 1.6, 4.9)), (0, Stage("training"))], clock)
    assert lines == ["training", "step 20/100  loss 1.5000  lr 1.00e-03  grad_norm 1.000  tok/s 900",
                     "evaluating 0/12 batches", "evaluating 12/12 batches",
                     "eval  step 20: loss 1.6000  perplexity 4.90"]


def test_the_eta_comes_from_training_time_and_holds_across_an_evaluation(clock):
    """A step a second of training; a 50 s evaluation after step 20 leaves the ETA on the same pace."""
    events: list[tuple[float, object]] = []
    for step in (10, 20, 30):
        events.append((10.0 + (50.0 if step == 30 else 0.0),
                       Step(step, 100, 0.0, 1.0, 1e-3, 1.0, 100.0, float(step), train_s=float(step))))
    lines = printed(events, clock)
    assert lines[1].endswith("ETA 1:20") and lines[2].endswith("ETA 1:10"), lines


def test_quiet_prints_no_stages(clock):
    out = io.StringIO()
    printer = RunPrinter(Console(file=out, force_terminal=False), quiet=True)
    printer.show(Stage("tokenizing", 0, 10))
    assert out.getvalue() == ""


def test_engine_text_in_brackets_is_printed_as_written(clock):
    """torch's errors name their source as ``[/path/file.cc:78]``: rich read it as a closing tag and raised."""
    from engine.events import Failed, Log

    said = "Read error [/__w/pytorch/third_party/gloo/pair.cc:537] [bold]x[/bold]"
    lines = printed([(0, Log("error", f"the group lost a rank: {said}")), (0, Failed(said))], clock)
    assert lines == [f"the group lost a rank: {said}", f"error: {said}"]
