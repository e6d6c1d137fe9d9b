"""A model folder's own chat template, read and rendered with jinja2 alone (no torch, no transformers).

The check before a run (``engine.data.validate.precheck``) and ``data validate --model`` run in
the UI process, which must stay light, so they render records here instead of through a loaded
tokenizer. The template is found where transformers looks: ``chat_template.jinja`` first, then
``tokenizer_config.json``'s ``chat_template`` (a string, or a list of named templates, whose
``default`` is used). It is compiled in an environment built as transformers builds its own
(sandboxed, ``trim_blocks``/``lstrip_blocks``, loop controls, ``raise_exception``, ``tojson``,
``strftime_now``, the ``{% generation %}`` tag), and rendered with the tokenizer's named special
tokens, so a record renders here exactly when it renders in the worker (a test compares them).

Templates that refuse a system turn (Gemma's raises "System role not supported") get a
conversation's leading system text folded into its first user turn, as Gemma 3's own template
does; ``fit_messages`` does it, here and in the worker alike.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from engine.data.shapes import Message

TEMPLATE_FILE = "chat_template.jinja"
CONFIG_FILE = "tokenizer_config.json"
SPECIAL_NAMES = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")


@dataclass(frozen=True)
class ModelTemplate:
    """A model folder's chat template and the special tokens it is rendered with."""

    source: str
    """The Jinja text."""
    origin: str
    """The file it was read from (for messages)."""
    tokens: dict[str, str] = field(default_factory=dict)
    """``bos_token``, ``eos_token``... as the tokenizer names them."""
    check_turns: bool = True
    """Whether a check also places every assistant turn (``template.assistant_turns``: two renders
    a turn) or only renders each conversation once (the check before a run: the worker names a
    record whose turns it cannot place anyway)."""

    def render(self, messages: list[Message], add_generation_prompt: bool = False) -> str:
        """The conversation as the template renders it (a leading system turn folded when refused)."""
        return render_source(self.source, fit_messages(self.source, messages), add_generation_prompt, self.tokens)


def read_model_template(folder: Path) -> ModelTemplate | None:
    """The chat template saved in a model folder, or None when it has none."""
    config = _json(folder / CONFIG_FILE)
    tokens = _special_tokens(config, _json(folder / "special_tokens_map.json"))
    jinja = folder / TEMPLATE_FILE
    if jinja.is_file():
        return ModelTemplate(jinja.read_text(encoding="utf-8"), str(jinja), tokens)
    found = config.get("chat_template")
    if isinstance(found, list):
        named = {t.get("name"): t.get("template") for t in found if isinstance(t, dict)}
        found = named.get("default")
    if isinstance(found, str) and found.strip():
        return ModelTemplate(found, str(folder / CONFIG_FILE), tokens)
    return None


def model_template(config: Any) -> ModelTemplate | None:
    """The chat template of the run's model folder (``model.path``); None for the built-in base (ChatML) or
    a folder without one (it gets ChatML, which renders any conversation)."""
    return read_model_template(Path(config.model.path).expanduser()) if config.model.path else None


def _json(path: Path) -> dict[str, Any]:
    """A JSON object file's content ({} when missing or not an object)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _special_tokens(*sources: dict[str, Any]) -> dict[str, str]:
    """Named special tokens as strings (tokenizer_config.json wins over special_tokens_map.json)."""
    tokens: dict[str, str] = {}
    for source in reversed(sources):
        for name in SPECIAL_NAMES:
            value = source.get(name)
            if isinstance(value, dict):
                value = value.get("content")
            if isinstance(value, str):
                tokens[name] = value
    return tokens


@lru_cache(maxsize=16)
def compiled(source: str) -> Any:
    """The template compiled as transformers compiles chat templates."""
    import jinja2
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class Generation(jinja2.ext.Extension):
        """``{% generation %}...{% endgeneration %}``: rendered as its body."""

        tags = {"generation"}

        def parse(self, parser: Any) -> Any:
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return jinja2.nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(lineno)

        def _body(self, caller: Any) -> str:
            return str(caller())

    def raise_exception(message: str) -> None:
        raise jinja2.exceptions.TemplateError(message)

    def tojson(value: Any, ensure_ascii: bool = False, indent: Any = None, separators: Any = None,
               sort_keys: bool = False) -> str:
        return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[Generation, jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals.update(raise_exception=raise_exception, strftime_now=lambda fmt: datetime.now().strftime(fmt),
                       dict=dict)
    return env.from_string(source)


def render_source(source: str, messages: list[Message], add_generation_prompt: bool = False,
                  tokens: dict[str, str] | None = None) -> str:
    """Render ``messages`` with a template's Jinja text."""
    special = {name: "" for name in SPECIAL_NAMES} | dict(tokens or {})
    return str(compiled(source).render(messages=messages, add_generation_prompt=add_generation_prompt,
                                       tools=None, documents=None, **special))


@lru_cache(maxsize=16)
def refuses_system(source: str) -> bool:
    """Whether the template raises on a leading system turn but renders the same text folded in."""
    system = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"},
              {"role": "assistant", "content": "a"}]
    try:
        render_source(source, system)
        return False
    except Exception:  # noqa: BLE001 - any refusal of the system turn
        pass
    try:
        render_source(source, fold_system(system))
    except Exception:  # noqa: BLE001 - the template refuses more than the system turn
        return False
    return True


def fold_system(messages: list[Message]) -> list[Message]:
    """Leading system turns joined into the first user turn (``system\\n\\nuser``)."""
    lead = 0
    while lead < len(messages) and messages[lead]["role"] == "system":
        lead += 1
    if not lead or lead == len(messages) or messages[lead]["role"] != "user":
        return messages
    system = "\n\n".join(m["content"] for m in messages[:lead])
    first = {**messages[lead], "content": f"{system}\n\n{messages[lead]['content']}"}
    return [first, *messages[lead + 1:]]


def fit_messages(source: str, messages: list[Message]) -> list[Message]:
    """``messages`` as the template takes them: a leading system turn folded when it refuses those."""
    if messages and messages[0]["role"] == "system" and refuses_system(source):
        return fold_system(messages)
    return messages
