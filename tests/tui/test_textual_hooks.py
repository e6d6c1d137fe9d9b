"""Each hook in ``llamahome_tui.textual_hooks`` still applies to the pinned Textual; an upgrade breaking one fails."""

from __future__ import annotations

import textual
from textual.app import App
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable

from llamahome_tui import textual_hooks
from llamahome_tui.screens.base import ConsoleScreen


def test_textual_is_the_pinned_version():
    assert textual.__version__ == textual_hooks.TEXTUAL_VERSION


def test_the_private_names_the_hooks_touch_exist():
    assert hasattr(App, "delay_update") and hasattr(App, "DEFAULT_MODE")
    assert "_on_screen_resume" in vars(Screen)
    app = App[None]()
    assert isinstance(app._css_update_count, int)
    table = DataTable()
    assert "enter" in table._bindings.key_to_bindings


def test_breakpoint_classes_follow_textuals_rule():
    horizontal, vertical = ConsoleScreen.HORIZONTAL_BREAKPOINTS, ConsoleScreen.VERTICAL_BREAKPOINTS
    screen = Screen[None]()
    for size in ((60, 20), (80, 24), (119, 39), (120, 40), (200, 60)):
        expected = (screen._get_breakpoint_classes(size[0], horizontal)
                    | screen._get_breakpoint_classes(size[1], vertical))
        assert textual_hooks.breakpoint_classes(size, horizontal, vertical) == expected, size


def test_a_named_enter_binding_replaces_the_tables_hidden_one():
    table = DataTable()
    textual_hooks.replace_key_binding(table, Binding("enter", "select_cursor", "Train"))
    assert [b.description for b in table._bindings.key_to_bindings["enter"]] == ["Train"]


async def test_a_new_console_screen_is_styled_once_and_a_built_one_switches_without_a_hold(make_app, monkeypatch):
    refreshes: list[int] = []
    original = App.refresh_css
    monkeypatch.setattr(App, "refresh_css", lambda self, animate=True: refreshes.append(1) or original(self, animate))
    app = make_app("runs")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("3")
        await pilot.pause(0.2)
        assert refreshes == [], "building a mode's screen no longer re-parses and restyles the whole app"
        assert app.screen._css_update_count == app._css_update_count
        holds: list[float] = []
        monkeypatch.setattr(App, "delay_update", lambda self, delay=0.05: holds.append(delay))
        await pilot.press("5")
        assert holds == [], "a built screen shows at once"
