"""Turn a raw record of any supported shape into a validated list of chat messages.

Shapes: OpenAI ``messages``; sharegpt ``conversations`` (from/value); alpaca (instruction, input,
output, system, history); ``text``; ``prompt``/``completion``. Every error names where the record
came from and the field at fault.
"""

from __future__ import annotations

from typing import Any

from engine.errors import DataError

Message = dict[str, str]

_SHAREGPT_ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant",
                   "assistant": "assistant"}


def to_messages(record: dict[str, Any], where: str) -> list[Message]:
    """Return the record as ``[{"role", "content"}, ...]``, validated; raise DataError if not."""
    if "messages" in record:
        messages = _from_openai(record["messages"], where)
    elif "conversations" in record:
        messages = _from_sharegpt(record["conversations"], where)
    elif "instruction" in record:
        messages = _from_alpaca(record, where)
    elif "prompt" in record and "completion" in record:
        messages = [_message("user", record["prompt"], where, "prompt"),
                    _message("assistant", record["completion"], where, "completion")]
    elif "text" in record:
        messages = [_message("assistant", record["text"], where, "text")]
        return messages
    else:
        keys = ", ".join(sorted(record)) or "none"
        raise DataError(f"{where}: unknown record shape (keys: {keys}); expected messages, "
                        "conversations, instruction/output, prompt/completion or text")
    check_order(messages, where)
    return messages


def json_kind(value: Any) -> str:
    """What a value is, in JSON's words (``null``, ``a number``, ``an array``...), for error lines."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    kinds = {int: "a number", float: "a number", str: "a string", list: "an array", dict: "an object"}
    return next((kind for cls, kind in kinds.items() if isinstance(value, cls)), type(value).__name__)


def _message(role: str, content: Any, where: str, field: str) -> Message:
    """One message, with content checked to be a non-empty string."""
    if not isinstance(content, str):
        raise DataError(f"{where}: {field}: content must be a string, got {json_kind(content)}")
    if not content.strip():
        raise DataError(f"{where}: {field}: empty content")
    return {"role": role, "content": content}


def _from_openai(items: Any, where: str, name: str = "") -> list[Message]:
    """OpenAI ``messages``: a list of ``{"role", "content"}`` (``name``: one item's field name)."""
    if not isinstance(items, list) or not items:
        raise DataError(f"{where}: messages: expected a non-empty list")
    messages = []
    for index, item in enumerate(items):
        field = name or f"messages[{index}]"
        if not isinstance(item, dict):
            raise DataError(f"{where}: {field}: expected an object with role and content")
        role = item.get("role")
        if role not in ("system", "user", "assistant"):
            raise DataError(f"{where}: {field}.role: missing or unknown role {role!r} "
                            "(expected system, user or assistant)")
        if "content" not in item:
            raise DataError(f"{where}: {field}.content: missing")
        messages.append(_message(role, item["content"], where, f"{field}.content"))
    return messages


def _from_sharegpt(items: Any, where: str, name: str = "") -> list[Message]:
    """sharegpt ``conversations``: a list of ``{"from", "value"}`` (``name``: one item's field name)."""
    if not isinstance(items, list) or not items:
        raise DataError(f"{where}: conversations: expected a non-empty list")
    messages = []
    for index, item in enumerate(items):
        field = name or f"conversations[{index}]"
        if not isinstance(item, dict):
            raise DataError(f"{where}: {field}: expected an object with from and value")
        role = _SHAREGPT_ROLES.get(str(item.get("from")))
        if role is None:
            raise DataError(f"{where}: {field}.from: missing or unknown speaker {item.get('from')!r} "
                            "(expected system, human or gpt)")
        if "value" not in item:
            raise DataError(f"{where}: {field}.value: missing")
        messages.append(_message(role, item["value"], where, f"{field}.value"))
    return messages


def message_list(items: Any, where: str, field: str) -> list[Message]:
    """A list of messages in either style (``role``/``content`` or sharegpt ``from``/``value``)."""
    if not isinstance(items, list) or not items:
        raise DataError(f"{where}: {field}: expected a non-empty list of messages")
    messages = []
    for index, item in enumerate(items):
        name = f"{field}[{index}]"
        if isinstance(item, dict) and "from" in item:
            messages.extend(_from_sharegpt([item], where, name))
        else:
            messages.extend(_from_openai([item], where, name))
    return messages


def _from_alpaca(record: dict[str, Any], where: str) -> list[Message]:
    """alpaca: instruction (+ input) → output, with optional system and history pairs."""
    messages: list[Message] = []
    if record.get("system"):
        messages.append(_message("system", record["system"], where, "system"))
    history = record.get("history") or []
    if not isinstance(history, list):
        raise DataError(f"{where}: history: expected a list of [question, answer] pairs")
    for index, pair in enumerate(history):
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            raise DataError(f"{where}: history[{index}]: expected a [question, answer] pair")
        messages.append(_message("user", pair[0], where, f"history[{index}][0]"))
        messages.append(_message("assistant", pair[1], where, f"history[{index}][1]"))
    prompt = _message("user", record["instruction"], where, "instruction")["content"]
    extra = record.get("input")
    if extra is not None and not isinstance(extra, str):
        raise DataError(f"{where}: input: content must be a string, got {json_kind(extra)}")
    if extra and extra.strip():
        prompt = f"{prompt}\n\n{extra}"
    messages.append({"role": "user", "content": prompt})
    if "output" not in record:
        raise DataError(f"{where}: output: missing")
    messages.append(_message("assistant", record["output"], where, "output"))
    return messages


def check_order(messages: list[Message], where: str) -> None:
    """Roles must be: optional system, then user/assistant alternating, ending with assistant."""
    start = 1 if messages[0]["role"] == "system" else 0
    for index, message in enumerate(messages[start:], start=start):
        expected = "user" if (index - start) % 2 == 0 else "assistant"
        if message["role"] != expected:
            raise DataError(f"{where}: message {index}: roles out of order: expected {expected}, "
                            f"got {message['role']}")
    if messages[-1]["role"] != "assistant":
        raise DataError(f"{where}: the conversation must end with an assistant message")
