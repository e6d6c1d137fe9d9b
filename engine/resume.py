"""Resuming: where a new run continues from, who may continue a run, which runs to offer (no torch).

A resumed run is a new run with a folder of its own (``runs/<id>/``): it reads the source
checkpoint and never writes beside it, so the source run's files stay byte for byte as they
were. Only one live run continues a given run at a time (``RunStore.create_run`` checks that in
the transaction that records the new one). A checkpoint describes itself (``progress.json``), so
one whose run is missing from the history (the database was deleted) is adopted back into it
instead of being refused.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from engine.checkpoint_meta import PROGRESS_FILE, TMP_PREFIX, read_checkpoint_meta
from engine.errors import UserError
from engine.store import RunRecord, RunStore

ADOPTED_MESSAGE = "recovered from its checkpoint folders (its history was lost)"


def checkpoints_on_disk(run: RunRecord) -> list[Path]:
    """The run's own checkpoint folders, oldest first."""
    folder = Path(run.output_dir) / "checkpoints"
    return sorted(p for p in folder.glob("step-*") if p.is_dir()) if folder.is_dir() else []


def latest_checkpoint_dir(run: RunRecord) -> Path | None:
    """The newest checkpoint of a run: its own, else the one it was resumed from (if still there)."""
    own = checkpoints_on_disk(run)
    if own:
        return own[-1]
    source = run.config.get("job", {}).get("resume_from")
    return Path(source) if source and Path(source).is_dir() else None


def resumable(runs: list[RunRecord]) -> dict[str, str]:
    """Stopped or crashed training runs not yet continued by another run: id -> checkpoint name."""
    continued = {r.resumed_from for r in runs if r.resumed_from}
    offered = {}
    for run in runs:
        if run.kind == "train" and run.status in ("stopped", "crashed") and run.id not in continued:
            checkpoint = latest_checkpoint_dir(run)
            if checkpoint is not None:
                offered[run.id] = checkpoint.name
    return offered


def remove_partial_checkpoints(run: RunRecord) -> None:
    """Delete the half-written ``.tmp-*`` folders a dead worker left in its checkpoint folder."""
    folder = Path(run.output_dir) / "checkpoints"
    if run.output_dir and folder.is_dir():
        for tmp in folder.glob(TMP_PREFIX + "*"):
            shutil.rmtree(tmp, ignore_errors=True)


def adopt(store: RunStore, checkpoint: Path) -> RunRecord | None:
    """Record the run that wrote ``checkpoint`` from its ``progress.json`` when the history lacks it.

    The run comes back ``stopped`` with its checkpoints; returns it, or None when the
    checkpoint names no run or the run is known already.
    """
    meta = read_checkpoint_meta(checkpoint)
    run_id = meta.get("run_id") or ""
    if not run_id or store.get_run(run_id) is not None:
        return None
    config: dict[str, Any] = meta.get("config") if isinstance(meta.get("config"), dict) else {}
    model = config.get("model", {})
    job = config.get("job", {})
    output = checkpoint.parent.parent
    store.create_run(run_id, "train", config, model.get("path") or model.get("builtin", ""),
                     job.get("data", ""), output_dir=str(output))
    store.update_run(run_id, status="stopped", error=ADOPTED_MESSAGE,
                     created_at=(checkpoint / PROGRESS_FILE).stat().st_mtime)
    for folder in sorted(p for p in checkpoint.parent.glob("step-*") if (p / PROGRESS_FILE).is_file()):
        step = int(read_checkpoint_meta(folder)["progress"].get("step", 0))
        store.add_checkpoint(run_id, step, folder, None)
    return store.get_run(run_id)


def adopt_workspace(store: RunStore, runs_dir: Path) -> list[str]:
    """Adopt every run folder under ``runs_dir`` that has a checkpoint; returns their ids."""
    adopted = []
    for checkpoints in sorted(runs_dir.glob("*/checkpoints")):
        found = sorted(p for p in checkpoints.glob("step-*") if (p / PROGRESS_FILE).is_file())
        if found:
            try:
                run = adopt(store, found[-1])
            except Exception:  # noqa: BLE001 - a damaged folder is skipped here; resuming it says why
                continue
            if run is not None:
                adopted.append(run.id)
    return adopted


def checkpoint_step(checkpoint: Path) -> int:
    """The optimizer step a checkpoint was taken after."""
    return int(read_checkpoint_meta(checkpoint)["progress"].get("step", 0))


def refuse_nothing_left(checkpoint: Path, max_steps: int, raised: bool, finished: bool) -> None:
    """UserError when resuming ``checkpoint`` of a finished run would train no step: its total is reached.

    ``max_steps`` is the total the new run would train to (0: by epochs); ``raised`` says whether
    the caller gave it. A run that trained by epochs and ended (its ``final`` checkpoint) has done
    all its epochs, so it needs ``max_steps`` past its step. A run that did not finish (killed or
    stopped after its last step, before its final model and evaluation) is not refused: its
    resume trains no step and finishes it.
    """
    if not finished:
        return
    meta = read_checkpoint_meta(checkpoint)
    step = int(meta["progress"].get("step", 0))
    hint = f"give more steps (max steps above {step:,}, e.g. --max-steps {2 * step:,}) to train on"
    if max_steps > 0 and step >= max_steps:
        said = "max steps" if raised else "the run's max steps"
        raise UserError(f"{checkpoint.name} is at step {step:,} and {said} is {max_steps:,}: "
                        f"no step is left to train; {hint}")
    if max_steps <= 0 and meta.get("reason") == "final":
        raise UserError(f"{checkpoint.name} is the final checkpoint of a run that trained all its epochs "
                        f"(step {step:,}): no step is left to train; {hint}")
