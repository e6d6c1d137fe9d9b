"""The runs screen's detail pane: what the highlighted run was (a pure function of ``Engine.run_detail``).

The config it used (method, objective, model, the settings that shape a run), its data and the
dataset versions it trained on, where it came from (the run and checkpoint it resumed), where it
wrote, when it started and how long it took, the precision it ran at and, when recorded, its world size.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.text import Text

from engine.api import LIVE_STATUSES
from llamahome_tui.paths import shown_path
from llamahome_tui.widgets.run_feed import format_duration

if TYPE_CHECKING:
    from engine.api import RunDetail

DETAIL_LINES = 6


def _settings(config: dict[str, Any]) -> str:
    """``lora r 16/α 32  sft  lr 1.0e-03  max steps 40  batch 16`` from a run's config."""
    training, lora = config.get("training", {}), config.get("lora", {})
    method = str(training.get("method", "-"))
    parts = [method + (f" r {lora['r']}/α {lora['alpha']}" if method in ("lora", "qlora") and "r" in lora
                       and "alpha" in lora else "")]
    if training.get("objective"):
        parts.append(str(training["objective"]))
    if isinstance(training.get("learning_rate"), int | float):
        parts.append(f"lr {training['learning_rate']:.1e}")
    steps = training.get("max_steps")
    if isinstance(steps, int) and steps > 0:
        parts.append(f"max steps {steps:,}")
    elif "epochs" in training:
        parts.append(f"{training['epochs']} epochs")
    if "batch_size" in training:
        parts.append(f"batch {training['batch_size']}")
    return "  ".join(parts)


def _data(detail: RunDetail) -> str:
    """The data files and the versions it trained on."""
    run, job = detail.run, detail.job
    files = [shown_path(Path(job["data"])) if job.get("data") else (run.dataset_path or "-")]
    if job.get("eval_data"):
        files.append("eval " + shown_path(Path(job["eval_data"])))
    versions = [f"{v['role']} {v['fingerprint'][:8]} ({v['samples']:,} samples, {v['tokens']:,} tokens)"
                for v in detail.datasets]
    return "  ".join(files) + ("  version " + "; ".join(versions) if versions else "")


def start_date(started_at: float | None) -> str:
    """``2026-01-01 00:00`` in local time, or ``not started``."""
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(started_at)) if started_at else "not started"


def detail_text(detail: RunDetail | None, now: float) -> Text:
    """The pane's lines for one run (``now`` dates a live run's duration)."""
    if detail is None:
        return Text("No run highlighted.", style="dim")
    run = detail.run
    started = start_date(run.started_at)
    live = run.status in LIVE_STATUSES
    end = run.ended_at or (now if live else run.heartbeat_at)  # crashed: its last sign of life
    took = format_duration(end - run.started_at) if run.started_at and end else "-"
    text = Text.assemble(("run ", "dim"), (run.id, "bold"), f"  {run.kind}  {run.status}  ",
                         ("started ", "dim"), started, ("  for " if live else "  took ", "dim"), took)
    model = detail.config.get("model", {}).get("path") or run.model or "-"
    runtime = run.runtime or {}
    extra = f"  {runtime['precision']}" if runtime.get("precision") else ""
    if detail.world_size:
        extra += f"  world size {detail.world_size}"
    text.append("\nconfig  ", style="dim").append(f"{_settings(detail.config)}  model {model}{extra}")
    text.append("\ndata    ", style="dim").append(_data(detail))
    text.append("\noutput  ", style="dim").append(shown_path(Path(run.output_dir)) if run.output_dir else "-")
    if run.resumed_from:
        source = Path(detail.job.get("resume_from", "")).name
        text.append("\nresumed ", style="dim").append(f"from run {run.resumed_from}" + (f" at {source}" if source
                                                                                          else ""))
    if run.error:
        text.append("\nerror   ", style="dim").append(run.error, style="red")
    return text
