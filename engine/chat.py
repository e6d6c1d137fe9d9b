"""``python -m engine.chat --workspace DIR``: the process a chat runs in (it imports torch; the console never does).

Requests come on stdin and events go out on stdout, one JSON object a line; every event carries
the ``id`` of the request it answers:

- ``{"op": "load", "id": 1, "model": FOLDER}`` → ``loading`` events (``stage``), then ``ready``
  (``model``, ``kind`` adapter|model, ``base``, ``parameters``, ``device``) or ``error`` (``message``).
- ``{"op": "generate", "id": 2, "messages": [...], "settings": {...}}`` → ``token`` events
  (``text``), then ``done`` (``reason`` end|length|stopped, ``tokens``, ``seconds``, ``trimmed``)
  or ``error``. ``settings`` are ``GenerationSettings`` fields, checked the same way.
- ``{"op": "stop", "id": 3}`` stops the answer being generated and any asked for before it.

Loads and answers run one after another on a thread of their own, so a ``stop`` is read while an
answer is generated. At end-of-file on stdin (the console or command ended, however it ended)
the process exits at once, mid-answer or not, so it never outlives its user. Ctrl-C is ignored:
a terminal's Ctrl-C reaches the whole process group, and stopping is the client's to ask.

Why pipes and not the SQLite bus that runs use: a chat has one client and lives exactly as long
as it; a pipe ends the process with its client (no heartbeat, no orphan), carries each token the
moment it exists (the bus is polled), and a chat has nothing the run history should keep.
Library output is moved off stdout (to stderr, the workspace's ``chat.log``) so that only
events travel there.

As in a training worker (``engine.unused_libs``), the quantization libraries a model does not
need (bitsandbytes, torchao) are hidden before transformers is first imported: peft and
transformers import them whenever installed, which costs seconds. A later model that needs one
(a pre-quantized folder, such as a qat run's final model) makes the process start afresh in
place (``exec``: same pid, same pipes) and load it there.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import queue
import signal
import sys
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from engine.chat_client import GenerationSettings
from engine.chat_models import chat_source
from engine.errors import UserError
from engine.quiet import quiet_libraries
from engine.unused_libs import NEEDED_BY, hide, is_prequantized
from engine.workspace import Workspace

Write = Callable[[dict[str, Any]], None]
Restart = Callable[[Path, int], None]
"""Start the process afresh to load a folder (for request id): never returns."""


class ChatServer:
    """Runs a chat process's requests in order on one thread; ``stop`` acts at once."""

    def __init__(self, workspace: Workspace, write: Write, restart: Restart | None = None) -> None:
        self.workspace = workspace
        self._write = write
        self._restart = restart
        self._hidden: list[str] = []
        """Quantization libraries hidden from this process."""
        self._jobs: queue.Queue[dict[str, Any]] = queue.Queue()
        self._highest = 0
        self._stop_below = 0
        """Answers asked for with an id below this are stopped."""
        self._loaded: Any = None
        self._store: Any = None
        threading.Thread(target=self._serve, name="chat-jobs", daemon=True).start()

    def emit(self, event: str, request_id: int, **fields: Any) -> None:
        """Send one event."""
        self._write({"event": event, "id": request_id, **fields})

    def handle(self, line: str) -> None:
        """Take one request line: stop now, or queue a load or an answer."""
        try:
            request = json.loads(line)
        except ValueError:
            request = None
        if not isinstance(request, dict):
            self.emit("error", 0, message=f"not a JSON request object: {line.strip()[:80]!r}")
            return
        op, request_id = request.get("op"), int(request.get("id") or 0)
        if op == "stop":
            self._stop_below = max(self._stop_below, request_id or self._highest + 1)
        elif op in ("load", "generate"):
            self._highest = max(self._highest, request_id)
            self._jobs.put(request)
        else:
            self.emit("error", request_id, message=f"unknown op {op!r} (load, generate, stop)")

    def _serve(self) -> None:
        """Run the queued requests one after another; every failure is an ``error`` event."""
        while True:
            request = self._jobs.get()
            request_id = int(request.get("id") or 0)
            try:
                if request["op"] == "load":
                    self._load(request_id, Path(str(request.get("model", ""))))
                else:
                    self._generate(request_id, request)
            except UserError as exc:
                self.emit("error", request_id, message=str(exc))
            except Exception as exc:  # noqa: BLE001 - the process stays up; the details go to its log
                traceback.print_exc()
                self.emit("error", request_id, message=f"{type(exc).__name__}: {exc}")

    def _load(self, request_id: int, folder: Path) -> None:
        """Load a model (dropping the one loaded before) and say when it is ready."""
        self._loaded = None
        gc.collect()
        self._quantizers_for(request_id, folder)
        self.emit("loading", request_id, stage="starting torch and transformers")
        from engine.train.chat_model import load_chat_model

        loaded = load_chat_model(folder, self.workspace.models_dir,
                                 lambda stage: self.emit("loading", request_id, stage=stage))
        self._loaded = loaded
        self.emit("ready", request_id, model=str(folder), **loaded.description)

    def _quantizers_for(self, request_id: int, folder: Path) -> None:
        """Hide the quantization libraries the first model does not need; restart for one that needs them."""
        source = chat_source(folder, self.workspace.models_dir)  # UserError naming a bad folder
        quantized = any(is_prequantized(f) for f in (source.folder, source.base) if f is not None)
        if quantized and self._hidden:
            if self._restart is None:
                raise UserError(f"{folder}: a pre-quantized model needs {' and '.join(self._hidden)}, "
                                "hidden in this chat process; load it in a new one")
            self.emit("loading", request_id, stage="restarting the chat process with its quantization libraries")
            self._restart(folder, request_id)
        if not quantized and "transformers" not in sys.modules:
            self._hidden = hide(NEEDED_BY)

    def _generate(self, request_id: int, request: dict[str, Any]) -> None:
        """Stream the answer to a conversation as ``token`` events, then ``done``."""
        if self._loaded is None:
            raise UserError("no model loaded: pick one first")
        messages = _messages(request.get("messages"))
        settings = GenerationSettings()
        for key, value in (request.get("settings") or {}).items():
            settings = settings.with_value(str(key), str(value))
        from engine.train.chat_model import stream_reply

        result = stream_reply(self._loaded, messages, settings.max_new_tokens, settings.temperature,
                              settings.top_p, lambda: request_id < self._stop_below,
                              lambda text: self.emit("token", request_id, text=text), self._threads())
        self.emit("done", request_id, **result)

    def _threads(self) -> int | None:
        """Torch threads for an answer: this process's share of the cores among computing runs.

        None (torch's own choice) when ``OMP_NUM_THREADS`` says how many.
        """
        if os.environ.get("OMP_NUM_THREADS"):
            return None
        from engine.store import RunStore
        from engine.threads import computing_runs, physical_cores, plan

        if self._store is None:
            self._store = RunStore(self.workspace.db_path)
        return plan("chat", computing_runs(self._store), physical_cores()).threads


