"""Scoring whole folders: pairing by file stem, a process pool, NaN-aware dataset means, JSON/CSV output."""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import signal
from functools import partial
from pathlib import Path
from typing import Iterable, Mapping

import cv2

from ..concurrency import map_processes
from ..errors import EmmaError, Interrupted
from ..io import check_output_file, list_images, write_output
from .core import compute
from .reading import read_metric_image
from .registry import resolve_names

__all__ = ["dataset_mean", "pair_folders", "missing_stems", "score_folder", "write_json", "write_csv"]

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

    Stems missing from a folder are logged (INFO; :func:`missing_stems` lists them); none in
    common raises :class:`EmmaError`.
    """
    ir, vi, fu = list_images(ir_dir), list_images(vi_dir), list_images(fused_dir)
    common = sorted(set(fu) & set(ir) & set(vi))
    if not common:
        raise EmmaError(f"no image stem is present in all of {fused_dir}, {ir_dir} and {vi_dir}")
    for stem, why in _missing(ir, vi, fu).items():
        log.info("%s skipped: %s", stem, why)
    return {s: (fu[s], ir[s], vi[s]) for s in common}


def _missing(ir: Mapping, vi: Mapping, fu: Mapping) -> dict[str, str]:
    """stem -> which of the three folders lack it, for stems present in some but not all."""
    out = {}
    for stem in sorted(set(ir) | set(vi) | set(fu)):
        lacks = [what for what, d in (("fused", fu), ("infrared", ir), ("visible", vi)) if stem not in d]
        if lacks:
            out[stem] = "no " + ", no ".join(lacks) + " image"
    return out


def missing_stems(ir_dir: str | os.PathLike, vi_dir: str | os.PathLike,
                  fused_dir: str | os.PathLike) -> dict[str, str]:
    """Stems found in some of the three folders but not all, with what is missing (sorted)."""
    return _missing(list_images(ir_dir), list_images(vi_dir), list_images(fused_dir))


def _score_one(names: list[str], job: tuple[str, tuple[Path, Path, Path]]) -> dict[str, float]:
    """Metric values of one ``(stem, (fused, ir, vi))`` job."""
    stem, paths = job
    try:
        f, a, b = (read_metric_image(p) for p in paths)
        return compute(f, a, b, names)
    except EmmaError as e:
        raise EmmaError(f"{stem}: {e}") from None


def _init_worker() -> None:
    cv2.setNumThreads(1)  # one process per core; no nested threading
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle


def _take(stem: str, get, per_image: Scores, failed: dict[str, str], keep_going: bool) -> None:
    """Store the values ``get()`` returns, or (``keep_going``) why it failed."""
    try:
        per_image[stem] = get()
    except Exception as e:
        if not keep_going:
            raise
        msg = str(e) if isinstance(e, EmmaError) else f"{type(e).__name__}: {e}"
        failed[stem] = msg.removeprefix(f"{stem}: ").splitlines()[0] if msg else type(e).__name__
        log.info("%s not scored: %s", stem, failed[stem])


def score_folder(ir_dir: str | os.PathLike, vi_dir: str | os.PathLike, fused_dir: str | os.PathLike,
                 names: str | Iterable[str] | None = None, workers: int | None = None,
                 progress: bool = False, keep_going: bool = False) -> dict:
    """Score every fused image of a folder against its sources, paired by file stem.

    Returns ``{"per_image": {stem: {metric: value}}, "mean": {metric: value},
    "excluded": {metric: count}, "excluded_images": {"failed": {stem: reason},
    "missing": {stem: reason}}}`` (means over finite values, see :func:`dataset_mean`;
    ``missing``: stems not in all three folders).
    ``workers``: processes (default: CPU count, at most one per image; 1 runs in this process).
    ``progress`` shows a tqdm bar on stderr. An image that cannot be scored raises, unless
    ``keep_going``: then it is listed in ``failed`` and the others are scored.
    On Ctrl-C, raises :class:`~emma_fusion.errors.Interrupted` saying how many were scored.
    """
    if workers is not None and workers < 1:
        raise EmmaError(f"workers must be at least 1 (got {workers})")
    wanted = resolve_names(names)
    jobs = pair_folders(ir_dir, vi_dir, fused_dir)
    n_workers = min(workers or os.cpu_count() or 1, len(jobs))
    per_image: Scores = {}
    failed: dict[str, str] = {}
    try:
        map_processes(partial(_score_one, wanted), list(jobs.items()),
                      lambda job, fut: _take(job[0], fut.result, per_image, failed, keep_going),
                      processes=n_workers if n_workers > 1 else 0, initializer=_init_worker,
                      progress=progress, desc="metrics", unit="img")
    except KeyboardInterrupt:
        raise Interrupted(f"{len(per_image)} of {len(jobs)} image(s) scored") from None
    per_image = {s: per_image[s] for s in jobs if s in per_image}
    mean, excluded = dataset_mean(per_image, wanted)
    skipped = {"failed": {s: failed[s] for s in jobs if s in failed},
               "missing": missing_stems(ir_dir, vi_dir, fused_dir)}
    return {"per_image": per_image, "mean": mean, "excluded": excluded, "excluded_images": skipped}


def _finite_or_none(x: float) -> float | None:
    return x if math.isfinite(x) else None


def write_json(result: Mapping, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write a :func:`score_folder` result as JSON, atomically; NaN and infinities become null.

    An existing ``path`` is replaced only with ``overwrite`` (else :class:`EmmaError`).
    """
    path = check_output_file(path, overwrite=overwrite)
    doc = {
        "per_image": {s: {m: _finite_or_none(v) for m, v in vals.items()} for s, vals in result["per_image"].items()},
        "mean": {m: _finite_or_none(v) for m, v in result["mean"].items()},
        "excluded": dict(result["excluded"]),
        "excluded_images": result.get("excluded_images", {"failed": {}, "missing": {}}),
    }
    if "sequence" in result:  # whole-sequence metrics (emma metrics --sequence)
        doc["sequence"] = {m: _finite_or_none(v) for m, v in result["sequence"].items()}
    text = json.dumps(doc, indent=1, allow_nan=False) + "\n"
    return write_output(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def write_csv(result: Mapping, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write per-image values as CSV (``image`` column, then one column per metric), atomically.

    Values use Python's shortest round-trip repr; undefined values are written ``nan``/``inf``.
    An existing ``path`` is replaced only with ``overwrite`` (else :class:`EmmaError`).
    """
    path = check_output_file(path, overwrite=overwrite)
    names = list(result["mean"])
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["image", *names])
    for stem, vals in result["per_image"].items():
        w.writerow([stem, *(repr(float(vals[m])) for m in names)])
    text = buf.getvalue()
    return write_output(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
