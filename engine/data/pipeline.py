"""The data pipeline's entry point for the trainer: files -> validated samples -> cached tokens -> batches.

Use (in the worker; ``Batches`` imports torch, everything before it does not)::

    from engine.data.batching import Batches
    from engine.data.pipeline import prepare
    from engine.data.template import add_control_tokens
    from engine.data.token_cache import TokenCache

    tokenizer = load_tokenizer(folder)                                  # a fast HF tokenizer
    prefix = add_control_tokens(tokenizer, config.data.prepend_tokens)  # then resize embeddings
    cache = TokenCache.from_config(workspace.cache_dir, store, config.cache)
    prepared = prepare([train_file], tokenizer, config, cache, prefix)  # cached by fingerprint
    store.link_run_dataset(run_id, prepared.fingerprint)
    train, held = prepared.split(config.data.validation_split, config.training.seed)
    batches = Batches.from_config(train, config, tokenizer.pad_token_id, len(tokenizer))
    batches.load_state_dict(progress.data_state)                        # when resuming
    stream = batches.prefetched(config.data.prefetch_depth)             # background thread
    batch = next(stream)          # batch.inputs: tensors; batch.real_tokens: non-pad tokens
    loss = model(**batch.inputs, use_cache=False).loss   # use_cache=False: packed masks need it
    progress.data_state = stream.state_dict()                           # into the checkpoint
    stream.close()

``train`` and ``held`` are ``Subset`` views (``len``, ``[i]`` -> ``TokenizedSample``), so
``engine.train.batches.collate`` and the evaluation code keep working on them.

``prepare`` streams: a reader thread parses and validates records into a bounded queue while
the calling thread tokenizes them a chunk at a time (the tokenizer's Rust backend runs on all
cores) and appends them to a new cache entry; memory stays flat whatever the file size. A second
call with the same files, tokenizer, template and settings opens the cached entry at once.
The dataset version (fingerprint, path, counts) is recorded in the store; link it to a run with
``store.link_run_dataset(run_id, prepared.fingerprint)``.
"""

from __future__ import annotations

import hashlib
import json
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.config import Config
from engine.data.dataset import fingerprint
from engine.data.examples import Example
from engine.data.formats import detect_format, is_gzip
from engine.data.parallel import encoded_chunks, worker_count
from engine.data.prefetch import Prefetcher
from engine.data.render import render_examples
from engine.data.splits import split_indices
from engine.data.template import template_source
from engine.data.token_cache import TokenCache
from engine.data.tokenized import Subset, TokenizedDataset
from engine.data.validate import (
    WARNING_CODES,
    Issue,
    ValidationReport,
    char_length,
    new_report,
    note_lines,
    valid_conversations,
)
from engine.errors import DataError
from engine.events import Log
from engine.stages import StageTicker

PIPELINE_VERSION = 2
"""Bump when the cached layout or tokenization changes, so old entries are not reused."""
CHUNK = 512
"""Conversations tokenized per backend call."""
Located = tuple[str, Example]
"""An example and where it was read (``file:line``)."""


