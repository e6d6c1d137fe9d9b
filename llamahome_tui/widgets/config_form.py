"""``ConfigForm``: every key of config/default.toml as an input, grouped by section, with its comment.

Values are typed as on the command line (``1e-4``, ``true``, ``q_proj, v_proj``) and checked as
you type with the engine's own ``parse_text`` / ``check_value``; an error shows under its key.
The form remembers which keys changed so that saving writes only those (with tomlkit, keeping
the file's comments and order).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Input, Label, Static

from engine.config import SECTIONS, check_value, parse_text
from engine.errors import ConfigError

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
    """A value as the user types it: ``true``, ``1e-04``, ``lora``, ``q_proj, v_proj``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def check_text(section: str, key: str, text: str) -> str | None:
    """The problem with ``text`` as ``section.key``, or None when it is a valid value."""
    try:
        check_value(SECTIONS[section], key, parse_text(section, key, text), f"{section}.{key}")
    except ConfigError as exc:
        return str(exc)
    return None


def input_id(section: str, key: str) -> str:
    """The id of a key's input."""
    return f"cfg-{section}-{key}"


class ConfigForm(VerticalScroll):
    """The config as a form: section headers, then key, input, help and (when bad) the error."""

    def __init__(self, keys: list[KeyHelp], values: dict[str, dict[str, Any]]) -> None:
        super().__init__(id="config-form")
        self.keys = keys
        self.values = values
        self.changed: set[str] = set()
        """``section.key`` paths edited since the last save."""
        self.errors: dict[str, str] = {}

    def compose(self) -> ComposeResult:
        """One block per key, a header per section."""
        section = ""
        for item in self.keys:
            if item.section != section:
                section = item.section
                yield Label(f"[{section}]", classes="config-section", markup=False)
            with Horizontal(classes="config-row"):
                yield Label(item.key, classes="config-key")
                yield Input(value_text(self.values[item.section][item.key]),
                            id=input_id(item.section, item.key), classes="config-input")
            yield Static(item.help, classes="config-help", markup=False)
            yield Static("", id=f"{input_id(item.section, item.key)}-error", classes="config-error",
                         markup=False)

    def on_input_changed(self, event: Input.Changed) -> None:
        """Check the edited value and show or clear its error."""
        if not event.input.id or not event.input.id.startswith("cfg-"):
            return
        section, key = event.input.id.removeprefix("cfg-").split("-", 1)
        path = f"{section}.{key}"
        if event.value != value_text(self.values[section][key]):
            self.changed.add(path)
        problem = check_text(section, key, event.value)
        error = self.query_one(f"#{event.input.id}-error", Static)
        if problem:
            self.errors[path] = problem
        else:
            self.errors.pop(path, None)
        error.update(problem or "")
        error.set_class(bool(problem), "shown")

    def set_text(self, path: str, text: str) -> None:
        """Type ``text`` into a key's input (as a preset does)."""
        section, key = path.split(".", 1)
        self.query_one(f"#{input_id(section, key)}", Input).value = text

    def text_of(self, path: str) -> str:
        """The text in a key's input."""
        section, key = path.split(".", 1)
        return self.query_one(f"#{input_id(section, key)}", Input).value
