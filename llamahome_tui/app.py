"""``LlamaHomeApp``: the keyboard-driven console over the same ``Engine`` the headless mode uses.

Six modes, each with its own screen stack (datasets, config, training, checkpoints, runs, try it);
the number keys 1-6 or the command palette (``:`` / ctrl+p, every screen's actions from any screen)
jump between them, ``?`` lists the keys of the screen in view, ``/`` filters its table and Esc
clears a filter, then goes back. Screens hold their own handlers; this module only wires them
together, keeps the user's place (the live run re-attached at start, the chosen data and the run
in view remembered in the workspace, the live-run count in every screen's top line) and guards
quitting (q or ctrl+c): a run is its own process and outlives the console, so quitting with a
live run asks whether to leave it running or stop it, and unsaved config edits ask first too.

A screen's module is imported when its mode is first shown, so the first frame pays only for
the first screen. No torch here: this process imports only the engine's light modules.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import ClassVar

from textual.app import SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.signal import Signal

from engine.api import LIVE_STATUSES, PROJECT_ROOT, Engine, RunRecord, UserError, Workspace
from llamahome_tui.place import Place, PlaceFile, restore
from llamahome_tui.screens.base import ConsoleScreen, ConsoleState
from llamahome_tui.terminal_watch import watch_terminal
from llamahome_tui.textual_hooks import InstantModeSwitch
from llamahome_tui.widgets.mode_bar import MODE_TITLES

COMMAND_MODES = {None: "datasets", "train": "training", "train-resume": "checkpoints", "runs": "runs"}
"""The screen the console opens on for each command."""
SCREENS = {
    "datasets": "llamahome_tui.screens.datasets:DatasetsScreen",
    "config": "llamahome_tui.screens.config:ConfigScreen",
    "training": "llamahome_tui.screens.training:TrainingScreen",
    "checkpoints": "llamahome_tui.screens.checkpoints:CheckpointsScreen",
    "runs": "llamahome_tui.screens.runs:RunsScreen",
    "chat": "llamahome_tui.screens.chat:ChatScreen",
}
"""Mode -> ``module:class`` of its screen, imported when the mode is first shown."""
LIVE_POLL_S = 2.0
"""Seconds between two counts of the workspace's live runs (and two checks of the place file)."""
FOLLOWED_KINDS = ("train", "build-base")
"""Run kinds the training screen follows (a live one is re-attached at start)."""


def screen_class(mode: str) -> type[ConsoleScreen]:
    """The screen class of a mode (importing its module)."""
    module, name = SCREENS[mode].split(":")
    screen: type[ConsoleScreen] = getattr(importlib.import_module(module), name)
    return screen


