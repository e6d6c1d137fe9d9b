"""Stages: worded from one table, progress throttled at the source, folded into log lines; the ETA's pace."""

from __future__ import annotations

import json

from engine.events import Eval, Log, Resources, Runtime, Stage, Step, event_from_row
from engine.log_lines import EventLines
from engine.monitor import Throughput
from engine.stages import StageTicker, describe, fraction


class Clock:
    """A clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_stages_are_worded_with_their_count_unit_and_detail():
    assert describe(Stage("tokenizing", 1024, 4000, "of chat.jsonl")) == "tokenizing 1,024/4,000 records of chat.jsonl"
    assert describe(Stage("evaluating", 3, 12)) == "evaluating 3/12 batches"
    assert describe(Stage("tokenizing", 700)) == "tokenizing 700 records", "no total: the count so far"
    assert describe(Stage("training")) == "training"
    assert describe(Stage("saving_checkpoint", detail="step-000040")) == "saving checkpoint step-000040"
    assert describe(Stage("new_kind_of_work")) == "new kind of work"
    assert fraction(Stage("evaluating", 3, 12)) == 0.25 and fraction(Stage("training")) is None


def test_a_stage_round_trips_through_the_store_payload():
    stage = Stage("building_base", 30, 400)
    assert event_from_row("stage", json.loads(json.dumps(stage.to_payload()))) == stage


def test_a_fast_count_sends_a_few_updates_a_second_and_always_the_last():
    sent: list[Stage] = []
    clock = Clock()
    ticker = StageTicker(sent.append, "tokenizing", 10_000, clock=clock)
    for done in range(1, 10_001):
        clock.now = done / 5_000  # 10,000 records in 2 s
        ticker(done)
    ticker.end()
    assert sent[0] == Stage("tokenizing", 0, 10_000)
    assert sent[-1] == Stage("tokenizing", 10_000, 10_000)
    assert len(sent) <= 2 + 2 * 4, f"{len(sent)} updates for 2 s of work"
    assert [s.done for s in sent] == sorted(s.done for s in sent)


def test_an_unknown_total_ends_as_the_count_done():
    sent: list[Stage] = []
    ticker = StageTicker(sent.append, "tokenizing", 0, clock=Clock())
    ticker.add(512)
    ticker.add(100)
    ticker.end()
    assert sent[-1] == Stage("tokenizing", 612, 612)


def test_log_lines_fold_a_stage_progress_into_a_few_lines():
    lines = EventLines(stage_every_s=5.0)
    words = []
    for second in range(0, 21):
        line = lines.line(Stage("tokenizing", second * 100, 2000), float(second))
        if line is not None:
            words.append(line.text)
    line = lines.line(Stage("tokenizing", 2000, 2000), 21.0)
    words.append(line.text if line else None)
    assert words == ["tokenizing 0/2,000 records", "tokenizing 500/2,000 records", "tokenizing 1,000/2,000 records",
                     "tokenizing 1,500/2,000 records", "tokenizing 2,000/2,000 records", None], \
        "a line at the start, every 5 s, at completion, and not twice for the same completion"
    assert lines.line(Stage("training"), 22.0).text == "training", "a new stage always gets a line"


def test_log_lines_word_each_event_and_skip_samples_of_resources():
    lines = EventLines()
    assert lines.line(Log("warning", "disk nearly full"), 1.0).level == "warning"
    step = lines.line(Step(12, 400, 0.1, 1.25, 1e-3, 0.5, 1500.0, 9.0), 2.0)
    assert step.level == "step" and step.text.startswith("step 12/400  loss 1.2500")
    assert lines.line(Eval(20, 1.1, 3.0), 3.0).text.startswith("eval step 20: loss 1.1000  perplexity 3.00")
    assert lines.line(Resources(50.0, 100.0, None, None), 4.0) is None
    assert lines.line(Runtime(precision="fp32"), 5.0) is None
    assert "stage: training" in lines.line(Stage("training"), 6.0).stamped()


def test_the_eta_pace_leaves_out_time_between_steps():
    """Ten steps a second of training; a 60 s evaluation between steps 20 and 30 must not move the ETA."""
    clock = Clock()
    pace = Throughput(clock)
    etas = []
    for step in range(10, 101, 10):
        clock.now += 1.0 + (60.0 if step == 30 else 0.0)
        pace.observe(Step(step, 200, 0.0, 1.0, 1e-3, 1.0, 100.0, clock.now, train_s=step / 10))
        etas.append(pace.eta_s())
    assert etas[0] is None
    assert etas[1:] == [(200 - s) / 10 for s in range(20, 101, 10)]
