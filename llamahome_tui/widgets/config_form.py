"""The config form's parts: each key of config/default.toml with its comment, and its editor.

Values are typed as on the command line (``1e-4``, ``true``, ``q_proj, v_proj``) and checked as
you type with the engine's own ``parse_text`` / ``check_value``; the error shows under the key.
``family_overrides`` reads the ``[model_configs.<family>.<section>]`` keys of a file and
``remove_value`` takes a key out of one (the engine's ``set_value`` writes them).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomlkit
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label
from tomlkit.exceptions import TOMLKitError

from engine.api import SECTIONS, ConfigError, check_value, parse_text

_KEY_LINE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\s*=")
_SECTION_LINE = re.compile(r"^\[([A-Za-z_][A-Za-z0-9_.]*)\]\s*$")


@dataclass(frozen=True)
class KeyHelp:
    """One key of the default file: its section, name and the comment above it."""

    section: str
    key: str
    help: str


def read_key_help(path: Path) -> list[KeyHelp]:
    """The keys of a documented TOML file, in order, each with the comment lines just above it."""
    section, comments, keys = "", [], []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if match := _SECTION_LINE.match(line):
            section, comments = match.group(1), []
        elif line.startswith("#"):
            comments.append(line.lstrip("#").strip())
        elif (match := _KEY_LINE.match(line)) and section in SECTIONS:
            keys.append(KeyHelp(section, match.group(1), " ".join(comments)))
            comments = []
        elif not line:
            comments = []
    return keys


def value_text(value: Any) -> str:
    """A value as the user types it: ``true``, ``1e-04``, ``lora``, ``q_proj, v_proj``, and tables
    (``data.sources``) as a TOML inline array, ``[{path = "a.jsonl", weight = 3.0}]``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list) and any(isinstance(v, Mapping) for v in value):
        return "[" + ", ".join(_inline_table(v) for v in value) + "]"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def _inline_table(table: Mapping[str, Any]) -> str:
    """``{key = value, ...}`` in TOML, leaving out empty strings (a key at its default)."""
    return "{" + ", ".join(f"{key} = {tomlkit.item(item).as_string()}" for key, item in table.items()
                           if item != "") + "}"


def shorten(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters with an ellipsis (table cells stay one short line)."""
    return text if len(text) <= width else text[: width - 1] + "…"


def _read_doc(path: Path) -> tomlkit.TOMLDocument | None:
    """A TOML file as a tomlkit document, or None when it is missing or not valid TOML."""
    try:
        return tomlkit.parse(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, TOMLKitError):
        return None


def family_overrides(paths: list[Path], family: str) -> dict[str, Any]:
    """``section.key`` -> value of the ``[model_configs.<family>]`` tables of the files, later wins."""
    found: dict[str, Any] = {}
    for path in paths:
        doc = _read_doc(path)
        families = doc.unwrap().get("model_configs", {}) if doc is not None else {}
        if not isinstance(families, Mapping):
            continue
        for name, sections in families.items():
            if name.lower() != family.lower() or not isinstance(sections, Mapping):
                continue
            for section, values in sections.items():
                if isinstance(values, Mapping):
                    found.update({f"{section}.{key}": value for key, value in values.items()})
    return found


def remove_value(doc_path: Path, key_path: str) -> None:
    """Take ``section.key`` (or ``model_configs.F.section.key``) out of a TOML file, comments kept.

    An emptied ``model_configs`` table goes too; a missing file or key is left as it is.
    """
    doc = _read_doc(doc_path)
    if doc is None:
        return
    parts = key_path.split(".")
    tables: list[Any] = [doc]
    for name in parts[:-1]:
        if not isinstance(tables[-1], Mapping) or name not in tables[-1]:
            return
        tables.append(tables[-1][name])
    if parts[-1] not in tables[-1]:
        return
    del tables[-1][parts[-1]]
    if parts[0] == "model_configs":
        for depth in range(len(parts) - 1, 0, -1):
            if len(tables[depth]) == 0:
                del tables[depth - 1][parts[depth - 1]]
    tmp = doc_path.with_name(f".{doc_path.name}.tmp")
    tmp.write_text(tomlkit.dumps(doc), encoding="utf-8")
    os.replace(tmp, doc_path)


def check_text(section: str, key: str, text: str) -> str | None:
    """The problem with ``text`` as ``section.key``, or None when it is a valid value."""
    try:
        check_value(SECTIONS[section], key, parse_text(section, key, text), f"{section}.{key}")
    except ConfigError as exc:
        return str(exc)
    return None


class ValueEditor(ModalScreen["str | None"]):
    """Edit one key's value: the key's help above, the error (if any) under the input, live.

    Enter answers with the text only when it is a valid value; Esc cancels with None.
    """

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, item: KeyHelp, text: str, title: str = "") -> None:
        super().__init__()
        self.item, self.text = item, text
        self.title_text = title or f"{item.section}.{item.key}"

    def compose(self) -> ComposeResult:
        """Key, help, input and the error line."""
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-question", markup=False)
            yield Label(self.item.help, classes="dialog-intro", markup=False)
            yield Input(self.text, id="value-input")
            yield Label("", id="value-error", classes="error", markup=False)
            yield Label("[b]enter[/b] keep    [b]esc[/b] cancel", classes="dialog-keys")

    def on_input_changed(self, event: Input.Changed) -> None:
        """Check the value as it is typed."""
        problem = check_text(self.item.section, self.item.key, event.value)
        self.query_one("#value-error", Label).update(problem or "")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Answer with a valid value; stay open on a bad one."""
        event.stop()
        if check_text(self.item.section, self.item.key, event.value) is None:
            self.dismiss(event.value.strip())

    def action_cancel(self) -> None:
        """Keep the old value."""
        self.dismiss(None)
