"""An in-process stand-in for ``ChatProcess``: loads nothing, answers with a fixed reply a word at a time.

It speaks the chat process's events (``engine.chat``) through the same methods, so the Try it
screen runs unchanged and fast. With ``hold=True`` an answer waits for the test to ``stream``
its words and ``finish`` it, so a test can look at the screen mid-answer.
"""

from __future__ import annotations

import queue
from pathlib import Path
from typing import Any

from engine.chat_client import GenerationSettings

END = object()


class FakeChat:
    """Answers every message with ``reply``; records what it was asked."""

    def __init__(self, reply: str = "The capital of Peru is Lima.", hold: bool = False) -> None:
        self.reply_words = [w if i == 0 else " " + w for i, w in enumerate(reply.split(" "))]
        self.hold = hold
        self.events: queue.Queue[Any] = queue.Queue()
        self.requests: list[tuple[Any, ...]] = []
        self.started = self.closed = self.dead = False
        self.log_path = Path("chat.log")
        self._id = 0
        self._answering: int | None = None
        self._left: list[str] = []
        self._sent = 0

    def start(self) -> None:
        self.started, self.dead = True, False

    def alive(self) -> bool:
        return self.started and not self.closed and not self.dead

    def die(self) -> None:
        """End as a crashed process would: the reader sees the end of its output."""
        self.dead = True
        self.events.put(END)

    def load(self, folder: Path) -> int:
        self._id += 1
        self.requests.append(("load", Path(folder).name))
        self.events.put({"event": "loading", "id": self._id, "stage": "loading base tiny"})
        self.events.put({"event": "ready", "id": self._id, "model": str(folder), "kind": "adapter",
                         "base": "/models/tiny", "parameters": 109_632, "device": "cpu"})
        return self._id

    def generate(self, messages: list[dict[str, str]], settings: GenerationSettings) -> int:
        self._id += 1
        self.requests.append(("generate", [dict(m) for m in messages], settings))
        self._answering, self._left, self._sent = self._id, list(self.reply_words), 0
        if not self.hold:
            self.stream(len(self._left))
            self.finish()
        return self._id

    def stream(self, words: int) -> None:
        """Send the next ``words`` words of the answer."""
        for _ in range(words):
            self.events.put({"event": "token", "id": self._answering, "text": self._left.pop(0)})
            self._sent += 1

    def finish(self, reason: str = "end") -> None:
        """End the answer."""
        self.events.put({"event": "done", "id": self._answering, "reason": reason, "tokens": self._sent,
                         "seconds": 0.5, "trimmed": 0})
        self._answering = None

    def stop(self) -> None:
        self.requests.append(("stop",))
        if self._answering is not None:
            self.finish("stopped")

    def read(self) -> dict[str, Any] | None:
        event = self.events.get()
        return None if event is END else event

    def close(self, timeout: float = 5.0) -> None:
        self.closed = True
        self.events.put(END)
