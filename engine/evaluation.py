"""What an evaluation (``train-eval``) settles before its worker starts (no torch).

- The objective it evaluates with: the one asked for (``--objective``, or a
  ``training.objective`` other than the default), else the objective of the run that made the
  model when that trains on the file's kind of records, else the one the file's first record
  suits (``engine.data.examples.file_objective``: pairs -> dpo, KTO records -> kto).
- The run that made the model, from the target's ``progress.json`` (a checkpoint) or from the
  newest checkpoint beside a ``final/`` folder; its ``base_model`` is the reference model of a
  full-weights checkpoint under dpo or kto (an adapter's reference is its base with the adapter
  switched off).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.checkpoint_meta import PROGRESS_FILE, read_checkpoint_meta
from engine.data.examples import DEFAULT_OBJECTIVE, file_kind
from engine.errors import UserError
from engine.objectives import REGISTRY, entry, record_kind


def run_meta(target: Path) -> dict[str, Any]:
    """``progress.json`` of the checkpoint ``target`` is, or of the newest one beside it; {} if none."""
    beside = sorted((Path(target).parent / "checkpoints").glob("step-*"), reverse=True)
    for folder in (Path(target), *beside):
        if (folder / PROGRESS_FILE).is_file():
            try:
                return read_checkpoint_meta(folder)
            except UserError:
                return {}
    return {}


def eval_objective(target: Path, data: Path, fmt: str | None, requested: str | None) -> str:
    """The objective to evaluate ``target`` on ``data`` with (see the module's docstring)."""
    if requested:
        entry(requested)  # ConfigError naming the known objectives
        return requested
    kind = file_kind(data, fmt)
    trained = run_meta(target).get("config", {}).get("training", {}).get("objective")
    if trained and trained in REGISTRY and _reads(record_kind(trained), kind):
        return str(trained)
    return DEFAULT_OBJECTIVE[kind] if kind else "sft"


def reference_base(target: Path, model_path: str = "") -> str:
    """The base a full-weights model is compared with: its run's base model, else ``model.path``."""
    base = run_meta(target).get("base_model") or model_path
    return str(Path(base).expanduser()) if base else ""


def _reads(wanted: str, found: str | None) -> bool:
    """Whether an objective training on ``wanted`` records reads records of kind ``found``."""
    return found == wanted or (wanted == "chat" and found == "text")

