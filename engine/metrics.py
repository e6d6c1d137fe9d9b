"""The one table of metrics: how each is named, formatted and where it shows (no torch).

A run's numbers travel as dicts keyed by these names: a ``Step`` event's fixed fields (loss, lr,
grad_norm, tokens_per_s) and its ``metrics`` (the objective's: rewards, margin, reward
accuracy...), an ``Eval`` event's loss, perplexity and metrics, and the run's final metrics
(``eval_`` before a held-out one). The console, the headless printer and TensorBoard all format
them from here, so a metric is named one way everywhere. A name not in the table (an objective
added later) shows as itself with four significant digits.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Metric:
    """How one metric is shown."""

    name: str
    """Its key in events and final metrics."""
    label: str
    """What the console, the headless lines and TensorBoard call it."""
    format: str = ".4f"
    """Python format spec of its value."""
    line: bool = True
    """Whether the one-line summaries (headless step lines, the console's eval lines) include it."""
    screen: bool = False
    """Whether the training screen's numbers row shows it (room for a few: the ones to watch)."""


METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("loss", "loss", ".4f"),
    Metric("lr", "lr", ".2e"),
    Metric("grad_norm", "grad_norm", ".3f"),
    Metric("tokens_per_s", "tok/s", ",.0f"),
    Metric("eval_loss", "eval loss", ".4f"),
    Metric("perplexity", "perplexity", ".2f"),
    Metric("reward_chosen", "chosen reward", ".3f"),
    Metric("reward_rejected", "rejected reward", ".3f"),
    Metric("reward_desirable", "desirable reward", ".3f"),
    Metric("reward_undesirable", "undesirable reward", ".3f"),
    Metric("reward_margin", "margin", ".3f", screen=True),
    Metric("reward_accuracy", "reward accuracy", ".2f", screen=True),
    Metric("chosen_nll", "chosen nll", ".4f", line=False),
    Metric("exact_match", "exact match", ".3f"),
    Metric("steps", "steps", "d"),
    Metric("stopped_reason", "ended by", ""),
    Metric("first_loss", "first loss", ".4f"),
    Metric("last_loss", "last loss", ".4f"),
    Metric("final_path", "final model", "", line=False),
    Metric("train_samples", "train samples", ",d"),
    Metric("eval_samples", "eval samples", ",d"),
    Metric("exact_match_base", "exact match (base)", ".3f"),
)}

SUMMARY_ORDER = ("steps", "stopped_reason", "first_loss", "last_loss", "eval_loss")
"""Final metrics shown first, in this order; the rest follow by name (``final_path`` last)."""


def metric(name: str) -> Metric:
    """The table's entry for ``name`` (``eval_`` names as the metric they evaluate), or a default."""
    if name in METRICS:
        return METRICS[name]
    base = name.removeprefix("eval_")
    if base in METRICS:
        known = METRICS[base]
        return Metric(name, f"eval {known.label}", known.format, known.line, known.screen)
    return Metric(name, name, ".4g")


def shown(name: str, value: Any) -> str:
    """``label value`` of one metric (``label -`` when it has no number)."""
    entry = metric(name)
    if not isinstance(value, int | float):
        return f"{entry.label} -"
    return f"{entry.label} {value:{entry.format}}"


def value_text(name: str, value: Any) -> str:
    """One metric's value as the table formats it (text as itself, a non-number as ``-``)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "-" if value is None else str(value)
    spec = metric(name).format
    return f"{value:{spec}}" if not (spec.endswith("d") and isinstance(value, float)) else f"{value:.4g}"


def summary(values: Mapping[str, Any]) -> list[tuple[str, str]]:
    """A run's final metrics as ``(label, value)`` rows: ``SUMMARY_ORDER`` first, the path last."""
    first = [name for name in SUMMARY_ORDER if name in values]
    rest = sorted(name for name in values if name not in first and name != "final_path")
    names = first + rest + (["final_path"] if "final_path" in values else [])
    return [(metric(name).label, value_text(name, values[name])) for name in names]


def line(values: Mapping[str, Any]) -> str:
    """The metrics of ``values`` that go on one line, in the order given, two spaces apart."""
    return "  ".join(shown(name, value) for name, value in values.items() if metric(name).line)


def screen_line(values: Mapping[str, Any]) -> str:
    """The metrics of ``values`` the training screen's numbers row shows, in the order given."""
    return "  ".join(shown(name, value) for name, value in values.items() if metric(name).screen)


def step_values(event: Any) -> dict[str, Any]:
    """A Step event's numbers by metric name: the fixed fields, then the objective's."""
    return {"loss": event.loss, "lr": event.lr, "grad_norm": event.grad_norm,
            "tokens_per_s": event.tokens_per_s, **event.metrics}


def eval_values(event: Any) -> dict[str, Any]:
    """An Eval event's numbers by metric name (perplexity only where the objective is token-level)."""
    values: dict[str, Any] = {"loss": event.eval_loss}
    if not event.metrics:
        values["perplexity"] = event.perplexity
    return {**values, **event.metrics}
