"""Render conversations with a chat template and build the loss mask.

The tokenizer's own chat template is used when it has one; the built-in ChatML template
otherwise. The loss mask is computed from character spans: each assistant turn's span is the
difference between the rendered conversation up to that turn and the rendered prompt before it
(generation prefix included), less the whitespace the template puts after the turn's end token,
so any template that renders prefixes consistently works. The text is tokenized once, with
offsets, and a token is trained on when it starts inside a trained span.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from engine.errors import DataError

IGNORE_INDEX = -100

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

TrainOn = Literal["assistant", "all", "last"]

_NOT_PREFIX_CONSISTENT = ("the chat template does not render conversations prefix-consistently; "
                          "set data.train_on = \"all\"")


@dataclass(frozen=True)
class TokenizedSample:
    """Token ids of one conversation and its labels (IGNORE_INDEX where no loss is taken)."""

    input_ids: list[int]
    labels: list[int]

    @property
    def trained_tokens(self) -> int:
        """How many tokens carry a loss."""
        return sum(1 for label in self.labels if label != IGNORE_INDEX)


def render(tokenizer: Any, messages: list[dict[str, str]], add_generation_prompt: bool = False) -> str:
    """Render messages to text with the tokenizer's chat template (ChatML if it has none)."""
    template = getattr(tokenizer, "chat_template", None) or CHATML_TEMPLATE
    return tokenizer.apply_chat_template(messages, chat_template=template, tokenize=False,
                                         add_generation_prompt=add_generation_prompt)


def uses_chatml(tokenizer: Any) -> bool:
    """Whether the tokenizer renders with the built-in ChatML template (no template of its own)."""
    return getattr(tokenizer, "chat_template", None) in (None, "", CHATML_TEMPLATE)


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
    text = render(tokenizer, messages)
    if train_on == "all":
        return text, [(0, len(text))]
    spans = []
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        upto = render(tokenizer, messages[: index + 1])
        if not text.startswith(upto):
            raise DataError(_NOT_PREFIX_CONSISTENT)
        start = _turn_start(tokenizer, messages, index, upto)
        spans.append((start, max(start, len(upto.rstrip()))))
    if train_on == "last":
        spans = spans[-1:]
    return text, spans


def _turn_start(tokenizer: Any, messages: list[dict[str, str]], index: int, upto: str) -> int:
    """Where assistant turn ``index`` starts in ``upto``: after its prompt and generation prefix."""
    if index:
        prompt = render(tokenizer, messages[:index], add_generation_prompt=True)
        if not upto.startswith(prompt):
            raise DataError(_NOT_PREFIX_CONSISTENT)
        return len(prompt)
    # A conversation that opens with the assistant has no prompt to render (transformers refuses
    # an empty one): the turn starts after the first generation prefix, as rendered after a
    # stand-in user turn.
    user = [{"role": "user", "content": "?"}]
    without, with_prefix = render(tokenizer, user), render(tokenizer, user, add_generation_prompt=True)
    prefix = with_prefix[len(without):] if with_prefix.startswith(without) else ""
    found = upto.find(prefix) if prefix else -1
    return found + len(prefix) if found >= 0 else 0


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