@dataclass
class Prepared:
    """The result of ``prepare``: the dataset, its fingerprint and the validation reports."""

    dataset: TokenizedDataset
    fingerprint: str
    reports: list[ValidationReport]
    from_cache: bool

    def split(self, fraction: float, seed: int) -> tuple[Subset, Subset]:
        """Deterministic ``(train, validation)`` views (``data.validation_split``)."""
        train, held = split_indices(len(self.dataset), fraction, seed)
        return Subset(self.dataset, train), Subset(self.dataset, held)


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """A hash of the tokenizer's vocabulary, merges, added tokens, chat template and EOS."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    body = backend.to_str() if backend is not None else repr(sorted(tokenizer.get_vocab().items()))
    eos = getattr(tokenizer, "eos_token", None) or ""
    return hashlib.sha256(f"{body}\0{template_source(tokenizer)}\0{eos}".encode()).hexdigest()[:16]


def settings_of(config: Config, prefix_ids: Sequence[int]) -> dict[str, Any]:
    """The preprocessing settings that shape the cached tokens."""
    data = config.data
    return {"version": PIPELINE_VERSION, "train_on": data.train_on, "max_length": data.max_length,
            "prepend": list(prefix_ids), "format": data.format, "on_invalid": data.on_invalid,
            "duplicates": data.duplicates, "objective": config.training.objective}


def cache_key(paths: Sequence[Path], tokenizer: Any, settings: dict[str, Any]) -> str:
    """The fingerprint of (file contents, tokenizer, template, settings): the cache key."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(fingerprint(path).encode())
    digest.update(tokenizer_fingerprint(tokenizer).encode())
    digest.update(json.dumps(settings, sort_keys=True).encode())
    return digest.hexdigest()[:24]


def prepare(paths: Sequence[Path], tokenizer: Any, config: Config, cache: TokenCache,
            prefix_ids: Sequence[int] = (), store_version: bool = True, workers: int | None = None,
            emit: Callable[[Any], None] | None = None) -> Prepared:
    """Validated, tokenized samples of ``paths`` as a memory-mapped dataset, from the cache if there.

    ``prefix_ids`` are the ids of ``data.prepend_tokens`` (see ``template.add_control_tokens``).
    Raises DataError on the first invalid record when ``data.on_invalid = "fail"`` and when no
    sample is left. ``workers`` tokenizing processes (default ``data.num_workers``, 0 = one per
    CPU core; see ``engine.data.parallel``) do not change the cached bytes. ``emit`` gets the
    "tokenizing k/N records" stage (N counted ahead for line formats, else the count so far).
    """
    paths = [Path(p) for p in paths]
    key = cache_key(paths, tokenizer, settings_of(config, prefix_ids))
    cached = cache.lookup(key)
    if cached is not None:
        say_notes(emit, cached.meta)
        return Prepared(cached, key, [], True)
    reports = [new_report(p, config.data.format or None, "characters", 2**62) for p in paths]
    writer = cache.writer(key)
    try:
        workers = worker_count(config.data.num_workers if workers is None else workers)
        ticker = StageTicker(emit, "tokenizing", record_estimate(paths, config.data.format or None),
                             detail=f"of {paths[0].name}")
        _tokenize_into(writer, _examples(paths, reports, config), tokenizer, config, prefix_ids, workers, ticker,
                       reports)
        ticker.total = 0  # the estimate counted lines: the final figure is the records tokenized
        ticker.end()
        if not len(writer):
            raise DataError(f"{paths[0]}: no sample left with a trained token within data.max_length")
        dataset = writer.commit({"paths": [str(p) for p in paths], "invalid": sum(r.invalid for r in reports),
                                 **notes_of(reports)})
    except BaseException:
        writer.abort()
        raise
    say_notes(emit, dataset.meta)
    if store_version and cache.store is not None:
        cache.store.add_dataset_version(key, ";".join(map(str, paths)), len(dataset), dataset.total_tokens,
                                        sum(r.invalid for r in reports))
    return Prepared(dataset, key, reports, False)


def notes_of(reports: Sequence[ValidationReport]) -> dict[str, Any]:
    """What every run on these files is told, kept in the cache entry's meta: the records left out as
    invalid (``data.on_invalid = "skip"``; duplicates are not counted) and the file-level warnings
    (record shapes mixed, ``{{name}}`` placeholders left in)."""
    issues = [issue for report in reports for issue in report.issues if issue.code not in WARNING_CODES]
    return {"skipped": len(issues), "first_skipped": issues[0].line() if issues else "",
            "warnings": [line for report in reports for line in note_lines(report)]}


