"""``emma fuse``: one pair of files, or two folders paired by file stem."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Optional, get_args

import typer

from ..choices import Color, VideoNormalize
from ..choices import ColorSource as _ColorSource
from ..errors import EmmaError
from .common import exit_on_interrupt
from .video import fuse_video_command, wants_video


def _choices(name: str, literal) -> type[Enum]:
    """A str Enum (what typer shows as choices) from one of the API's Literal types."""
    return Enum(name, {v: v for v in get_args(literal)}, type=str)


ColorMode = _choices("ColorMode", Color)
ColorSource = _choices("ColorSource", _ColorSource)
NormalizeMode = _choices("NormalizeMode", VideoNormalize)


def fuse_command(
    ir: Optional[Path] = typer.Argument(None, help="Infrared (or CT/PET/SPECT) image."),
    vi: Optional[Path] = typer.Argument(None, help="Visible (or MRI) image."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output file (one pair; a folder DIR, or a name without suffix, means DIR/<IR stem>.png) or folder (folders). Never an input."),
    ir_dir: Optional[Path] = typer.Option(None, "--ir", help="Folder of infrared images."),
    vi_dir: Optional[Path] = typer.Option(None, "--vi", help="Folder of visible images (paired by file stem)."),
    method: str = typer.Option("emma", "--method", "-m", help="Fusion method (see `emma methods`)."),
    weights: Optional[str] = typer.Option(None, "--weights", "-w", help="U-Fuser weights (.safetensors/.pth) or packaged model name."),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda."),
    color: ColorMode = typer.Option(ColorMode.ycbcr, "--color", help="ycbcr: keep the colour source's chroma; gray: luma only."),
    color_source: ColorSource = typer.Option(ColorSource.auto, "--color-source", help="Input that gives the colour (auto: the colour one)."),
    normalize: Optional[NormalizeMode] = typer.Option(None, "--normalize", help="minmax (authors' convention; images' default) or clip; video: smooth (its default, steady), minmax or clip."),
    tile: Optional[int] = typer.Option(None, "--tile", help="Tile side for large images (0: never tile; default 1024)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads for the network."),
    bits: int = typer.Option(8, "--bits", help="Output bit depth: 8 or 16 (16: gray PNG/TIFF)."),
    precision: Optional[str] = typer.Option(None, "--precision", help="Network arithmetic: fp32 (default), bf16 (CPUs with AVX-512 BF16 or AMX; elsewhere fp32 with a warning), fp16 (GPU)."),
    backend: Optional[str] = typer.Option(None, "--backend", help="torch (default) or onnxruntime (pip install 'emma-fusion\\[onnx]')."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing outputs (else: one pair refuses, folders skip them)."),
    streams: Optional[int] = typer.Option(None, "--streams", min=1, help="Folder mode: pairs in flight at once, sharing the threads (default 2, or 1 with --threads 1; 1: one at a time)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Folder mode: a progress bar (on a terminal only)."),
    fps: Optional[float] = typer.Option(None, "--fps", help="Video: frame rate of frame-folder inputs (and so of the output video)."),
    offset: Optional[str] = typer.Option(None, "--offset", help="Video: seconds (0.5) or infrared frames (12f) by which the infrared stream starts after the visible one."),
    lossless: bool = typer.Option(False, "--lossless", help="Video: lossless FFV1 (.mkv/.avi) instead of H.264."),
    skip_bad: bool = typer.Option(False, "--skip-bad-frames", help="Video: skip frames that fail to decode (counted) instead of stopping."),
    batch: Optional[int] = typer.Option(None, "--batch", min=1, help="Video: frame pairs per network call (default 1 on the CPU, 4 on CUDA)."),
) -> None:
    """Fuse an infrared/visible (or CT-PET-SPECT/MRI) pair, or two folders of pairs."""
    _check_options(bits, tile, threads, precision, device)
    _check_inputs(ir, vi, ir_dir, vi_dir)
    opts = dict(color=color.value, color_source=color_source.value, normalize=normalize and normalize.value, bits=bits)
    mopts = _method_options(method, device=device, threads=threads,
                            specific=dict(weights=weights, tile=tile, precision=precision, backend=backend))
    if wants_video(ir or ir_dir, vi or vi_dir, out):
        return fuse_video_command(ir or ir_dir, vi or vi_dir, out, mopts=mopts, opts=opts, overwrite=overwrite, fps=fps,
                                  offset=offset, lossless=lossless, skip_bad=skip_bad, batch=batch,
                                  progress=progress)
    _refuse_video_options(fps=fps, offset=offset, lossless=lossless, skip_bad=skip_bad, batch=batch)
    if opts["normalize"] in (None, "smooth"):
        if opts["normalize"]:
            raise EmmaError("--normalize smooth applies to video; for images use minmax or clip")
        opts["normalize"] = "minmax"
    if ir_dir or vi_dir or (ir and ir.is_dir()):
        ir_dir, vi_dir = ir_dir or ir, vi_dir or vi
        if not (ir_dir and vi_dir and out):
            raise EmmaError("folder mode needs two folders (IR_DIR VI_DIR, or --ir DIR --vi DIR) and --out DIR")
        if ir_dir.is_file() or vi_dir.is_file():
            raise EmmaError("--ir and --vi take folders; for one pair: emma fuse IR VI -o OUT")
        with exit_on_interrupt("nothing written"):
            _fuse_folders(ir_dir, vi_dir, out, mopts, opts, overwrite, streams, progress)
        return
    if not (ir and vi and out):
        raise EmmaError("give IR VI -o OUT for one pair, or --ir DIR --vi DIR --out DIR for folders")
    if out.is_dir() or (not out.exists() and not out.suffix):
        out = out / f"{ir.stem}.png"  # -o DIR (made when missing)
    from ..api import fuse_files
    from ..io import check_not_input

    check_not_input(out, (ir, vi))  # the more telling error first, even with --overwrite

    with exit_on_interrupt("nothing written"):
        path = fuse_files(ir, vi, out, overwrite=overwrite, **opts, **mopts)
    typer.echo(str(path))


def _method_options(method: str, device: str, threads: Optional[int], specific: dict) -> dict:
    """The options ``method`` takes, from its registry entry: device and threads where it takes them,
    and each method-specific option the user gave (one it does not take is an error)."""
    from ..methods.base import method_info

    takes = method_info(method).options
    given = {k: v for k, v in specific.items() if v is not None}
    for key in given:
        if key not in takes:
            raise EmmaError(f"--{key} does not apply to --method {method}")
    common = {k: v for k, v in dict(device=device, threads=threads).items() if k in takes and v is not None}
    if "precision" in given:
        from ..hardware import inference_precision

        given["precision"], note = inference_precision(given["precision"], device)
        if note:
            typer.echo(f"warning: {note}", err=True)
    return {"method": method, **common, **given}


def _check_inputs(ir: Optional[Path], vi: Optional[Path], ir_dir: Optional[Path], vi_dir: Optional[Path]) -> None:
    """Refuse inputs given two ways (IR VI and --ir/--vi), and a folder beside a file, in one line."""
    if (ir or vi) and (ir_dir or vi_dir):
        raise EmmaError("give the inputs once: IR VI (two files, or two folders) or --ir DIR --vi DIR, not both")
    if ir and vi and ir.exists() and vi.exists() and ir.is_dir() != vi.is_dir():
        kind = {True: "a folder", False: "a file"}
        raise EmmaError(f"{ir} is {kind[ir.is_dir()]} but {vi} is {kind[vi.is_dir()]}: give two image files "
                        "(one pair) or two folders (pairs by file stem)")


def _refuse_video_options(**given) -> None:
    """Video-only options given for images are an error (they would be ignored without a word)."""
    flags = {"fps": "--fps", "offset": "--offset", "lossless": "--lossless", "skip_bad": "--skip-bad-frames", "batch": "--batch"}
    named = [flags[k] for k, v in given.items() if v not in (None, False)]
    if named:
        verb = "applies" if len(named) == 1 else "apply"
        raise EmmaError(f"{', '.join(named)} {verb} to video only; these inputs and output are images")


def _check_options(bits: int, tile: Optional[int], threads: Optional[int], precision: str, device: str) -> None:
    """Refuse bad option values up front with a one-line :class:`EmmaError`."""
    if bits not in (8, 16):
        raise EmmaError("--bits must be 8 or 16")
    if tile is not None and (tile < 0 or (tile and (tile % 8 or tile <= 128))):
        raise EmmaError(f"--tile must be 0 (no tiling) or a multiple of 8 above 128, e.g. 512 or 1024 (got {tile})")
    if threads is not None and threads < 1:
        raise EmmaError(f"--threads must be at least 1 (got {threads})")
    if precision:
        from ..hardware import inference_precision

        inference_precision(precision, device)  # an unknown precision, or fp16 on the CPU: one line, before any work


def _fuse_folders(ir_dir: Path, vi_dir: Path, out: Path, mopts: dict, opts: dict, overwrite: bool,
                  streams: Optional[int], progress: bool = True) -> None:
    """Folder mode: fuse, print the summary and each problem once; exit 1 when a pair failed."""
    from ..api import fuse_folder, resolve_method

    rep = fuse_folder(ir_dir, vi_dir, out, resolve_method(None, **mopts), overwrite=overwrite, streams=streams,
                      progress=progress, **opts)
    for name in rep.unpaired:
        typer.echo(f"warning: no partner for {name}", err=True)
    typer.echo(f"{len(rep.written)} written, {len(rep.skipped)} skipped (exist; --overwrite to redo), "
               f"{len(rep.unpaired)} unpaired, {len(rep.failed)} failed -> {out}")
    if rep.failed:
        for stem, msg in rep.failed.items():
            typer.echo(f"error: {stem}: {msg}", err=True)
        sys.exit(1)


def register(app: typer.Typer) -> None:
    app.command("fuse")(fuse_command)
