"""The Try it screen: chat with a checkpoint, a run's final model or an export, its answer streaming in.

The model loads in a chat process of its own (``Engine.open_chat``, ``python -m engine.chat``),
never in the console: started when a model is first picked, kept warm while the console runs
(another pick loads the new model into the same process) and ended when the console exits; if
the console dies, the process reads end-of-file and ends too. A reader thread takes its events
(loading stages, tokens, the end of an answer, errors) into an ``EventInbox`` and announces a
batch with one ``ChatArrived``, so a fast model cannot flood the screen with one message a token.

Keys: ctrl+o picks the model (from the run history, or a folder or run id typed), Enter sends the
message typed, Esc (or ctrl+c) stops an answer being generated and otherwise goes back (ctrl+c
quits, as everywhere, except within ``LATE_STOP_S`` of an answer's end: that one meant to stop
it), ctrl+g changes the generation settings shown under the model line, ctrl+l clears the
conversation.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.text import Text
from textual import work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Input, Static

from engine.api import ChatProcess, GenerationSettings, UserError
from llamahome_tui.chat_lines import done_line, loaded_line
from llamahome_tui.messages import ChatArrived
from llamahome_tui.screens.base import ConsoleScreen
from llamahome_tui.screens.chat_dialogs import ChatSettingsScreen, ModelPickScreen, shown_path

LATE_STOP_S = 2.0
"""A ctrl+c this soon after an answer ended was meant to stop it: it does not quit the console."""
NO_MODEL = "No model loaded: ctrl+o picks a checkpoint, a run's final model or an export"


class EventInbox:
    """Events read by the reader thread and not yet taken by the screen."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: list[dict[str, Any]] = []

    def put(self, event: dict[str, Any]) -> bool:
        """Add an event; True when the inbox was empty (the screen needs telling)."""
        with self._lock:
            self._events.append(event)
            return len(self._events) == 1

    def take(self) -> list[dict[str, Any]]:
        """Every waiting event, oldest first."""
        with self._lock:
            events, self._events = self._events, []
        return events


def turn_text(role: str, content: str, note: str = "", streaming: bool = False) -> Text:
    """One turn of the conversation: who speaks, what was said, and a note (stopped, an error)."""
    text = Text()
    text.append("you  " if role == "user" else "model ", style="bold cyan" if role == "user" else "bold green")
    text.append(content)
    if streaming:
        text.append("▌", style="bold")
    if note:
        text.append(f"  ({note})", style="red" if note.startswith("error") else "dim italic")
    return text


