"""End the console when its terminal goes away without a hang-up signal.

Closing a terminal normally sends SIGHUP, which ends the console (runs are their own processes
and carry on). When the terminal is not the console's controlling terminal (started under a
supervisor, ``setsid``, ``nohup``, a test harness) no signal comes: Textual's input thread then
reads end-of-file in a busy loop and its output thread dies on EIO, so the console spun at 100 %
of a core for ever, unseen. A daemon thread checks once a second that the terminal still answers
(``isatty`` fails once it is hung up) and then ends the process as a hang-up would.
"""

from __future__ import annotations

import os
import signal
import threading
import time

HUNG_UP_EXIT = 128 + signal.SIGHUP
"""The exit code of a process ended by SIGHUP, used when the signal is ignored here."""


def watch_terminal(fd: int, interval_s: float = 1.0) -> threading.Thread | None:
    """Start the watch on ``fd`` (the console's stdin); None when it is not a terminal to begin with."""
    if not os.isatty(fd):
        return None

    def watch() -> None:
        while os.isatty(fd):
            time.sleep(interval_s)
        os.kill(os.getpid(), signal.SIGHUP)
        time.sleep(interval_s)
        os._exit(HUNG_UP_EXIT)  # SIGHUP is ignored (nohup): nothing can be drawn any more, so end anyway

    thread = threading.Thread(target=watch, name="terminal-watch", daemon=True)
    thread.start()
    return thread