def say_notes(emit: Callable[[Any], None] | None, meta: dict[str, Any]) -> None:
    """Warning lines for the records ``data.on_invalid = "skip"`` left out and the files' warnings (every
    run, cached or not)."""
    if emit is None:
        return
    count = int(meta.get("skipped", 0))
    if count:
        emit(Log("warning", f"data.on_invalid = \"skip\" left out {count} invalid record{'s' if count > 1 else ''} "
                            f"(first: {meta.get('first_skipped', '')}); `data validate` lists them all"))
    for line in meta.get("warnings", []):
        emit(Log("warning", str(line)))


def _examples(paths: list[Path], reports: list[ValidationReport], config: Config) -> Iterator[Located]:
    """``(where, example)`` of every valid example of every file, in order, of the kind
    ``training.objective`` trains on."""
    for path, report in zip(paths, reports, strict=True):
        yield from valid_conversations(path, report, char_length, config.data.format or None,
                                       config.data.on_invalid, config.data.duplicates == "keep",
                                       config.training.objective, notes=True)


def _chunks(examples: Iterator[Located]) -> Iterator[list[Located]]:
    """Located examples in lists of ``CHUNK``."""
    chunk: list[Located] = []
    for example in examples:
        chunk.append(example)
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def record_estimate(paths: Sequence[Path], fmt: str | None) -> int:
    """The records of ``paths`` counted ahead (non-blank lines of JSON Lines and text files), or 0.

    Other formats (gzip files and folders too) are not counted ahead: their progress shows the count so far.
    """
    total = 0
    for path in paths:
        if path.is_dir() or is_gzip(path) or (fmt or detect_format(path)) not in ("jsonl", "text"):
            return 0
        with path.open("rb") as handle:
            total += sum(1 for line in handle if line.strip())
    return total


def render_located(tokenizer: Any, chunk: list[Located], kind: str, train_on: str, on_invalid: str,
                   reports: Sequence[ValidationReport] = ()) -> Any:
    """A chunk rendered (``render.render_examples``); a record the chat template cannot render is one
    DataError naming its line (``on_invalid = "fail"``) or is left out and counted (``"skip"``)."""
    try:
        return render_examples(tokenizer, [example for _, example in chunk], kind, train_on)
    except Exception:  # noqa: BLE001 - find the record, below
        pass
    kept = []
    for where, example in chunk:
        try:
            render_examples(tokenizer, [example], kind, train_on)
        except Exception as err:  # noqa: BLE001 - the template's refusal, or a loss it cannot place
            reason = str(err) if isinstance(err, DataError) else f"the chat template cannot render this record: {err}"
            if on_invalid == "fail":
                raise DataError(f"{where}: {reason}") from None
            for report in reports:
                if where.startswith(report.path):
                    report.issues.append(Issue(where, "", "template", reason))
            continue
        kept.append(example)
    return render_examples(tokenizer, kept, kind, train_on)


def _tokenize_into(writer: Any, examples: Iterator[Located], tokenizer: Any, config: Config,
                   prefix_ids: Sequence[int], workers: int, ticker: StageTicker,
                   reports: Sequence[ValidationReport] = ()) -> None:
    """Read on a background thread, render here, tokenize in ``workers`` processes, append in order."""
    from engine.objectives import record_kind

    train_on, kind = config.data.train_on, record_kind(config.training.objective)
    sizes: deque[int] = deque()
    """Records in each chunk sent to the tokenizer, oldest first (chunks come back in order)."""

    def rendered(chunks: Iterator[list[Located]]) -> Iterator[Any]:
        for chunk in chunks:
            sizes.append(len(chunk))
            yield render_located(tokenizer, chunk, kind, train_on, config.data.on_invalid, reports)

    with Prefetcher(_chunks(examples), depth=4) as chunks:
        for ids, trained, lengths in encoded_chunks(tokenizer, rendered(chunks), config.data.max_length,
                                                    prefix_ids, workers):
            writer.append_chunk(ids, trained, lengths)
            ticker.add(sizes.popleft())
