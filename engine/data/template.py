"""Render conversations with a chat template and build the loss mask.

The tokenizer's own chat template is used when it has one (``ensure_chat_template`` gives one
that has none the built-in ChatML, its markers as special tokens). The loss mask is computed
from character spans, and a token is trained on when it starts inside a trained span:

- a template with ``{% generation %}`` blocks marks the assistant text itself (transformers'
  assistant mask);
- otherwise each assistant turn starts after its prompt rendered with the generation prefix, and
  ends where the conversation rendered up to that turn ends (less the whitespace after the
  turn's end token). A template that does not render prefixes consistently (Phi-3 puts EOS after
  the last turn only) has the end of each turn where the turn's own rendering stops agreeing,
  token by token, with the whole conversation's: the answer and its end-of-turn token, never the
  next turn's marker. A template whose prompt for a turn differs from the start of the whole
  conversation is refused for that record (DataError), since no span would be right.

A leading system turn is folded into the first user turn when the template refuses system
turns (``engine.data.chat_template.fit_messages``). The same turn layout (``assistant_turns``)
checks records in the UI process with the light renderer of ``engine.data.chat_template``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from engine.data.chat_template import fit_messages
from engine.errors import DataError

IGNORE_INDEX = -100

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
CHAT_MARKERS = ("<|im_start|>", "<|im_end|>")
"""The built-in template's markers; ``<|im_end|>`` ends every turn and is the EOS of a model given it."""

TrainOn = Literal["assistant", "all", "last"]
Render = Callable[[list[dict[str, str]], bool], str]
"""``render(messages, add_generation_prompt)`` -> text."""

_GENERATION_TAG = re.compile(r"\{%-?\s*generation\s*-?%\}")


@dataclass(frozen=True)
class TokenizedSample:
    """Token ids of one conversation and its labels (IGNORE_INDEX where no loss is taken)."""

    input_ids: list[int]
    labels: list[int]

    @property
    def trained_tokens(self) -> int:
        """How many tokens carry a loss."""
        return sum(1 for label in self.labels if label != IGNORE_INDEX)


def template_source(tokenizer: Any) -> str:
    """The Jinja text the tokenizer renders with (its default template; ChatML if it has none)."""
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, dict):
        template = template.get("default")
    return template or CHATML_TEMPLATE


def render(tokenizer: Any, messages: list[dict[str, str]], add_generation_prompt: bool = False) -> str:
    """Render messages to text with the tokenizer's chat template (ChatML if it has none)."""
    source = template_source(tokenizer)
    return tokenizer.apply_chat_template(fit_messages(source, messages), chat_template=source, tokenize=False,
                                         add_generation_prompt=add_generation_prompt)


def uses_chatml(tokenizer: Any) -> bool:
    """Whether the tokenizer renders with the built-in ChatML template (no template of its own)."""
    return template_source(tokenizer) == CHATML_TEMPLATE


def chatml_spans(messages: list[dict[str, str]], train_on: TrainOn) -> tuple[str, list[tuple[int, int]]]:
    """``trained_spans`` for the built-in ChatML template, by string building (no Jinja)."""
    parts, spans, size = [], [], 0
    for message in messages:
        head = f"<|im_start|>{message['role']}\n"
        turn = f"{head}{message['content']}<|im_end|>\n"
        if message["role"] == "assistant":
            spans.append((size + len(head), size + len(turn) - 1))
        parts.append(turn)
        size += len(turn)
    text = "".join(parts)
    if train_on == "all":
        return text, [(0, len(text))]
    return text, spans[-1:] if train_on == "last" else spans


def trained_spans(tokenizer: Any, messages: list[dict[str, str]],
                  train_on: TrainOn) -> tuple[str, list[tuple[int, int]]]:
    """The full rendered text and the character spans that carry a loss."""
    if uses_chatml(tokenizer):
        return chatml_spans(messages, train_on)
    if train_on == "all":
        text = render(tokenizer, messages)
        return text, [(0, len(text))]
    if _GENERATION_TAG.search(template_source(tokenizer)):
        text, spans = generation_spans(tokenizer, messages)
    else:
        text, turns = assistant_turns(lambda m, g: render(tokenizer, m, g), messages)
        spans = [(start, _turn_end(tokenizer, text, start, upto)) for start, upto in turns]
    return text, spans[-1:] if train_on == "last" else spans


def generation_spans(tokenizer: Any, messages: list[dict[str, str]]) -> tuple[str, list[tuple[int, int]]]:
    """The text and the spans a template's ``{% generation %}`` blocks mark (transformers' assistant mask)."""
    from transformers.utils.chat_template_utils import render_jinja_template

    source = template_source(tokenizer)
    rendered, indices = render_jinja_template(conversations=[fit_messages(source, messages)], chat_template=source,
                                              return_assistant_tokens_mask=True, **tokenizer.special_tokens_map)
    return rendered[0], [(int(a), int(b)) for a, b in indices[0]]


