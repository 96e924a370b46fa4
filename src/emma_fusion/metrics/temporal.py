"""Temporal stability of a fused frame sequence: does the fused video change more than its sources?

``TS`` (lower is better) = mean |F_t - F_{t-1}| / mean max(|A_t - A_{t-1}|, |B_t - B_{t-1}|),
means over all pixels and consecutive frame pairs. A per-pixel weighted average of the sources
with weights steady in time changes, at every pixel, by at most the larger source change, so a
fusion that adds no change of its own (motion shows in the sources too) scores at most about 1;
brightness flicker (e.g. a per-frame min-max stretch when a hot object enters) adds to every
pixel and raises it. A still sequence (sources unchanged) scores 0 when the fused frames are
unchanged too (the denominator is floored at 1e-3 gray levels).

Frames are 2-D float arrays in the reading convention (values 0..255, :func:`read_metric_image`).
"""

from __future__ import annotations

import os
from typing import Iterable

import numpy as np

from ..errors import EmmaError
from .dataset import pair_folders
from .reading import read_metric_image

__all__ = ["SEQUENCE_METRICS", "frame_change", "temporal_stability", "score_sequence", "bench_sequences"]

#: Metrics of whole frame sequences: name -> (higher is better, description).
SEQUENCE_METRICS = {"TS": (False, "temporal stability: fused frame-to-frame change over the sources' (<= ~1: none added)")}

_FLOOR = 1e-3


def _diffs(frames: Iterable[np.ndarray]) -> Iterable[np.ndarray]:
    prev = None
    for f in frames:
        f = np.asarray(f, dtype=np.float64)
        if prev is not None:
            if f.shape != prev.shape:
                raise EmmaError(f"frame size changed in the sequence: {prev.shape} -> {f.shape}")
            yield np.abs(f - prev)
        prev = f


def frame_change(frames: Iterable[np.ndarray]) -> float:
    """Mean absolute frame-to-frame change of a sequence of (H, W) frames (gray levels); NaN for < 2 frames."""
    vals = [float(d.mean()) for d in _diffs(frames)]
    return float(np.mean(vals)) if vals else float("nan")


def temporal_stability(fused: Iterable[np.ndarray], ir: Iterable[np.ndarray], vi: Iterable[np.ndarray]) -> float:
    """``TS`` of a fused sequence against its two source sequences (module docstring); NaN for < 2 frames."""
    num, den, n = 0.0, 0.0, 0
    for df, da, db in zip(_diffs(fused), _diffs(ir), _diffs(vi)):
        if not (df.shape == da.shape == db.shape):
            raise EmmaError(f"fused and source frames differ in size: {df.shape}, {da.shape}, {db.shape}")
        num += float(df.mean())
        den += float(np.maximum(da, db).mean())
        n += 1
    if n == 0:
        return float("nan")
    return num / max(den, _FLOOR * n)


def score_sequence(ir_dir: str | os.PathLike, vi_dir: str | os.PathLike, fused_dir: str | os.PathLike) -> dict[str, float]:
    """``{"TS": value}`` for three folders holding the frames of one sequence, in file-stem order."""
    jobs = pair_folders(ir_dir, vi_dir, fused_dir)
    if len(jobs) < 2:
        raise EmmaError("a frame sequence needs at least 2 frames present in all three folders")

    def frames(k: int):
        return (read_metric_image(paths[k]) for paths in jobs.values())

    return {"TS": temporal_stability(frames(0), frames(1), frames(2))}


def bench_sequences(res) -> dict[tuple[str, str], float]:
    """``{(dataset, method label): TS}`` of an ``emma bench`` result whose datasets are frame sequences.

    Each dataset's pairs, in stem order, are the frames; a method's fused frames that are missing
    are left out of its sequence (the rest still count as consecutive).
    """
    out = {}
    for ds in res.datasets:
        for label in res.methods_on(ds.name):
            frames = [(res.fused[k], p.ir, p.vi) for p in ds.pairs if (k := (ds.name, p.stem, label)) in res.fused]
            if len(frames) >= 2:
                out[(ds.name, label)] = temporal_stability(*((read_metric_image(f[i]) for f in frames) for i in range(3)))
    return out
