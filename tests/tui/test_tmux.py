"""The real console in a real terminal: tmux runs it, send-keys drives it, capture-pane reads it."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.config import PROJECT_ROOT

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (apt-get install tmux)")


class Tmux:
    """A private tmux server (its own socket) holding one 80×24 session."""

    def __init__(self, name: str) -> None:
        self.socket = name

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=10)

    def screen(self) -> str:
        """The visible text of the pane."""
        return self("capture-pane", "-p", "-t", "console").stdout

    def wait_for(self, text: str, timeout: float = 20.0) -> str:
        """Wait until ``text`` shows on the screen; returns the screen."""
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if text in screen:
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} never showed; the screen was:\n{screen}")
            time.sleep(0.2)

    def alive(self) -> bool:
        """Whether the session (the console) is still running."""
        return self("has-session", "-t", "console").returncode == 0


@pytest.fixture
def tmux(tmp_path: Path):
    server = Tmux(f"llamahome-test-{os.getpid()}")
    yield server
    server("kill-server")


def test_console_in_a_real_terminal(tmux: Tmux, tmp_path: Path):
    command = shlex.join([sys.executable, "-m", "llamahome_tui", "--workspace", str(tmp_path / "ws")])
    started = tmux("new-session", "-d", "-s", "console", "-x", "80", "-y", "24", "-c", str(PROJECT_ROOT),
                   f"TERM=xterm-256color {command}")
    assert started.returncode == 0, started.stderr
    screen = tmux.wait_for("1 Datasets")
    assert "2 Config" in screen and "5 Runs" in screen and "q Quit" in screen
    tmux("send-keys", "-t", "console", "5")
    tmux.wait_for("best eval")
    tmux("send-keys", "-t", "console", "?")
    tmux.wait_for("Keys: Runs")
    tmux("send-keys", "-t", "console", "Escape")
    deadline = time.monotonic() + 10
    while "Keys: Runs" in tmux.screen():
        assert time.monotonic() < deadline, "Esc did not close the help"
        time.sleep(0.2)
    tmux("send-keys", "-t", "console", "q")
    deadline = time.monotonic() + 10
    while tmux.alive():
        assert time.monotonic() < deadline, "q did not quit the console"
        time.sleep(0.2)