class LlamaHomeApp(InstantModeSwitch):
    """The console: six main screens over one Engine and a shared ``ConsoleState``."""

    TITLE = "LlamaHome"
    CSS_PATH = "app.tcss"
    MODES: ClassVar[dict[str, str | type[Screen] | object]] = {  # type: ignore[assignment]
        mode: (lambda mode=mode: screen_class(mode)()) for mode in SCREENS}
    BINDINGS = [
        *(Binding(str(n), f"mode('{mode}')", title, show=False)
          for n, (mode, title) in enumerate(MODE_TITLES.items(), start=1)),
        Binding("question_mark", "help", "Help"),
        Binding("colon", "command_palette", "Commands", show=False),
        Binding("escape", "back", "Back", show=False),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(self, engine: Engine, state: ConsoleState, mode: str = "datasets",
                 place: PlaceFile | None = None) -> None:
        super().__init__()
        self.engine = engine
        self.state = state
        self.first_mode = mode
        self.place = place
        """Where the chosen data and the run in view are remembered (None: not remembered)."""
        self.mode_history: list[str] = []
        self.live_count: tuple[int, int] = (0, 0)
        """Runs live (pending, running, paused) and queued in the workspace, at the last count."""
        self.live_signal: Signal[tuple[int, int]] = Signal(self, "live-runs")
        """Published when ``live_count`` changes; every screen's mode bar redraws."""
        self.stand_ins: dict[str, ConsoleScreen] = {}
        """Unmounted screens the command palette asked for their commands (see ``palette``)."""

    def screen_class(self, mode: str) -> type[ConsoleScreen]:
        """The screen class of a mode."""
        return screen_class(mode)

    def on_mount(self) -> None:
        """Put the user back where they were, open the first screen, count live runs from now on."""
        live = self.engine.live_runs()
        self.reattach(live)
        self.publish_live(live)
        self.switch_mode(self.first_mode)
        self.set_interval(LIVE_POLL_S, self.tick)

    def reattach(self, live: list[RunRecord]) -> None:
        """Show the newest live training run (and watch it) unless the command line named a run.

        A run the place file brought back gives way to a live one; one named on the command line
        (``train-resume``) does not.
        """
        followed = [run for run in live if run.kind in FOLLOWED_KINDS]
        if not followed:
            return
        remembered = self.place.saved.run_id if self.place is not None and self.place.saved else None
        if self.state.run_id is None or (self.state.run_id == remembered
                                         and remembered not in {run.id for run in live}):
            self.state.run_id = followed[0].id
        self.state.watched.update(run.id for run in followed)

    def tick(self) -> None:
        """Every few seconds: count the live runs, remember the place if it changed."""
        self.publish_live(self.engine.live_runs())
        self.remember()

    def publish_live(self, live: list[RunRecord]) -> None:
        """Tell the mode bars how many runs are live and queued."""
        queued = sum(run.status == "queued" for run in live)
        count = (len(live) - queued, queued)
        if count != self.live_count:
            self.live_count = count
            self.live_signal.publish(count)

    def remember(self) -> None:
        """Write the place file when the chosen data or the run in view changed."""
        if self.place is not None:
            self.place.save(Place.of(self.state))

    def on_unmount(self) -> None:
        """Remember the place on the way out."""
        self.remember()

    def action_mode(self, mode: str) -> None:
        """Switch to a main screen, remembering where we were for Esc."""
        if mode == self.current_mode:
            return
        self.warn_unsaved()
        if self.current_mode in self.MODES:
            self.mode_history.append(self.current_mode)
        self.switch_mode(mode)
        self.remember()

    async def run_command_in(self, mode: str, title: str) -> None:
        """Switch to ``mode`` and run its screen's palette command named ``title``."""
        if mode != self.current_mode:
            self.warn_unsaved()
            self.mode_history.append(self.current_mode)
            await self.switch_mode(mode)
        screen = self.screen
        # after the messages the switch sent the screen (its resume refreshes what it shows)
        screen.call_later(self.run_screen_command, screen, title)

    async def run_screen_command(self, screen: Screen[object], title: str) -> None:
        """Run ``screen``'s palette command named ``title``."""
        for command in screen.commands() if isinstance(screen, ConsoleScreen) else ():
            if command.title == title:
                result = command.callback()
                if inspect.isawaitable(result):
                    await result
                return

    def action_back(self) -> None:
        """Clear the screen's applied filter, else close the top screen of this mode, else go back a mode."""
        screen = self.screen
        if isinstance(screen, ConsoleScreen) and screen.clear_filter():
            return
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
                 (":  ctrl+p", "command palette: every screen's actions"), ("/", "filter the table"),
                 ("j k g G", "down, up, first, last row"), ("esc", "clear the filter, else back"),
                 ("q  ctrl+c", "quit (asks when a run is live)")]
        title = MODE_TITLES.get(self.current_mode, "")
        from llamahome_tui.screens.dialogs import HelpScreen  # the dialogs load when first opened

        self.push_screen(HelpScreen(title, keys, getattr(screen, "HELP", "")))

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """The palette: every screen, every screen's actions (from any screen), then Textual's."""
        from llamahome_tui.palette import console_commands

        yield from console_commands(self, screen)
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

    async def action_help_quit(self) -> None:
        """ctrl+c: the console's own quit (asking when a run is live), not Textual's "press ctrl+q" note."""
        await self.action_quit()

    async def action_quit(self) -> None:
        """Quit; with unsaved config edits or live runs, ask first."""
        from llamahome_tui.screens.dialogs import ConfirmScreen

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
        from llamahome_tui.screens.dialogs import QuitScreen

        if isinstance(self.screen, QuitScreen):
            return  # ctrl+c / q pressed again while asking
        live = self.live_runs()
        if not live:
            self.remember()
            self.exit(0)
            return

        def answer(choice: str | None) -> None:
            if choice == "stop":
                for run_id in live:
                    self.engine.stop(run_id)
            if choice in ("stop", "leave"):
                self.remember()
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


def run_exists(engine: Engine, run_id: str) -> bool:
    """Whether the run history still has ``run_id``."""
    try:
        engine.get_run(run_id)
    except UserError:
        return False
    return True


def run_console(args: argparse.Namespace) -> int:
    """Open the console for a parsed command line; returns the exit code."""
    workspace = Workspace.resolve(args.workspace)
    engine = Engine(workspace)
    try:
        state = state_from_args(args, workspace)
        if args.command == "train-resume":
            state.run_id = engine.resume_point(args.target)[1].id
        place = PlaceFile(workspace.root)
        restore(state, place.load(), lambda run_id: run_exists(engine, run_id))
        app = LlamaHomeApp(engine, state, mode=COMMAND_MODES.get(args.command, "datasets"), place=place)
        watch_terminal(sys.stdin.fileno())
        return app.run() or 0
    finally:
        engine.close()