def assistant_turns(render_with: Render, messages: list[dict[str, str]]) -> tuple[str, list[tuple[int, str]]]:
    """The whole conversation rendered and, per assistant turn, where its answer starts in that text
    and the conversation rendered up to the end of the turn.

    DataError when a turn's prompt (generation prefix included) is not where the whole
    conversation starts: the loss could not be placed on that turn.
    """
    text = render_with(messages, False)
    turns = []
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        upto = render_with(messages[: index + 1], False)
        turns.append((_turn_start(render_with, messages, index, upto, text), upto))
    return text, turns


def _turn_start(render_with: Render, messages: list[dict[str, str]], index: int, upto: str, text: str) -> int:
    """Where assistant turn ``index`` starts: after its prompt and generation prefix."""
    if index:
        prompt = render_with(messages[:index], True)
        if not (upto.startswith(prompt) and text.startswith(prompt)):
            turn = sum(1 for m in messages[: index + 1] if m["role"] == "assistant")
            raise DataError(f"the chat template renders the conversation before assistant turn {turn} differently "
                            "from the start of the whole conversation, so that turn's loss cannot be placed")
        return len(prompt)
    # A conversation that opens with the assistant has no prompt to render (transformers refuses
    # an empty one): the turn starts after the first generation prefix, as rendered after a
    # stand-in user turn.
    user = [{"role": "user", "content": "?"}]
    without, with_prefix = render_with(user, False), render_with(user, True)
    prefix = with_prefix[len(without):] if with_prefix.startswith(without) else ""
    found = upto.find(prefix) if prefix else -1
    return found + len(prefix) if found >= 0 else 0


def _turn_end(tokenizer: Any, text: str, start: int, upto: str) -> int:
    """Where a turn's trained span ends: the end of ``upto`` when it is a prefix of ``text``, else
    as far as ``upto`` and ``text`` give the same tokens from ``start`` on; trailing whitespace out."""
    if text.startswith(upto):
        end = len(upto.rstrip())
    else:
        end = start + _same_tokens(tokenizer, upto[start:], text[start:len(upto)])
        end = len(text[:end].rstrip())
    return max(start, end)


def _same_tokens(tokenizer: Any, first: str, second: str) -> int:
    """Characters of ``first`` covered by the tokens it shares, from the start, with ``second``."""
    a = tokenizer(first, add_special_tokens=False, return_offsets_mapping=True)
    b = tokenizer(second, add_special_tokens=False, return_offsets_mapping=True)
    end = 0
    for id_a, id_b, span_a, span_b in zip(a["input_ids"], b["input_ids"], a["offset_mapping"], b["offset_mapping"],
                                          strict=False):
        if id_a != id_b or tuple(span_a) != tuple(span_b):
            break
        end = span_a[1]
    return end


def tokenize_conversation(tokenizer: Any, messages: list[dict[str, str]], train_on: TrainOn,
                          max_length: int, prefix_ids: Sequence[int] = ()) -> TokenizedSample:
    """Tokenize one conversation with its loss mask, truncated to ``max_length`` tokens.

    ``prefix_ids`` (control tokens from ``data.prepend_tokens``) go first and carry no loss.
    """
    text, spans = trained_spans(tokenizer, messages, train_on)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids: list[int] = (list(prefix_ids) + encoded["input_ids"])[:max_length]
    offsets = ([(-1, -1)] * len(prefix_ids) + list(encoded["offset_mapping"]))[:max_length]
    labels = [token if _inside(start, spans) else IGNORE_INDEX
              for token, (start, _end) in zip(ids, offsets, strict=True)]
    return TokenizedSample(ids, labels)


def add_control_tokens(tokenizer: Any, tokens: Sequence[str]) -> list[int]:
    """Add control tokens (e.g. ``<author_ada>``) as special tokens; returns their ids in order.

    The caller resizes the model's embeddings when ``len(tokenizer)`` grew.
    """
    if not tokens:
        return []
    tokenizer.add_tokens([t for t in tokens if t not in tokenizer.get_vocab()], special_tokens=True)
    return [int(tokenizer.convert_tokens_to_ids(t)) for t in tokens]


def _inside(position: int, spans: list[tuple[int, int]]) -> bool:
    """Whether a character position falls in any span."""
    return any(start <= position < end for start, end in spans)


def prompt_text(tokenizer: Any, messages: list[dict[str, str]]) -> tuple[str, str]:
    """The generation prompt for a conversation's last assistant turn, and that turn's text."""
    return render(tokenizer, messages[:-1], add_generation_prompt=True), messages[-1]["content"]
