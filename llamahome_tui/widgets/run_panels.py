"""Text for the training screen's panels, drawn from a ``RunFeed`` (pure functions), and the gauges widget.

Kept apart from the screen so that they are easy to test and so the screen only wires keys and
messages: the head line, progress numbers, metric line, resource gauges and the sample panel.
``Gauges`` shows the run's own CPU and memory (from its worker's samples; cleared when the run
ends, never left frozen at the last reading) above the machine's: CPU overall and per core,
RAM, and the workspace's disk, sampled here every second with psutil (btop-like).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from rich.text import Text
from textual.timer import Timer
from textual.widgets import Static

from engine.api import metric_summary, screen_line
from llamahome_tui.widgets.run_feed import RunFeed, format_duration

GAUGE_WIDTH = 10
SYSTEM_SAMPLE_S = 1.0
"""Seconds between two samples of the machine's CPU, memory and disk."""
BARS = "▁▂▃▄▅▆▇█"
"""Per-core load glyphs, empty to full."""


@dataclass(frozen=True)
class SystemSample:
    """The machine at one moment: CPU per core (percent), memory and the workspace disk (bytes)."""

    cpu_per_core: tuple[float, ...]
    mem_used: float
    mem_total: float
    disk_used: float
    disk_total: float


def system_sample(folder: Path) -> SystemSample:
    """Sample the machine now (CPU since the previous call; the first call reads zeros)."""
    import psutil  # loaded with the engine's control module already

    memory = psutil.virtual_memory()
    try:
        disk = psutil.disk_usage(str(folder))
        disk_used, disk_total = float(disk.used), float(disk.total)
    except OSError:
        disk_used = disk_total = 0.0
    return SystemSample(tuple(psutil.cpu_percent(percpu=True)), float(memory.total - memory.available),
                        float(memory.total), disk_used, disk_total)


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
    text.append("▕")
    text.append("█" * filled, style=_color(fraction))
    text.append("░" * (width - filled), style="dim")
    text.append("▏ ")
    return text.append(value)


def _color(fraction: float) -> str:
    """Green, yellow, then red as a gauge fills."""
    return "green" if fraction < 0.6 else "yellow" if fraction < 0.85 else "red"


def _gib(value: float) -> str:
    """``5.1G`` / ``512M``."""
    return f"{value / 2**30:.1f}G" if value >= 2**30 else f"{value / 2**20:.0f}M"


def run_gauges(feed: RunFeed | None, width: int) -> list[Text]:
    """The run's own CPU (in cores) and memory; a line saying why when there is nothing live to show."""
    if feed is None:
        return [Text("run: none in view", style="dim")]
    if feed.ended:
        return [Text("run: ended, no resources", style="dim")]
    res = feed.resources
    if res is None:
        return [Text("run: waiting for a sample", style="dim")]
    bar = max(width - 5 - 3 - 9, 3)
    total = total_memory_mb()
    lines = [Text("run", style="bold underline"),
             gauge("CPU", res.cpu_percent / 100 / _cores(), f"{res.cpu_percent / 100:.1f} cores", bar),
             gauge("RAM", res.rss_mb / total if total else None, _gib(res.rss_mb * 2**20), bar)]
    if res.gpu_util is not None:
        lines.append(gauge("GPU", res.gpu_util / 100, f"{res.gpu_util:.0f}%", bar))
    if res.gpu_mem_mb is not None:
        lines.append(Text.assemble(("VRAM ", "bold"), _gib(res.gpu_mem_mb * 2**20)))
    if len(res.ranks) > 1:  # a torchrun group: CPU and RAM of each rank on this machine (the gauges: their sum)
        lines.append(Text.assemble(("ranks", "bold"), *(f" r{int(r['rank'])} {_rank_figures(r)}" for r in res.ranks)))
    return lines


def _rank_figures(rank: dict[str, float]) -> str:
    """``1.0 cores 0.5 GiB`` of one rank, with ``GPU 87% 2.1 GiB`` when its device is sampled."""
    text = f"{rank['cpu_percent'] / 100:.1f} cores {_gib(rank['rss_mb'] * 2**20)}"
    if "gpu_util" in rank and "gpu_mem_mb" in rank:
        text += f" GPU {rank['gpu_util']:.0f}% {_gib(rank['gpu_mem_mb'] * 2**20)}"
    return text


