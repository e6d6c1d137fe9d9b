"""A console whose terminal vanishes without a hang-up signal ends instead of spinning."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

from engine.config import PROJECT_ROOT
from llamahome_tui.terminal_watch import HUNG_UP_EXIT


def read_until(master: int, marker: bytes, timeout: float = 30.0) -> bytes:
    """Read the terminal until ``marker`` shows."""
    seen, deadline = b"", time.monotonic() + timeout
    while marker not in seen:
        assert time.monotonic() < deadline, f"never saw {marker!r}: {seen[-400:]!r}"
        if select.select([master], [], [], 0.5)[0]:
            seen += os.read(master, 65536)
    return seen


def test_console_ends_when_its_terminal_is_closed_without_sighup(tmp_path: Path):
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    # a session of its own that never takes the pty as controlling terminal: no SIGHUP on close
    console = subprocess.Popen([sys.executable, "-m", "llamahome_tui", "--workspace", str(tmp_path / "ws")],
                               stdin=slave, stdout=slave, stderr=slave, cwd=PROJECT_ROOT, start_new_session=True,
                               env={**os.environ, "TERM": "xterm-256color"})
    os.close(slave)
    try:
        read_until(master, b"Quit")
        os.close(master)
        code = console.wait(timeout=15)
        assert code in (-signal.SIGHUP, HUNG_UP_EXIT)
    finally:
        if console.poll() is None:
            console.kill()
            console.wait()
