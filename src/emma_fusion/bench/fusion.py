"""Running built-in methods over benchmark pairs: fused images into the cache, with speed and memory.

Each method runs in its own fresh worker process (``isolate=True``, the default) that builds the
method once and fuses the pending pairs one after another, largest image first. Per image it records

* ``seconds``: wall time of :func:`emma_fusion.api.fuse` on the decoded arrays (luma conversion,
  the method, output scaling; not file reading or writing);
* ``peak_rss_bytes``: the peak resident memory above the level just before that call. The peak is
  read from ``VmHWM`` in ``/proc/self/status`` after resetting it through ``/proc/self/clear_refs``
  (Linux). Freed memory that the allocator keeps is reused without raising the peak, so the
  figure is exact for the first (largest) image of a fresh worker and a lower bound after it; the
  benchmark reports the maximum over images. Elsewhere, ``ru_maxrss`` growth is used instead.
  On CUDA, ``cuda_peak_bytes`` is ``torch.cuda.max_memory_allocated`` for the call.

The fused image is min-max normalised (or clipped), quantised exactly as the field's test scripts
save it (:func:`emma_fusion.metrics.quantize_fused`) and stored as an 8-bit gray PNG: the file
that is scored is the file that is saved.
"""

from __future__ import annotations

import gc
import logging
import os
import resource
import time
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..concurrency import map_processes
from ..errors import EmmaError
from .cache import BenchCache
from .methods import MethodSpec

__all__ = ["FuseJob", "fuse_jobs", "peak_rss_probe"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FuseJob:
    """One pair to fuse with one method: cache key, names for messages, the source files, pixels."""

    key: str
    dataset: str
    stem: str
    ir: str
    vi: str
    pixels: int


def _status_bytes(field: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
        return True
    except OSError:
        return False


class peak_rss_probe:
    """Context manager measuring the peak resident memory above the level at entry, in bytes.

    ``probe.peak`` is set on exit; ``probe.how`` says which counter was used (``"VmHWM"`` after a
    reset via ``/proc/self/clear_refs``, or ``"ru_maxrss"``).
    """

    def __enter__(self) -> "peak_rss_probe":
        self.how = "VmHWM" if _reset_peak() and _status_bytes("VmHWM") is not None else "ru_maxrss"
        self.before = _status_bytes("VmRSS") or 0
        self._max_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        self.peak = 0
        return self

    def __exit__(self, *exc) -> None:
        if self.how == "VmHWM":
            self.peak = max(0, (_status_bytes("VmHWM") or 0) - self.before)
        else:
            after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            self.peak = max(0, after - max(self._max_before, self.before))


class _Fuser:
    """A built method plus the cache: fuses one job at a time (in a worker or in this process)."""

    def __init__(self, spec: MethodSpec, cache_root: str, normalize: str, threads: int | None) -> None:
        import cv2
        import torch

        from ..hardware import clamp_threads
        from ..methods.base import get_method

        if threads:
            threads = clamp_threads(threads)
            torch.set_num_threads(threads)
            cv2.setNumThreads(threads)
        self.threads = torch.get_num_threads()
        self.method = get_method(spec.method, **spec.options)
        self.device = str(spec.options.get("device", "cpu"))
        self.cache = BenchCache(cache_root)
        self.normalize = normalize

    def __call__(self, job: FuseJob) -> tuple[str, dict]:
        import torch

        from ..api import fuse
        from ..io import read_image
        from ..metrics import quantize_fused

        try:
            ir, vi = read_image(job.ir), read_image(job.vi)
            gc.collect()
            cuda = self.device.startswith("cuda") and torch.cuda.is_available()
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            with peak_rss_probe() as probe:
                t0 = time.perf_counter()
                fused = fuse(ir, vi, self.method, color="gray", normalize=self.normalize, key=job.stem)
                seconds = time.perf_counter() - t0
            gray = quantize_fused(fused).astype(np.uint8)
        except EmmaError as e:
            return job.key, {"error": f"{job.dataset}/{job.stem}: {e}"}
        except Exception as e:  # one failing pair must not end a long benchmark run
            log.exception("%s/%s failed", job.dataset, job.stem)
            return job.key, {"error": f"{job.dataset}/{job.stem}: {type(e).__name__}: {e}"}
        info = {
            "seconds": seconds, "height": int(gray.shape[0]), "width": int(gray.shape[1]),
            "peak_rss_bytes": int(probe.peak), "rss_before_bytes": int(probe.before), "peak_counter": probe.how,
            "threads": self.threads, "device": self.device,
        }
        if cuda:
            info["cuda_peak_bytes"] = int(torch.cuda.max_memory_allocated())
        self.cache.save_fused(job.key, gray, info)
        return job.key, info


_WORKER: _Fuser | None = None  # the method built once per worker process (set by _init_worker)


def _init_worker(spec: MethodSpec, cache_root: str, normalize: str, threads: int | None) -> None:
    global _WORKER
    _WORKER = _Fuser(spec, cache_root, normalize, threads)


def _run_in_worker(job: FuseJob) -> tuple[str, dict]:
    assert _WORKER is not None, "worker not initialised"
    return _WORKER(job)


def fuse_jobs(
    spec: MethodSpec,
    jobs: list[FuseJob],
    cache: BenchCache,
    normalize: str = "minmax",
    threads: int | None = None,
    isolate: bool = True,
    progress: bool = True,
) -> dict[str, dict]:
    """Fuse ``jobs`` with the built-in method ``spec`` into ``cache``; returns key -> record.

    A record holds the timing/memory figures, or ``{"error": message}`` for a pair that failed
    (bad file, sizes differ). Jobs run largest first. ``isolate`` runs them in a fresh worker
    process (meaningful memory figures; a crash cannot take the run down); otherwise in this one.
    """
    todo = sorted(jobs, key=lambda j: (-j.pixels, j.dataset, j.stem))
    out: dict[str, dict] = {}
    if not todo:
        return out
    setup = (spec, str(cache.root), normalize, threads)
    fuser = _run_in_worker if isolate else _Fuser(*setup)

    def done(job: FuseJob, fut) -> None:
        key, rec = fut.result()
        out[key] = rec

    try:
        map_processes(fuser, todo, done, processes=1 if isolate else 0, initializer=_init_worker, initargs=setup,
                      start_method="spawn", progress=progress, desc=f"fuse {spec.label}", unit="img", leave=False)
    except BrokenProcessPool:
        raise EmmaError(f"{spec.label}: the fusion worker stopped (could not build the method, or it crashed); "
                        "run with --no-isolate -v for the details") from None
    return out


def describe_cpu() -> str:
    """A short description of this machine's CPU for the speed table (model name, cores)."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model or 'CPU'}, {os.cpu_count()} logical cores"
