"""Resource monitor: CPU %, resident memory, GPU use, tokens/s and ETA of a worker (no torch).

``ResourceMonitor.sample()`` returns a ``Resources`` event. CPU and memory come from psutil; GPU
utilisation and memory come from NVML (``pynvml``) only when a GPU is there: without one (no
driver, no device) the GPU fields are None, with no error and no output. Throughput and ETA come
from the Step events the worker feeds to ``observe``. ``MonitorThread`` samples every
``interval_s`` seconds into the run store, on its own connection. In a torchrun group the
monitor of rank 0 also samples the group's other ranks on this machine (its launcher's children),
one entry each in ``Resources.ranks``: CPU and RSS, and with a GPU the utilisation of the rank's
device (its ``cuda:LOCAL_RANK``) and the memory the rank holds there.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from engine.events import Resources, Step

DEFAULT_INTERVAL_S = 5.0
INTERVAL_ENV = "LLAMAHOME_MONITOR_S"
"""Environment variable that overrides the sampling interval, in seconds."""


def interval_s() -> float:
    """The sampling interval: ``$LLAMAHOME_MONITOR_S`` when it is a positive number, else 5 s."""
    try:
        value = float(os.environ.get(INTERVAL_ENV, ""))
    except ValueError:
        return DEFAULT_INTERVAL_S
    return value if value > 0 else DEFAULT_INTERVAL_S


class GpuProbe:
    """Utilisation and memory of one GPU through NVML; build it with ``GpuProbe.open()``."""

    def __init__(self, nvml: Any, handle: Any) -> None:
        self.nvml = nvml
        self.handle = handle
        self.handles: dict[int, Any] = {}
        """The devices of a group's ranks on this machine, by local rank (opened when first sampled)."""

    @classmethod
    def open(cls) -> GpuProbe | None:
        """A probe of the GPU this process uses (first of ``CUDA_VISIBLE_DEVICES``), or None."""
        try:
            import pynvml

            pynvml.nvmlInit()
        except Exception:  # noqa: BLE001 - no library, no driver or no device: no GPU fields
            return None
        try:
            if pynvml.nvmlDeviceGetCount() == 0:
                raise LookupError("no device")
            return cls(pynvml, pynvml.nvmlDeviceGetHandleByIndex(_visible_index()))
        except Exception:  # noqa: BLE001
            pynvml.nvmlShutdown()
            return None

    def sample(self, pid: int) -> tuple[float | None, float | None]:
        """GPU utilisation % and the memory (MiB) used by ``pid`` (else by the whole device)."""
        return self._sample(self.handle, pid)

    def sample_rank(self, local_rank: int, pid: int) -> tuple[float | None, float | None]:
        """The same for the GPU of a torchrun rank: the ``local_rank``-th visible device, its ``cuda:LOCAL_RANK``."""
        try:
            if local_rank not in self.handles:
                self.handles[local_rank] = self.nvml.nvmlDeviceGetHandleByIndex(_visible_index(local_rank))
        except Exception:  # noqa: BLE001 - a rank whose device NVML does not know: no GPU fields for it
            return None, None
        return self._sample(self.handles[local_rank], pid)

    def _sample(self, handle: Any, pid: int) -> tuple[float | None, float | None]:
        try:
            util = float(self.nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
            used = [p.usedGpuMemory for p in self.nvml.nvmlDeviceGetComputeRunningProcesses(handle)
                    if p.pid == pid and p.usedGpuMemory]
            memory = used[0] if used else self.nvml.nvmlDeviceGetMemoryInfo(handle).used
            return util, memory / 2**20
        except Exception:  # noqa: BLE001 - a GPU that stops answering just leaves the fields empty
            return None, None

    def close(self) -> None:
        """Release NVML."""
        try:
            self.nvml.nvmlShutdown()
        except Exception:  # noqa: BLE001
            pass


def _visible_index(position: int = 0) -> int:
    """The NVML index of the ``position``-th visible CUDA device (as ``CUDA_VISIBLE_DEVICES`` lists them;
    ``position`` itself when it lists none, or not by number)."""
    visible = [entry.strip() for entry in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if entry.strip()]
    entry = visible[position] if position < len(visible) else ""
    return int(entry) if entry.isdigit() else position


class Throughput:
    """Tokens/s and the time left, from the latest Step events.

    The pace is taken from the steps' own training time (``Step.train_s``) when they carry it, so
    evaluations, sample generations and checkpoints between two steps neither slow the pace
    down nor make the estimate jump; older events without it fall back to the wall clock.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic, window: int = 20) -> None:
        self.clock = clock
        self.steps: deque[tuple[float, int]] = deque(maxlen=window)
        """(training seconds, else clock time; step) of the recent Step events."""
        self.total_steps = 0
        self.tokens_per_s: float | None = None

    def observe(self, event: Step) -> None:
        """Record one Step event."""
        self.steps.append((event.train_s if event.train_s > 0 else self.clock(), event.step))
        self.total_steps = event.total_steps
        self.tokens_per_s = event.tokens_per_s

    def eta_s(self) -> float | None:
        """Seconds left at the recent pace; None before two steps have been seen."""
        if len(self.steps) < 2:
            return None
        (t0, s0), (t1, s1) = self.steps[0], self.steps[-1]
        if s1 <= s0:
            return None
        return max(0.0, (self.total_steps - s1) * (t1 - t0) / (s1 - s0))


class ResourceMonitor:
    """Samples one process (default: this one) into ``Resources`` events."""

    def __init__(self, pid: int | None = None, gpu: GpuProbe | None = None,
                 clock: Callable[[], float] = time.monotonic, group: bool = False) -> None:
        """``group``: this process is a torchrun rank; its sibling ranks are sampled too."""
        self.pid = pid or os.getpid()
        self.process = psutil.Process(self.pid)
        self.process.cpu_percent(None)
        self.gpu = gpu
        self.throughput = Throughput(clock)
        self.group = group
        self._ranks: dict[int, tuple[psutil.Process, int]] = {}

    def observe(self, event: Any) -> None:
        """Feed an event the run emitted (Step events drive tokens/s and ETA)."""
        if isinstance(event, Step):
            self.throughput.observe(event)

    def sample(self) -> Resources:
        """CPU % since the last sample, RSS, GPU use, tokens/s and ETA."""
        with self.process.oneshot():
            cpu = self.process.cpu_percent(None)
            rss = self.process.memory_info().rss / 2**20
        gpu_util, gpu_mem = self.gpu.sample(self.pid) if self.gpu else (None, None)
        ranks = self._sample_ranks() if self.group else []
        if ranks:
            cpu, rss = sum(r["cpu_percent"] for r in ranks), sum(r["rss_mb"] for r in ranks)
        return Resources(cpu_percent=cpu, rss_mb=rss, gpu_util=gpu_util, gpu_mem_mb=gpu_mem,
                         tokens_per_s=self.throughput.tokens_per_s, eta_s=self.throughput.eta_s(), ranks=ranks)

    def _sample_ranks(self) -> list[dict[str, float]]:
        """CPU %, RSS (and GPU use and memory, with a GPU) of every rank of the group on this machine
        (found once: the launcher's children)."""
        if not self._ranks:
            self._ranks = sibling_ranks(self.process)
            for process, _ in self._ranks.values():
                _try(lambda p=process: p.cpu_percent(None))
        out = []
        for rank, (process, local_rank) in sorted(self._ranks.items()):
            try:
                with process.oneshot():
                    entry = {"rank": rank, "pid": process.pid, "cpu_percent": process.cpu_percent(None),
                             "rss_mb": process.memory_info().rss / 2**20}
            except psutil.Error:  # a rank that ended: left out
                continue
            util, memory = self.gpu.sample_rank(local_rank, process.pid) if self.gpu else (None, None)
            if util is not None and memory is not None:
                entry.update(gpu_util=util, gpu_mem_mb=memory)
            out.append(entry)
        return out


def sibling_ranks(process: psutil.Process) -> dict[int, tuple[psutil.Process, int]]:
    """The ranks started by ``process``'s launcher (torchrun's agent): ``RANK`` -> (process, ``LOCAL_RANK``)."""
    found: dict[int, tuple[psutil.Process, int]] = {}
    try:
        parent = process.parent()
        children = parent.children() if parent is not None else []
    except psutil.Error:
        return found
    for child in children:
        try:
            env = child.environ()
        except psutil.Error:
            continue
        rank, local = env.get("RANK"), env.get("LOCAL_RANK", "")
        if rank is not None and rank.isdigit():
            found[int(rank)] = (child, int(local) if local.isdigit() else int(rank))
    return found


def _try(action: Callable[[], Any]) -> None:
    """Run ``action``; a process gone meanwhile is not an error."""
    try:
        action()
    except psutil.Error:
        pass


class MonitorThread:
    """A daemon thread that stores a ``Resources`` event of a run every ``interval`` seconds."""

    def __init__(self, db_path: Path, run_id: str, monitor: ResourceMonitor, interval: float) -> None:
        self.db_path, self.run_id = db_path, run_id
        self.monitor, self.interval = monitor, interval
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="resources", daemon=True)

    def start(self) -> MonitorThread:
        """Start sampling; returns ``self``."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop sampling (waits briefly for the thread)."""
        self._done.set()
        self._thread.join(timeout=2.0)

    def _run(self) -> None:
        """Sample until stopped; a failed write is reported once per sample and skipped."""
        from engine.store import RunStore

        store = RunStore(self.db_path)
        try:
            while not self._done.wait(self.interval):
                try:
                    store.add_event(self.run_id, self.monitor.sample())
                except Exception as exc:  # noqa: BLE001 - monitoring must never end a run
                    print(f"resource monitor: {type(exc).__name__}: {exc}", flush=True)
        finally:
            store.close()
            if self.monitor.gpu:
                self.monitor.gpu.close()
