"""Records as training examples of four kinds: chat, raw text, preference pairs, unpaired judgements.

Each objective trains on one kind (``engine.objectives.REGISTRY``); ``to_example`` detects the
shape of a record, checks that it is the kind the objective wants and returns the example:

- ``chat``: a validated conversation (``engine.data.shapes.to_messages``: OpenAI ``messages``,
  sharegpt, alpaca, ``prompt``/``completion``, ``text``).
- ``text``: a string (``text`` records: JSONL, c4-style JSONL, a line or block of a ``.txt``).
- ``pair``: ``Pair`` (a prompt and a chosen and a rejected continuation). Shapes: TRL
  conversational (``prompt`` messages, ``chosen``/``rejected`` message lists) and implicit-prompt
  (full ``chosen``/``rejected`` conversations sharing their start), TRL plain strings,
  LLaMA-Factory sharegpt (``conversations`` + ``chosen``/``rejected`` ``{from, value}``) and OpenAI
  ``messages`` + ``chosen``/``rejected``.
- ``unpaired``: ``Judged`` (TRL KTO: ``prompt``/``completion``/``label``).

A record of another kind is one line naming the objective and the shape found. No torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.data.shapes import Message, check_order, message_list, to_messages
from engine.errors import DataError

KINDS = ("chat", "text", "pair", "unpaired")
KIND_NAMES = {"chat": "chat conversations", "text": "raw text", "pair": "preference pairs (chosen/rejected)",
              "unpaired": "unpaired judgements (prompt/completion/label)"}


@dataclass(frozen=True)
class Pair:
    """A prompt and two continuations of it, the chosen one preferred to the rejected one."""

    prompt: list[Message]
    chosen: list[Message]
    rejected: list[Message]

    def sequences(self) -> list[list[Message]]:
        """The two conversations trained on: prompt + chosen, prompt + rejected."""
        return [self.prompt + self.chosen, self.prompt + self.rejected]


@dataclass(frozen=True)
class Judged:
    """A prompt and one continuation judged desirable or not (KTO)."""

    prompt: list[Message]
    completion: list[Message]
    desirable: bool

    def sequences(self) -> list[list[Message]]:
        """The one conversation trained on."""
        return [self.prompt + self.completion]


Example = Any
"""``list[Message]`` (chat), ``str`` (text), ``Pair`` or ``Judged``."""


def detect_shape(record: dict[str, Any]) -> tuple[str, str]:
    """``(kind, shape name)`` of a raw record, from its keys alone."""
    if "chosen" in record and "rejected" in record:
        if "conversations" in record:
            return "pair", "sharegpt preference (conversations + chosen/rejected)"
        if "messages" in record:
            return "pair", "OpenAI messages + chosen/rejected"
        if "prompt" not in record:
            return "pair", "TRL preference with implicit prompt (chosen/rejected conversations)"
        plain = isinstance(record["prompt"], str)
        return "pair", "TRL preference (plain strings)" if plain else "TRL conversational preference"
    if "label" in record and "completion" in record:
        return "unpaired", "KTO (prompt/completion/label)"
    if "text" in record and not {"messages", "conversations", "instruction", "prompt"} & record.keys():
        return "text", "text"
    for key, name in (("messages", "OpenAI messages"), ("conversations", "sharegpt conversations"),
                      ("instruction", "alpaca"), ("prompt", "prompt/completion")):
        if key in record:
            return "chat", name
    return "chat", "unknown"


def to_example(record: dict[str, Any], where: str, objective: str = "sft") -> Example:
    """The record as an example of the kind ``objective`` trains on; DataError if it is not one."""
    from engine.objectives import objectives_for, record_kind

    wanted = record_kind(objective)
    found, shape = detect_shape(record)
    if found != wanted and not (wanted == "chat" and found == "text"):
        others = " or ".join(f"'{name}'" for name in objectives_for(found)) or "another objective"
        raise DataError(f"{where}: training.objective = '{objective}' trains on {KIND_NAMES[wanted]}, "
                        f"found {shape} ({KIND_NAMES[found]}); use training.objective = {others}")
    if wanted == "text":
        text = record["text"]
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"{where}: text: expected a non-empty string")
        return text
    if wanted == "pair":
        return _pair(record, where)
    if wanted == "unpaired":
        return _judged(record, where)
    return to_messages(record, where)


def sequences(example: Example) -> list[list[Message]]:
    """The conversations an example trains on (a text as one assistant-less message)."""
    if isinstance(example, str):
        return [[{"role": "text", "content": example}]]
    if isinstance(example, Pair | Judged):
        return example.sequences()
    return [example]


def _turns(value: Any, where: str, field: str, default_role: str) -> list[Message]:
    """A side of a record as messages: a string, one message object or a list of them."""
    if isinstance(value, str):
        value = [{"role": default_role, "content": value}]
    elif isinstance(value, dict):
        value = [value]
    return message_list(value, where, field)


def _pair(record: dict[str, Any], where: str) -> Pair:
    """A preference record of any supported shape as a ``Pair``."""
    if "conversations" in record or "messages" in record:
        key = "conversations" if "conversations" in record else "messages"
        prompt = _turns(record[key], where, key, "user")
    elif "prompt" in record:
        prompt = _turns(record["prompt"], where, "prompt", "user")
    else:
        return _implicit_pair(record, where)
    chosen = _turns(record["chosen"], where, "chosen", "assistant")
    rejected = _turns(record["rejected"], where, "rejected", "assistant")
    return _checked(Pair(prompt, chosen, rejected), where)


def _implicit_pair(record: dict[str, Any], where: str) -> Pair:
    """``chosen``/``rejected`` whole conversations: the prompt is the turns they share."""
    chosen = _turns(record["chosen"], where, "chosen", "assistant")
    rejected = _turns(record["rejected"], where, "rejected", "assistant")
    shared = 0
    while shared < min(len(chosen), len(rejected)) - 1 and chosen[shared] == rejected[shared]:
        shared += 1
    return _checked(Pair(chosen[:shared], chosen[shared:], rejected[shared:]), where)


def _checked(pair: Pair, where: str) -> Pair:
    """A pair whose prompt ends with a user turn and whose sides are assistant answers."""
    if not pair.prompt or pair.prompt[-1]["role"] != "user":
        raise DataError(f"{where}: prompt: must end with a user message")
    for side, turns in (("chosen", pair.chosen), ("rejected", pair.rejected)):
        if turns[0]["role"] != "assistant":
            raise DataError(f"{where}: {side}: must start with an assistant message")
        check_order(pair.prompt + turns, f"{where}: {side}")
    return pair


def _judged(record: dict[str, Any], where: str) -> Judged:
    """A KTO record as ``Judged``."""
    if "prompt" not in record:
        raise DataError(f"{where}: prompt: missing")
    label = record["label"]
    if not isinstance(label, bool):
        raise DataError(f"{where}: label: expected true or false, got {label!r}")
    prompt = _turns(record["prompt"], where, "prompt", "user")
    completion = _turns(record["completion"], where, "completion", "assistant")
    if prompt[-1]["role"] != "user":
        raise DataError(f"{where}: prompt: must end with a user message")
    check_order(prompt + completion, where)
    return Judged(prompt, completion, label)


DEFAULT_OBJECTIVE = {"chat": "sft", "text": "sft", "pair": "dpo", "unpaired": "kto"}
"""The objective a file is read for when none is named (``data validate``, ``data stats``)."""


def file_kind(path: Any, fmt: str | None = None) -> str | None:
    """The record kind of the first readable record of a file (None when there is none)."""
    from engine.data.formats import BadRecord, read_items

    for _, item in read_items(path, fmt):
        if not isinstance(item, BadRecord):
            return detect_shape(item)[0]
    return None


def file_objective(path: Any, fmt: str | None = None) -> str:
    """The objective the first readable record of a file suits (sft when there is none)."""
    kind = file_kind(path, fmt)
    return DEFAULT_OBJECTIVE[kind] if kind else "sft"
