"""``training.precision = "auto"``: the choice on faked hardware, and on this machine's."""

from __future__ import annotations

import pytest
import torch

from engine.config import load_config
from engine.events import Log, Runtime
from engine.train.precision import Hardware, choose, detect, resolve

AVX2 = Hardware(device="cpu", cpu_capability="AVX2")
AVX512 = Hardware(device="cpu", cpu_capability="AVX512")
AVX512_BF16 = Hardware(device="cpu", cpu_capability="AVX512", cpu_avx512_bf16=True)
AMX = Hardware(device="cpu", cpu_capability="AVX512", cpu_amx=True, cpu_avx512_bf16=True)
# torch told to use its AVX2 kernels (ATEN_CPU_CAPABILITY=avx2) on a CPU that has bf16 hardware
AVX2_KERNELS_ON_AMX = Hardware(device="cpu", cpu_capability="AVX2", cpu_amx=True, cpu_avx512_bf16=True)


@pytest.mark.parametrize(("hardware", "expected"), [
    (AVX2, "fp32"), (AVX512, "fp32"), (AVX512_BF16, "bf16"), (AMX, "bf16"), (AVX2_KERNELS_ON_AMX, "fp32"),
    (Hardware(device="cpu", cpu_capability="DEFAULT"), "fp32"),
    (Hardware(device="cuda", cpu_capability="AVX2", cuda_capability=(8, 0)), "bf16"),
    (Hardware(device="cuda", cpu_capability="AVX2", cuda_capability=(9, 0)), "bf16"),
    (Hardware(device="cuda", cpu_capability="AVX2", cuda_capability=(7, 5)), "fp16"),
])
def test_auto_picks_what_the_hardware_computes_natively(hardware: Hardware, expected: str) -> None:
    choice = choose("auto", hardware)
    assert choice.precision == expected
    assert choice.reason.startswith("auto: ")
    assert not choice.warning


def test_the_reason_names_the_cpu() -> None:
    assert "AVX2" in choose("auto", AVX2).reason
    assert "AMX" in choose("auto", AMX).reason


def test_explicit_bf16_on_a_cpu_without_native_bf16_runs_with_one_warning_line() -> None:
    choice = choose("bf16", AVX2)
    assert choice.precision == "bf16"
    assert "AVX2" in choice.warning and "slower" in choice.warning and "\n" not in choice.warning
    assert not choose("bf16", AMX).warning


@pytest.mark.parametrize("requested", ["fp32", "bf16", "fp16"])
def test_an_explicit_precision_is_kept(requested: str) -> None:
    assert choose(requested, AMX).precision == requested


def test_auto_is_the_default() -> None:
    assert load_config().training.precision == "auto"


def test_resolve_on_this_machine_reports_the_choice() -> None:
    events: list[object] = []
    config = resolve(load_config(), events.append, torch.device("cpu"))
    hardware = detect("cpu")
    assert config.training.precision == ("bf16" if hardware.cpu_native_bf16 else "fp32")
    runtime = [e for e in events if isinstance(e, Runtime)]
    assert runtime and runtime[0].precision == config.training.precision
    assert runtime[0].cpu == hardware.describe_cpu()
    assert any(isinstance(e, Log) and e.message.startswith(f"precision {config.training.precision}")
               for e in events)


def test_an_explicit_bf16_on_a_cpu_without_it_warns_when_resolved(monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import replace

    from engine.train import precision

    monkeypatch.setattr(precision, "detect", lambda device=None: AVX2)
    config = load_config()
    config = replace(config, training=replace(config.training, precision="bf16"))
    events: list[object] = []
    assert resolve(config, events.append, "cpu").training.precision == "bf16"
    warnings = [e for e in events if isinstance(e, Log) and e.level == "warning"]
    assert len(warnings) == 1 and "AVX2" in warnings[0].message
