"""The metric table names a run's final metrics the same way in the console and the headless lines."""

from __future__ import annotations

from engine.metrics import summary, value_text
from llamahome_tui.headless import print_summary

FINAL = {"final_path": "/w/runs/r/final", "eval_reward_accuracy": 0.8125, "last_loss": 0.41234,
         "stopped_reason": "finished", "steps": 60, "first_loss": 0.6931, "eval_loss": 0.5,
         "samples_chat": 120, "exact_match": 0.25}


def test_final_metrics_read_by_label_in_a_fixed_order_with_the_path_last():
    rows = summary(FINAL)
    assert rows[:5] == [("steps", "60"), ("ended by", "finished"), ("first loss", "0.6931"),
                        ("last loss", "0.4123"), ("eval loss", "0.5000")]
    assert rows[-1] == ("final model", "/w/runs/r/final")
    assert ("eval reward accuracy", "0.81") in rows and ("exact match", "0.250") in rows
    assert ("samples_chat", "120") in rows  # a name outside the table shows as itself
    assert not any("_" in label for label, _ in rows if label != "samples_chat")


def test_values_the_table_cannot_format_still_show():
    assert value_text("steps", 12.0) == "12"
    assert value_text("eval_loss", None) == "-"
    assert value_text("last_loss", "nan?") == "nan?"


def test_the_headless_summary_prints_the_same_labels(capsys):
    print_summary(FINAL)
    out = capsys.readouterr().out
    assert "ended by: finished" in out and "eval reward accuracy: 0.81" in out and "stopped_reason" not in out
