"""The models a user can try in a chat, read from the run history, and what loading one takes (no torch).

A chat loads a run's final model, one of its checkpoints or an export (an adapter copy or a
merged model): ``list_chat_models`` lists them, newest run first, and ``resolve_chat_target``
turns what a user typed (a folder, or a run id) into the folder to load. ``chat_source`` checks
that a folder can be loaded (an adapter over a local base, or a whole model, and a tokenizer),
with one line naming the folder when it cannot, before any process imports torch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.builtin import base_dir, is_built
from engine.checkpoint_meta import PROGRESS_FILE, TMP_PREFIX
from engine.errors import UserError
from engine.store import RunRecord, RunStore
from engine.train.export import ExportSource, inspect_source
from engine.workspace import Workspace


@dataclass(frozen=True)
class ChatModel:
    """One model a chat can load: its folder, what it is and the run it came from."""

    path: str
    kind: str
    """``final`` (a run's final model), ``checkpoint`` or ``export``."""
    run_id: str
    label: str
    """A short name: ``final``, ``step-000030``, ``step-000030-merged``."""


def list_chat_models(store: RunStore, workspace: Workspace, runs: list[RunRecord]) -> list[ChatModel]:
    """Finals, exports and checkpoints on disk of ``runs`` (newest first), each folder once."""
    found: dict[str, ChatModel] = {}

    def add(folder: Path, kind: str, run_id: str) -> None:
        if folder.is_dir() and not folder.name.startswith(TMP_PREFIX) and str(folder) not in found:
            found[str(folder)] = ChatModel(str(folder), kind, run_id, folder.name)

    for run in runs:
        if run.kind == "export" and run.status == "finished":
            add(Path((run.final_metrics or {}).get("output") or run.output_dir), "export", run.id)
        if run.kind != "train":
            continue
        add(Path(run.output_dir) / "final", "final", run.id)
        exports = workspace.run_dir(run.id) / "exports"
        for folder in sorted(exports.iterdir()) if exports.is_dir() else []:
            add(folder, "export", run.id)
        for checkpoint in sorted(store.checkpoints(run.id), key=lambda c: -c.step):
            add(Path(checkpoint.path), "checkpoint", run.id)
    return list(found.values())


def resolve_chat_target(name: str, store: RunStore, workspace: Workspace) -> Path:
    """The folder to load for ``name``: a folder as it is, else a run's final model (or its newest
    export or checkpoint; an export run's output); UserError naming ``name`` when it is neither."""
    folder = Path(name).expanduser()
    if folder.is_dir():
        return folder.resolve()
    run = store.find_run(name) if name and "/" not in name else None
    if run is None:
        raise UserError(f"{name}: no such model folder, checkpoint or run id (see: llamahome-tui --no-ui runs)")
    models = list_chat_models(store, workspace, [run])
    if not models:
        raise UserError(f"{name}: run {run.id} has no final model, export or checkpoint on disk to chat with")
    return Path(models[0].path)


def chat_source(folder: Path, models_dir: Path | None = None) -> ExportSource:
    """What loading ``folder`` takes (adapter and base, or a whole model; the tokenizer's folder).

    An adapter whose recorded base moved is loaded over the base its checkpoint's run config
    names (``model.path``, or the built-in base in this workspace). UserError names the folder.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: no such model or checkpoint folder")
    return inspect_source(folder.resolve(), _configured_base(folder, models_dir))


def _configured_base(folder: Path, models_dir: Path | None) -> Path | None:
    """The base model the run that wrote ``folder`` was configured with, if it is on disk."""
    meta = _progress(folder) or _progress_beside(folder)
    model = (meta.get("config") or {}).get("model") or {}
    if model.get("path"):
        return Path(model["path"]).expanduser()
    if models_dir is not None and model.get("builtin"):
        try:
            built = base_dir(models_dir, str(model["builtin"]))
        except (UserError, OSError, KeyError):
            return None
        return built if is_built(built) else None
    return None


def _progress(folder: Path) -> dict[str, Any]:
    """A checkpoint's ``progress.json`` as a dict ({} when missing or unreadable)."""
    try:
        meta = json.loads((folder / PROGRESS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def _progress_beside(folder: Path) -> dict[str, Any]:
    """For a run's ``final`` folder: the ``progress.json`` of one of the run's checkpoints."""
    checkpoints = folder.parent / "checkpoints"
    for checkpoint in sorted(checkpoints.glob("step-*")) if checkpoints.is_dir() else []:
        meta = _progress(checkpoint)
        if meta:
            return meta
    return {}
