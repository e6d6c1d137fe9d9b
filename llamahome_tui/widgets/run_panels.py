"""Text for the training screen's panels, drawn from a ``RunFeed`` (pure functions, no widgets).

Kept apart from the screen so that they are easy to test and so the screen only wires keys and
messages: the head line, progress numbers, metric line, resource gauges and the sample panel.
"""

from __future__ import annotations

from functools import cache

from rich.text import Text

from engine.metrics import screen_line
from llamahome_tui.widgets.run_feed import RunFeed, format_duration

GAUGE_WIDTH = 10


@cache
def total_memory_mb() -> float | None:
    """This machine's RAM in MiB (for the RSS gauge), or None when unknown."""
    try:
        import psutil
    except ImportError:  # pragma: no cover - psutil is a dependency
        return None
    return float(psutil.virtual_memory().total) / 2**20


def gauge(label: str, fraction: float | None, value: str, width: int = GAUGE_WIDTH) -> Text:
    """``CPU ▕█████░░░░▏ 45%``: a bar coloured green, yellow then red as it fills."""
    text = Text(f"{label:<5}", style="bold")
    if fraction is None:
        return text.append("n/a", style="dim")
    fraction = min(max(fraction, 0.0), 1.0)
    filled = int(round(fraction * width))
    color = "green" if fraction < 0.6 else "yellow" if fraction < 0.85 else "red"
    text.append("▕")
    text.append("█" * filled, style=color)
    text.append("░" * (width - filled), style="dim")
    text.append("▏ ")
    return text.append(value)


def gauges_text(feed: RunFeed | None) -> Text:
    """CPU, RAM, GPU and GPU memory of the run's worker, one gauge per line."""
    res = feed.resources if feed else None
    if res is None:
        return Text("resources: waiting for a sample", style="dim")
    total = total_memory_mb()
    lines = [
        gauge("CPU", res.cpu_percent / 100 / _cores(), f"{res.cpu_percent:.0f}%"),
        gauge("RAM", res.rss_mb / total if total else None, f"{res.rss_mb:,.0f} MB"),
        gauge("GPU", None if res.gpu_util is None else res.gpu_util / 100,
              "" if res.gpu_util is None else f"{res.gpu_util:.0f}%"),
        gauge("VRAM", None, "") if res.gpu_mem_mb is None
        else Text.assemble(("VRAM ", "bold"), f"{res.gpu_mem_mb:,.0f} MB"),
    ]
    return Text("\n").join(lines)


@cache
def _cores() -> int:
    """CPU cores (cpu_percent of a process can reach 100 × cores)."""
    import os

    return os.cpu_count() or 1


def progress_text(feed: RunFeed) -> Text:
    """``step 12/100 12%  epoch 0.40  elapsed 0:10  ETA 1:23`` (fits beside the bar at 80 columns)."""
    step = feed.last_step
    if step is None:
        return Text("waiting for the first step…" if not feed.ended else "no steps", style="dim")
    text = Text()
    text.append(f"step {step.step:,}/{step.total_steps:,}", style="bold")
    if step.total_steps:
        text.append(f" {100 * step.step // step.total_steps}%")
    text.append(f"  epoch {step.epoch:.2f}  elapsed {format_duration(feed.elapsed_s())}")
    text.append(f"  ETA {format_duration(feed.eta_s()) if not feed.ended else '-'}")
    return text


def numbers_text(feed: RunFeed) -> Text:
    """``loss 1.2345  eval 1.3 (best 1.2)  lr 1.0e-03  tok/s 1,234``."""
    text = Text()
    step = feed.last_step
    if step is not None:
        text.append("loss ", style="dim").append(f"{step.loss:.4f}", style="bold cyan")
    if feed.eval_losses:
        text.append("  eval ", style="dim").append(f"{feed.eval_losses[-1]:.4f}", style="bold magenta")
        text.append(f" (best {feed.best_eval:.4f})", style="dim")
    if step is not None:
        text.append("  lr ", style="dim").append(f"{step.lr:.2e}")
        text.append("  tok/s ", style="dim").append(f"{step.tokens_per_s:,.0f}")
    text.append_text(objective_numbers(feed))
    if feed.error:
        text.append(f"  error: {feed.error}", style="bold red")
    return text


def objective_numbers(feed: RunFeed) -> Text:
    """A second row with the objective's metrics to watch (``engine.metrics``: ``screen``), or nothing.

    ``margin 1.439  reward accuracy 0.81  eval margin 1.516  reward accuracy 0.85``: the newest
    step's, then the newest evaluation's; the rest are in the log's eval lines and the history.
    """
    text = Text()
    step, evaluated = feed.last_step, feed.last_eval
    if step is not None and screen_line(step.metrics):
        text.append(screen_line(step.metrics), style="cyan")
    if evaluated is not None and screen_line(evaluated.metrics):
        text.append("  " if text else "").append("eval " + screen_line(evaluated.metrics), style="magenta")
    return Text("\n").append_text(text) if text else text


def samples_text(feed: RunFeed | None) -> Text:
    """The newest sample generation (prompt and answer), or the final metrics when done."""
    text = Text("Samples\n", style="bold")
    if feed and feed.generations:
        last = feed.generations[-1]
        text.append(f"step {last.step}\n", style="dim")
        text.append("> ", style="bold green").append(last.prompt.strip() + "\n")
        text.append("< ", style="bold cyan").append(last.text.strip() + "\n")
    elif feed and feed.finished:
        for key in sorted(feed.finished):
            value = feed.finished[key]
            if isinstance(value, int | float):
                text.append(f"{key}: ", style="dim").append(f"{value:.4g}\n")
    else:
        text.append("none yet", style="dim")
    return text
