"""Scoring whole folders: pairing by file stem, a process pool, NaN-aware dataset means, JSON/CSV output."""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Iterable, Mapping

import cv2
from tqdm import tqdm

from ..errors import EmmaError
from ..io import atomic_write, list_images
from .core import compute
from .reading import read_metric_image
from .registry import resolve_names

__all__ = ["dataset_mean", "pair_folders", "score_folder", "write_json", "write_csv"]

log = logging.getLogger(__name__)

Scores = dict[str, dict[str, float]]


def dataset_mean(per_image: Mapping[str, Mapping[str, float]],
                 names: Iterable[str] | None = None) -> tuple[dict[str, float], dict[str, int]]:
    """Arithmetic mean of each metric over images, skipping non-finite values.

    Returns ``(mean, excluded)``: ``mean[m]`` is the mean of the finite values of metric ``m``
    (NaN when there are none) and ``excluded[m]`` how many images were left out because their
    value was NaN or infinite (e.g. CC of a flat image, PSNR of an exact copy).
    """
    if names is None:
        names = list(dict.fromkeys(m for vals in per_image.values() for m in vals))
    mean: dict[str, float] = {}
    excluded: dict[str, int] = {}
    for m in names:
        vals = [v[m] for v in per_image.values() if m in v]
        good = [x for x in vals if math.isfinite(x)]
        mean[m] = math.fsum(good) / len(good) if good else float("nan")
        excluded[m] = len(vals) - len(good)
    return mean, excluded


def pair_folders(ir_dir: str | os.PathLike, vi_dir: str | os.PathLike,
                 fused_dir: str | os.PathLike) -> dict[str, tuple[Path, Path, Path]]:
    """Map stem -> (fused, ir, vi) paths for the stems present in all three folders (sorted).

    Stems missing from one folder are logged as a warning; none in common raises :class:`EmmaError`.
    """
    ir, vi, fu = list_images(ir_dir), list_images(vi_dir), list_images(fused_dir)
    common = sorted(set(fu) & set(ir) & set(vi))
    if not common:
        raise EmmaError(f"no image stem is present in all of {fused_dir}, {ir_dir} and {vi_dir}")
    no_src = sorted(set(fu) - set(common))
    no_fused = sorted((set(ir) & set(vi)) - set(common))
    if no_src:
        log.warning("%d fused image(s) without both sources skipped, e.g. %s", len(no_src), no_src[0])
    if no_fused:
        log.warning("%d source pair(s) without a fused image skipped, e.g. %s", len(no_fused), no_fused[0])
    return {s: (fu[s], ir[s], vi[s]) for s in common}


def _score_one(stem: str, paths: tuple[Path, Path, Path], names: list[str]) -> tuple[str, dict[str, float]]:
    try:
        f, a, b = (read_metric_image(p) for p in paths)
        return stem, compute(f, a, b, names)
    except EmmaError as e:
        raise EmmaError(f"{stem}: {e}") from None


def _init_worker() -> None:
    cv2.setNumThreads(1)  # one process per core; no nested threading


def score_folder(ir_dir: str | os.PathLike, vi_dir: str | os.PathLike, fused_dir: str | os.PathLike,
                 names: str | Iterable[str] | None = None, workers: int | None = None,
                 progress: bool = False) -> dict:
    """Score every fused image of a folder against its sources, paired by file stem.

    Returns ``{"per_image": {stem: {metric: value}}, "mean": {metric: value},
    "excluded": {metric: count}}`` (means over finite values, see :func:`dataset_mean`).
    ``workers``: processes (default: CPU count, at most one per image; 1 runs in this process).
    ``progress`` shows a tqdm bar on stderr.
    """
    wanted = resolve_names(names)
    jobs = pair_folders(ir_dir, vi_dir, fused_dir)
    n_workers = min(workers or os.cpu_count() or 1, len(jobs))
    if n_workers < 1:
        raise EmmaError("--workers must be at least 1")
    per_image: Scores = {}
    with tqdm(total=len(jobs), desc="metrics", unit="img", disable=not progress) as bar:
        if n_workers == 1:
            for stem, paths in jobs.items():
                per_image[stem] = _score_one(stem, paths, wanted)[1]
                bar.update()
        else:
            with ProcessPoolExecutor(max_workers=n_workers, initializer=_init_worker) as pool:
                futures = [pool.submit(_score_one, s, p, wanted) for s, p in jobs.items()]
                try:
                    for fut in as_completed(futures):
                        stem, vals = fut.result()
                        per_image[stem] = vals
                        bar.update()
                except BaseException:
                    pool.shutdown(wait=False, cancel_futures=True)
                    raise
    per_image = {s: per_image[s] for s in jobs}
    mean, excluded = dataset_mean(per_image, wanted)
    return {"per_image": per_image, "mean": mean, "excluded": excluded}


def _finite_or_none(x: float) -> float | None:
    return x if math.isfinite(x) else None


def write_json(result: Mapping, path: str | os.PathLike) -> Path:
    """Write a :func:`score_folder` result as JSON, atomically; NaN and infinities become null."""
    doc = {
        "per_image": {s: {m: _finite_or_none(v) for m, v in vals.items()} for s, vals in result["per_image"].items()},
        "mean": {m: _finite_or_none(v) for m, v in result["mean"].items()},
        "excluded": dict(result["excluded"]),
    }
    text = json.dumps(doc, indent=1, allow_nan=False) + "\n"
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def write_csv(result: Mapping, path: str | os.PathLike) -> Path:
    """Write per-image values as CSV (``image`` column, then one column per metric), atomically.

    Values use Python's shortest round-trip repr; undefined values are written ``nan``/``inf``.
    """
    names = list(result["mean"])
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["image", *names])
    for stem, vals in result["per_image"].items():
        w.writerow([stem, *(repr(float(vals[m])) for m in names)])
    text = buf.getvalue()
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
