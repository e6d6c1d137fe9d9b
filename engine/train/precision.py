"""Which compute precision a job runs in: ``auto`` picks what the hardware computes natively.

bf16 autocast pays off only where the hardware has bf16 arithmetic: a CUDA GPU of compute
capability 8.0 or newer, or a CPU with AMX or AVX512-BF16. Elsewhere bf16 is emulated: on an
AVX2-only CPU a bf16 forward and backward of the tiny built-in Llama was measured 17.5x slower
than fp32. So ``auto`` means bf16 where it is native, fp16 with the gradient scaler on an older
CUDA GPU, and fp32 otherwise; an explicit ``bf16`` on such a CPU still runs, with a warning.

The CPU is judged by the kernels torch dispatches to (``get_cpu_capability``, which honours
``ATEN_CPU_CAPABILITY``) together with the instructions the CPU reports: bf16 counts as native
only when torch runs its AVX-512 kernels and the CPU has AMX tiles or AVX512-BF16.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import torch

from engine.config import Config
from engine.events import Log, Runtime

AVX512_CAPABILITIES = ("AVX512", "AVX512_VNNI", "AVX512_BF16", "AMX")
"""``torch.backends.cpu.get_cpu_capability()`` values whose kernels can use native bf16."""


@dataclass(frozen=True)
class Hardware:
    """What the precision choice depends on (made by ``detect`` or, in tests, by hand)."""

    device: str
    """``cuda`` or ``cpu``: the device the job computes on."""
    cpu_capability: str
    """The CPU kernels torch dispatches to: ``AVX2``, ``AVX512``, ``DEFAULT``..."""
    cpu_amx: bool = False
    """The CPU has AMX tiles (Intel Sapphire Rapids and newer)."""
    cpu_avx512_bf16: bool = False
    """The CPU has the AVX512-BF16 instructions."""
    cuda_capability: tuple[int, int] | None = None
    """Compute capability of the CUDA device, when the job runs on one."""

    @property
    def cpu_native_bf16(self) -> bool:
        """Whether the CPU computes bf16 natively (and torch uses the kernels that do)."""
        return self.cpu_capability.upper() in AVX512_CAPABILITIES and (self.cpu_amx or self.cpu_avx512_bf16)

    def describe_cpu(self) -> str:
        """The CPU in a few words, e.g. ``AVX512 with AMX and AVX512-BF16`` or ``AVX2``."""
        extras = [name for name, has in (("AMX", self.cpu_amx), ("AVX512-BF16", self.cpu_avx512_bf16)) if has]
        return self.cpu_capability + (f" with {' and '.join(extras)}" if extras else "")


@dataclass(frozen=True)
class PrecisionChoice:
    """The precision a job computes in, why, and a warning when the choice will be slow."""

    precision: str
    reason: str
    warning: str = ""


def detect(device: torch.device | str | None = None) -> Hardware:
    """The hardware of this process, for the device given (default: CUDA when there is one)."""
    kind = torch.device(device).type if device is not None else ("cuda" if torch.cuda.is_available() else "cpu")
    cuda = torch.cuda.get_device_capability() if kind == "cuda" else None
    return Hardware(device=kind, cpu_capability=torch.backends.cpu.get_cpu_capability(),
                    cpu_amx=_cpu_flag("_is_amx_tile_supported"),
                    cpu_avx512_bf16=_cpu_flag("_is_avx512_bf16_supported"), cuda_capability=cuda)


def _cpu_flag(name: str) -> bool:
    """One of torch's CPU feature probes (``torch.cpu._is_...``); False where this torch lacks it."""
    probe = getattr(torch.cpu, name, None)
    return bool(probe()) if probe is not None else False


def choose(requested: str, hardware: Hardware) -> PrecisionChoice:
    """The precision for ``requested`` (``auto``, ``fp32``, ``bf16`` or ``fp16``) on ``hardware``."""
    if requested == "auto":
        return _automatic(hardware)
    if requested == "bf16" and hardware.device == "cpu" and not hardware.cpu_native_bf16:
        return PrecisionChoice("bf16", "set in the config", (
            f"training.precision = 'bf16' on a CPU without native bf16 ({hardware.describe_cpu()}): "
            "bf16 is emulated there and runs many times slower than fp32; 'auto' would pick fp32"))
    return PrecisionChoice(requested, "set in the config")


def _automatic(hardware: Hardware) -> PrecisionChoice:
    """``auto``: bf16 where it is native, fp16 + scaler on older CUDA GPUs, fp32 otherwise."""
    if hardware.device == "cuda":
        major, minor = hardware.cuda_capability or (0, 0)
        if major >= 8:
            return PrecisionChoice("bf16", f"auto: CUDA compute capability {major}.{minor} computes bf16 natively")
        return PrecisionChoice("fp16", f"auto: CUDA compute capability {major}.{minor} has no fast bf16; "
                                       "fp16 with a gradient scaler")
    if hardware.cpu_native_bf16:
        return PrecisionChoice("bf16", f"auto: the CPU computes bf16 natively ({hardware.describe_cpu()})")
    return PrecisionChoice("fp32", f"auto: the CPU has no native bf16 ({hardware.describe_cpu()}), "
                                   "where bf16 is emulated and many times slower")


def announce(choice: PrecisionChoice, hardware: Hardware, emit: Callable[[Any], None]) -> None:
    """Report a choice: a log line (a warning first when it will be slow) and a Runtime event."""
    if choice.warning:
        emit(Log("warning", choice.warning))
    emit(Log("info", f"precision {choice.precision} ({choice.reason})"))
    emit(Runtime(precision=choice.precision, precision_reason=choice.reason, cpu=hardware.describe_cpu()))


def resolve(config: Config, emit: Callable[[Any], None], device: torch.device | str | None = None) -> Config:
    """``config`` with ``training.precision`` made concrete for this hardware (reported via ``emit``)."""
    hardware = detect(device)
    choice = choose(config.training.precision, hardware)
    announce(choice, hardware, emit)
    return replace(config, training=replace(config.training, precision=choice.precision))
