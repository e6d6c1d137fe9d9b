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

from engine.data.shapes import Message
from engine.data.template import TrainOn, trained_spans

Encoded = tuple[np.ndarray, np.ndarray]
"""``(input ids as int32, trained mask as bool)`` of one sample."""
EncodedChunk = tuple[np.ndarray, np.ndarray, np.ndarray]
"""Samples with a trained token, concatenated: ``(ids int32, mask uint8, lengths int64)``."""
Spans = list[tuple[int, int]]
"""Character spans of a rendered text that carry a loss."""
Rendered = tuple[list[str], list[Spans]]
"""A chunk of conversations rendered: their texts and trained spans."""
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


def encode_texts(tokenizer: Any, rendered: Rendered, max_length: int, prefix_ids: Sequence[int]) -> EncodedChunk:
    """Tokenize a rendered chunk; samples left without a trained token are dropped."""
    texts, spans = rendered
    prefix = np.asarray(prefix_ids, dtype=np.int32)
    ids_parts, mask_parts, lengths = [], [], []
    for (ids, offsets), sample_spans in zip(ids_and_offsets(tokenizer, texts), spans, strict=True):
        sample_ids, mask = sample_arrays(ids, offsets, sample_spans, prefix, max_length)
        if mask.any():
            ids_parts.append(sample_ids)
            mask_parts.append(mask)
            lengths.append(len(sample_ids))
    if not lengths:
        return np.zeros(0, np.int32), np.zeros(0, np.uint8), np.zeros(0, np.int64)
    return (np.concatenate(ids_parts), np.concatenate(mask_parts).astype(np.uint8),
            np.asarray(lengths, dtype=np.int64))


def encode_batch(tokenizer: Any, conversations: Sequence[list[Message]], train_on: TrainOn,
                 max_length: int, prefix_ids: Sequence[int] = ()) -> list[Encoded]:
    """Each conversation's ids and trained mask, ``prefix_ids`` first (untrained), cut to ``max_length``."""
    texts, spans = render_chunk(tokenizer, conversations, train_on)
    prefix = np.asarray(prefix_ids, dtype=np.int32)
    return [sample_arrays(ids, offsets, sample_spans, prefix, max_length)
            for (ids, offsets), sample_spans in zip(ids_and_offsets(tokenizer, texts), spans, strict=True)]
