"""Checkpoints that a run can resume from exactly, written atomically.

A checkpoint folder holds the trained weights (a peft adapter, or the whole model, in
safetensors), ``trainer_state.pt`` (optimizer, scheduler and RNG states; loaded with
``weights_only=True``) and ``progress.json`` (the training position and the run's resolved
config), so that a checkpoint describes itself without the database. It is written into a hidden
temporary folder first and renamed into place, so a crash never leaves a half-written checkpoint.
"""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from engine.checkpoint_meta import PROGRESS_FILE, read_checkpoint_meta

STATE_FILE = "trainer_state.pt"


@dataclass
class TrainingProgress:
    """Where a run is: what a checkpoint restores besides weights and optimizer."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    tokens_seen: int = 0
    best_eval_loss: float | None = None
    evals_without_improvement: int = 0
    micro_batch_splits: int = 1
    """Pieces each micro-batch is run in (doubled by out-of-memory backoff; the effective batch stays)."""
    elapsed_s: float = 0.0
    """Seconds spent training so far, over every resumed part of the run (pauses not counted)."""
    data_state: dict[str, int] = field(default_factory=lambda: {"epoch": 0, "index": 0})
    """The batch stream's position (``engine.data.batching.Batches.state_dict``)."""


def checkpoint_name(step: int) -> str:
    """The folder name of the checkpoint taken after optimizer step ``step``."""
    return f"step-{step:06d}"


def rng_state() -> dict[str, Any]:
    """Every RNG state a training step draws from."""
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what ``rng_state`` captured."""
    torch.set_rng_state(state["torch"])
    random.setstate(_as_tuple(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuple(value: Any) -> Any:
    """Python's random state is nested tuples; make sure lists read back become tuples."""
    return tuple(_as_tuple(v) for v in value) if isinstance(value, list | tuple) else value


def save_checkpoint(folder: Path, model: Any, trainer_state: dict[str, Any],
                    progress: TrainingProgress, meta: dict[str, Any]) -> Path:
    """Write a checkpoint atomically into ``folder``; returns its final path."""
    tmp = folder.parent / f".tmp-{folder.name}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(str(tmp), safe_serialization=True)
    torch.save(trainer_state, tmp / STATE_FILE)
    payload = {"progress": asdict(progress), **meta}
    (tmp / PROGRESS_FILE).write_text(json.dumps(payload, indent=2))
    if folder.exists():
        shutil.rmtree(folder)
    tmp.rename(folder)
    return folder


read_meta = read_checkpoint_meta


def load_trainer_state(folder: Path) -> dict[str, Any]:
    """Optimizer, scheduler and RNG states of a checkpoint."""
    return torch.load(folder / STATE_FILE, weights_only=True)


def prune(checkpoints: list[Path], keep_last_n: int, best: Path | None) -> list[Path]:
    """Delete all but the newest ``keep_last_n`` checkpoints (never the best); return the deleted."""
    if keep_last_n <= 0:
        return []
    doomed = [c for c in sorted(checkpoints)[:-keep_last_n] if c != best]
    for folder in doomed:
        shutil.rmtree(folder, ignore_errors=True)
    return doomed
