"""The stage line: what the run in view is doing right now, from its ``Stage`` events (a pure function).

``▶ evaluating 3/12 batches ▕██▌      ▏ 25%`` while a counted stage runs, ``▶ loading model tiny``
for one without a count, ``paused at step 40 (p resumes)`` while paused, ``⏳ queued: starts when
run X ends`` while queued. A stop or pause asked from here shows in front of the stage until the
run acts on it (``⏹ stopping · evaluating 3/12 batches``): the worker finishes its step first,
with that step's samples, evaluation and checkpoint. The words come from ``engine.stages``, the
same table the headless lines and ``worker.log`` use.
"""

from __future__ import annotations

from rich.text import Text

from engine.events import Stage
from llamahome_tui.widgets.run_feed import RunFeed

BAR_WIDTH = 12
ASKED = {"stop": "⏹ stopping", "pause": "⏸ pausing", "resume": "▶ resuming"}
"""What the stage line says in front of the stage while a request is on its way to the worker."""
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
    asked = ASKED.get(feed.asked)
    if feed.paused_at is not None and feed.asked not in ("resume", "stop"):
        return Text.assemble(("⏸ ", "bold yellow"), (f"paused at step {feed.paused_at:,}", "yellow"),
                             ("  p resumes", "dim"))
    if feed.queued_behind and asked is None:
        several = len(feed.queued_behind) > 1
        runs = ", ".join(feed.queued_behind)
        words = f"queued: starts when run{'s' if several else ''} {runs} end{'' if several else 's'}"
        return Text.assemble(("⏳ ", "bold yellow"), (words, "yellow"))
    stage = feed.stage
    if asked is not None:
        words = stage.words() if stage is not None and feed.paused_at is None else \
            (f"paused at step {feed.paused_at:,}" if feed.paused_at is not None else "starting")
        return Text.assemble((asked, "bold yellow"), (" · ", "dim"), words)
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
