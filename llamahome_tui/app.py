"""``LlamaHomeApp``: the keyboard-driven console over the same ``Engine`` the headless mode uses.

Six modes, each with its own screen stack (datasets, config, training, checkpoints, runs, try it);
the number keys 1-6 or the command palette (``:`` / ctrl+p) jump between them, ``?`` lists the keys of
the screen in view, ``/`` filters its table and Esc goes back. Screens hold their own handlers;
this module only wires them together and guards quitting: a run is its own process and outlives
the console, so quitting with a live run asks whether to leave it running or stop it, and
quitting with unsaved config edits asks first too (leaving the config screen with some says so).

No torch here: this process imports only the engine's light modules.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import ClassVar

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.widget import AwaitMount

from engine.api import Engine
from engine.config import PROJECT_ROOT
from engine.errors import UserError
from engine.store import LIVE_STATUSES
from engine.workspace import Workspace
from llamahome_tui.screens.base import ConsoleScreen, ConsoleState
from llamahome_tui.screens.chat import ChatScreen
from llamahome_tui.screens.checkpoints import CheckpointsScreen
from llamahome_tui.screens.config import ConfigScreen
from llamahome_tui.screens.datasets import DatasetsScreen
from llamahome_tui.screens.dialogs import ConfirmScreen, HelpScreen, QuitScreen
from llamahome_tui.screens.runs import RunsScreen
from llamahome_tui.screens.training import TrainingScreen
from llamahome_tui.terminal_watch import watch_terminal
from llamahome_tui.widgets.mode_bar import MODE_TITLES

COMMAND_MODES = {None: "datasets", "train": "training", "train-resume": "checkpoints", "runs": "runs"}
"""The screen the console opens on for each command."""


class LlamaHomeApp(App[int]):
    """The console: six main screens over one Engine and a shared ``ConsoleState``."""

    TITLE = "LlamaHome"
    CSS_PATH = "app.tcss"
    MODES: ClassVar[dict[str, type[Screen]]] = {  # type: ignore[assignment]
        "datasets": DatasetsScreen, "config": ConfigScreen, "training": TrainingScreen,
        "checkpoints": CheckpointsScreen, "runs": RunsScreen, "chat": ChatScreen,
    }
    BINDINGS = [
        *(Binding(str(n), f"mode('{mode}')", title, show=False)
          for n, (mode, title) in enumerate(MODE_TITLES.items(), start=1)),
        Binding("question_mark", "help", "Help"),
        Binding("colon", "command_palette", "Commands", show=False),
        Binding("escape", "back", "Back", show=False),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(self, engine: Engine, state: ConsoleState, mode: str = "datasets") -> None:
        super().__init__()
        self.engine = engine
        self.state = state
        self.first_mode = mode
        self.mode_history: list[str] = []
        self.instant_switch = False
        """True while switching to a mode whose screen is already built (no transition mask)."""

    def delay_update(self, delay: float = 0.05) -> None:
        """Textual masks every mode switch by holding screen updates for 50 ms.

        That hides a blank frame while a new screen composes; a screen already built draws at
        once, so switching back to one is not held (the 50 ms were most of a key's latency when
        flipping screens). A shorter hold is no answer: Textual's one-shot timer can skip its only
        tick when it fires late, and a zero delay divides by zero there.
        """
        if not self.instant_switch:
            super().delay_update(delay)

    def switch_mode(self, mode: str) -> AwaitMount:
        """Switch modes; back to an already built screen without the transition mask."""
        try:
            self.instant_switch = bool(self.get_screen_stack(mode))
        except KeyError:  # Textual has not built this mode's screen yet
            self.instant_switch = False
        try:
            return super().switch_mode(mode)
        finally:
            self.instant_switch = False

    def on_mount(self) -> None:
        """Open the first screen."""
        self.switch_mode(self.first_mode)

    def action_mode(self, mode: str) -> None:
        """Switch to a main screen, remembering where we were for Esc."""
        if mode == self.current_mode:
            return
        self.warn_unsaved()
        if self.current_mode in self.MODES:
            self.mode_history.append(self.current_mode)
        self.switch_mode(mode)

    def action_back(self) -> None:
        """Close the top screen of this mode, else return to the previous mode."""
        if len(self.screen_stack) > 1:
            self.pop_screen()
        elif self.mode_history:
            self.warn_unsaved()
            self.switch_mode(self.mode_history.pop())

    def warn_unsaved(self) -> None:
        """Leaving the config screen with unsaved edits: say that runs will not see them."""
        count = len(self.state.config_edits)
        if self.current_mode == "config" and count:
            self.notify(f"{count} unsaved config edit{'s' if count != 1 else ''}: kept here, but a run reads "
                        "the saved file (2: Config, ctrl+s saves)", severity="warning", timeout=6)

    def action_help(self) -> None:
        """Show the keys of the screen in view (its footer's and those the footer leaves out) and the global ones."""
        screen = self.screen
        shown = [b.binding for b in screen.active_bindings.values() if b.binding.show and b.binding.description]
        listed = {b.key for b in shown} | {"escape", "slash"}
        shown += [b for b in getattr(screen, "BINDINGS", ())  # the screen's keys the footer leaves out
                  if isinstance(b, Binding) and b.description and b.key not in listed]
        keys = [(b.key_display or self.get_key_display(b), b.description) for b in shown]
        keys += [(f"1-{len(MODE_TITLES)}", "switch screen: " + ", ".join(MODE_TITLES.values())),
                 (":  ctrl+p", "command palette"), ("/", "filter the table"), ("esc", "back")]
        title = MODE_TITLES.get(self.current_mode, "")
        self.push_screen(HelpScreen(title, keys, getattr(screen, "HELP", "")))

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """The palette: every screen, the screen's own actions, then Textual's."""
        for mode, title in MODE_TITLES.items():
            yield SystemCommand(f"Go to {title}", f"switch to the {title.lower()} screen",
                                lambda mode=mode: self.action_mode(mode))
        if isinstance(screen, ConsoleScreen):
            yield from screen.commands()
        yield from super().get_system_commands(screen)

    def live_runs(self) -> list[str]:
        """Runs this console started or attached to that are still going."""
        live = []
        for run_id in sorted(self.state.watched):
            try:
                run = self.engine.get_run(run_id)
            except UserError:
                continue
            if run.status in LIVE_STATUSES and self.engine.worker_alive(run):
                live.append(run.id)
        return live

    async def action_quit(self) -> None:
        """Quit; with unsaved config edits or live runs, ask first."""
        count = len(self.state.config_edits)
        if not count:
            self.quit_with_runs()
            return

        def answer(yes: bool | None) -> None:
            if yes:
                self.quit_with_runs()

        self.push_screen(ConfirmScreen(f"{count} unsaved config edit{'s' if count != 1 else ''} will be lost "
                                       "(2: Config, ctrl+s saves). Quit anyway?"), answer)

    def quit_with_runs(self) -> None:
        """Quit; with live runs, ask first: leave them running or stop them."""
        live = self.live_runs()
        if not live:
            self.exit(0)
            return

        def answer(choice: str | None) -> None:
            if choice == "stop":
                for run_id in live:
                    self.engine.stop(run_id)
            if choice in ("stop", "leave"):
                self.exit(0)

        self.push_screen(QuitScreen(live), answer)


def state_from_args(args: argparse.Namespace, workspace: Workspace) -> ConsoleState:
    """The console's starting state from the command line (data, config file, overrides)."""
    config = getattr(args, "config", None)
    overrides = list(getattr(args, "set", None) or [])
    if getattr(args, "model", None):
        overrides.append(f"model.path={json.dumps(str(Path(args.model).resolve()))}")
    if getattr(args, "max_steps", None) is not None:
        overrides.append(f"training.max_steps={args.max_steps}")
    state = ConsoleState(config_file=Path(config).resolve() if config else workspace.root / "config.toml",
                         data_roots=[PROJECT_ROOT / "data", workspace.root], overrides=overrides)
    if getattr(args, "data", None):
        state.dataset = Path(args.data).resolve()
    if getattr(args, "eval_data", None):
        state.eval_data = Path(args.eval_data).resolve()
    return state


def run_console(args: argparse.Namespace) -> int:
    """Open the console for a parsed command line; returns the exit code."""
    workspace = Workspace.resolve(args.workspace)
    engine = Engine(workspace)
    try:
        state = state_from_args(args, workspace)
        if args.command == "train-resume":
            state.run_id = engine.resume_point(args.target)[1].id
        app = LlamaHomeApp(engine, state, mode=COMMAND_MODES.get(args.command, "datasets"))
        watch_terminal(sys.stdin.fileno())
        return app.run() or 0
    finally:
        engine.close()
