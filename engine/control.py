"""How a run is controlled while it trains, and how its liveness is judged (no torch at import).

Control requests (stop, pause, resume, checkpoint) travel as rows of the ``controls`` table
(``RunStore.add_control``), not as signals: a request made while the worker is still starting
waits for it instead of being lost; any process that can open the database can make one, with
no pid to look up and no risk of signalling a recycled pid after a crash; and each request is
acknowledged (``done_at``) when the worker takes it. The worker's watch thread polls the table a
few times a second (a read; it writes only when a request is there) and sets ``ControlState``
flags, and the training loop checks those once per optimizer step through ``TrainingControl``.
SIGTERM and SIGINT still mean "checkpoint, then stop" for ``kill -TERM`` and a terminal Ctrl-C.

A run is judged dead when its worker's pid is gone (or a zombie, or a newer process that reused
the pid) or when its heartbeat is older than ``STALE_HEARTBEAT_S``.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.store import RunRecord

CONTROL_POLL_S = 0.25
"""How often the worker looks for control requests."""
HEARTBEAT_S = 2.0
"""How often the worker stamps its heartbeat."""
STALE_HEARTBEAT_S = 60.0
"""A run whose heartbeat is older than this is taken as dead even if its pid exists."""
PENDING_GRACE_S = 120.0
"""A pending run whose worker never reported a pid within this time is taken as dead."""


@dataclass
class ControlState:
    """What has been asked of a running worker; set by its watch thread, read by the loop."""

    stop: bool = False
    pause: bool = False
    checkpoint: bool = False
    wake: threading.Event = field(default_factory=threading.Event)

    def apply(self, commands: Iterable[str]) -> None:
        """Take control commands in the order they were made (a later resume cancels a pause)."""
        for command in commands:
            if command == "stop":
                self.stop = True
            elif command == "pause":
                self.pause = True
            elif command == "resume":
                self.pause = False
            elif command == "checkpoint":
                self.checkpoint = True
        self.wake.set()


@dataclass
class TrainingControl:
    """The hook a training recipe calls once per optimizer step (``recipe.control(recipe)``).

    It writes a requested checkpoint, pauses (checkpoint, free accelerator memory, wait until
    resumed or stopped) and passes a stop request on to the recipe's ``stop_requested`` flag, on
    which the recipe writes its last checkpoint and returns.
    """

    state: ControlState
    on_pause: Callable[[int, Path], None]
    on_resume: Callable[[int], None]

    def __call__(self, recipe: Any) -> None:
        """Act on the requests that arrived since the last optimizer step."""
        state = self.state
        if state.stop:
            recipe.stop_requested = True
            return
        if state.checkpoint:
            state.checkpoint = False
            if recipe.progress.step % recipe.config.checkpoint.save_steps and not state.pause:
                recipe.save("requested")
        if state.pause:
            self._pause(recipe)

    def _pause(self, recipe: Any) -> None:
        """Checkpoint, free memory, wait; then continue (or stop, if asked while paused)."""
        state = self.state
        path = recipe.save("paused")
        moved = offload(recipe)
        self.on_pause(recipe.progress.step, path)
        while state.pause and not state.stop:
            state.wake.wait(CONTROL_POLL_S)
            state.wake.clear()
        state.checkpoint = False
        reload(recipe, moved)
        if state.stop:
            recipe.stop_requested = True
        else:
            self.on_resume(recipe.progress.step)


Moved = list[tuple[dict[Any, Any], Any, Any]]


def offload(recipe: Any) -> Moved | None:
    """Move the model and optimizer state off the accelerator; None when they are on the CPU."""
    import torch

    device = next(recipe.model.parameters()).device
    gc.collect()
    if device.type == "cpu":
        return None
    moved: Moved = [(slot, key, device) for slot in recipe.optimizer.state.values()
                    for key, value in slot.items() if torch.is_tensor(value) and value.device == device]
    for slot, key, _ in moved:
        slot[key] = slot[key].to("cpu")
    recipe.model.to("cpu")
    moved.append(({}, None, device))
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return moved


def reload(recipe: Any, moved: Moved | None) -> None:
    """Put back what ``offload`` moved."""
    if not moved:
        return
    device = moved[-1][2]
    recipe.model.to(device)
    for slot, key, original in moved[:-1]:
        slot[key] = slot[key].to(original)


def process_alive(pid: int | None, started_at: float | None = None) -> bool:
    """Whether ``pid`` is a live process that is not a zombie and not newer than ``started_at``."""
    if not pid:
        return False
    import psutil  # here: a viewer with no live run to check does not load it before its first frame

    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return started_at is None or process.create_time() <= started_at + 1.0
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True


def gone_within(pid: int | None, started_at: float | None, seconds: float) -> bool:
    """Whether ``pid`` has ended, or ends within ``seconds`` (a worker that has just recorded its
    end, and is still shutting down, a group's rank 0 after a lost rank among them)."""
    deadline = time.monotonic() + seconds
    while process_alive(pid, started_at):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)
    return True


def looks_dead(run: RunRecord, now: float | None = None) -> bool:
    """Whether a live-status run's worker is gone: pid checks first, then the heartbeat's age."""
    now = time.time() if now is None else now
    if not run.pid:
        return now - run.created_at > PENDING_GRACE_S
    if not process_alive(run.pid, run.started_at):
        return True
    beat = run.heartbeat_at or run.started_at or run.created_at
    return now - beat > STALE_HEARTBEAT_S


def status_after_death(last_event: str | None) -> str:
    """The status of a run whose worker died: what its last event says, else ``crashed``."""
    return {"finished": "finished", "failed": "failed"}.get(last_event or "", "crashed")
