"""Try it in a real terminal: tmux runs the console; it chats with a fine-tuned checkpoint in the real chat process."""

from __future__ import annotations

import os
import shlex
import shutil
import sys
import time
from pathlib import Path

import pytest
from support import TAUGHT, finetuned_checkpoint
from test_tmux import Tmux

from engine.api import Engine
from engine.config import PROJECT_ROOT
from engine.workspace import Workspace

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (apt-get install tmux)")
RUN = "20260101-000000-chat"


@pytest.fixture
def tmux(tmp_path: Path):
    server = Tmux(f"llamahome-chat-test-{os.getpid()}")
    yield server
    server("kill-server")


def workspace_with_checkpoint(root: Path, checkpoint: Path) -> Path:
    """A workspace whose run history holds a finished run with the fine-tuned checkpoint."""
    engine = Engine(Workspace(root))
    engine.store.create_run(RUN, "train", {}, "tiny", "", output_dir=str(checkpoint.parent.parent))
    engine.store.update_run(RUN, status="finished")
    engine.store.add_checkpoint(RUN, 20, str(checkpoint), None)
    engine.close()
    return root


def keys(tmux: Tmux, *names: str, literal: str = "") -> None:
    """Press keys (tmux names) one at a time, or type ``literal`` text, as a person would."""
    for args in [["-l", literal]] if literal else [[name] for name in names]:
        assert tmux("send-keys", "-t", "console", *args).returncode == 0
        time.sleep(0.2)


def grows(tmux: Tmux, timeout: float = 20.0) -> bool | None:
    """Watch an answer stream: True once two looks mid-answer differ, None when it ended before that."""
    deadline, first = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        screen = tmux.screen()
        if "▌" not in screen:
            if "tokens/s)" in screen:
                return None
        elif first is None:
            first = screen
        elif screen != first:
            return True
        time.sleep(0.05)
    raise AssertionError(f"the answer neither grew nor ended; the screen was:\n{tmux.screen()}")


@pytest.mark.slow  # about a minute on a busy 2-core machine: a fine-tune, a console and a chat process
def test_chat_with_a_fine_tuned_checkpoint_in_a_real_terminal(tmux: Tmux, tiny_model_dir: Path, tmp_path: Path):
    checkpoint = finetuned_checkpoint(tiny_model_dir, tmp_path / "taught")
    workspace = workspace_with_checkpoint(tmp_path / "ws", checkpoint)
    command = shlex.join([sys.executable, "-m", "llamahome_tui", "--workspace", str(workspace)])
    started = tmux("new-session", "-d", "-s", "console", "-x", "80", "-y", "24", "-c", str(PROJECT_ROOT),
                   f"TERM=xterm-256color {command}")
    assert started.returncode == 0, started.stderr
    tmux.wait_for("6 Try it")
    keys(tmux, "6")
    tmux.wait_for("No model loaded")
    keys(tmux, "C-o")
    tmux.wait_for("checkpoints/step-000020")
    keys(tmux, "Enter")
    tmux.wait_for("ready · step-000020", timeout=180)  # the chat process imports torch: slow on a busy machine
    keys(tmux, literal=TAUGHT[0])
    keys(tmux, "Enter")
    screen = tmux.wait_for(f"model {TAUGHT[1]}  (", timeout=60)
    assert "tokens in" in screen and "tokens/s)" in screen
    # Sampled answers run long (up to the context): watch one grow on screen, then stop it with ctrl+c.
    keys(tmux, "C-g")
    tmux.wait_for("Generation settings")
    keys(tmux, "C-u")
    keys(tmux, literal="1000")
    keys(tmux, "Tab", "C-u")
    keys(tmux, literal="2")
    keys(tmux, "Enter")
    tmux.wait_for("max new tokens 1000 · temperature 2 · top-p 0.9")
    for _ in range(6):
        keys(tmux, "C-l")
        keys(tmux, literal=TAUGHT[0])
        keys(tmux, "Enter")
        if grows(tmux) and stopped(tmux):
            break
    else:
        pytest.fail("no sampled answer ran long enough to be seen growing and stopped")
    assert chat_processes(workspace), "the chat process runs while the console does"
    keys(tmux, "Escape")  # no answer in progress: back to the screen before, where q quits
    deadline = time.monotonic() + 10
    while "type a message" in tmux.screen():
        assert time.monotonic() < deadline, "Esc did not leave the Try it screen"
        time.sleep(0.1)
    keys(tmux, "q")
    deadline = time.monotonic() + 15
    while tmux.alive() or chat_processes(workspace):
        assert time.monotonic() < deadline, "the console or its chat process did not end on q"
        time.sleep(0.2)


def stopped(tmux: Tmux) -> bool:
    """Press ctrl+c mid-answer; True when the answer says it was stopped (False: it ended first)."""
    keys(tmux, "C-c")
    deadline = time.monotonic() + 30
    while "▌" in (screen := tmux.screen()):
        assert time.monotonic() < deadline, f"ctrl+c did not stop the answer; the screen was:\n{screen}"
        time.sleep(0.1)
    return ", stopped)" in screen


def chat_processes(workspace: Path) -> list[int]:
    """Pids of chat processes serving ``workspace`` (read from /proc; none are touched)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            words = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"engine.chat" in words and str(workspace).encode() in words:
            found.append(int(entry.name))
    return found
