"""Render examples of each kind into texts, trained character spans and per-text flags (no torch).

The token cache stores one sample per example. A sample's mask byte is a set of flags: ``TRAINED``
(the token carries a loss), ``SECOND`` (the token belongs to the second sequence of a pair: the
rejected side) and ``UNDESIRABLE`` (a KTO completion judged undesirable). Chat and text samples
use ``TRAINED`` alone, so their cached bytes are what they always were. ``WINDOWS`` is an
instruction to the encoder, never stored: a text longer than ``data.max_length`` becomes several
samples of up to that many tokens instead of being cut (``pretrain``).

- chat: the conversation in the chat template, the loss on ``data.train_on`` turns.
- text: the raw text and the EOS token, no template, the loss on every token.
- pair: prompt + chosen and prompt + rejected in the chat template, each trained on its answer.
- unpaired: prompt + completion, trained on the completion, flagged when undesirable.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from engine.data.examples import Example
from engine.data.shapes import Message
from engine.data.template import TrainOn, trained_spans

TRAINED, SECOND, UNDESIRABLE, WINDOWS = 1, 2, 4, 16
STORED = TRAINED | SECOND | UNDESIRABLE
"""The flags kept in the token cache's mask bytes."""

Spans = list[tuple[int, int]]
Rendered = tuple[list[str], list[Spans], list[int]]
"""A chunk rendered: texts, their trained spans and each text's flags (``SECOND``: joins the one before)."""


def render_examples(tokenizer: Any, examples: Sequence[Example], kind: str, train_on: TrainOn) -> Rendered:
    """The texts, trained spans and flags of a chunk of examples of ``kind``."""
    texts: list[str] = []
    spans: list[Spans] = []
    flags: list[int] = []
    for example in examples:
        for text, trained, flag in _render(tokenizer, example, kind, train_on):
            texts.append(text)
            spans.append(trained)
            flags.append(flag)
    return texts, spans, flags


def _render(tokenizer: Any, example: Example, kind: str, train_on: TrainOn) -> list[tuple[str, Spans, int]]:
    """One example as ``(text, spans, flags)`` of each of its sequences."""
    if kind == "text":
        text = example + (getattr(tokenizer, "eos_token", None) or "")
        return [(text, [(0, len(text))], WINDOWS)]
    if kind == "pair":
        chosen = answer_spans(tokenizer, example.prompt, example.chosen)
        rejected = answer_spans(tokenizer, example.prompt, example.rejected)
        return [(*chosen, 0), (*rejected, SECOND)]
    if kind == "unpaired":
        flag = 0 if example.desirable else UNDESIRABLE
        return [(*answer_spans(tokenizer, example.prompt, example.completion), flag)]
    return [(*trained_spans(tokenizer, example, train_on), 0)]


def answer_spans(tokenizer: Any, prompt: list[Message], answer: list[Message]) -> tuple[str, Spans]:
    """``prompt + answer`` rendered, with the spans of the answer's assistant turns (not the prompt's)."""
    text, spans = trained_spans(tokenizer, prompt + answer, "assistant")
    in_prompt = sum(1 for message in prompt if message["role"] == "assistant")
    return text, spans[in_prompt:]
