"""The tokens that frame a chat: markers for a model without a template, and the tokens that end an answer.

A model saved without a chat template (a base Mistral, GPT-2) is given the built-in ChatML one.
Its markers ``<|im_start|>`` and ``<|im_end|>`` are added as special tokens (one token each,
never split into eight pieces of text), ``<|im_end|>`` becomes the tokenizer's EOS, so every
assistant turn ends with EOS in the labels, and the tokenizer saved beside the trained model
carries the template. The caller resizes the embeddings and trains the new rows
(``engine.train.model.apply_lora``'s ``new_tokens``).

``stop_token_ids`` are the tokens generation should stop at: the special token the template
writes right after an answer (``<|im_end|>``, ``<|eot_id|>``, ``<end_of_turn>``, ``<|end|>``) and
the EOS; they go into the saved ``generation_config.json`` so a client's ``generate`` stops.
"""

from __future__ import annotations

from typing import Any

from engine.data.template import CHAT_MARKERS, CHATML_TEMPLATE, render

_ANSWER = "Fine."


def ensure_chat_template(tokenizer: Any) -> list[int]:
    """Give a tokenizer without a chat template ChatML with special markers and ``<|im_end|>`` as EOS.

    Returns the ids of the tokens added (none when the tokenizer has a template of its own).
    """
    if getattr(tokenizer, "chat_template", None):
        return []
    added = set(getattr(tokenizer, "added_tokens_encoder", {}) or {})
    missing = [marker for marker in CHAT_MARKERS if marker not in added]
    if missing:
        tokenizer.add_tokens(missing, special_tokens=True)
    tokenizer.chat_template = CHATML_TEMPLATE
    tokenizer.eos_token = CHAT_MARKERS[1]
    if tokenizer.pad_token is None:
        tokenizer.pad_token = CHAT_MARKERS[1]
    return [int(tokenizer.convert_tokens_to_ids(marker)) for marker in missing]


def stop_token_ids(tokenizer: Any) -> list[int]:
    """The special token the template writes right after an answer, then the EOS (no duplicates)."""
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": _ANSWER}]
    try:
        text = render(tokenizer, messages)
    except Exception:  # noqa: BLE001 - a template that refuses even this: EOS alone
        text = _ANSWER
    after = text[text.rfind(_ANSWER) + len(_ANSWER):]
    ids = tokenizer(after, add_special_tokens=False)["input_ids"] if after else []
    special = set(getattr(tokenizer, "all_special_ids", []) or []) | set(
        getattr(tokenizer, "added_tokens_decoder", {}) or {})
    found = [int(ids[0])] if ids and ids[0] in special else []
    eos = getattr(tokenizer, "eos_token_id", None)
    return list(dict.fromkeys(found + ([int(eos)] if eos is not None else [])))


def with_stop_tokens(generation_config: Any, stops: list[int]) -> Any:
    """A generation config whose ``eos_token_id`` holds ``stops`` (and what it held before)."""
    current = generation_config.eos_token_id
    before = [] if current is None else [current] if isinstance(current, int) else list(current)
    merged = list(dict.fromkeys(stops + before))
    generation_config.eos_token_id = merged[0] if len(merged) == 1 else merged
    return generation_config
