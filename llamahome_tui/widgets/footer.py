"""``KeyFooter``: the keys that work on the screen in view, drawn as one line of text.

Textual's ``Footer`` builds a widget per key and rebuilds them all on every bindings signal (a
screen coming into view sends one, the focus it restores another); that was the largest single
cost of switching screens, and its eight key widgets (each styled with two component classes)
a good part of the console's first frame. This footer is one widget that renders a line: each
key in the footer's key colours, then its description, dimmed when the action is disabled. It
redraws only when the keys shown change (several signals before the next refresh make one
check) and shows them from the screen's first frame. A click on a key presses it.
"""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual import events
from textual.screen import Screen
from textual.widget import Widget

from llamahome_tui.textual_hooks import auto_focus_now

KeySignature = tuple[tuple[str, str, str, str, bool], ...]
"""key, its display, description, action and enabled state of each key shown."""


class KeyFooter(Widget):
    """The screen's keys (and the focused widget's), one line at the bottom."""

    COMPONENT_CLASSES = {"key-footer--key", "key-footer--description"}
    DEFAULT_CSS = """
    KeyFooter {
        dock: bottom;
        height: 1;
        background: $footer-background;
        color: $footer-foreground;
        .key-footer--key {
            color: $footer-key-foreground;
            background: $footer-key-background;
            text-style: bold;
        }
        .key-footer--description {
            color: $footer-description-foreground;
            background: $footer-description-background;
        }
    }
    """

    def __init__(self) -> None:
        super().__init__()
        self._shown: KeySignature = ()
        self._check_pending = False
        self._spans: list[tuple[int, int, str]] = []
        """Columns each key takes, for clicks: (start, end, key)."""

    def on_mount(self) -> None:
        """Take the keys as they are now (focus given first, as Textual would) and follow changes."""
        auto_focus_now(self.screen)
        self._shown = self.shown_keys()
        self.screen.bindings_updated_signal.subscribe(self, self.bindings_changed)

    def on_unmount(self) -> None:
        """Stop following the screen's bindings."""
        self.screen.bindings_updated_signal.unsubscribe(self)

    def shown_keys(self) -> KeySignature:
        """What the footer draws now: each shown binding's key, display, description, action and state."""
        seen: set[str] = set()
        keys = []
        for (_, binding, enabled, _tooltip) in self.screen.active_bindings.values():
            if binding.show and binding.action not in seen:  # one key per action, as Textual's footer
                seen.add(binding.action)
                keys.append((binding.key, self.app.get_key_display(binding), binding.description, binding.action,
                             enabled))
        return tuple(keys)

    def bindings_changed(self, screen: Screen) -> None:
        """Schedule one check after the next refresh, however many signals come before it."""
        if not screen.app.app_focus or not self.is_attached or screen is not self.screen:
            return
        if not self._check_pending:
            self._check_pending = True
            self.call_after_refresh(self._redraw_if_changed)

    def _redraw_if_changed(self) -> None:
        """Redraw only if the keys differ from those drawn."""
        self._check_pending = False
        if not self.is_attached:  # its screen was popped (a pushed view closed) before the check ran
            return
        shown = self.shown_keys()
        if shown != self._shown:
            self._shown = shown
            self.refresh()

    def render(self) -> Text:
        """`` n New run  p Pause/resume ...``: each key bold in the key colours, then what it does."""
        key_style = self.get_component_rich_style("key-footer--key")
        description_style = self.get_component_rich_style("key-footer--description")
        text, self._spans = Text(no_wrap=True, overflow="crop"), []
        for key, display, description, _action, enabled in self._shown:
            dim = Style() if enabled else Style(dim=True)
            start = text.cell_len
            text.append(f" {display} ", key_style + dim)
            text.append(f"{description} ", description_style + dim)
            self._spans.append((start, text.cell_len, key))
        return text

    def on_click(self, event: events.Click) -> None:
        """A click on a key presses it."""
        for start, end, key in self._spans:
            if start <= event.x < end:
                self.app.simulate_key(key)
                return
