"""Scoring fused images: the field's metrics plus the benchmark's artefact measure, in a process pool.

Artefact measure ``HFR`` (high-frequency ratio). With ``G_s`` a Gaussian blur of standard deviation
``s`` pixels (borders mirrored), split an image ``X`` (0..255) into its finest band
``D1 = X - G_1(X)`` (periods below about 6 pixels: noise, stripes, checkerboard) and the next band
``D2 = G_1(X) - G_2(X)``. Its high-frequency share is ``S(X) = mean(D1^2) / mean(D2^2)``, and

    HFR = S(F) / max(S(IR), S(VI)).

Fusion that only combines the sources' detail keeps the sources' spectral shape (HFR about 1 or
below); noise, stripes and checkerboard patterns add energy to the finest band and push HFR up.
The share is a ratio of two bands of the same image, so a global contrast change (the min-max
stretch every fused image gets before saving) leaves it unchanged: a plain energy ratio
``mean(Laplacian(F)^2) / max(...)`` rose from 1.3 to 12 on MSRS when the same fused images were
only contrast-stretched (docs/BENCH.md). All images are in the metric reading convention
(:func:`emma_fusion.metrics.read_metric_image`).
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass

import cv2
import numpy as np

from ..concurrency import map_processes
from ..errors import EmmaError

__all__ = ["ARTEFACT", "hf_share", "hf_ratio", "ScoreJob", "score_jobs", "score_one"]

log = logging.getLogger(__name__)

#: Name of the artefact measure in tables (not a ranked metric).
ARTEFACT = "HFR"


def _blur(x: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(x, (0, 0), sigma, borderType=cv2.BORDER_REFLECT_101)


def hf_share(img: np.ndarray) -> float:
    """``S(X)``: energy of the finest band over the next band of an (H, W) image (NaN if flat)."""
    x = np.asarray(img, dtype=np.float64)
    g1, g2 = _blur(x, 1.0), _blur(x, 2.0)
    e1, e2 = float(np.mean((x - g1) ** 2)), float(np.mean((g1 - g2) ** 2))
    return e1 / e2 if e2 > 0 else math.nan


def hf_ratio(fused: np.ndarray, ir: np.ndarray, vi: np.ndarray) -> float:
    """``HFR``: high-frequency share of ``fused`` over the larger of the sources' (NaN if undefined)."""
    ref = max((s for s in (hf_share(ir), hf_share(vi)) if math.isfinite(s)), default=math.nan)
    f = hf_share(fused)
    return f / ref if ref > 0 and math.isfinite(f) else math.nan


@dataclass(frozen=True)
class ScoreJob:
    """Score one fused file against its sources for the metric ``names`` (``HFR`` included)."""

    key: str
    label: str
    fused: str
    ir: str
    vi: str
    names: tuple[str, ...]


def score_one(job: ScoreJob) -> tuple[str, dict[str, float] | str]:
    """(key, {name: value}) for ``job``, or (key, error message) when the images do not fit."""
    from ..metrics import compute, read_metric_image

    try:
        f, a, b = (read_metric_image(p) for p in (job.fused, job.ir, job.vi))
        if not (f.shape == a.shape == b.shape):
            raise EmmaError(f"fused image is {f.shape[1]}x{f.shape[0]}, the sources are {a.shape[1]}x{a.shape[0]}")
        metric_names = [n for n in job.names if n != ARTEFACT]
        values = compute(f, a, b, metric_names) if metric_names else {}
        if ARTEFACT in job.names:
            values[ARTEFACT] = hf_ratio(f, a, b)
        return job.key, values
    except EmmaError as e:
        return job.key, f"{job.label}: {e}"


def _init_worker() -> None:
    cv2.setNumThreads(1)


def score_jobs(jobs: list[ScoreJob], workers: int | None = None, progress: bool = True,
               on_result=None) -> dict[str, dict[str, float] | str]:
    """Score every job; key -> values (or an error message). ``workers`` processes (1: in this one).

    ``on_result(key, result)`` is called as each job finishes (the runner saves to the cache there,
    so an interrupted run keeps what was done).
    """
    out: dict[str, dict[str, float] | str] = {}
    if not jobs:
        return out
    n = max(1, min(workers or os.cpu_count() or 1, len(jobs)))

    def done(job: ScoreJob, fut) -> None:
        key, res = fut.result()
        out[key] = res
        if on_result:
            on_result(key, res)

    map_processes(score_one, jobs, done, processes=n if n > 1 else 0, initializer=_init_worker, start_method="spawn",
                  progress=progress, desc="metrics", unit="img", leave=False)
    return out
