"""Console latency: time to first frame from launch, and keypress latency under load.

Both are measured on the real ``llamahome-tui`` process in a pseudo-terminal (80×24), reading
what it draws:

- first frame: from ``exec`` until the mode bar and the first screen's footer are drawn, on a
  workspace with a run history; references started the same way: a bare Python printing one
  word (the floor any Python UI pays) and the smallest Textual app (a header, one label and a
  footer) until its label is drawn. Each is the median of ``FRAME_ROUNDS`` launches, taken in
  turn. The project's modules are compiled to bytecode first, as Textual's are in site-packages
  (an installed package has its bytecode; with ``PYTHONDONTWRITEBYTECODE`` set, an editable
  checkout would otherwise compile every module of ours at every launch and Textual's none).
- keypress: while every core is kept busy by spinning processes and a fake run floods the store
  with step events (as a very fast run would), the console follows that run; we press 5 / 3 to
  flip between the runs and training screens and time until the new screen's text is drawn, and
  ``?`` to open the help dialog (a new screen composed on each press) until its title is drawn.

Goals: first frame <= 1 s and <= 1.5x the smallest Textual app's, keypress <= 100 ms.
Usage: ``.venv/bin/python bench/ui_latency.py``.
"""

from __future__ import annotations

import fcntl
import multiprocessing
import os
import pty
import select
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import write_result  # noqa: E402
from engine.events import Started, Step  # noqa: E402
from engine.store import RunStore  # noqa: E402

FIRST_FRAME_GOAL_S = 1.0
FIRST_FRAME_RATIO_GOAL = 1.5
FRAME_ROUNDS = 5
SMALLEST_TEXTUAL_APP = (
    "from textual.app import App\n"
    "from textual.widgets import Footer, Header, Label\n"
    "class Smallest(App):\n"
    "    def compose(self):\n"
    "        yield Header()\n"
    "        yield Label('Smallest-ready')\n"
    "        yield Footer()\n"
    "Smallest().run()\n"
)
KEYPRESS_GOAL_S = 0.100
PRESSES = 20
RUN_ID = "20260101-000000-benc"


class Terminal:
    """A child process on an 80×24 pseudo-terminal whose output we can wait on."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        self.started = time.perf_counter()
        self.process = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env,
                                        cwd=str(ROOT), start_new_session=True)
        os.close(slave)
        self.master = master
        self.seen = b""

    def wait_for(self, *markers: bytes, timeout: float = 30.0) -> float:
        """Read output until every marker appeared; returns the time it took (perf_counter)."""
        deadline = time.perf_counter() + timeout
        while not all(m in self.seen for m in markers):
            left = deadline - time.perf_counter()
            if left <= 0:
                raise TimeoutError(f"never saw {markers}")
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    self.seen += os.read(self.master, 65536)
                except OSError:
                    break
        return time.perf_counter()

    def press(self, key: bytes, *markers: bytes) -> float:
        """Send a key and return the seconds until the markers are drawn."""
        self.drain()
        self.seen = b""
        sent = time.perf_counter()
        os.write(self.master, key)
        return self.wait_for(*markers) - sent

    def drain(self) -> None:
        """Discard output already waiting."""
        while select.select([self.master], [], [], 0.05)[0]:
            try:
                os.read(self.master, 65536)
            except OSError:
                return

    def close(self) -> None:
        """Stop the child."""
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
        os.close(self.master)


def launch_time(argv: list[str], markers: tuple[bytes, ...]) -> float:
    """Seconds from ``exec`` until every marker was drawn."""
    terminal = Terminal(argv, {**os.environ, "TERM": "xterm-256color"})
    try:
        return terminal.wait_for(*markers) - terminal.started
    finally:
        terminal.close()  # also when the frame never came: nothing left running


def compile_project() -> None:
    """Compile the project's modules to bytecode next to them (``__pycache__``, ignored by git)."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", "engine", "llamahome_tui"], cwd=str(ROOT), check=True)


def with_history(workspace: Path) -> Path:
    """A workspace holding one finished run, as a console usually opens on."""
    store = RunStore(workspace / "llamahome.db")
    store.create_run("20260101-000000-hist", "train", {"training": {"method": "lora"}}, "tiny", "bench.jsonl")
    store.update_run("20260101-000000-hist", status="finished", started_at=time.time() - 60, ended_at=time.time())
    store.close()
    return workspace


def first_frame(workspace: Path) -> tuple[float, float, float]:
    """Median seconds to the console's first frame, the smallest Textual app's, and a bare Python's."""
    compile_project()
    with_history(workspace)
    console, textual_app, bare = [], [], []
    for _ in range(FRAME_ROUNDS):
        bare.append(launch_time([sys.executable, "-c", "print('ready')"], (b"ready",)))
        textual_app.append(launch_time([sys.executable, "-c", SMALLEST_TEXTUAL_APP], (b"Smallest-ready",)))
        console.append(launch_time([sys.executable, "-m", "llamahome_tui", "--workspace", str(workspace)],
                                   (b"Datasets", b"Quit")))
    return statistics.median(console), statistics.median(textual_app), statistics.median(bare)


