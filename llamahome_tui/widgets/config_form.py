"""The config form's parts: each key of config/default.toml with its comment, and its editor.

Values are typed as on the command line (``1e-4``, ``true``, ``q_proj, v_proj``) and checked as
you type with the engine's own ``parse_text`` / ``check_value``; the error shows under the key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label

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


class ValueEditor(ModalScreen["str | None"]):
    """Edit one key's value: the key's help above, the error (if any) under the input, live.

    Enter answers with the text only when it is a valid value; Esc cancels with None.
    """

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, item: KeyHelp, text: str) -> None:
        super().__init__()
        self.item, self.text = item, text

    def compose(self) -> ComposeResult:
        """Key, help, input and the error line."""
        with Vertical(classes="dialog"):
            yield Label(f"{self.item.section}.{self.item.key}", classes="dialog-question", markup=False)
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
