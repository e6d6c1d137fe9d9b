"""The footer shows its keys from the first frame and redraws only when they change (a click presses a key);
switching back to a built screen is not held, yet restyles."""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.screen import Screen

from llamahome_tui.widgets.footer import KeyFooter


class Toggling(Screen[None]):
    """A screen whose ``x`` key is shown only while ``armed``."""

    BINDINGS = [Binding("x", "fire", "Fire"), Binding("y", "other", "Other")]

    def __init__(self) -> None:
        super().__init__()
        self.armed = False

    def compose(self) -> ComposeResult:
        yield KeyFooter()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return self.armed if action == "fire" else True


def footer_labels(screen: Screen) -> list[str]:
    """The key labels the footer draws now."""
    return [description for _, _, description, _, _ in screen.query_one(KeyFooter)._shown]


async def test_footer_redraws_when_its_keys_change_and_not_otherwise(monkeypatch):
    builds: list[KeyFooter] = []
    original = KeyFooter.refresh

    def counting(self: KeyFooter, *args, **kwargs):
        builds.append(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(KeyFooter, "refresh", counting)
    app = App[None]()
    app.ENABLE_COMMAND_PALETTE = False
    async with app.run_test(size=(60, 6)) as pilot:
        screen = Toggling()
        await app.push_screen(screen)
        await pilot.pause()
        assert footer_labels(screen) == ["Other"]
        drawn = len(builds)
        for _ in range(3):  # signals that change nothing: no redraw
            screen.refresh_bindings()
        await pilot.pause()
        assert len(builds) == drawn
        screen.armed = True
        screen.refresh_bindings()
        screen.refresh_bindings()  # two signals before the refresh: one redraw
        await pilot.pause()
        assert footer_labels(screen) == ["Fire", "Other"]
        assert len(builds) == drawn + 1
        footer = screen.query_one(KeyFooter)
        assert str(footer.render()).startswith(" x Fire  y Other")


async def test_a_click_on_a_footer_key_presses_it():
    fired: list[str] = []

    class Clicky(Toggling):
        def action_other(self) -> None:
            fired.append("other")

    app = App[None]()
    async with app.run_test(size=(60, 6)) as pilot:
        await app.push_screen(Clicky())
        await pilot.pause()
        await pilot.click(KeyFooter, offset=(3, 0))
        await pilot.pause()
        assert fired == ["other"]


async def test_flipping_between_built_screens_redraws_no_footer(make_app, monkeypatch):
    builds: list[str] = []
    original = KeyFooter._redraw_if_changed

    def counting(self: KeyFooter) -> None:
        before = self._shown
        original(self)
        if self._shown != before:
            builds.append(type(self.screen).__name__)

    monkeypatch.setattr(KeyFooter, "_redraw_if_changed", counting)
    app = make_app("runs")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("3")
        await pilot.pause(0.2)
        first = list(builds)
        assert set(first) <= {"RunsScreen", "TrainingScreen"}, "at most a redraw as focus adds a table's keys"
        holds = []
        monkeypatch.setattr(App, "delay_update", lambda self, delay=0.05: holds.append(delay))
        for key in "5353":
            await pilot.press(key)
            await pilot.pause(0.1)
        assert builds == first, "the same keys were drawn again"
        assert holds == [], "a built screen is shown without Textual's 50 ms hold"
        assert "New run" in footer_labels(app.screen) and app.current_mode == "training"
        await pilot.press("1")  # a screen not built yet still gets the hold that masks its compose
        assert holds == [0.05]


async def test_a_built_screen_still_takes_a_theme_changed_while_it_was_away(make_app):
    app = make_app("runs")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.2)
        runs = app.screen
        before = runs.styles.background
        await pilot.press("3")
        await pilot.pause(0.2)
        app.theme = "textual-light" if app.theme != "textual-light" else "textual-dark"
        await pilot.pause(0.2)
        await pilot.press("5")
        await pilot.pause(0.2)
        assert app.screen is runs
        assert runs.styles.background != before
        assert runs.styles.background == app.get_screen_stack("training")[-1].styles.background
