"""What this machine can run, detected once: bf16 convolutions, AMX, CUDA, onnxruntime providers.

Every choice that depends on the hardware (``emma fuse --precision bf16``, training's ``--amp``,
the onnxruntime backend) asks :func:`hardware` instead of finding out by crashing. A reduced
precision the machine cannot run falls back to fp32 with one warning (:func:`inference_precision`,
:func:`resolve_amp`); nothing else changes.

bf16 on the CPU: PyTorch's oneDNN convolutions run bf16 only with AVX-512 (BW) or AVX-NE-CONVERT
(``torch.ops.mkldnn._is_mkldnn_bf16_supported()``); elsewhere the fused kernels of the fast path
raise ``RuntimeError: mkldnn_convolution: bf16 path needs the cpu support avx_ne_convert or
avx512bw``. :func:`detect` takes torch's report and confirms it with a real 3x3 bf16 convolution.

Tests simulate another machine by replacing the detected value (``hardware.set_hardware(...)``).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from .errors import EmmaError

__all__ = ["Hardware", "hardware", "detect", "set_hardware", "without_bf16", "inference_precision", "resolve_amp"]

log = logging.getLogger(__name__)

_NO_BF16 = "needs a CPU with native bf16 convolutions (AVX-512 or AVX-NE-CONVERT)"


@dataclass(frozen=True)
class Hardware:
    """What this process can run.

    Attributes:
        cpu_isa: torch's vector instruction set for this CPU (``"AVX512"``, ``"AVX2"``, ...).
        cpu_bf16: oneDNN runs bf16 convolutions here (torch's report, confirmed by a probe).
        cpu_amx: the CPU has AMX tiles for bf16 (Sapphire Rapids and later).
        cores: CPU cores this process may use.
        cuda: a CUDA device is available.
        cuda_bf16: that device computes bf16 natively (Ampere and later).
    """

    cpu_isa: str
    cpu_bf16: bool
    cpu_amx: bool
    cores: int
    cuda: bool
    cuda_bf16: bool

    @functools.cached_property
    def onnx_providers(self) -> tuple[str, ...]:
        """onnxruntime's execution providers here (empty without the ``onnx`` extra); imported on first use."""
        try:
            import onnxruntime
        except ImportError:
            return ()
        return tuple(onnxruntime.get_available_providers())

    def bf16(self, device: str | torch.device = "cpu") -> bool:
        """Whether ``device`` computes bf16 convolutions natively."""
        return self.cuda_bf16 if torch.device(device).type == "cuda" else self.cpu_bf16

    def summary(self) -> str:
        """One line: ``CPU AVX512 (bf16, no AMX), 2 cores; no CUDA``."""
        cpu = f"CPU {self.cpu_isa} ({'bf16' if self.cpu_bf16 else 'no bf16'}, {'AMX' if self.cpu_amx else 'no AMX'})"
        gpu = ("CUDA" + (" (bf16)" if self.cuda_bf16 else "")) if self.cuda else "no CUDA"
        return f"{cpu}, {self.cores} cores; {gpu}"


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    line = next((ln for ln in text.splitlines() if ln.startswith("flags")), "")
    return set(line.partition(":")[2].split())


def _bf16_convolution_runs() -> bool:
    """A 3x3 bf16 convolution through the fused oneDNN op the fast path uses (and plain conv2d)."""
    x = torch.rand(1, 4, 6, 6, dtype=torch.bfloat16).contiguous(memory_format=torch.channels_last)
    w = torch.rand(4, 4, 3, 3, dtype=torch.bfloat16).contiguous(memory_format=torch.channels_last)
    try:
        F.conv2d(x, w)
        op = getattr(torch.ops.mkldnn, "_convolution_pointwise", None)
        if op is not None:
            op(x, w, None, [0, 0], [1, 1], [1, 1], 1, "none", [], "")
    except (RuntimeError, NotImplementedError) as e:
        log.info("bf16 convolution probe failed: %s", str(e).splitlines()[0] if str(e) else type(e).__name__)
        return False
    return True


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask where the OS reports one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def clamp_threads(requested: int, cores: int | None = None) -> int:
    """``requested`` torch threads, at most the usable cores (with a warning when it is cut).

    More threads than cores only makes every parallel region wait for the thread the OS has parked
    (measured: 2 threads beside a busy core, 10-100x slower than 1).
    """
    cores = cores if cores is not None else usable_cores()
    if requested > cores:
        log.warning("%d threads requested, but this process can use %d CPU core%s: using %d",
                    requested, cores, "" if cores == 1 else "s", cores)
        return cores
    return requested


def detect() -> Hardware:
    """Detect this machine's capabilities (a few milliseconds; :func:`hardware` caches the result)."""
    report = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    cpu_bf16 = bool(report()) if report is not None else "avx512bw" in _cpu_flags()
    cpu_bf16 = cpu_bf16 and _bf16_convolution_runs()
    cuda = torch.cuda.is_available()
    return Hardware(
        cpu_isa=torch.backends.cpu.get_cpu_capability(),
        cpu_bf16=cpu_bf16,
        cpu_amx="amx_bf16" in _cpu_flags(),
        cores=usable_cores(),
        cuda=cuda,
        cuda_bf16=cuda and torch.cuda.is_bf16_supported(),
    )


_detected: Hardware | None = None


def hardware() -> Hardware:
    """This machine's :class:`Hardware`, detected on the first call."""
    global _detected
    if _detected is None:
        _detected = detect()
        log.info("hardware: %s", _detected.summary())
    return _detected


def set_hardware(hw: Hardware | None) -> Hardware | None:
    """Replace the detected value (``None``: detect again on next use); returns the previous one.

    For tests that simulate another machine, e.g. an AVX2-only CPU:
    ``set_hardware(dataclasses.replace(hardware(), cpu_isa="AVX2", cpu_bf16=False))``.
    """
    global _detected
    previous, _detected = _detected, hw
    return previous


def without_bf16(hw: Hardware) -> Hardware:
    """``hw`` as an AVX2-only machine would report it (no bf16 on CPU or GPU, no AMX)."""
    return dataclasses.replace(hw, cpu_isa="AVX2", cpu_bf16=False, cpu_amx=False, cuda_bf16=False)


def inference_precision(precision: str, device: str = "cpu") -> tuple[str, str | None]:
    """The precision to run ``precision`` with on ``device``, and the note to show when it changed.

    ``bf16`` where ``device`` has no native bf16 convolutions -> ``fp32`` (the same network, exact
    arithmetic); ``fp16`` on the CPU is refused with :class:`EmmaError` (no CPU kernels).
    """
    if precision not in ("fp32", "bf16", "fp16"):
        raise EmmaError(f"unknown precision {precision!r}; use fp32, bf16 or fp16 (fp16: GPU only)")
    on_cpu = torch.device(device).type == "cpu"
    if precision == "fp16" and on_cpu:
        other = "fp32 or bf16" if hardware().cpu_bf16 else "fp32 (this CPU has no native bf16 either)"
        raise EmmaError(f"--precision fp16 needs --device cuda; on this CPU use {other}")
    if precision == "bf16" and not hardware().bf16(device):
        where = f"this CPU ({hardware().cpu_isa})" if on_cpu else "this GPU"
        return "fp32", f"--precision bf16 {_NO_BF16 if on_cpu else 'needs a GPU with bf16 (Ampere or later)'}; " \
                       f"{where} has none, so fp32 is used"
    return precision, None


def resolve_amp(amp: str, device: torch.device) -> str:
    """Training's mixed precision: ``"auto"`` -> ``"bf16"`` where ``device`` computes bf16 natively,
    else ``"none"``; an explicit ``"bf16"`` where it does not -> ``"none"`` with one warning."""
    if amp not in ("none", "bf16", "auto"):
        raise EmmaError(f"amp must be 'none', 'bf16' or 'auto', not {amp!r}")
    native = hardware().bf16(device)
    if amp == "auto":
        return "bf16" if native else "none"
    if amp == "bf16" and not native:
        log.warning("--amp bf16 %s; this %s has none, so training runs in fp32",
                    _NO_BF16 if device.type == "cpu" else "needs a GPU with bf16",
                    "CPU" if device.type == "cpu" else "GPU")
        return "none"
    return amp