def spin() -> None:
    """Keep one core busy."""
    while True:
        pass


def flood(db: Path, seconds: float) -> None:
    """A fake run writing step events as fast as a tiny model would (about 200 per second)."""
    store = RunStore(db)
    store.update_run(RUN_ID, status="running", pid=os.getpid(), started_at=time.time(), heartbeat_at=time.time())
    end, step = time.time() + seconds, 0
    while time.time() < end:
        step += 1
        store.add_event(RUN_ID, Step(step, 100_000, step / 1000, 3.0 / (1 + step / 500), 1e-3, 1.0, 5000.0, step / 200))
        if step % 50 == 0:
            store.heartbeat(RUN_ID)
        time.sleep(0.005)
    store.update_run(RUN_ID, status="finished", ended_at=time.time())


def keypress_latency(workspace: Path) -> tuple[list[float], list[float]]:
    """Keypress-to-redraw seconds (screen switches, help dialog) while every core spins and a run floods events."""
    store = RunStore(workspace / "llamahome.db")
    store.create_run(RUN_ID, "train", {"training": {"method": "lora"}}, "tiny", "bench.jsonl")
    store.add_event(RUN_ID, Started(RUN_ID, "train", 100_000, "tiny", "bench.jsonl"))
    store.close()
    load = [multiprocessing.Process(target=spin, daemon=True) for _ in range(os.cpu_count() or 1)]
    writer = multiprocessing.Process(target=flood, args=(workspace / "llamahome.db", 120.0), daemon=True)
    for process in [*load, writer]:
        process.start()
    env = {**os.environ, "TERM": "xterm-256color"}
    console = Terminal([sys.executable, "-m", "llamahome_tui", "--workspace", str(workspace), "runs"], env)
    try:
        console.wait_for(b"best eval", b"Attach")
        console.press(b"\r", b"New run")  # attach: the training screen follows the flooding run
        time.sleep(1.0)
        latencies, dialog = [], []
        for _ in range(PRESSES // 2):
            latencies.append(console.press(b"5", b"best eval"))
            latencies.append(console.press(b"3", b"New run"))
        for _ in range(PRESSES // 2):
            dialog.append(console.press(b"?", b"Keys: Training"))
            os.write(console.master, b"\x1b")  # close it; what is redrawn under it varies, so wait
            time.sleep(0.3)
        return latencies, dialog
    finally:
        console.close()
        for process in [*load, writer]:
            process.terminate()


def main() -> None:
    """Measure and print both figures with their ratio to the goal."""
    load = os.getloadavg()[0]  # before this bench adds its own
    with tempfile.TemporaryDirectory() as tmp:
        frame_s, textual_s, bare_s = first_frame(Path(tmp) / "ws-frame")
        latencies, dialog = keypress_latency(Path(tmp) / "ws-keys")
    median, worst = statistics.median(latencies), max(latencies)
    p95 = sorted(latencies)[int(len(latencies) * 0.95) - 1]
    dialog_median, dialog_max = statistics.median(dialog), max(dialog)
    print(f"first frame      {frame_s * 1000:7.0f} ms   (smallest Textual app {textual_s * 1000:.0f} ms, "
          f"ratio {frame_s / textual_s:.2f}, goal <= {FIRST_FRAME_RATIO_GOAL}; bare python {bare_s * 1000:.0f} ms; "
          f"ratio to the 1 s goal {frame_s / FIRST_FRAME_GOAL_S:.2f}; medians of {FRAME_ROUNDS} launches; "
          f"load average {load:.1f} on {os.cpu_count()} cores before it ran)")
    print(f"keypress median  {median * 1000:7.1f} ms   p95 {p95 * 1000:.1f} ms  max {worst * 1000:.1f} ms  "
          f"({len(latencies)} presses, {os.cpu_count()} cores busy + a run flooding steps; "
          f"ratio to the 100 ms goal {median / KEYPRESS_GOAL_S:.2f})")
    print(f"help dialog      {dialog_median * 1000:7.1f} ms   max {dialog_max * 1000:.1f} ms  "
          f"({len(dialog)} presses of ?, same load; ratio to the 100 ms goal {dialog_median / KEYPRESS_GOAL_S:.2f})")
    result = {"first_frame_s": frame_s, "smallest_textual_app_s": textual_s,
              "first_frame_ratio_to_textual": frame_s / textual_s, "bare_python_s": bare_s, "keypress_median_s": median,
              "keypress_p95_s": p95, "keypress_max_s": worst, "presses": len(latencies),
              "help_dialog_median_s": dialog_median, "help_dialog_max_s": dialog_max,
              "frame_rounds": FRAME_ROUNDS, "load_average_1min_before": load,
              "goals": {"first_frame_s": FIRST_FRAME_GOAL_S, "first_frame_ratio_to_textual": FIRST_FRAME_RATIO_GOAL,
                        "keypress_median_s": KEYPRESS_GOAL_S}}
    print(f"wrote {write_result('ui_latency', result)}")


if __name__ == "__main__":
    main()
