"""Tokenize conversations in batches into flat arrays: token ids and a trained-token mask (no torch).

The same rendering and loss mask as ``template.tokenize_conversation`` (a test checks they agree),
done a batch at a time through the tokenizer's Rust backend, with the mask computed by numpy from
token offsets. ``render_chunk`` runs where the tokenizer is (its chat template may need
transformers); ``encode_texts`` needs only the backend, so it also runs in the worker processes
of ``engine.data.parallel``, and both places give the same bytes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from engine.data.render import SECOND, UNDESIRABLE, WINDOWS
from engine.data.shapes import Message
from engine.data.template import TrainOn, trained_spans

Encoded = tuple[np.ndarray, np.ndarray]
"""``(input ids as int32, trained mask as bool)`` of one sample."""
EncodedChunk = tuple[np.ndarray, np.ndarray, np.ndarray]
"""Samples with a trained token, concatenated: ``(ids int32, mask uint8, lengths int64)``."""
Spans = list[tuple[int, int]]
"""Character spans of a rendered text that carry a loss."""
Rendered = tuple[list[str], list[Spans]] | tuple[list[str], list[Spans], list[int]]
"""A chunk rendered: texts, trained spans and optionally each text's flags (``engine.data.render``)."""
IdsOffsets = tuple[Sequence[int], Sequence[tuple[int, int]]]
"""Token ids of a text and each token's character ``(start, end)``."""


def render_chunk(tokenizer: Any, conversations: Sequence[list[Message]], train_on: TrainOn) -> Rendered:
    """The texts and trained spans of a chunk of conversations."""
    rendered = [trained_spans(tokenizer, messages, train_on) for messages in conversations]
    return [text for text, _ in rendered], [spans for _, spans in rendered]


def backend_of(tokenizer: Any) -> Any:
    """The ``tokenizers.Tokenizer`` behind a fast tokenizer (or the tokenizer itself), else None."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None and hasattr(tokenizer, "encode_batch") and hasattr(tokenizer, "to_str"):
        return tokenizer
    return backend


def ids_and_offsets(tokenizer: Any, texts: list[str]) -> Iterable[IdsOffsets]:
    """``(ids, offsets)`` of each text, without special tokens added."""
    backend = backend_of(tokenizer)
    if backend is not None:
        return ((e.ids, e.offsets) for e in backend.encode_batch(texts, add_special_tokens=False))
    encoded = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
    return zip(encoded["input_ids"], encoded["offset_mapping"], strict=True)


def sample_arrays(ids: Sequence[int], offsets: Sequence[tuple[int, int]], spans: Spans, prefix: np.ndarray,
                  max_length: int) -> Encoded:
    """One sample: ``prefix`` (untrained) then ``ids``, trained where a token starts in a span, cut."""
    starts = np.fromiter((o[0] for o in offsets), dtype=np.int64, count=len(offsets))
    trained = np.zeros(len(starts), dtype=bool)
    for low, high in spans:
        trained |= (starts >= low) & (starts < high)
    all_ids = np.concatenate([prefix, np.asarray(ids, dtype=np.int32)])[:max_length]
    mask = np.concatenate([np.zeros(len(prefix), dtype=bool), trained])[:max_length]
    return all_ids, mask


def windows(ids: Sequence[int], offsets: Sequence[tuple[int, int]], spans: Spans, prefix: np.ndarray,
            max_length: int) -> list[Encoded]:
    """A long text as consecutive samples of up to ``max_length`` tokens, each after ``prefix``."""
    step = max(1, max_length - len(prefix))
    return [sample_arrays(ids[start:start + step], offsets[start:start + step], spans, prefix, max_length)
            for start in range(0, max(len(ids), 1), step)]


def encode_texts(tokenizer: Any, rendered: Rendered, max_length: int, prefix_ids: Sequence[int]) -> EncodedChunk:
    """Tokenize a rendered chunk into samples; samples left without a trained token are dropped.

    A text flagged ``SECOND`` joins the sample before it (a pair is one sample: both sides, the
    second side's tokens flagged), and a pair is dropped when either side has no trained token.
    """
    texts, spans = rendered[0], rendered[1]
    flags = rendered[2] if len(rendered) > 2 else [0] * len(texts)  # type: ignore[misc]
    prefix = np.asarray(prefix_ids, dtype=np.int32)
    samples: list[tuple[list[np.ndarray], list[np.ndarray], bool]] = []
    for (ids, offsets), sample_spans, flag in zip(ids_and_offsets(tokenizer, texts), spans, flags, strict=True):
        pieces = (windows(ids, offsets, sample_spans, prefix, max_length) if flag & WINDOWS
                  else [sample_arrays(ids, offsets, sample_spans, prefix, max_length)])
        for sample_ids, mask in pieces:
            marks = mask.astype(np.uint8) | np.uint8(flag & (SECOND | UNDESIRABLE))
            if flag & SECOND and samples:
                parts_ids, parts_mask, ok = samples[-1]
                samples[-1] = (parts_ids + [sample_ids], parts_mask + [marks], ok and bool(mask.any()))
            else:
                samples.append(([sample_ids], [marks], bool(mask.any())))
    kept = [(np.concatenate(i), np.concatenate(m)) for i, m, ok in samples if ok]
    if not kept:
        return np.zeros(0, np.int32), np.zeros(0, np.uint8), np.zeros(0, np.int64)
    return (np.concatenate([i for i, _ in kept]), np.concatenate([m for _, m in kept]),
            np.asarray([len(i) for i, _ in kept], dtype=np.int64))


def encode_batch(tokenizer: Any, conversations: Sequence[list[Message]], train_on: TrainOn,
                 max_length: int, prefix_ids: Sequence[int] = ()) -> list[Encoded]:
    """Each conversation's ids and trained mask, ``prefix_ids`` first (untrained), cut to ``max_length``."""
    texts, spans = render_chunk(tokenizer, conversations, train_on)
    prefix = np.asarray(prefix_ids, dtype=np.int32)
    return [sample_arrays(ids, offsets, sample_spans, prefix, max_length)
            for (ids, offsets), sample_spans in zip(ids_and_offsets(tokenizer, texts), spans, strict=True)]
