"""A training run's data: prepared through the token cache, split, linked to the run.

Files are validated, tokenized once and memory-mapped by ``engine.data.pipeline.prepare``; a later
run on the same files, tokenizer and settings opens the cached tokens at once. The dataset
versions a run used are recorded in the store. With ``[[data.sources]]`` each source is prepared
(and, without an eval file, split) on its own and the training parts are mixed by weight
(``engine.data.mixing.Mixture``); each source's held-out part is also evaluated alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from engine.config import Config
from engine.data.dataset import Conversation, load_conversations
from engine.data.mixing import Concat, Mixture
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
    control_ids: list[int] = field(default_factory=list)
    """Ids of ``data.prepend_tokens`` (added to the tokenizer; an adapter trains their rows)."""
    eval_sets: dict[str, Any] = field(default_factory=dict)
    """Each source's held-out samples, by source name (``[[data.sources]]`` without an eval file)."""


def prepare_run_data(config: Config, job: dict[str, Any], tokenizer: Any, workspace: Workspace,
                     run_id: str, emit: Callable[[Any], None] | None = None) -> RunData:
    """Prepare the run's files (cached), split when there is no eval file, link them to the run.

    ``emit`` gets the tokenizing stages (a file found in the token cache has none).
    """
    prefix = add_control_tokens(tokenizer, config.data.prepend_tokens)
    store = RunStore(workspace.db_path)
    try:
        cache = TokenCache.from_config(workspace.cache_dir, store, config.cache)
        if config.data.sources:
            return _mixed(config, job, tokenizer, prefix, cache, store, run_id, emit)
        prepared = prepare([Path(job["data"])], tokenizer, config, cache, prefix, emit=emit)
        store.link_run_dataset(run_id, prepared.fingerprint, "train")
        if not job.get("eval_data"):
            train, held = prepared.split(config.data.validation_split, config.training.seed)
            return RunData(train, held, [], prefix)
        held_out = prepare([Path(job["eval_data"])], tokenizer, config, cache, prefix, emit=emit)
        store.link_run_dataset(run_id, held_out.fingerprint, "eval")
    finally:
        store.close()
    return RunData(prepared.dataset, held_out.dataset, probe_conversations(Path(job["eval_data"]), config), prefix)


def _mixed(config: Config, job: dict[str, Any], tokenizer: Any, prefix: list[int], cache: TokenCache,
           store: RunStore, run_id: str, emit: Callable[[Any], None] | None = None) -> RunData:
    """Every source prepared in its own format, split unless there is an eval file, mixed by weight."""
    parts, held = [], {}
    for source in config.data.sources:
        data = replace(config.data, format=source.format or config.data.format)
        prepared = prepare([Path(source.path)], tokenizer, replace(config, data=data), cache, prefix, emit=emit)
        store.link_run_dataset(run_id, prepared.fingerprint, "train")
        if job.get("eval_data"):
            parts.append(prepared.dataset)
            continue
        train, held[source.name] = prepared.split(config.data.validation_split, config.training.seed)
        parts.append(train)
    mixture = Mixture(parts, [s.weight for s in config.data.sources], [s.name for s in config.data.sources],
                      config.training.seed)
    if not job.get("eval_data"):
        kept = {name: samples for name, samples in held.items() if len(samples)}
        return RunData(mixture, Concat(list(kept.values())), [], prefix, kept)
    held_out = prepare([Path(job["eval_data"])], tokenizer, config, cache, prefix, emit=emit)
    store.link_run_dataset(run_id, held_out.fingerprint, "eval")
    return RunData(mixture, held_out.dataset, probe_conversations(Path(job["eval_data"]), config), prefix)


def prepare_eval_data(config: Config, path: Path, tokenizer: Any, workspace: Workspace, run_id: str,
                      emit: Callable[[Any], None] | None = None) -> Any:
    """An evaluation's samples of ``path`` (cached as a run's data is), linked to the run; ``emit``
    gets the tokenizing stage."""
    prefix = add_control_tokens(tokenizer, config.data.prepend_tokens)
    store = RunStore(workspace.db_path)
    try:
        cache = TokenCache.from_config(workspace.cache_dir, store, config.cache)
        prepared = prepare([path], tokenizer, config, cache, prefix, emit=emit)
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
