"""The config screen: every key of default.toml in a table, edited one by one, checked as typed.

Each key shows at the value the user's file gives it (or the default), its comment under the
table; Enter opens a checked editor (the error shows under the key as you type). ``f`` switches
the table to the overrides of the model's family (``[model_configs.<family>.<section>]``, applied
over the file's keys when the model's family matches) and back. Delete takes a key out of the
file again (back to the default, or for an override back to the file's value). ctrl+s writes the
changed keys to the user's config file with tomlkit, keeping its comments and order; F5-F8 apply
a preset (LoRA, QLoRA, QAT, full). Edits live in ``ConsoleState.config_edits`` until saved, so
the app warns before quitting with them and when leaving the screen (a run reads the saved file).
A table rather than ~50 inputs: it opens at once and ``/`` filters it like every other table;
the value column takes the width the terminal leaves. The file is watched while the screen is
up: changed on disk (another editor, a script) it is read again, or, with unsaved edits here,
the screen asks whether to reload and drop them.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rich.text import Text
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.widgets import Static

from engine.api import DEFAULT_FILE, ConfigError, config_to_dict, load_config, model_family, set_value
from llamahome_tui.screens.base import ConsoleScreen
from llamahome_tui.screens.dialogs import ConfirmScreen
from llamahome_tui.widgets.config_form import (
    ValueEditor,
    family_overrides,
    read_key_help,
    remove_value,
    shorten,
    value_text,
)
from llamahome_tui.widgets.filter_table import ELASTIC, FilterTable

PRESETS: dict[str, dict[str, str]] = {
    "LoRA": {"training.method": "lora", "training.learning_rate": "1e-3", "lora.r": "16", "lora.alpha": "32"},
    "QLoRA": {"training.method": "qlora", "training.learning_rate": "2e-4", "lora.r": "16", "lora.alpha": "32"},
    "QAT": {"training.method": "qat", "training.learning_rate": "1e-4"},
    "full": {"training.method": "full", "training.learning_rate": "1e-4"},
}
"""Preset name -> the keys it sets (as typed text)."""
FAMILIES = "model_configs"
WATCH_S = 2.0
"""Seconds between two looks at the config file's modification time."""


