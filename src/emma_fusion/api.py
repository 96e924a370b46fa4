"""The Python API: fuse a pair (paths, arrays or PIL images), a pair of files, or two folders.

Colour is handled here, once, around the method: both inputs are reduced to BT.601 luma, the
method fuses the luma, and the colour source's hue and saturation are put back on it
(:func:`~emma_fusion.io.colorize`). Pixels black in both inputs stay black (:func:`~emma_fusion.core.keep_black`).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .choices import Color, ColorSource, Normalize
from .concurrency import thread_streams
from .core import fuse_luma, normalize_output
from .errors import EmmaError, Interrupted, describe_failure
from .io import (IMAGE_SUFFIXES, ImageLike, check_not_input, colorize, ensure_writable_dir, is_pseudo_color,
                 pair_by_stem, read_image, rgb_to_ycbcr, same_file, to_array, to_gray, write_image)
from .methods.base import FusionMethod, get_method
from .progress import progress_bar

__all__ = ["fuse", "fuse_files", "fuse_folder", "resolve_method", "FolderReport", "normalize_output", "check_output_path"]

log = logging.getLogger(__name__)



def resolve_method(
    model: FusionMethod | nn.Module | str | os.PathLike | None = None,
    method: str = "emma",
    **options,
) -> FusionMethod:
    """Turn what the user passed into a :class:`FusionMethod`.

    ``model`` may be a ready method, a network module, a packaged model name or a weights path;
    without it, ``method`` names a registered method (``"emma"`` = the shipped network).
    """
    if model is None:
        return get_method(method, **options)
    if isinstance(model, nn.Module):
        return get_method("emma", model=model, **options)
    if isinstance(model, (str, os.PathLike)):
        return get_method("emma", weights=model, **options)
    if callable(model):
        return model
    raise EmmaError(f"cannot fuse with a {type(model).__name__}")


def _color_source(ir: np.ndarray, vi: np.ndarray, source: ColorSource) -> np.ndarray | None:
    if source == "none":
        return None
    if source == "auto":
        return vi if is_pseudo_color(vi) else ir if is_pseudo_color(ir) else None
    arr = {"vi": vi, "ir": ir}.get(source)
    if arr is None:
        raise EmmaError(f"unknown colour source {source!r}; use auto, vi, ir or none")
    return arr if arr.ndim == 3 else None


def _check_options(color: str, normalize: str) -> None:
    if color not in ("ycbcr", "gray"):
        raise EmmaError(f"unknown colour mode {color!r}; use ycbcr or gray")
    if normalize not in ("minmax", "clip"):
        raise EmmaError(f"unknown normalisation {normalize!r}; use minmax or clip")


def fuse(
    ir: ImageLike,
    vi: ImageLike,
    model: FusionMethod | nn.Module | str | os.PathLike | None = None,
    *,
    method: str = "emma",
    color: Color = "ycbcr",
    color_source: ColorSource = "auto",
    normalize: Normalize = "minmax",
    key: str | None = None,
    **options,
) -> np.ndarray:
    """Fuse an infrared (or CT/PET/SPECT) image with a visible (or MRI) image.

    Args:
        ir, vi: paths, PIL images or arrays ((H, W) or (H, W, 3); integer dtypes are scaled by
            their maximum, float arrays must be in [0, 1]). Same H x W. A colour ``ir`` is reduced
            to luma.
        model: a method object, an ``nn.Module`` U-Fuser, a packaged model name or a weights file;
            ``None`` uses ``method``.
        method: registered method name (``emma`` = the network; see ``emma methods``).
        color: ``ycbcr`` puts the colour source's hue and saturation back on the fused luma; ``gray`` does not.
        color_source: which input gives the chroma: ``auto`` (the visible image if it is in colour,
            else the other one if it is pseudo-colour, e.g. PET/SPECT), ``vi``, ``ir`` or ``none``.
        normalize: ``minmax`` (the authors' convention) or ``clip``.
        key: the pair's name, for methods that look results up by file stem.
        **options: passed to the method's constructor (``weights``, ``device``, ``tile``, ``threads``...).

    Returns:
        float32 array in [0, 1]: (H, W), or (H, W, 3) RGB when a colour source is used.
    """
    _check_options(color, normalize)
    ir_a, vi_a = to_array(ir), to_array(vi)
    if ir_a.shape[:2] != vi_a.shape[:2]:
        raise EmmaError(f"image sizes differ: infrared {ir_a.shape[1]}x{ir_a.shape[0]}, visible {vi_a.shape[1]}x{vi_a.shape[0]}")
    src = _color_source(ir_a, vi_a, color_source) if color == "ycbcr" else None
    # Only the colour source becomes YCbCr (its Cb/Cr come back); the inputs are fused as luma.
    ycc = None if src is None else rgb_to_ycbcr(src)
    luma = [ycc[..., 0] if a is src else to_gray(a) for a in (ir_a, vi_a)]
    fm = resolve_method(model, method, **options)
    fused = fuse_luma(fm, luma[0], luma[1], normalize=normalize, key=key)
    if ycc is None:
        return fused
    return colorize(fused, ycc)


def check_output_path(out: str | os.PathLike, inputs, bits: int = 8) -> Path:
    """Check an output file before any work: known format, not an input, folder writable.

    Raises :class:`EmmaError`; returns ``out`` as a :class:`Path`.
    """
    out = Path(out)
    if out.suffix.lower() not in IMAGE_SUFFIXES:
        raise EmmaError(f"output {out} needs an image suffix: one of {', '.join(IMAGE_SUFFIXES)}")
    if bits not in (8, 16):
        raise EmmaError("bits must be 8 or 16")
    if out.is_dir():
        raise EmmaError(f"output {out} is a folder; give a file name")
    check_not_input(out, inputs)
    ensure_writable_dir(out.parent)
    return out


def fuse_files(ir: str | os.PathLike, vi: str | os.PathLike, out: str | os.PathLike, bits: int = 8, *,
               overwrite: bool = False, **kwargs) -> Path:
    """Fuse two image files and write the result to ``out`` atomically; returns ``out``.

    The inputs are read and ``out`` checked (image suffix, writable folder, not one of the inputs,
    and, unless ``overwrite``, not an existing file) before the method runs, so a bad path fails
    fast and neither an input nor an earlier result is replaced by accident.
    """
    ir_a, vi_a = read_image(ir), read_image(vi)
    out = check_output_path(out, (ir, vi), bits)
    if out.exists() and not overwrite:
        raise EmmaError(f"{out} exists; pass --overwrite to replace it (overwrite=True in Python)")
    fused = fuse(ir_a, vi_a, key=Path(ir).stem, **kwargs)
    return write_image(out, fused, bits=bits)


@dataclass
class FolderReport:
    """What :func:`fuse_folder` did."""

    written: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    unpaired: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


pair_folders = pair_by_stem  # pairing by file stem, as every folder command does


def fuse_folder(
    ir_dir: str | os.PathLike,
    vi_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    model: FusionMethod | nn.Module | str | os.PathLike | None = None,
    *,
    overwrite: bool = False,
    suffix: str = ".png",
    bits: int = 8,
    color: Color = "ycbcr",
    color_source: ColorSource = "auto",
    normalize: Normalize = "minmax",
    progress: bool = True,
    streams: int | None = None,
    **options,
) -> FolderReport:
    """Fuse every pair (same stem in ``ir_dir`` and ``vi_dir``) into ``out_dir/<stem><suffix>``.

    Existing outputs are kept unless ``overwrite``; every file is written atomically. A pair that
    fails (unreadable, sizes differ) is recorded in ``report.failed`` (and logged at INFO level)
    and the others go on. ``out_dir`` may not be an input folder, and is checked for writing
    before any work. On Ctrl-C, queued pairs are cancelled, the ones in progress are finished,
    and :class:`~emma_fusion.errors.Interrupted` says how many were written.

    ``streams`` pairs are processed at a time, each in its own thread (read, colour, method,
    encode, write) with ``torch.get_num_threads() // streams`` intra-op threads, so one stream's
    decoding and encoding run while the other computes. Default: ``min(2, torch threads)``;
    ``streams=1`` runs the pairs one after another with all threads. Outputs are the same
    either way (to float32 rounding of the thread count, ~1e-7). The method is called from
    ``streams`` threads at once; use ``streams=1`` for a custom method that is not thread-safe
    (the built-in ones are).
    ``color``, ``color_source``, ``normalize`` are as in :func:`fuse`; ``**options`` go to the
    method (``method``, ``weights``, ``device``, ``tile``, ``threads``, ``precision``...).
    """
    _check_options(color, normalize)
    pairs, unpaired = pair_folders(ir_dir, vi_dir)
    if not pairs:
        raise EmmaError(f"no image pairs with matching names in {ir_dir} and {vi_dir}")
    _check_output_folder(out_dir, ir_dir, vi_dir, suffix)
    report = FolderReport(unpaired=unpaired)
    for name in unpaired:
        log.info("no partner for %s", name)
    fm = resolve_method(model, options.pop("method", "emma"), **options)
    todo = []
    for stem, ir, vi in pairs:
        out = Path(out_dir) / f"{stem}{suffix}"
        check_not_input(out, (ir, vi))
        if out.exists() and not overwrite:
            report.skipped.append(out)
        else:
            todo.append((stem, ir, vi, out))
    streams = max(1, streams or min(2, torch.get_num_threads()))
    style = dict(model=fm, bits=bits, color=color, color_source=color_source, normalize=normalize)
    interrupted = False
    with thread_streams(streams) as pool:
        jobs = [pool.submit(fuse_files, ir, vi, out, overwrite=True, **style) for _, ir, vi, out in todo]
        try:
            _collect(todo, jobs, report, progress)
        except KeyboardInterrupt:
            interrupted = True  # leaving the block cancels queued pairs and waits for running ones
    if interrupted:
        _collect_finished(todo, jobs, report)
        raise Interrupted(f"{len(report.written)} of {len(todo)} written; re-run to continue")
    return report


def _check_output_folder(out_dir, ir_dir, vi_dir, suffix: str) -> None:
    """Refuse an output folder that is an input folder, or not writable, before any pair is fused."""
    if suffix.lower() not in IMAGE_SUFFIXES:
        raise EmmaError(f"unsupported output suffix {suffix!r}; use one of {', '.join(IMAGE_SUFFIXES)}")
    for what, folder in (("infrared", ir_dir), ("visible", vi_dir)):
        if same_file(out_dir, folder):
            raise EmmaError(f"output folder {out_dir} is the {what} input folder; choose another")
    ensure_writable_dir(out_dir)


def _record(stem: str, job, report: FolderReport) -> None:
    """Put one finished pair's outcome in ``report`` (written, or failed with the reason)."""
    try:
        report.written.append(job.result())
    except (EmmaError, OSError, ValueError, RuntimeError, MemoryError) as e:
        report.failed[stem] = str(e) if isinstance(e, EmmaError) else describe_failure(e)
        log.info("%s: %s", stem, e)


def _collect(todo, jobs, report: FolderReport, progress: bool) -> None:
    """Wait for the pairs in order, recording each, with a progress bar."""
    with progress_bar(total=len(jobs), enabled=progress, desc="fusing", unit="pair") as bar:
        for (stem, *_), job in zip(todo, jobs):
            _record(stem, job, report)
            bar.update()


def _collect_finished(todo, jobs, report: FolderReport) -> None:
    """After an interrupt (all jobs done or cancelled): record every pair that ran, afresh."""
    report.written.clear()
    report.failed.clear()
    for (stem, *_), job in zip(todo, jobs):
        if job.done() and not job.cancelled() and not isinstance(job.exception(), KeyboardInterrupt):
            _record(stem, job, report)
