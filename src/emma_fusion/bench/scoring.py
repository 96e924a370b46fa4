"""Scoring fused images: the field's metrics plus the benchmark's artefact measure, in a process pool.

Artefact measure ``HFR`` (high-frequency ratio): with ``L`` the 3x3 Laplacian
``[[0, 1, 0], [1, -4, 1], [0, 1, 0]]`` (borders mirrored without repeating the edge pixel) and
``E(X) = mean(L(X)^2)`` the high-frequency energy of an image on the 0..255 scale,

    HFR = E(F) / max(E(IR), E(VI)).

A fusion that only combines the sources' detail stays at or below 1 (the average of two images has
at most the larger energy of the two); noise, stripes, ringing and halos push it above 1, while
SD, SF, AG and EN reward exactly those. All images are in the metric reading convention
(:func:`emma_fusion.metrics.read_metric_image`).
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np
from tqdm import tqdm

from ..errors import EmmaError

__all__ = ["ARTEFACT", "hf_energy", "hf_ratio", "ScoreJob", "score_jobs", "score_one"]

log = logging.getLogger(__name__)

#: Name of the artefact measure in tables (not a ranked metric).
ARTEFACT = "HFR"

_LAPLACIAN = np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=np.float64)


def hf_energy(img: np.ndarray) -> float:
    """Mean squared 3x3 Laplacian of an (H, W) image on the 0..255 scale (reflect-101 borders)."""
    lap = cv2.filter2D(np.asarray(img, dtype=np.float64), cv2.CV_64F, _LAPLACIAN, borderType=cv2.BORDER_REFLECT_101)
    return float(np.mean(lap * lap))


def hf_ratio(fused: np.ndarray, ir: np.ndarray, vi: np.ndarray) -> float:
    """``HFR``: high-frequency energy of ``fused`` over the larger of the sources' (NaN if both flat)."""
    ref = max(hf_energy(ir), hf_energy(vi))
    return hf_energy(fused) / ref if ref > 0 else float("nan")


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
    with tqdm(total=len(jobs), desc="metrics", unit="img", disable=not progress, leave=False) as bar:
        if n == 1:
            for job in jobs:
                key, res = score_one(job)
                out[key] = res
                if on_result:
                    on_result(key, res)
                bar.update()
            return out
        with ProcessPoolExecutor(n, mp_context=mp.get_context("spawn"), initializer=_init_worker) as pool:
            futures = [pool.submit(score_one, job) for job in jobs]
            try:
                for fut in futures:
                    key, res = fut.result()
                    out[key] = res
                    if on_result:
                        on_result(key, res)
                    bar.update()
            except BaseException:
                pool.shutdown(wait=False, cancel_futures=True)
                raise
    return out
