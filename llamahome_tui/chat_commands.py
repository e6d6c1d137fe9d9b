"""``llamahome-tui --no-ui chat MODEL``: try a model in the terminal, its answer streamed as it comes.

MODEL is a checkpoint folder, a run's final model, an export, or a run id. The model loads in a
chat process of its own (``engine.chat``); this process never imports torch. With ``--prompt``
it answers that one message and exits (the answer alone on stdout, loading lines on stderr).
Without it, it reads a message a line from stdin and answers each in turn, keeping the
conversation; a line starting with ``/`` is a command: ``/temperature 0.7``, ``/top_p 0.9``,
``/max_new_tokens 64``, ``/settings``, ``/clear`` (forget the conversation), ``/quit``. Ctrl-C
stops an answer being generated; at the prompt it ends, as end of input does.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from engine.api import ChatProcess, Engine, GenerationSettings
from engine.errors import UserError
from llamahome_tui.chat_lines import done_line, ready_line
from llamahome_tui.commands import with_engine

EXIT_BAD_MODEL = 2
SETTING_FLAGS = ("max_new_tokens", "temperature", "top_p")


def register(commands: Any) -> None:
    """Add ``chat`` to the command line."""
    chat = commands.add_parser("chat", help="chat with a checkpoint, a final model, an export or a run's model")
    chat.add_argument("model", metavar="MODEL", help="a checkpoint, final model or export folder, or a run id")
    chat.add_argument("--prompt", help="answer this one message and exit")
    defaults = GenerationSettings()
    chat.add_argument("--max-new-tokens", help=f"longest answer in tokens (default {defaults.max_new_tokens})")
    chat.add_argument("--temperature", help=f"0 is greedy (default {defaults.temperature:g})")
    chat.add_argument("--top-p", help=f"nucleus sampling share when temperature > 0 (default {defaults.top_p:g})")
    chat.set_defaults(handler=with_engine(chat_command))


def settings_from_flags(args: argparse.Namespace) -> GenerationSettings:
    """The generation settings the flags ask for; UserError naming a bad one."""
    settings = GenerationSettings()
    for key in SETTING_FLAGS:
        value = getattr(args, key, None)
        if value is not None:
            settings = settings.with_value(key, value)
    return settings


def chat_command(engine: Engine, args: argparse.Namespace) -> int:
    """Load the model in a chat process, then answer ``--prompt`` or converse on stdin."""
    settings = settings_from_flags(args)
    folder = engine.chat_target(args.model)
    process = engine.open_chat()
    process.start()
    try:
        if not load(process, folder):
            return EXIT_BAD_MODEL
        if args.prompt is not None:
            return answer(process, [{"role": "user", "content": args.prompt}], settings)[0]
        return converse(process, settings)
    finally:
        process.close()


def say(text: str) -> None:
    """A status line on stderr (stdout holds only answers)."""
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def load(process: ChatProcess, folder: Path) -> bool:
    """Load the model, saying each stage on stderr; False (and the reason, one line) when it fails."""
    process.load(folder)
    while (event := process.read()) is not None:
        if event["event"] == "loading":
            say(f"loading: {event.get('stage', '')}…")
        elif event["event"] == "ready":
            say(f"ready: {ready_line(event)}")
            return True
        elif event["event"] == "error":
            say(f"error: {event.get('message', '')}")
            return False
    say(f"error: the chat process ended while loading (its output: {process.log_path})")
    return False


def answer(process: ChatProcess, messages: list[dict[str, str]], settings: GenerationSettings) -> tuple[int, str]:
    """Stream the answer to ``messages`` to stdout; returns (exit code, the answer). Ctrl-C stops it."""
    request, parts = process.generate(messages, settings), []
    while True:
        try:
            event = process.read()
        except KeyboardInterrupt:
            process.stop()
            continue
        if event is None:
            say(f"\nerror: the chat process ended (its output: {process.log_path})")
            return 1, ""
        if event.get("id") != request:
            continue
        if event["event"] == "token":
            parts.append(event["text"])
            sys.stdout.write(event["text"])
            sys.stdout.flush()
        elif event["event"] == "done":
            sys.stdout.write("\n")
            sys.stdout.flush()
            say(f"({done_line(event)})")
            return 0, "".join(parts)
        elif event["event"] == "error":
            say(f"\nerror: {event.get('message', '')}")
            return 1, ""


def converse(process: ChatProcess, settings: GenerationSettings) -> int:
    """Answer one message a line until end of input, ``/quit`` or Ctrl-C at the prompt."""
    messages: list[dict[str, str]] = []
    interactive = sys.stdin.isatty()
    if interactive:
        say("type a message; /settings, /temperature X, /top_p X, /max_new_tokens N, /clear, /quit")
    while True:
        try:
            line = input("you> ") if interactive else sys.stdin.readline()
        except (EOFError, KeyboardInterrupt):
            return 0
        if not interactive and not line:
            return 0
        text = line.strip()
        if not text:
            continue
        if text.startswith("/"):
            if text.split()[0] in ("/quit", "/exit"):
                return 0
            settings, messages = command(text, settings, messages)
            continue
        messages.append({"role": "user", "content": text})
        code, reply = answer(process, messages, settings)
        if code:
            messages.pop()
        else:
            messages.append({"role": "assistant", "content": reply})


def command(text: str, settings: GenerationSettings,
            messages: list[dict[str, str]]) -> tuple[GenerationSettings, list[dict[str, str]]]:
    """Apply a ``/`` command: a setting, ``/settings`` or ``/clear``; a bad one is said and ignored."""
    name, _, value = text[1:].partition(" ")
    key = name.replace("-", "_")
    if key == "clear":
        say("conversation cleared")
        return settings, []
    if key != "settings":
        try:
            settings = settings.with_value(key, value)
        except UserError as exc:
            say(f"error: {exc}")
            return settings, messages
    say(settings.describe())
    return settings, messages
