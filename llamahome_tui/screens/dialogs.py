"""Modal dialogs: confirm, quit-with-a-live-run, start-while-live, a one-line prompt and the key help.

Each returns its answer with ``ModalScreen.dismiss(value)``; Esc always dismisses with "no"
(``False`` / ``None`` / ``"cancel"``). Every choice has a one-letter key, so no mouse is needed.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static


class ConfirmScreen(ModalScreen[bool]):
    """Ask a yes/no question (y / n, Esc = no); dismisses with the answer."""

    BINDINGS = [Binding("y", "answer(True)", "Yes"), Binding("n,escape", "answer(False)", "No")]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        """The question and the keys."""
        with Vertical(classes="dialog"):
            yield Label(self.question, classes="dialog-question")
            yield Label("[b]y[/b] yes    [b]n[/b] / [b]esc[/b] no", classes="dialog-keys")

    def action_answer(self, answer: bool) -> None:
        """Close with the answer."""
        self.dismiss(answer)


class QuitScreen(ModalScreen[str]):
    """Quitting with live runs: leave them running, stop them (with a checkpoint) or cancel."""

    BINDINGS = [Binding("l", "choose('leave')", "Leave running"),
                Binding("s", "choose('stop')", "Stop runs"),
                Binding("escape,c", "choose('cancel')", "Cancel")]

    def __init__(self, run_ids: list[str]) -> None:
        super().__init__()
        self.run_ids = run_ids

    def compose(self) -> ComposeResult:
        """The live runs and the three choices."""
        runs = ", ".join(self.run_ids)
        with Vertical(classes="dialog"):
            yield Label(f"Live run{'s' if len(self.run_ids) > 1 else ''}: {runs}", classes="dialog-question")
            yield Label("Quitting never kills a run. Leave it running in the background, or stop it "
                        "(it writes a checkpoint first)?")
            yield Label("[b]l[/b] leave running   [b]s[/b] stop   [b]esc[/b] cancel", classes="dialog-keys")

    def action_choose(self, choice: str) -> None:
        """Close with ``leave``, ``stop`` or ``cancel``."""
        self.dismiss(choice)


class StartScreen(ModalScreen[str]):
    """Starting a run while others are live: run it beside them, queue it after them, or cancel."""

    BINDINGS = [Binding("b", "choose('beside')", "Run beside"),
                Binding("q", "choose('queue')", "Queue"),
                Binding("escape,c", "choose('cancel')", "Cancel")]

    def __init__(self, run_ids: list[str], data: str) -> None:
        super().__init__()
        self.run_ids, self.data = run_ids, data

    def compose(self) -> ComposeResult:
        """The live runs and the three choices."""
        many = len(self.run_ids) > 1
        with Vertical(classes="dialog"):
            yield Label(f"{'Runs' if many else 'A run'} already live: {', '.join(self.run_ids)}",
                        classes="dialog-question")
            yield Label(f"Start the run on {self.data} beside {'them' if many else 'it'} (they share the "
                        f"cores), or queue it to start when {'they end' if many else 'it ends'}?")
            yield Label("[b]b[/b] run beside   [b]q[/b] queue   [b]esc[/b] cancel", classes="dialog-keys")

    def action_choose(self, choice: str) -> None:
        """Close with ``beside``, ``queue`` or ``cancel``."""
        self.dismiss(choice)


class PromptScreen(ModalScreen["str | None"]):
    """Ask for one line of text (a path, a run id); Enter answers, Esc cancels with None."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, question: str, value: str = "", placeholder: str = "") -> None:
        super().__init__()
        self.question, self.value, self.placeholder = question, value, placeholder

    def compose(self) -> ComposeResult:
        """The question and the input."""
        with Vertical(classes="dialog"):
            yield Label(self.question, classes="dialog-question")
            yield Input(self.value, placeholder=self.placeholder, id="prompt-input")
            yield Label("[b]enter[/b] ok    [b]esc[/b] cancel", classes="dialog-keys")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Answer with the text (None when empty)."""
        event.stop()
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        """Answer None."""
        self.dismiss(None)


class HelpScreen(ModalScreen[None]):
    """The keys that work on the screen underneath, and the global ones."""

    BINDINGS = [Binding("escape,question_mark,q", "close", "Close"),
                Binding("j", "scroll('down')", "Down", show=False),
                Binding("k", "scroll('up')", "Up", show=False)]

    def __init__(self, title: str, keys: list[tuple[str, str]], intro: str = "") -> None:
        super().__init__()
        self.title_text, self.keys, self.intro = title, keys, intro

    def compose(self) -> ComposeResult:
        """A two-column list of key and action."""
        text = Text()
        for key, description in self.keys:
            text.append(f"{key:>10}  ", style="bold")
            text.append(f"{description}\n")
        with Vertical(classes="dialog help"):
            yield Label(f"Keys: {self.title_text}", classes="dialog-question")
            if self.intro:
                yield Label(self.intro, classes="dialog-intro")
            with VerticalScroll():
                yield Static(text)
            yield Label("[b]esc[/b] close", classes="dialog-keys")

    def on_resize(self) -> None:
        """Say when the list goes on below (an 80×24 terminal hides the global keys at its end)."""
        self.call_after_refresh(self.show_more)

    def show_more(self) -> None:
        """``↓ more keys`` in the keys line while the list is taller than its room."""
        more = self.query_one(VerticalScroll).max_scroll_y > 0
        keys = "[b]↓ j[/b] more keys   [b]esc[/b] close" if more else "[b]esc[/b] close"
        self.query_one(".dialog-keys", Label).update(keys)

    def action_scroll(self, where: str) -> None:
        """``j`` / ``k``: scroll the list a line."""
        scroll = self.query_one(VerticalScroll)
        (scroll.scroll_down if where == "down" else scroll.scroll_up)(animate=False)

    def action_close(self) -> None:
        """Close the help."""
        self.dismiss(None)
