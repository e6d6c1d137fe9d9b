"""One-line descriptions of a chat's events, shared by the Try it screen and ``--no-ui chat``."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def ready_line(event: dict[str, Any]) -> str:
    """What was loaded, in one line: ``step-000020: adapter over tiny, 109.6 k params, cpu``."""
    return f"{Path(str(event.get('model', ''))).name}: {loaded_line(event)}"


def loaded_line(event: dict[str, Any]) -> str:
    """What a ``ready`` event says was loaded: ``adapter over tiny, 109.6 k params, cpu``."""
    what = f"adapter over {Path(str(event.get('base') or '')).name}" if event.get("kind") == "adapter" else "model"
    return f"{what}, {_count(int(event.get('parameters', 0)))} params, {event.get('device', '?')}"


def _count(number: int) -> str:
    """``109.6 k``, ``1.2 M``, ``7.0 B``: a parameter count in a few characters."""
    for size, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if number >= size:
            return f"{number / size:.1f} {unit}"
    return str(number)


def done_line(event: dict[str, Any]) -> str:
    """How an answer went: tokens, time, speed, and why it ended when that is not the model's choice."""
    tokens, seconds = int(event.get("tokens", 0)), float(event.get("seconds", 0.0))
    rate = f", {tokens / seconds:.0f} tokens/s" if seconds > 0 else ""
    why = {"stopped": ", stopped", "length": ", cut at max new tokens"}.get(str(event.get("reason")), "")
    trimmed = f", oldest {event['trimmed']} prompt tokens dropped" if event.get("trimmed") else ""
    return f"{tokens} tokens in {seconds:.1f} s{rate}{why}{trimmed}"
