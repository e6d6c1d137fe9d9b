"""Checkpoints that a run can resume from exactly, written atomically.

A checkpoint folder holds the trained weights (a peft adapter, or the whole model, in
safetensors), ``trainer_state.pt`` (optimizer, scheduler and RNG states; loaded with
``weights_only=True``) and ``progress.json`` (the training position and the run's resolved
config), so that a checkpoint describes itself without the database. It is written into a hidden
temporary folder first and renamed into place, so a crash never leaves a half-written checkpoint;
the next save (or the engine, once the worker is gone) removes a temporary folder a crash left.
A full disk while writing is a ``DiskFullError`` naming the folder, and the partial folder goes.
An FSDP group writes its checkpoints sharded, through the same temporary folder (``staged``, with
every rank writing into it; see ``engine.train.dcp_format``).
"""

from __future__ import annotations

import contextlib
import json
import random
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from engine.checkpoint_meta import DAMAGED, PROGRESS_FILE, STATE_FILE, TMP_PREFIX, read_checkpoint_meta
from engine.disk import writing
from engine.errors import UserError
from engine.train.model import save_options


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
    best_checkpoint: str | None = None
    """The folder of the checkpoint kept as the best by eval loss (pruning spares it), if any."""
    eval_pending: bool = False
    """A stop cut this step's evaluation short: the run resumed from here evaluates the step first."""
    data_ranks: int = 1
    """The world size the run started with: its global batches hold ``batch_size x data_ranks`` samples
    (``engine.train.shards``), whatever world size a resumed part runs at."""


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
    """Write a checkpoint atomically into ``folder``; returns its final path.

    Temporary folders of earlier writes that never finished (a crash) are removed first; on
    a failure the partial one goes too (``DiskFullError`` when the disk is full).
    """
    with staged(folder) as tmp:
        model.save_pretrained(str(tmp), safe_serialization=True, **save_options(model))
        write_state(tmp, trainer_state, progress, meta)
    return folder


@contextlib.contextmanager
def staged(folder: Path, lead: bool = True) -> Iterator[Path]:
    """The hidden temporary folder a checkpoint is written into, renamed to ``folder`` when the block ends.

    The lead makes it (after removing what earlier writes left) and renames it; with ``lead``
    False another process (a group's lead) does that, and this one only writes into it. On a
    failure the lead removes it (``DiskFullError`` when the disk is full).
    """
    tmp = folder.parent / f"{TMP_PREFIX}{folder.name}"
    if lead:
        for stale in folder.parent.glob(TMP_PREFIX + "*"):
            shutil.rmtree(stale, ignore_errors=True)
    try:
        with writing(tmp):
            if lead:
                tmp.mkdir(parents=True)
            yield tmp
    except BaseException:
        if lead:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    if lead:
        if folder.exists():
            shutil.rmtree(folder)
        tmp.rename(folder)


def write_state(tmp: Path, trainer_state: dict[str, Any], progress: TrainingProgress, meta: dict[str, Any]) -> None:
    """``trainer_state.pt`` and ``progress.json`` of a checkpoint being written in ``tmp``."""
    torch.save(trainer_state, tmp / STATE_FILE)
    payload = {"progress": asdict(progress), **meta}
    (tmp / PROGRESS_FILE).write_text(json.dumps(payload, indent=2))


read_meta = read_checkpoint_meta


def load_trainer_state(folder: Path) -> dict[str, Any]:
    """Optimizer, scheduler and RNG states of a checkpoint (tensors and plain data only).

    A damaged file is a UserError naming it; torch's own message is left out, since it
    suggests ``weights_only=False``, which would run whatever pickle the file holds.
    """
    path = folder / STATE_FILE
    try:
        state = torch.load(path, weights_only=True)
    except Exception:  # noqa: BLE001 - any unreadable state is the same problem to the user
        raise UserError(f"{path}: unreadable trainer state; {DAMAGED}") from None
    if not isinstance(state, dict) or not {"optimizer", "scheduler", "rng"} <= state.keys():
        raise UserError(f"{path}: not a LlamaHome trainer state; {DAMAGED}")
    return state


def prune(checkpoints: list[Path], keep_last_n: int, best: Path | None) -> list[Path]:
    """Delete all but the newest ``keep_last_n`` checkpoints (never the best); return the deleted."""
    if keep_last_n <= 0:
        return []
    doomed = [c for c in sorted(checkpoints)[:-keep_last_n] if c != best]
    for folder in doomed:
        shutil.rmtree(folder, ignore_errors=True)
    return doomed
