"""The resource monitor: psutil numbers, GPU through NVML only when there is one, tokens/s and ETA."""

from __future__ import annotations

import os
import sys
import time
import types
import warnings
from pathlib import Path

import pytest

from engine import monitor as monitor_module
from engine.events import Resources, Step
from engine.monitor import GpuProbe, MonitorThread, ResourceMonitor, Throughput, interval_s
from engine.store import RunStore


def _step(step: int, total: int = 100, tps: float = 1000.0) -> Step:
    return Step(step=step, total_steps=total, epoch=0.0, loss=1.0, lr=1e-3, grad_norm=1.0,
                tokens_per_s=tps, elapsed_s=0.0)


def test_sample_without_gpu_has_cpu_and_memory_only() -> None:
    sample = ResourceMonitor(gpu=None).sample()
    assert isinstance(sample, Resources)
    assert sample.cpu_percent >= 0.0
    assert 10 < sample.rss_mb < 100_000
    assert sample.gpu_util is None and sample.gpu_mem_mb is None
    assert sample.tokens_per_s is None and sample.eta_s is None


def test_opening_nvml_without_a_gpu_is_silent(capfd: pytest.CaptureFixture[str]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        probe = GpuProbe.open()
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")
    if probe is not None:  # a machine with a GPU: the probe must answer
        util, memory = probe.sample(os.getpid())
        assert util is not None and memory is not None
        probe.close()


class FakeNvml(types.SimpleNamespace):
    """Just enough of pynvml."""

    class NVMLError(Exception):
        pass


def _fake_nvml(processes: list, fail_init: bool = False, count: int = 1) -> FakeNvml:
    nvml = FakeNvml()

    def init() -> None:
        if fail_init:
            raise FakeNvml.NVMLError("Library Not Found")
    nvml.nvmlInit = init
    nvml.nvmlShutdown = lambda: None
    nvml.nvmlDeviceGetCount = lambda: count
    nvml.nvmlDeviceGetHandleByIndex = lambda index: f"gpu{index}"
    nvml.nvmlDeviceGetUtilizationRates = lambda handle: types.SimpleNamespace(gpu=87)
    nvml.nvmlDeviceGetComputeRunningProcesses = lambda handle: processes
    nvml.nvmlDeviceGetMemoryInfo = lambda handle: types.SimpleNamespace(used=3 * 2**30)
    return nvml


def test_gpu_probe_reports_the_process_memory_else_the_device(monkeypatch: pytest.MonkeyPatch) -> None:
    mine = types.SimpleNamespace(pid=4242, usedGpuMemory=512 * 2**20)
    monkeypatch.setitem(sys.modules, "pynvml", _fake_nvml([mine]))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    probe = GpuProbe.open()
    assert probe is not None
    assert probe.sample(4242) == (87.0, 512.0)
    assert probe.sample(1) == (87.0, 3072.0)


@pytest.mark.parametrize("nvml", [_fake_nvml([], fail_init=True), _fake_nvml([], count=0)])
def test_gpu_probe_is_none_when_nvml_fails_or_sees_no_device(monkeypatch: pytest.MonkeyPatch, nvml) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    assert GpuProbe.open() is None


def test_a_gpu_that_stops_answering_leaves_the_fields_empty() -> None:
    nvml = _fake_nvml([])

    def broken(handle: str) -> None:
        raise FakeNvml.NVMLError("GPU is lost")
    nvml.nvmlDeviceGetUtilizationRates = broken
    assert GpuProbe(nvml, "gpu0").sample(1) == (None, None)


def test_throughput_gives_tokens_per_s_and_eta_from_recent_steps() -> None:
    now = [100.0]
    throughput = Throughput(clock=lambda: now[0])
    throughput.observe(_step(10))
    assert throughput.eta_s() is None
    now[0] = 110.0
    throughput.observe(_step(20, tps=2500.0))
    assert throughput.tokens_per_s == 2500.0
    assert throughput.eta_s() == pytest.approx(80.0)  # 1 s per step, 80 steps left


def test_monitor_feeds_steps_into_its_samples() -> None:
    now = [0.0]
    resource_monitor = ResourceMonitor(clock=lambda: now[0])
    for step in (1, 2, 3):
        now[0] = step * 0.5
        resource_monitor.observe(_step(step, total=5, tps=321.0))
    resource_monitor.observe(Resources(1.0, 1.0, None, None))
    sample = resource_monitor.sample()
    assert sample.tokens_per_s == 321.0
    assert sample.eta_s == pytest.approx(1.0)


@pytest.mark.parametrize(("value", "expected"), [("", 5.0), ("0.5", 0.5), ("-1", 5.0), ("soon", 5.0)])
def test_interval_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch, value: str, expected: float) -> None:
    monkeypatch.setenv(monitor_module.INTERVAL_ENV, value)
    assert interval_s() == expected


def test_monitor_thread_stores_resources_events(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    with RunStore(db) as store:
        store.create_run("r1", "train", {}, "m", "d")
        thread = MonitorThread(db, "r1", ResourceMonitor(), interval=0.05).start()
        deadline = time.monotonic() + 10
        while len(store.events("r1")) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        thread.stop()
        events = [e.event for e in store.events("r1")]
    assert len(events) >= 2 and all(isinstance(e, Resources) and e.rss_mb > 0 for e in events)


def test_each_rank_gets_the_gpu_of_its_local_rank(monkeypatch: pytest.MonkeyPatch) -> None:
    """A group on 2 GPUs (visible as NVML devices 3 and 1): each rank's entry has its own device's figures."""
    import psutil

    import engine.monitor as monitor

    rank0 = types.SimpleNamespace(pid=os.getpid(), usedGpuMemory=2 * 2**30)
    nvml = _fake_nvml([])
    nvml.nvmlDeviceGetUtilizationRates = lambda handle: types.SimpleNamespace(gpu={"gpu3": 40, "gpu1": 90}[handle])
    nvml.nvmlDeviceGetComputeRunningProcesses = lambda handle: [rank0] if handle == "gpu3" else []
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,1")
    me = psutil.Process()
    monkeypatch.setattr(monitor, "sibling_ranks", lambda process: {0: (me, 0), 1: (me, 1)})
    ranks = ResourceMonitor(gpu=GpuProbe(nvml, "gpu3"), group=True).sample().ranks
    assert [(r["rank"], r["gpu_util"], r["gpu_mem_mb"]) for r in ranks] == [(0, 40.0, 2048.0), (1, 90.0, 3072.0)]


def test_ranks_without_a_gpu_have_cpu_and_memory_only(monkeypatch: pytest.MonkeyPatch) -> None:
    import psutil

    import engine.monitor as monitor

    me = psutil.Process()
    monkeypatch.setattr(monitor, "sibling_ranks", lambda process: {0: (me, 0), 1: (me, 1)})
    ranks = ResourceMonitor(gpu=None, group=True).sample().ranks
    assert [sorted(r) for r in ranks] == [["cpu_percent", "pid", "rank", "rss_mb"]] * 2