class ChatScreen(ConsoleScreen):
    """Pick a model, then talk to it; the answer streams in as it is generated."""

    MODE = "chat"
    HELP = ("Try a model: ctrl+o picks a checkpoint, a run's final model or an export (or type a folder or a run "
            "id); type a message and press Enter. The model runs in a process of its own.")
    BINDINGS = [
        Binding("ctrl+o", "pick_model", "Model"),
        Binding("ctrl+g", "settings", "Settings"),
        Binding("ctrl+l", "clear", "Clear"),
        Binding("escape", "stop", "Stop"),
        Binding("ctrl+c", "interrupt", "Stop", show=False, priority=True),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.chat: ChatProcess | None = None
        self.inbox = EventInbox()
        self.settings = GenerationSettings()
        self.messages: list[dict[str, str]] = []
        self.model: str | None = None
        """The folder of the model loaded (or loading)."""
        self.load_request: int | None = None
        self.request: int | None = None
        """The answer being generated."""
        self.reply: list[str] = []
        self.answer_ended = -LATE_STOP_S
        """When the last answer ended (monotonic): a ctrl+c right after it was meant to stop it."""

    def compose_body(self) -> ComposeResult:
        """The model line, the settings line, the conversation and the message input."""
        yield Static(NO_MODEL, id="chat-status")
        yield Static(self.settings_line(), id="chat-settings")
        with VerticalScroll(id="chat-log"):
            yield Static("The conversation shows here; answers stream in as they are generated.",
                         id="chat-empty", classes="muted")
        yield Input(placeholder="type a message, enter sends", id="chat-input")

    def on_mount(self) -> None:
        """Start typing at once."""
        self.query_one("#chat-input", Input).focus()

    def on_unmount(self) -> None:
        """End the chat process with the screen (the console is closing)."""
        if self.chat is not None:
            self.chat.close(timeout=2.0)

    def commands(self) -> Iterable[SystemCommand]:
        """Palette entries for this screen."""
        yield SystemCommand("Try a model", "pick a checkpoint, final model or export to chat with",
                            self.action_pick_model)
        yield SystemCommand("Generation settings", "max new tokens, temperature, top-p", self.action_settings)
        yield SystemCommand("Clear the conversation", "start the chat afresh", self.action_clear)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Esc and ctrl+c stop an answer only while one is generated (else they do what they do elsewhere)."""
        if action == "stop":
            return self.request is not None
        if action == "interrupt":
            return self.request is not None or time.monotonic() - self.answer_ended < LATE_STOP_S
        return True

    # What the user does

    def action_pick_model(self) -> None:
        """Ask which model, then load it."""
        def chosen(answer: str | None) -> None:
            if answer:
                self.status(f"checking {escape(answer)}…")
                self.resolve(answer)

        self.app.push_screen(ModelPickScreen(self.engine.chat_models(), self.engine.workspace.root), chosen)

    @work(thread=True, exclusive=True, group="chat-resolve")
    def resolve(self, name: str) -> None:
        """Turn what was picked or typed into a loadable folder (off the UI thread)."""
        try:
            event = {"event": "resolved", "model": str(self.engine.chat_target(name))}
        except UserError as exc:
            event = {"event": "error", "id": None, "message": str(exc)}
        if self.inbox.put(event):
            self.post_message(ChatArrived())

    def action_settings(self) -> None:
        """Change the generation settings."""
        def chosen(settings: GenerationSettings | None) -> None:
            if settings is not None:
                self.settings = settings
                self.query_one("#chat-settings", Static).update(self.settings_line())

        self.app.push_screen(ChatSettingsScreen(self.settings), chosen)

    def action_clear(self) -> None:
        """Forget the conversation (stopping an answer being generated)."""
        self.action_stop()
        self.request, self.messages, self.reply = None, [], []
        self.query_one("#chat-log").remove_children()
        self.refresh_bindings()

    def action_interrupt(self) -> None:
        """ctrl+c: stop the answer; one that ended a moment ago was what it meant, so do nothing more
        (not quit the console with the conversation; the answer shows it ended); the next ctrl+c
        quits as everywhere."""
        if self.request is None:
            self.answer_ended = -LATE_STOP_S
            return
        self.action_stop()

    def action_stop(self) -> None:
        """Stop the answer being generated."""
        if self.request is not None and self.chat is not None:
            self.chat.stop()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Send the message typed, with the conversation so far."""
        text = event.value.strip()
        if not text:
            return
        if self.chat is None or self.model is None or not self.chat.alive():
            self.status(f"[yellow]{NO_MODEL}[/yellow]")
            return
        if self.load_request is not None:
            self.status(f"[yellow]wait: {self.model_name()} is still loading[/yellow]")
            return
        if self.request is not None:
            self.status("[yellow]an answer is being generated: esc stops it[/yellow]")
            return
        try:
            self.request = self.chat.generate([*self.messages, {"role": "user", "content": text}], self.settings)
        except UserError as exc:  # the process ended just now; its reader says so too
            self.status(f"[red]error:[/red] {escape(str(exc))}")
            return
        event.input.value = ""
        self.messages.append({"role": "user", "content": text})
        self.add_turn(turn_text("user", text))
        self.reply = []
        self.add_turn(turn_text("assistant", "", streaming=True), reply=True)
        self.refresh_bindings()

    # What the chat process says

    def on_chat_arrived(self, message: ChatArrived) -> None:
        """Apply every event waiting, in order; the tokens among them are drawn once."""
        streamed = False
        for event in self.inbox.take():
            if event.get("event") == "token" and event.get("id") == self.request:
                self.reply.append(str(event.get("text", "")))
                streamed = True
            else:
                self.apply(event)
        if streamed and self.request is not None:
            self.update_reply(streaming=True)

    def apply(self, event: dict[str, Any]) -> None:
        """One event: a model resolved, a loading stage, ready, an answer's end, an error."""
        kind, request = event.get("event"), event.get("id")
        if kind == "resolved":
            self.load(event["model"])
        elif kind == "loading" and request == self.load_request:
            self.status(f"loading {self.model_name()}: {escape(str(event.get('stage', '')))}…")
        elif kind == "ready" and request == self.load_request:
            self.load_request = None
            loaded = escape(loaded_line(event))
            self.status(f"[green]ready[/green] · [b]{self.model_name()}[/b]{self.run_note()} · {loaded}")
        elif kind == "done" and request == self.request:
            self.end_reply(done_line(event))
        elif kind == "error":
            self.error(request, str(event.get("message", "")))
        elif kind == "exit":
            self.chat_ended()

    def load(self, folder: str) -> None:
        """Load a resolved folder into the chat process (starting it and its reader on first use)."""
        if self.chat is None:
            self.chat = self.engine.open_chat()
        if not self.chat.alive():
            self.chat.start()
            self.read_events(self.chat)
        self.model = folder
        self.status(f"loading {self.model_name()}…")
        try:
            self.load_request = self.chat.load(Path(folder))
        except UserError as exc:
            self.error(None, str(exc))

    @work(thread=True, group="chat-reader")
    def read_events(self, chat: ChatProcess) -> None:
        """Read the chat process's events until it ends; announce each batch once."""
        while (event := chat.read()) is not None:
            if self.inbox.put(event):
                self.post_message(ChatArrived())
        if self.inbox.put({"event": "exit"}):
            self.post_message(ChatArrived())

    def error(self, request: int | None, message: str) -> None:
        """An error: a bad pick (the model line says it, naming the path) or a failed answer."""
        if request is not None and request == self.request:
            self.end_reply(f"error: {message}")
            return
        if request is not None and request == self.load_request:
            self.load_request, self.model = None, None
        self.status(f"[red]error:[/red] {escape(message)}")

    def chat_ended(self) -> None:
        """The chat process ended unasked: say so; the next pick starts a new one."""
        if self.request is not None:
            self.end_reply("error: the chat process ended")
        self.model, self.load_request = None, None
        log = self.chat.log_path if self.chat is not None else "chat.log"
        self.status(f"[red]the chat process ended[/red] (its output: {escape(str(log))}); ctrl+o loads a model")

    # Drawing

    def add_turn(self, text: Text, reply: bool = False) -> None:
        """Append a turn to the conversation and scroll to it."""
        log = self.query_one("#chat-log", VerticalScroll)
        for empty in log.query("#chat-empty"):
            empty.remove()
        log.mount(Static(text, classes="chat-turn reply" if reply else "chat-turn"))
        log.scroll_end(animate=False)

    def update_reply(self, streaming: bool, note: str = "") -> None:
        """Redraw the answer being generated."""
        replies = self.query(".reply")
        if replies:
            replies.last(Static).update(turn_text("assistant", "".join(self.reply), note, streaming))
            self.query_one("#chat-log", VerticalScroll).scroll_end(animate=False)

    def end_reply(self, note: str) -> None:
        """The answer is complete (or stopped, or failed): keep it, noted with how it went."""
        self.update_reply(streaming=False, note=note)
        if note.startswith("error"):
            self.messages.pop()
        else:
            self.messages.append({"role": "assistant", "content": "".join(self.reply)})
        self.request, self.answer_ended = None, time.monotonic()
        self.refresh_bindings()

    def status(self, text: str) -> None:
        """The one-line model and state line."""
        self.query_one("#chat-status", Static).update(text)

    def settings_line(self) -> str:
        """The generation settings and the key that changes them."""
        return f"{self.settings.describe()}   [dim](ctrl+g changes)[/dim]"

    def model_name(self) -> str:
        """The loaded model's folder name (markup-safe)."""
        return escape(Path(self.model).name) if self.model else "?"

    def run_note(self) -> str:
        """`` (run …)`` when the model is inside a run's folder of the workspace."""
        if not self.model:
            return ""
        parts = Path(shown_path(self.model, self.engine.workspace.root)).parts
        return f" (run {escape(parts[1])})" if len(parts) > 2 and parts[0] == "runs" else ""