def file_stamp(path: Path) -> tuple[int, int] | None:
    """The file's modification time and size (None when missing): a change means it was written."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


def current_values(config_file: Any) -> dict[str, dict[str, Any]]:
    """Every key's value from the defaults and the user's file (environment and flags left out)."""
    try:
        config = load_config(config_file if config_file.is_file() else None, env={})
    except ConfigError:
        config = load_config(None, env={})
    return config_to_dict(config)


class ConfigScreen(ConsoleScreen):
    """Edit the config key by key, or the model family's overrides; save changed keys; presets."""

    MODE = "config"
    HELP = ("Every key of config/default.toml, at the value your config file gives it. Enter edits a "
            "key (checked as you type); f shows the overrides for the model's family; delete resets a "
            "key; ctrl+s saves the changed keys to your file, comments kept.")
    BINDINGS = [
        Binding("ctrl+s", "save", "Save"),
        Binding("f", "family", "Family"),
        Binding("delete", "reset", "Reset key", show=False),
        Binding("f5", "preset('LoRA')", "LoRA", show=False),
        Binding("f6", "preset('QLoRA')", "QLoRA", show=False),
        Binding("f7", "preset('QAT')", "QAT", show=False),
        Binding("f8", "preset('full')", "Full", show=False),
        Binding("slash", "filter", "Filter"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.keys = {f"{k.section}.{k.key}": k for k in read_key_help(DEFAULT_FILE)}
        self.values: dict[str, dict[str, Any]] = {}
        self.family: str | None = None
        """The model family whose overrides the table shows; None: the plain keys."""
        self.overrides: dict[str, Any] = {}
        """``section.key`` -> the family's override value in the files."""
        self.stamp: tuple[int, int] | None = None
        """The config file's stamp when last read (or written) here."""
        self.asking = False
        """The "changed on disk: reload?" question is open."""

    @property
    def edits(self) -> dict[str, str | None]:
        """Key path -> typed text (None: take the key out of the file), unsaved; kept in the state."""
        return self.state.config_edits

    def compose_body(self) -> ComposeResult:
        """Where the config saves, the key table and the highlighted key's help."""
        yield Static(id="config-presets")
        yield FilterTable("key", ("value", ELASTIC), ("", 8), id="config-table", enter="Edit")
        yield Static(id="config-help", markup=False)  # help text holds [tables]

    def on_mount(self) -> None:
        """Read the values and fill the table; watch the file."""
        self.read_file()
        self.set_interval(WATCH_S, self.check_file)

    def on_screen_resume(self) -> None:
        """Back in view: look at the file at once."""
        self.check_file()

    def read_file(self) -> None:
        """Read the values (and the family's overrides) from the files and redraw."""
        self.stamp = file_stamp(self.state.config_file)
        self.values = current_values(self.state.config_file)
        if self.family:
            self.overrides = family_overrides(self.files(), self.family)
        self.fill()

    def check_file(self) -> None:
        """The file changed on disk: read it again, or ask first when there are unsaved edits here."""
        stamp = file_stamp(self.state.config_file)
        if stamp == self.stamp or self.asking:
            return
        name = self.state.config_file.name
        if not self.edits:
            self.read_file()
            self.notify(f"{name} changed on disk: reloaded")
            return

        def answer(reload: bool | None) -> None:
            self.asking = False
            if reload:
                self.edits.clear()
                self.read_file()
                self.notify(f"{name} reloaded; unsaved edits dropped")
            else:
                self.stamp = stamp  # keep the edits; ctrl+s writes them over the file's new text
                self.fill()

        self.asking = True
        count = len(self.edits)
        self.app.push_screen(ConfirmScreen(
            f"{name} changed on disk. Reload it and drop {count} unsaved edit{'s' if count != 1 else ''} "
            "made here? (n keeps them; ctrl+s then saves them into the new file)"), answer)

    def path_of(self, key: str) -> str:
        """The full key path of ``section.key`` in the current view."""
        return f"{FAMILIES}.{self.family}.{key}" if self.family else key

    def base_text(self, key: str) -> str:
        """A plain key's value as typed: the pending edit, else the file's (or default) value."""
        edit = self.edits.get(key)
        if edit is not None:
            return edit
        section, name = key.split(".", 1)
        return value_text(self.values[section][name])

    def text_of(self, path: str) -> str:
        """A key path's value as typed (an unset family override is "")."""
        if not path.startswith(f"{FAMILIES}."):
            return self.base_text(path)
        key = path.split(".", 2)[2]
        if path in self.edits:
            return self.edits[path] or ""
        return value_text(self.overrides[key]) if key in self.overrides else ""

    def marker(self, path: str) -> Text:
        """``changed`` for an unsaved edit, ``reset`` for a pending removal, ``override`` when set."""
        if path in self.edits:
            return Text("reset" if self.edits[path] is None else "changed", style="bold yellow")
        if self.family and path.split(".", 2)[2] in self.overrides:
            return Text("override", style="cyan")
        return Text("")

    def fill(self) -> None:
        """Redraw the table and the status line."""
        rows = []
        for key in self.keys:
            path = self.path_of(key)
            rows.append((path, (key, self.text_of(path), self.marker(path))))
        self.query_one(FilterTable).set_rows(rows)
        unsaved = f" · {len(self.edits)} unsaved" if self.edits else ""
        where = f"saves to {self.state.config_file.name}{unsaved}"
        if self.family:
            status = f"[model_configs.{self.family}] overrides · {where} · f: all keys"
        else:
            status = f"{where} · f family · F5 LoRA F6 QLoRA F7 QAT F8 full"
        self.query_one("#config-presets", Static).update(status)
        self.on_data_table_row_highlighted()

    def selected_key(self) -> tuple[str, str] | None:
        """``(key path, section.key)`` of the highlighted row."""
        path = self.query_one(FilterTable).selected_key
        if path is None:
            return None
        key = path.split(".", 2)[2] if path.startswith(f"{FAMILIES}.") else path
        return (path, key) if key in self.keys else None

    def on_data_table_row_highlighted(self) -> None:
        """Show the highlighted key's help (and, for an override, the value it overrides)."""
        chosen = self.selected_key()
        help_text = self.keys[chosen[1]].help if chosen else ""
        if chosen and self.family:
            base = shorten(self.base_text(chosen[1]), 40) or '""'
            help_text = f"base value: {base} · {help_text}"
        self.query_one("#config-help", Static).update(help_text)

    def on_data_table_row_selected(self) -> None:
        """Enter edits the key."""
        self.action_edit()

    def action_edit(self) -> None:
        """Edit the highlighted key's value in a checked editor."""
        chosen = self.selected_key()
        if chosen is None:
            return
        path, key = chosen
        text = self.text_of(path) if (path in self.edits or not self.family or key in self.overrides) \
            else self.base_text(key)

        def edited(answer: str | None) -> None:
            if answer is not None and (answer != self.text_of(path) or self.edits.get(path, "") is None):
                self.edits[path] = answer
                self.fill()

        self.app.push_screen(ValueEditor(self.keys[key], text, title=path), edited)

    def action_reset(self) -> None:
        """Take the highlighted key out of the file when saved (back to the default or the file's value)."""
        chosen = self.selected_key()
        if chosen is None:
            return
        self.edits[chosen[0]] = None
        self.fill()
        self.notify(f"{chosen[0]}: reset when saved (ctrl+s)")

    def action_family(self) -> None:
        """Switch between the plain keys and the overrides for the current model's family."""
        if self.family:
            self.family = None
        else:
            try:
                config_file = self.state.config_file if self.state.config_file.is_file() else None
                self.family = model_family(load_config(config_file, self.state.overrides))
            except ConfigError as exc:
                self.notify(f"cannot tell the model's family: {exc}", severity="error", timeout=8)
                return
            self.overrides = family_overrides(self.files(), self.family)
        self.fill()

    def files(self) -> list[Path]:
        """The config files, in layer order."""
        return [DEFAULT_FILE, self.state.config_file]

    def commands(self) -> Iterable[SystemCommand]:
        """Palette entries for this screen."""
        yield SystemCommand("Save config", f"write changed keys to {self.state.config_file.name}", self.action_save)
        yield SystemCommand("Model-family overrides", "show or leave [model_configs.<family>]", self.action_family)
        for name in PRESETS:
            yield SystemCommand(f"Preset: {name}", f"set the keys of the {name} preset",
                                lambda name=name: self.action_preset(name))

    def action_preset(self, name: str) -> None:
        """Set a preset's keys (saved with ctrl+s)."""
        self.edits.update(PRESETS[name])
        self.fill()
        self.notify(f"preset {name} applied; ctrl+s saves")

    def action_save(self) -> None:
        """Write the changed keys to the user's config file (removals too)."""
        try:
            for path, text in sorted(self.edits.items()):
                if text is None:
                    remove_value(self.state.config_file, path)
                else:
                    set_value(self.state.config_file, path, text)
        except ConfigError as exc:
            self.notify(f"not saved: {exc}", severity="error", timeout=8)
            return
        count = len(self.edits)
        self.edits.clear()
        self.read_file()
        self.notify(f"saved {count} key{'s' if count != 1 else ''} to {self.state.config_file.name}")
