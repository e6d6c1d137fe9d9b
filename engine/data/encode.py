"""Tokenize conversations in batches into flat arrays: token ids and a trained-token mask (no torch).

The same rendering and loss mask as ``template.tokenize_conversation`` (a test checks they agree),
done a batch at a time through the tokenizer's Rust backend, which tokenizes a batch on all cores
and releases the GIL, with the mask computed by numpy from token offsets.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from engine.data.shapes import Message
from engine.data.template import TrainOn, trained_spans

Encoded = tuple[np.ndarray, np.ndarray]
"""``(input ids as int32, trained mask as bool)`` of one sample."""


def _encode_texts(tokenizer: Any, texts: list[str]) -> list[tuple[list[int], list[tuple[int, int]]]]:
    """``(ids, offsets)`` of each text, without special tokens added."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        return [(e.ids, e.offsets) for e in backend.encode_batch(texts, add_special_tokens=False)]
    encoded = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
    return list(zip(encoded["input_ids"], encoded["offset_mapping"], strict=True))


def encode_batch(tokenizer: Any, conversations: Sequence[list[Message]], train_on: TrainOn,
                 max_length: int, prefix_ids: Sequence[int] = ()) -> list[Encoded]:
    """Each conversation's ids and trained mask, ``prefix_ids`` first (untrained), cut to ``max_length``."""
    rendered = [trained_spans(tokenizer, messages, train_on) for messages in conversations]
    prefix = np.asarray(prefix_ids, dtype=np.int32)
    out = []
    for (ids, offsets), (_, spans) in zip(_encode_texts(tokenizer, [t for t, _ in rendered]), rendered,
                                          strict=True):
        starts = np.fromiter((o[0] for o in offsets), dtype=np.int64, count=len(offsets))
        trained = np.zeros(len(starts), dtype=bool)
        for low, high in spans:
            trained |= (starts >= low) & (starts < high)
        all_ids = np.concatenate([prefix, np.asarray(ids, dtype=np.int32)])[:max_length]
        mask = np.concatenate([np.zeros(len(prefix), dtype=bool), trained])[:max_length]
        out.append((all_ids, mask))
    return out
