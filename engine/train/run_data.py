"""A training run's data: prepared through the token cache, split, linked to the run.

Files are validated, tokenized once and memory-mapped by ``engine.data.pipeline.prepare``; a later
run on the same files, tokenizer and settings opens the cached tokens at once. The dataset
versions a run used are recorded in the store.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.config import Config
from engine.data.dataset import Conversation, load_conversations
from engine.data.pipeline import prepare
from engine.data.template import add_control_tokens
from engine.data.token_cache import TokenCache
from engine.errors import DataError
from engine.store import RunStore
from engine.workspace import Workspace


@dataclass
class RunData:
    """Training and evaluation samples, and the conversations exact match is measured on."""

    train: Any
    eval: Any
    probe: list[Conversation]


def prepare_run_data(config: Config, job: dict[str, Any], tokenizer: Any, workspace: Workspace,
                     run_id: str) -> RunData:
    """Prepare the run's files (cached), split when there is no eval file, link them to the run."""
    prefix = add_control_tokens(tokenizer, config.data.prepend_tokens)
    store = RunStore(workspace.db_path)
    try:
        cache = TokenCache.from_config(workspace.cache_dir, store, config.cache)
        prepared = prepare([Path(job["data"])], tokenizer, config, cache, prefix)
        store.link_run_dataset(run_id, prepared.fingerprint, "train")
        if not job.get("eval_data"):
            train, held = prepared.split(config.data.validation_split, config.training.seed)
            return RunData(train, held, [])
        held_out = prepare([Path(job["eval_data"])], tokenizer, config, cache, prefix)
        store.link_run_dataset(run_id, held_out.fingerprint, "eval")
    finally:
        store.close()
    return RunData(prepared.dataset, held_out.dataset, probe_conversations(Path(job["eval_data"]), config))


def prepare_eval_data(config: Config, path: Path, tokenizer: Any, workspace: Workspace, run_id: str) -> Any:
    """An evaluation's samples of ``path`` (cached as a run's data is), linked to the run."""
    prefix = add_control_tokens(tokenizer, config.data.prepend_tokens)
    store = RunStore(workspace.db_path)
    try:
        cache = TokenCache.from_config(workspace.cache_dir, store, config.cache)
        prepared = prepare([path], tokenizer, config, cache, prefix)
        store.link_run_dataset(run_id, prepared.fingerprint, "eval")
    finally:
        store.close()
    return prepared.dataset


def probe_conversations(path: Path, config: Config) -> list[Conversation]:
    """The first ``eval.generate_samples`` conversations of the eval file (none if it has bad records)."""
    if config.eval.generate_samples <= 0:
        return []
    try:
        return load_conversations(path)[: config.eval.generate_samples]
    except DataError:
        return []