def _messages(value: Any) -> list[dict[str, str]]:
    """The conversation of a request: a list of ``{role, content}`` strings; UserError otherwise."""
    if not isinstance(value, list) or not value:
        raise UserError("a generate request needs 'messages': a non-empty list")
    for message in value:
        if not (isinstance(message, dict) and isinstance(message.get("role"), str)
                and isinstance(message.get("content"), str)):
            raise UserError(f"every message needs a 'role' and a 'content' string, got {message!r:.80}")
    return [{"role": m["role"], "content": m["content"]} for m in value]


def _event_channel() -> IO[str]:
    """The real stdout, kept for events; fd 1 then points at stderr, so stray prints go to the log."""
    channel = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)
    return channel


def main(argv: list[str] | None = None) -> int:
    """Serve requests from stdin until it ends."""
    parser = argparse.ArgumentParser(prog="python -m engine.chat")
    parser.add_argument("--workspace", required=True, help="the workspace (its built-in base, its runs)")
    parser.add_argument("--load", help="load this folder first (a restart does)")
    parser.add_argument("--load-id", type=int, default=0, help="the request id the first load answers")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    channel = _event_channel()
    quiet_libraries()
    lock = threading.Lock()

    def write(event: dict[str, Any]) -> None:
        with lock:
            try:
                channel.write(json.dumps(event) + "\n")
                channel.flush()
            except (BrokenPipeError, OSError, ValueError):
                os._exit(0)  # the client is gone

    def restart(folder: Path, request_id: int) -> None:
        with lock:
            channel.flush()
            sys.stderr.flush()
            os.dup2(channel.fileno(), 1)  # the events' pipe is stdout again for the new program
            os.execv(sys.executable, [sys.executable, "-m", "engine.chat", "--workspace", args.workspace,
                                      "--load", str(folder), "--load-id", str(request_id)])

    server = ChatServer(Workspace(Path(args.workspace)), write, restart)
    if args.load:
        server.handle(json.dumps({"op": "load", "id": args.load_id, "model": args.load}))
    for line in sys.stdin:
        if line.strip():
            server.handle(line)
    sys.stderr.flush()
    os._exit(0)  # end now, even mid-answer: nobody is listening any more


if __name__ == "__main__":
    raise SystemExit(main())
