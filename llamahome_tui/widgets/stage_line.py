"""The stage line: what the run in view is doing right now, from its ``Stage`` events (a pure function).

``▶ evaluating 3/12 batches ▕██▌      ▏ 25%`` while a counted stage runs, ``▶ loading model tiny``
for one without a count, ``paused at step 40 (p resumes)`` while paused. The words come from
``engine.stages``, the same table the headless lines and ``worker.log`` use.
"""

from __future__ import annotations

from rich.text import Text

from engine.events import Stage
from llamahome_tui.widgets.run_feed import RunFeed

BAR_WIDTH = 12
BLOCKS = " ▏▎▍▌▋▊▉█"


def mini_bar(share: float, width: int = BAR_WIDTH) -> str:
    """A bar of ``width`` cells filled to ``share`` (eighths of a cell)."""
    eighths = int(round(min(max(share, 0.0), 1.0) * width * 8))
    full, part = divmod(eighths, 8)
    return ("█" * full + (BLOCKS[part] if part else "")).ljust(width)


def stage_text(feed: RunFeed | None) -> Text:
    """The stage line for ``feed`` (empty when there is no run, or it has ended)."""
    if feed is None or feed.ended:
        return Text()
    if feed.paused_at is not None:
        return Text.assemble(("⏸ ", "bold yellow"), (f"paused at step {feed.paused_at:,}", "yellow"),
                             ("  p resumes", "dim"))
    stage = feed.stage
    if stage is None:
        return Text("▶ starting the worker…", style="dim")
    return stage_words(stage)


def stage_words(stage: Stage) -> Text:
    """``▶ words`` and, for a counted stage, a small bar and its percentage."""
    text = Text.assemble(("▶ ", "bold cyan"), (stage.words(), "bold" if stage.name != "training" else ""))
    share = stage.share()
    if share is not None:
        text.append(" ▕", style="dim").append(mini_bar(share), style="cyan").append("▏", style="dim")
        text.append(f" {100 * share:.0f}%")
    return text
