"""``KeyFooter``: Textual's footer, rebuilt only when the keys it shows change.

Textual's ``Footer`` recomposes on every bindings signal: a screen coming back into view sends
one, the focus it restores sends another, and each rebuild mounts and restyles every key. That
was the largest single cost of switching screens (over a quarter of the console's CPU while keys
flipped between two screens, by py-spy), though the keys shown were the same as last time. This footer keeps
the shown keys' signature and skips the rebuild when it has not changed; several signals before
the next refresh make one check. It also draws its keys in the screen's first frame: Textual's
waits for the first bindings signal and rebuilds after the next refresh, a frame or two later.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer

from llamahome_tui.textual_hooks import auto_focus_now, mark_footer_bindings_ready

KeySignature = tuple[tuple[str, str, str, bool, str], ...]


class KeyFooter(Footer):
    """A ``Footer`` that recomposes only when its keys, labels or enabled states change."""

    def __init__(self) -> None:
        super().__init__()
        self._shown: KeySignature | None = None
        self._check_pending = False

    def compose(self) -> ComposeResult:
        """The screen's keys from the start, the focused table's included (focus is given first)."""
        auto_focus_now(self.screen)
        mark_footer_bindings_ready(self)
        self._shown = self.shown_keys()
        yield from super().compose()

    def shown_keys(self) -> KeySignature:
        """What the footer would draw now: key, label, action, enabled and tooltip of each shown binding."""
        return tuple((binding.key, binding.description, binding.action, enabled, tooltip)
                     for (_, binding, enabled, tooltip) in self.screen.active_bindings.values()
                     if binding.show)

    def bindings_changed(self, screen: Screen) -> None:
        """Schedule one check after the next refresh, however many signals come before it.

        Overrides Textual's undocumented ``Footer.bindings_changed`` (see ``textual_hooks``).
        """
        mark_footer_bindings_ready(self)
        if not screen.app.app_focus or not self.is_attached or screen is not self.screen:
            return
        if not self._check_pending:
            self._check_pending = True
            self.call_after_refresh(self._recompose_if_changed)

    async def _recompose_if_changed(self) -> None:
        """Rebuild the keys only if they differ from those drawn."""
        self._check_pending = False
        shown = self.shown_keys()
        if shown != self._shown:
            self._shown = shown
            await self.recompose()
