"""Video mode of ``emma fuse``: two videos or frame folders -> a video or a folder of frames."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..errors import EmmaError
from .common import exit_on_interrupt

__all__ = ["wants_video", "fuse_video_command"]


def wants_video(ir: Optional[Path], vi: Optional[Path], out: Optional[Path]) -> bool:
    """True when an input or the output is a video file (by suffix)."""
    from ..video import is_video

    return any(is_video(p) for p in (ir, vi, out))


def fuse_video_command(ir: Optional[Path], vi: Optional[Path], out: Optional[Path], *, mopts: dict, opts: dict,
                       overwrite: bool, fps: Optional[float], offset: Optional[str], lossless: bool,
                       skip_bad: bool, batch: Optional[int], progress: bool = True) -> None:
    """Fuse, then print the output path and one summary line (frames, rate, size, pairing) on stderr."""
    from ..video import fuse_video_files

    if not (ir and vi and out):
        raise EmmaError("video needs IR VI -o OUT (videos or, with --ir/--vi, frame folders)")
    if opts.pop("bits", 8) != 8:
        raise EmmaError("--bits 16 does not apply to video (8-bit frames)")
    opts["normalize"] = opts.get("normalize") or "smooth"
    with exit_on_interrupt("nothing written"):
        rep = fuse_video_files(ir, vi, out, overwrite=overwrite, lossless=lossless, progress=progress, fps=fps,
                               offset=offset, skip_bad=skip_bad, batch=batch, **opts, **mopts)
    typer.echo(str(out))
    typer.echo(f"{rep.frames} frame(s) fused; {rep.summary()}", err=True)
