"""Every place the console leans on Textual's internals, in one module.

Textual is pinned (``pyproject.toml``) because of these and the snapshots. Each hook below names
the private attribute or undocumented method it touches and why; on a Textual upgrade, check
each one here (the tests in ``tests/tui/test_textual_hooks.py`` fail when one stops applying).
Everything else in the console uses Textual's public API.
"""

from __future__ import annotations

from typing import Any

from textual import events
from textual.app import App
from textual.binding import Binding
from textual.screen import Screen
from textual.widget import AwaitMount, Widget

TEXTUAL_VERSION = "8.2.8"
"""The Textual version these hooks were written against (pinned in pyproject.toml)."""


class InstantModeSwitch(App[int]):
    """Switch back to an already built mode's screen without Textual's 50 ms transition hold.

    Hook: ``App.delay_update`` (undocumented). Textual masks every mode switch by holding screen
    updates for 50 ms; that hides a blank frame while a new screen composes, but a screen already
    built draws at once, and the 50 ms were most of a key's latency when flipping screens. A
    shorter hold is no answer: Textual's one-shot timer can skip its only tick when it fires
    late, and a zero delay divides by zero there. Nor is the first screen held: before it there
    is only the blank default screen, so the hold only delayed the first frame by 50 ms.
    """

    instant_switch = False
    """True while switching to a mode whose screen is already built (no transition hold)."""

    def delay_update(self, delay: float = 0.05) -> None:
        """Hold updates for a new screen only (see the class docstring)."""
        if not self.instant_switch:
            super().delay_update(delay)

    def switch_mode(self, mode: str) -> AwaitMount:
        """Switch modes; back to an already built screen without the transition hold."""
        try:
            self.instant_switch = bool(self.get_screen_stack(mode))
        except KeyError:  # Textual has not built this mode's screen yet
            self.instant_switch = False
        if self.current_mode == self.DEFAULT_MODE:  # the first screen: nothing to mask
            self.instant_switch = True
        try:
            return super().switch_mode(mode)
        finally:
            self.instant_switch = False


class ResumeWithoutRestyle(Screen[None]):
    """A screen coming into view skips Textual's full restyles when the app's CSS has not changed.

    Hooks: the private handler ``Screen._on_screen_resume`` and the private counters
    ``Screen._css_update_count`` / ``App._css_update_count``. Textual restyles every widget of a
    resumed screen (about 20 ms here, the largest part of a screen switch once the footer stopped
    rebuilding), although switching modes already refreshes the CSS when the app's has changed
    since the screen was styled (a theme change), and class and focus changes restyle their
    widgets as they happen. This handler runs before ``Screen._on_screen_resume`` (Textual calls
    each class's handler, subclass first). Where the counters are missing it restyles as before.

    A new screen starts with its counter at the app's: it is styled when it mounts, with the
    stylesheet as it is then. Textual starts it at -1, so building a mode's screen re-parsed the
    whole stylesheet and restyled every screen twice (``App._init_mode`` and ``switch_mode`` each
    call ``refresh_css``) and the new screen twice more (two resume events): most of the console's
    time from start to its first frame.
    """

    def __init__(self) -> None:
        super().__init__()
        count = getattr(self.app, "_css_update_count", None)
        if count is not None and hasattr(self, "_css_update_count"):
            self._css_update_count = count

    def _on_screen_resume(self, event: events.ScreenResume) -> None:
        """Clear ``refresh_styles`` when the screen's styles are as fresh as the app's."""
        ours, apps = getattr(self, "_css_update_count", None), getattr(self.app, "_css_update_count", None)
        if ours is not None and ours == apps:
            event.refresh_styles = False


def replace_key_binding(widget: Widget, binding: Binding) -> None:
    """Give ``widget`` its own binding for ``binding.key``, replacing the class's (e.g. a named Enter).

    Hook: the private ``Widget._bindings`` map (a per-instance copy of the class bindings).
    DataTable's Enter binding is hidden; a table whose Enter does something (``Train``, ``Edit``)
    shows it in the footer and the help under its own name.
    """
    widget._bindings.key_to_bindings[binding.key] = [binding]


def auto_focus_now(screen: Screen[Any]) -> None:
    """Give ``screen`` the focus Textual would give it once composed, now (when nothing has it yet).

    Mirrors the private ``Screen._update_auto_focus`` (the first focusable widget matching the
    screen's or the app's ``AUTO_FOCUS``). The footer calls it as it composes, so that it draws
    the focused table's keys in the first frame instead of rebuilding itself one frame later.
    """
    auto_focus = screen.app.AUTO_FOCUS if screen.AUTO_FOCUS is None else screen.AUTO_FOCUS
    if not auto_focus or screen.focused is not None or not screen.app.app_focus:
        return
    for widget in screen.query(auto_focus):
        if widget.focusable:
            screen.set_focus(widget)
            return


def breakpoint_classes(size: tuple[int, int], horizontal: list[tuple[int, str]],
                       vertical: list[tuple[int, str]]) -> set[str]:
    """The breakpoint classes Textual gives a screen of ``size`` (its rule, from the private
    ``Screen._get_breakpoint_classes``: per axis, the class of the largest threshold not above
    the size). A screen built with them already set is not restyled whole by its first resize."""
    classes = set()
    for dimension, breakpoints in zip(size, (horizontal, vertical), strict=True):
        for threshold, name in sorted(breakpoints, reverse=True):
            if dimension >= threshold:
                classes.add(name)
                break
    return classes


def mode_screen_built(app: App[Any], mode: str) -> Screen[Any] | None:
    """The base screen of ``mode`` when Textual has built it, else None (public API, kept here
    because it relies on ``get_screen_stack`` raising KeyError for a mode not built yet)."""
    try:
        stack = app.get_screen_stack(mode)
    except KeyError:
        return None
    return stack[0] if stack else None
