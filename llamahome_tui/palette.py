"""The command palette's entries: every screen, and every screen's actions from any screen.

Each main screen lists its own actions (``ConsoleScreen.commands``). The screen in view gives
them as they are; every other screen's are offered too, named with the screen they switch to
("Start a training run (Training)"): choosing one switches there and runs the command of the
same title on that screen. A screen not built yet is asked for its list through a stand-in
instance (built, never mounted) so that nothing is composed just to open the palette.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from typing import TYPE_CHECKING

from textual.app import SystemCommand
from textual.screen import Screen

from llamahome_tui.screens.base import ConsoleScreen
from llamahome_tui.textual_hooks import mode_screen_built
from llamahome_tui.widgets.mode_bar import MODE_TITLES

if TYPE_CHECKING:
    from llamahome_tui.app import LlamaHomeApp


def console_commands(app: LlamaHomeApp, screen: Screen[object]) -> Iterator[SystemCommand]:
    """Go-to entries, the screen in view's actions, then every other screen's."""
    for mode, title in MODE_TITLES.items():
        yield SystemCommand(f"Go to {title}", f"switch to the {title.lower()} screen",
                            partial(app.action_mode, mode))
    here = screen.MODE if isinstance(screen, ConsoleScreen) else app.current_mode
    if isinstance(screen, ConsoleScreen):
        yield from screen.commands()
    for mode, title in MODE_TITLES.items():
        if mode == here:
            continue
        for command in stand_in(app, mode).commands():
            yield SystemCommand(f"{command.title} ({title})", command.help,
                                partial(app.run_command_in, mode, command.title))


def stand_in(app: LlamaHomeApp, mode: str) -> ConsoleScreen:
    """The mode's screen when built, else an unmounted instance to ask for its command list."""
    built = mode_screen_built(app, mode)
    if isinstance(built, ConsoleScreen):
        return built
    if mode not in app.stand_ins:
        app.stand_ins[mode] = app.screen_class(mode)()
    return app.stand_ins[mode]
