"""The console's side of a chat: generation settings and the chat process it talks to (no torch).

A chat runs in a process of its own (``python -m engine.chat``), never in the console's: it
imports torch, loads the model once and keeps it warm. ``ChatProcess`` starts it, sends it JSON
lines on its stdin (``load``, ``generate``, ``stop``) and reads its events, one JSON object a
line on its stdout (``loading``, ``ready``, ``token``, ``done``, ``error``; see ``engine.chat``).
The process is a plain child, not a session of its own: when the console ends, however it ends,
its stdin reaches end-of-file and it exits, and a hang-up of the terminal reaches it too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import IO, Any

from engine.errors import UserError
from engine.project import PROJECT_ROOT, child_pythonpath

LOG_NAME = "chat.log"
"""The chat process's own output (library warnings, a crash's traceback), in the workspace."""
SETTING_LIMITS: dict[str, tuple[float, float]] = {
    "max_new_tokens": (1, 4096), "temperature": (0.0, 5.0), "top_p": (0.01, 1.0)}
"""The allowed range of each generation setting (both ends included)."""


@dataclass(frozen=True)
class GenerationSettings:
    """How answers are generated; temperature 0 means greedy (top-p then plays no part)."""

    max_new_tokens: int = 128
    temperature: float = 0.0
    top_p: float = 0.9

    def with_value(self, key: str, text: str) -> GenerationSettings:
        """A copy with ``key`` set from typed text; UserError naming the key and its range."""
        names = [f.name for f in fields(self)]
        if key not in names:
            raise UserError(f"unknown setting {key!r} (settings: {', '.join(names)})")
        low, high = SETTING_LIMITS[key]
        kind = int if key == "max_new_tokens" else float
        try:
            value = kind(str(text).strip())
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            shown = f"{int(low)}..{int(high)}" if kind is int else f"{low:g}..{high:g}"
            raise UserError(f"{key} = {text!r}: expected {'a whole number' if kind is int else 'a number'} "
                            f"in {shown}")
        return replace(self, **{key: value})

    def describe(self) -> str:
        """One line: ``max new tokens 128 · temperature 0.7 · top-p 0.9`` (or ``greedy``)."""
        sampling = (f"temperature {self.temperature:g} · top-p {self.top_p:g}" if self.temperature > 0
                    else "greedy (temperature 0)")
        return f"max new tokens {self.max_new_tokens} · {sampling}"

    def as_dict(self) -> dict[str, Any]:
        """The settings as the chat process reads them."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


class ChatProcess:
    """The chat process of one workspace: started on first use, ended by ``close``.

    ``read`` blocks until the next event (a dict) and returns None once the process has ended;
    call it from one thread. The other methods may be called from any thread.
    """

    def __init__(self, workspace: Path) -> None:
        self.workspace = Path(workspace)
        self._process: subprocess.Popen[str] | None = None
        self._lock = threading.Lock()
        self._next_id = 0

    @property
    def log_path(self) -> Path:
        """Where the process's own output goes."""
        return self.workspace / LOG_NAME

    def alive(self) -> bool:
        """Whether the process is running."""
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start the process if it is not running (its output goes to ``log_path``)."""
        with self._lock:
            if self._process is not None and self._process.poll() is None:
                return
            env = {**os.environ, "PYTHONPATH": child_pythonpath(), "HF_HUB_DISABLE_PROGRESS_BARS": "1",
                   "TQDM_DISABLE": "1"}
            self.workspace.mkdir(mode=0o700, parents=True, exist_ok=True)
            flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
            with os.fdopen(os.open(self.log_path, flags, 0o600), "ab") as log:
                self._process = subprocess.Popen(
                    [sys.executable, "-m", "engine.chat", "--workspace", str(self.workspace)],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True, bufsize=1,
                    cwd=str(PROJECT_ROOT), env=env)

    def load(self, folder: Path) -> int:
        """Ask the (started) process to load a folder (``Engine.chat_target``); returns the request id."""
        return self._send({"op": "load", "model": str(folder)})

    def generate(self, messages: list[dict[str, str]], settings: GenerationSettings) -> int:
        """Ask for the assistant's answer to ``messages``; returns the request id its events carry."""
        return self._send({"op": "generate", "messages": messages, "settings": settings.as_dict()})

    def stop(self) -> None:
        """Stop the answer being generated (and any asked for before now); nothing when not running."""
        try:
            self._send({"op": "stop"})
        except UserError:
            pass

    def read(self) -> dict[str, Any] | None:
        """The next event from the process; None when it has ended."""
        process = self._process
        if process is None or process.stdout is None:
            return None
        for line in process.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue  # not ours: the process sends only JSON lines on this channel
            if isinstance(event, dict):
                return event
        process.wait()
        return None

    def close(self, timeout: float = 5.0) -> None:
        """End the process: close its stdin (it exits at end-of-file), kill it if it lingers."""
        with self._lock:
            process, self._process = self._process, None
        if process is None:
            return
        _close_quietly(process.stdin)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        _close_quietly(process.stdout)

    def _send(self, request: dict[str, Any]) -> int:
        """Write one request line; returns its id. UserError when the process is not running."""
        with self._lock:
            process = self._process
            if process is None or process.stdin is None or process.poll() is not None:
                raise UserError(f"the chat process is not running (its output: {self.log_path})")
            self._next_id += 1
            request = {**request, "id": self._next_id}
            try:
                process.stdin.write(json.dumps(request) + "\n")
                process.stdin.flush()
            except (BrokenPipeError, OSError, ValueError):
                pass  # the process ended: ``read`` returns None and the caller says so
            return self._next_id


def _close_quietly(stream: IO[str] | None) -> None:
    """Close a pipe, ignoring one already broken."""
    if stream is None:
        return
    try:
        stream.close()
    except (BrokenPipeError, OSError, ValueError):
        pass