def system_gauges(sample: SystemSample | None, width: int) -> list[Text]:
    """The machine: CPU overall, a glyph per core, RAM and the workspace's disk."""
    if sample is None:
        return [Text("machine: sampling…", style="dim")]
    bar = max(width - 5 - 3 - 11, 3)
    cores = sample.cpu_per_core or (0.0,)
    overall = sum(cores) / len(cores)
    per_core = Text("cores", style="bold").append(" ")
    for load in cores[: max(width - 6, 1)]:
        per_core.append(BARS[min(int(load / 100 * (len(BARS) - 1) + 0.5), len(BARS) - 1)],
                        style=_color(load / 100))
    mem = sample.mem_used / sample.mem_total if sample.mem_total else None
    disk = sample.disk_used / sample.disk_total if sample.disk_total else None
    return [Text("machine", style="bold underline"),
            gauge("CPU", overall / 100, f"{overall:.0f}% ×{len(cores)}", bar), per_core,
            gauge("RAM", mem, f"{_gib(sample.mem_used)}/{_gib(sample.mem_total)}", bar),
            gauge("disk", disk, f"{_gib(sample.disk_total - sample.disk_used)} free", bar)]


def gauges_text(feed: RunFeed | None, sample: SystemSample | None = None, width: int = 26) -> Text:
    """The run's gauges above the machine's, one per line."""
    return Text("\n").join([*run_gauges(feed, width), *system_gauges(sample, width)])


@cache
def _cores() -> int:
    """CPU cores (cpu_percent of a process can reach 100 × cores)."""
    return os.cpu_count() or 1


class Gauges(Static):
    """The resource panel: ``show(feed)`` for the run's part; the machine's part samples itself."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.feed: RunFeed | None = None
        self.sample: SystemSample | None = None
        self.timer: Timer | None = None

    def on_mount(self) -> None:
        """Start sampling the machine (the first sample primes psutil's CPU counters)."""
        self.take_sample()
        self.timer = self.set_interval(SYSTEM_SAMPLE_S, self.take_sample)

    def take_sample(self) -> None:
        """Sample the machine and redraw (only while the panel's screen is in view)."""
        if self.sample is not None and not self.screen.is_current:
            return
        engine = getattr(self.app, "engine", None)
        folder = engine.workspace.root if engine is not None else Path.cwd()
        self.sample = system_sample(folder)
        self.redraw()

    def show(self, feed: RunFeed | None) -> None:
        """Draw the run's part from its feed (None: no run in view)."""
        self.feed = feed
        self.redraw()

    def on_resize(self) -> None:
        """Bars follow the panel's width."""
        self.redraw()

    def redraw(self) -> None:
        """Draw both parts at the current width."""
        self.update(gauges_text(self.feed, self.sample, max(self.content_size.width, 20)))


def progress_text(feed: RunFeed, since_step_s: float = 0.0) -> Text:
    """``step 12/100 12%  epoch 0.40  elapsed 0:10  ETA 1:23`` (fits beside the bar at 80 columns);
    ``since_step_s``: time gone since the newest step (a ``StepClock``'s)."""
    step = feed.last_step
    if step is None:
        return Text("waiting for the first step…" if not feed.ended else "no steps", style="dim")
    text = Text()
    now = max(step.step, feed.reached)
    text.append(f"step {now:,}/{step.total_steps:,}", style="bold")
    if step.total_steps:
        text.append(f" {100 * now // step.total_steps}%")
    elapsed = feed.elapsed_s()
    elapsed = None if elapsed is None else elapsed + since_step_s
    text.append(f"  epoch {step.epoch:.2f}  elapsed {format_duration(elapsed)}")
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
    """The newest sample generation (prompt and answer), or the final metrics (``Result``) when done without any."""
    if feed and feed.finished and not feed.generations:
        text = Text("Result\n", style="bold")
        for label, value in metric_summary(feed.finished):
            text.append(f"{label}: ", style="dim").append(f"{value}\n")
        return text
    text = Text("Samples", style="bold").append("  S: all\n", style="dim")
    if feed and feed.generations:
        last = feed.generations[-1]
        text.append(f"step {last.step}\n", style="dim")
        text.append("> ", style="bold green").append(last.prompt.strip() + "\n")
        text.append("< ", style="bold cyan").append(last.text.strip() + "\n")
    else:
        text.append("none yet", style="dim")
    return text
