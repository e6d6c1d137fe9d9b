"""The config screen: every key of default.toml in a table, edited one by one, checked as typed.

Each key shows at the value the user's file gives it (or the default), its comment under the
table; Enter opens a checked editor (the error shows under the key as you type). ctrl+s writes
the changed keys to the user's config file with tomlkit, keeping its comments and order; F5-F8
apply a preset (LoRA, QLoRA, QAT, full). A table rather than ~50 inputs: it opens at once and
``/`` filters it like every other table.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.widgets import Static

from engine.config import DEFAULT_FILE, config_to_dict, load_config, set_value
from engine.errors import ConfigError
from llamahome_tui.screens.base import ConsoleScreen
from llamahome_tui.widgets.config_form import ValueEditor, read_key_help, value_text
from llamahome_tui.widgets.filter_table import FilterTable

PRESETS: dict[str, dict[str, str]] = {
    "LoRA": {"training.method": "lora", "training.learning_rate": "1e-3", "lora.r": "16", "lora.alpha": "32"},
    "QLoRA": {"training.method": "qlora", "training.learning_rate": "2e-4", "lora.r": "16", "lora.alpha": "32"},
    "QAT": {"training.method": "qat", "training.learning_rate": "1e-4"},
    "full": {"training.method": "full", "training.learning_rate": "1e-4"},
}
"""Preset name -> the keys it sets (as typed text)."""


def current_values(config_file: Any) -> dict[str, dict[str, Any]]:
    """Every key's value from the defaults and the user's file (environment and flags left out)."""
    try:
        config = load_config(config_file if config_file.is_file() else None, env={})
    except ConfigError:
        config = load_config(None, env={})
    return config_to_dict(config)


class ConfigScreen(ConsoleScreen):
    """Edit the config key by key; save the changed keys to the user's file; presets."""

    MODE = "config"
    HELP = ("Every key of config/default.toml, at the value your config file gives it. Enter edits a "
            "key (checked as you type); ctrl+s saves the changed keys to your file, comments kept.")
    BINDINGS = [
        Binding("enter", "edit", "Edit"),
        Binding("ctrl+s", "save", "Save"),
        Binding("f5", "preset('LoRA')", "LoRA"),
        Binding("f6", "preset('QLoRA')", "QLoRA"),
        Binding("f7", "preset('QAT')", "QAT"),
        Binding("f8", "preset('full')", "Full"),
        Binding("slash", "filter", "Filter"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.keys = {f"{k.section}.{k.key}": k for k in read_key_help(DEFAULT_FILE)}
        self.values: dict[str, dict[str, Any]] = {}
        self.edits: dict[str, str] = {}
        """``section.key`` -> typed text, for the keys changed since the last save."""

    def compose_body(self) -> ComposeResult:
        """Where the config saves, the key table and the highlighted key's help."""
        yield Static(id="config-presets")
        yield FilterTable("key", "value", "", id="config-table")
        yield Static(id="config-help")

    def on_mount(self) -> None:
        """Read the values and fill the table."""
        self.values = current_values(self.state.config_file)
        self.fill()

    def text_of(self, path: str) -> str:
        """A key's value as typed: the pending edit, else the file's (or default) value."""
        section, key = path.split(".", 1)
        return self.edits.get(path, value_text(self.values[section][key]))

    def fill(self) -> None:
        """Redraw the table and the status line."""
        rows = [(path, (path, self.text_of(path), "changed" if path in self.edits else ""))
                for path in self.keys]
        self.query_one(FilterTable).set_rows(rows)
        unsaved = f" · {len(self.edits)} unsaved" if self.edits else ""
        self.query_one("#config-presets", Static).update(
            f"saves to {self.state.config_file.name}{unsaved} · F5 LoRA  F6 QLoRA  F7 QAT  F8 full")

    def on_data_table_row_highlighted(self) -> None:
        """Show the highlighted key's help."""
        path = self.query_one(FilterTable).selected_key
        self.query_one("#config-help", Static).update(self.keys[path].help if path in self.keys else "")

    def on_data_table_row_selected(self) -> None:
        """Enter edits the key."""
        self.action_edit()

    def action_edit(self) -> None:
        """Edit the highlighted key's value in a checked editor."""
        path = self.query_one(FilterTable).selected_key
        if path not in self.keys:
            return

        def edited(text: str | None) -> None:
            if text is not None and text != self.text_of(path):
                self.edits[path] = text
                self.fill()

        self.app.push_screen(ValueEditor(self.keys[path], self.text_of(path)), edited)

    def commands(self) -> Iterable[SystemCommand]:
        """Palette entries for this screen."""
        yield SystemCommand("Save config", f"write changed keys to {self.state.config_file.name}", self.action_save)
        for name in PRESETS:
            yield SystemCommand(f"Preset: {name}", f"set the keys of the {name} preset",
                                lambda name=name: self.action_preset(name))

    def action_preset(self, name: str) -> None:
        """Set a preset's keys (saved with ctrl+s)."""
        self.edits.update(PRESETS[name])
        self.fill()
        self.notify(f"preset {name} applied; ctrl+s saves")

    def action_save(self) -> None:
        """Write the changed keys to the user's config file."""
        try:
            for path, text in sorted(self.edits.items()):
                set_value(self.state.config_file, path, text)
        except ConfigError as exc:
            self.notify(f"not saved: {exc}", severity="error", timeout=8)
            return
        count = len(self.edits)
        self.values, self.edits = current_values(self.state.config_file), {}
        self.fill()
        self.notify(f"saved {count} key{'s' if count != 1 else ''} to {self.state.config_file.name}")
