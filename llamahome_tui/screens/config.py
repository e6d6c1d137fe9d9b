"""The config screen: default.toml as a form, checked as you type, saved to the user's file.

Every key of config/default.toml is shown with its comment, at the value the user's file gives it
(or the default). ctrl+s writes the changed keys to the user's config file with tomlkit, keeping
its comments and order; F5-F8 apply a preset (LoRA, QLoRA, QAT, full) to the form.
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
from llamahome_tui.widgets.config_form import ConfigForm, read_key_help

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
    """Edit the config as a form; save to the user's file; presets."""

    MODE = "config"
    HELP = ("Every key of config/default.toml. Type a value as on the command line; errors show under "
            "the key. ctrl+s saves the changed keys to your config file (comments kept).")
    BINDINGS = [
        Binding("ctrl+s", "save", "Save"),
        Binding("f5", "preset('LoRA')", "LoRA"),
        Binding("f6", "preset('QLoRA')", "QLoRA"),
        Binding("f7", "preset('QAT')", "QAT"),
        Binding("f8", "preset('full')", "Full"),
    ]

    def compose_body(self) -> ComposeResult:
        """Where the config is saved, and the form."""
        yield Static(id="config-presets")
        yield ConfigForm(read_key_help(DEFAULT_FILE), current_values(self.state.config_file))

    def on_mount(self) -> None:
        """Say where the config saves."""
        self.show_target()

    def show_target(self) -> None:
        """The file saves go to and how many keys are unsaved."""
        form = self.query_one(ConfigForm)
        unsaved = f" · {len(form.changed)} unsaved" if form.changed else ""
        self.query_one("#config-presets", Static).update(
            f"saves to {self.state.config_file.name}{unsaved} · F5 LoRA  F6 QLoRA  F7 QAT  F8 full")

    def on_input_changed(self) -> None:
        """Keep the unsaved count current."""
        self.show_target()

    def commands(self) -> Iterable[SystemCommand]:
        """Palette entries for this screen."""
        yield SystemCommand("Save config", f"write changed keys to {self.state.config_file.name}", self.action_save)
        for name in PRESETS:
            yield SystemCommand(f"Preset: {name}", f"set the form for {name}",
                                lambda name=name: self.action_preset(name))

    def action_preset(self, name: str) -> None:
        """Type a preset's values into the form (saved with ctrl+s)."""
        form = self.query_one(ConfigForm)
        for path, text in PRESETS[name].items():
            form.set_text(path, text)
        self.notify(f"preset {name} applied; ctrl+s saves")

    def action_save(self) -> None:
        """Write the changed keys to the user's config file; nothing is written while any is bad."""
        form = self.query_one(ConfigForm)
        if form.errors:
            first = next(iter(form.errors.values()))
            self.notify(f"not saved: {first}", severity="error", timeout=8)
            return
        try:
            for path in sorted(form.changed):
                set_value(self.state.config_file, path, form.text_of(path))
        except ConfigError as exc:
            self.notify(f"not saved: {exc}", severity="error", timeout=8)
            return
        count = len(form.changed)
        form.values = current_values(self.state.config_file)
        form.changed.clear()
        self.show_target()
        self.notify(f"saved {count} key{'s' if count != 1 else ''} to {self.state.config_file.name}")
