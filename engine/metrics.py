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
)}


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
