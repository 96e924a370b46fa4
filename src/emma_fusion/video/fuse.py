"""Fusing infrared and visible video: decode, pair, fuse in batches, normalise steadily, encode.

Decoding (one thread per input), fusion (the network on batches of frames) and encoding/writing
run at the same time, joined by short queues. Colour and black are handled as for images
(:func:`emma_fusion.api.fuse`): the inputs are fused as luma, common black stays black
(:func:`~emma_fusion.core.keep_black`) and the colour source's hue and saturation are put back
(:func:`~emma_fusion.io.colorize`); ``color_source="auto"`` decides once, on the first pair, so the whole video is consistent.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import queue
import signal
import threading
from collections import deque
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator, Literal, Union

import numpy as np
import torch
from torch import nn

from ..api import Color, ColorSource, _check_options, _color_source, resolve_method
from ..concurrency import sigint_deferred, thread_streams
from ..core import keep_black, normalize_output
from ..errors import EmmaError, Interrupted
from ..io import (IMAGE_SUFFIXES, check_not_input, colorize, ensure_writable_dir, list_images, pair_by_stem, rgb_to_ycbcr,
                  to_array, to_gray, write_image)
from ..methods.base import FusionMethod
from .io import VIDEO_SUFFIXES, Frame, FolderSource, is_video, open_source, write_video
from .pairing import PairingReport, pair_by_index, pair_by_time, parse_offset

__all__ = ["VideoNormalize", "RangeSmoother", "FusedFrame", "VideoReport", "VideoFusion", "fuse_video",
           "fuse_video_files"]

log = logging.getLogger(__name__)

VideoNormalize = Literal["smooth", "minmax", "clip"]
Source = Union[str, os.PathLike, Iterable]


class RangeSmoother:
    """Output scaling with a temporally smoothed range (``normalize="smooth"``).

    Each frame's min and max are averaged over time (exponential moving average with time
    constant ``seconds``), and the frame is stretched by the smoothed range and clipped to [0, 1].
    A hot object entering the view then dims the rest over about ``seconds`` instead of at once,
    as the per-frame min-max stretch does. The first frame is stretched exactly like ``minmax``.
    """

    def __init__(self, fps: float, seconds: float = 1.0) -> None:
        self.alpha = math.exp(-1.0 / max(fps * seconds, 1e-9)) if seconds > 0 else 0.0
        self.lo: float | None = None
        self.hi = 0.0

    def __call__(self, fused: np.ndarray) -> np.ndarray:
        """Scale one (H, W) float frame to [0, 1] with the smoothed range (updated by this frame)."""
        lo, hi = float(fused.min()), float(fused.max())
        if self.lo is None:
            self.lo, self.hi = lo, hi
        else:
            a = self.alpha
            self.lo, self.hi = a * self.lo + (1 - a) * lo, a * self.hi + (1 - a) * hi
        if self.hi - self.lo <= 1e-12:
            return np.clip(fused, 0, 1).astype(np.float32)
        return np.clip((fused - self.lo) / (self.hi - self.lo), 0, 1).astype(np.float32)


@dataclass
class FusedFrame:
    """One output frame: its index, time (s) on the output timeline, the source frame indices, pixels.

    ``image``: float32 in [0, 1], (H, W), or (H, W, 3) RGB when a colour source is used.
    """

    index: int
    time: float
    ir_index: int
    vi_index: int
    image: np.ndarray


@dataclass
class VideoReport:
    """What a video fusion did: frames fused, pairing (dropped/repeated), bad frames skipped per input."""

    frames: int = 0
    pairing: PairingReport = field(default_factory=PairingReport)
    bad: dict[str, int] = field(default_factory=lambda: {"ir": 0, "vi": 0})
    unpaired: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line: pairing and bad frames."""
        text = self.pairing.summary()
        if any(self.bad.values()):
            text += f"; bad frames skipped: infrared {self.bad['ir']}, visible {self.bad['vi']}"
        return text


def _prefetch(items: Iterable, size: int, threads: int | None = None) -> Iterator:
    """Iterate ``items`` in a background thread, ``size`` ahead; exceptions are re-raised here.

    Closing the returned generator (or an error here) stops the thread and waits for it.
    """
    q: queue.Queue = queue.Queue(maxsize=size)
    stop = threading.Event()
    done = object()

    def work() -> None:
        if threads:
            torch.set_num_threads(threads)  # OpenMP thread counts are per calling thread
        it = iter(items)
        try:
            for item in it:
                while not stop.is_set():
                    try:
                        q.put((True, item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put((True, done))
        except BaseException as e:  # noqa: B036 - forwarded to the consumer
            q.put((False, e))
        finally:
            if hasattr(it, "close"):
                it.close()  # a generator's own clean-up (closing decoders) runs now, in this thread

    t = threading.Thread(target=work, daemon=True, name="emma-video")
    t.start()
    try:
        while True:
            ok, item = q.get()
            if not ok:
                raise item
            if item is done:
                return
            yield item
    finally:
        stop.set()
        with sigint_deferred():
            while t.is_alive():  # unblock a producer waiting on a full queue
                try:
                    q.get(timeout=0.05)
                except queue.Empty:
                    pass
            t.join()


class _ArraySource:
    """A user's iterable of frames (arrays as :func:`emma_fusion.io.to_array` takes), at ``fps``."""

    def __init__(self, frames: Iterable, fps: float | None) -> None:
        self.frames, self.fps, self.count, self.bad = frames, Fraction(fps or 25).limit_denominator(1001), None, 0

    def __iter__(self) -> Iterator[Frame]:
        for i, img in enumerate(self.frames):
            yield Frame(i, i / float(self.fps), img)


def _is_path(x) -> bool:
    return isinstance(x, (str, os.PathLike))


def _open_pair(ir, vi, fps: float | None, skip_bad: bool, report: VideoReport):
    """The two frame sources; two frame folders are matched by file stem first."""
    if _is_path(ir) and _is_path(vi) and Path(ir).is_dir() and Path(vi).is_dir():
        if not fps:
            raise EmmaError("frame folders need their frame rate: give --fps")
        pairs, report.unpaired = pair_by_stem(ir, vi)
        if not pairs:
            raise EmmaError(f"no frames with matching names in {ir} and {vi}")
        for key, folder in (("ir", ir), ("vi", vi)):
            report.pairing.dropped[key] = sum(Path(u).parent == Path(folder) for u in report.unpaired)
        return (FolderSource([p[1] for p in pairs], fps, str(ir)), FolderSource([p[2] for p in pairs], fps, str(vi)))
    if fps and _is_path(ir) and _is_path(vi) and is_video(ir) and is_video(vi):
        raise EmmaError("--fps is the rate of frame folders; video files keep their own rate")
    return tuple(open_source(x, fps, skip_bad) if _is_path(x) else _ArraySource(x, fps) for x in (ir, vi))


class VideoFusion:
    """An iterator of :class:`FusedFrame` (see :func:`fuse_video`); ``fps``, ``report`` are set on creation."""

    def __init__(self, ir, vi, method: FusionMethod, *, color: Color, color_source: ColorSource,
                 normalize: VideoNormalize, smooth_seconds: float, fps: float | None, offset: str | float | None,
                 batch: int, skip_bad: bool, streams: int | None = None) -> None:
        if normalize not in ("smooth", "minmax", "clip"):
            raise EmmaError(f"unknown normalisation {normalize!r}; use smooth, minmax or clip")
        _check_options(color, "clip")
        if batch < 1:
            raise EmmaError("--batch must be at least 1")
        self.report = VideoReport()
        self.ir_src, self.vi_src = _open_pair(ir, vi, fps, skip_bad, self.report)
        self.offset = parse_offset(offset, self.ir_src.fps)
        self.method, self.color, self.color_source, self.batch = method, color, color_source, batch
        self.streams = max(1, streams or min(2, torch.get_num_threads()))
        counts = (self.ir_src.count, self.vi_src.count)
        self.by_index = self.offset == 0 and counts[0] is not None and counts[0] == counts[1]
        self.expected = counts[0] if self.by_index else None  # output frames, when known up front
        self._ir_leads = not self.by_index and self.ir_src.fps > self.vi_src.fps
        self.fps = self.ir_src.fps if self._ir_leads else self.vi_src.fps
        self._scale = (RangeSmoother(float(self.fps), smooth_seconds) if normalize == "smooth"
                       else lambda f: normalize_output(f, normalize))
        self._src = None  # the colour source ("ir", "vi" or None), decided on the first pair
        self._shape = None

    def _prepare(self, ir_f: Frame, vi_f: Frame) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(ir luma, vi luma, YCbCr of the colour source or None) of one pair; checks sizes."""
        ir_a, vi_a = to_array(ir_f.image), to_array(vi_f.image)
        if ir_a.shape[:2] != vi_a.shape[:2]:
            raise EmmaError(f"frame sizes differ: infrared {ir_a.shape[1]}x{ir_a.shape[0]}, "
                            f"visible {vi_a.shape[1]}x{vi_a.shape[0]}")
        if self._shape is None:
            self._shape = ir_a.shape[:2]
            src = _color_source(ir_a, vi_a, self.color_source) if self.color == "ycbcr" else None
            self._src = None if src is None else "ir" if src is ir_a else "vi"
        elif ir_a.shape[:2] != self._shape:
            raise EmmaError(f"frame size changed at infrared frame {ir_f.index}, visible frame {vi_f.index}")
        src = {"ir": ir_a, "vi": vi_a}.get(self._src)
        ycc = rgb_to_ycbcr(src) if src is not None and src.ndim == 3 else None
        luma = [ycc[..., 0] if ycc is not None and a is src else to_gray(a) for a in (ir_a, vi_a)]
        return luma[0], luma[1], ycc

    def _net(self, prepared: list) -> np.ndarray:
        """The method on one batch of prepared pairs: (N, H, W) raw outputs (runs in a stream thread)."""
        ir_t = torch.from_numpy(np.stack([p[0] for p in prepared]))[:, None]
        vi_t = torch.from_numpy(np.stack([p[1] for p in prepared]))[:, None]
        with torch.inference_mode():
            out = self.method(ir_t, vi_t).float().cpu().numpy()[:, 0]
        if not np.all(np.isfinite(out)):
            raise EmmaError(f"{getattr(self.method, 'name', 'method')} produced NaN or infinite values")
        return out

    def _finish(self, pairs: list[tuple[Frame, Frame]], prepared: list, job) -> Iterator[FusedFrame]:
        """Scale (in frame order: the smoothed range has state) and colour one batch's outputs."""
        for (ir_f, vi_f), (ir_y, vi_y, ycc), raw in zip(pairs, prepared, job.result()):
            fused = self._scale(keep_black(raw, ir_y, vi_y))  # as fuse_luma does for one image
            if ycc is not None:
                fused = colorize(fused, ycc)
            t = ir_f.time + self.offset if self._ir_leads else vi_f.time
            yield FusedFrame(self.report.frames, t, ir_f.index, vi_f.index, fused)
            self.report.frames += 1

    def _batches(self, pairs: Iterator[tuple[Frame, Frame]]) -> Iterator[list[tuple[Frame, Frame]]]:
        chunk: list[tuple[Frame, Frame]] = []
        for pair in pairs:
            chunk.append(pair)
            if len(chunk) == self.batch:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    def __iter__(self) -> Iterator[FusedFrame]:
        ir_it, vi_it = (_prefetch(s, 4) for s in (self.ir_src, self.vi_src))
        try:
            if self.by_index:
                pairs = pair_by_index(ir_it, vi_it, self.report.pairing)
            else:
                pairs = pair_by_time(ir_it, vi_it, self.ir_src.fps, self.vi_src.fps, self.offset, self.report.pairing)
            # ``streams`` batches in flight, each network on its share of the threads (as fuse_folder)
            with thread_streams(self.streams) as pool:
                pending: deque = deque()
                for chunk in self._batches(pairs):
                    prepared = [self._prepare(a, b) for a, b in chunk]
                    pending.append((chunk, prepared, pool.submit(self._net, prepared)))
                    if len(pending) >= self.streams:
                        yield from self._finish(*pending.popleft())
                while pending:
                    yield from self._finish(*pending.popleft())
        finally:
            ir_it.close()
            vi_it.close()
            self.report.bad = {"ir": self.ir_src.bad, "vi": self.vi_src.bad}


def fuse_video(
    ir: Source,
    vi: Source,
    model: FusionMethod | nn.Module | str | os.PathLike | None = None,
    *,
    method: str = "emma",
    color: Color = "ycbcr",
    color_source: ColorSource = "auto",
    normalize: VideoNormalize = "smooth",
    smooth_seconds: float = 1.0,
    fps: float | None = None,
    offset: str | float | None = None,
    batch: int | None = None,
    skip_bad: bool = False,
    streams: int | None = None,
    **options,
) -> VideoFusion:
    """Fuse two frame streams; returns an iterator of :class:`FusedFrame` (float32 [0, 1] images).

    Args:
        ir, vi: video files (.mp4, .mkv, .avi, .mov), frame folders (paired by file stem, at
            ``fps``), or iterables of frames (arrays or PIL images, as :func:`emma_fusion.fuse`
            takes; paired one by one) for your own capture.
        model, method, color, color_source, **options: as in :func:`emma_fusion.fuse`.
        normalize: ``smooth`` (default: min-max range averaged over ``smooth_seconds``, steady),
            ``minmax`` (per frame, flickers) or ``clip`` (the network's own intensities).
        fps: frame rate of frame folders and iterables (the output takes it).
        offset: seconds (``0.5``) or infrared frames (``"12f"``) by which the infrared stream
            starts after the visible one (negative: before); pairing is then by timestamp.
        batch: frame pairs per network call; default 1 on the CPU (batches of 4 cost 20% more CPU
            time per frame there, benchmarks/video_speed.py), 4 with ``device="cuda"`` (not measured).
        skip_bad: skip frames that fail to decode (counted in ``report.bad``) instead of raising.
        streams: batches fused at once, each in its own thread with its share of torch's threads
            (default ``min(2, torch threads)``, as :func:`emma_fusion.fuse_folder`); outputs are the
            same to float32 rounding. The method must be thread-safe for ``streams > 1`` (the
            built-in ones are).

    Pairing (see :mod:`emma_fusion.video.pairing`) is by index for equal known frame counts
    without offset, else by timestamp; ``.report`` counts dropped and repeated frames once the
    iteration is over. Decoding runs in background threads while the network runs.
    """
    fm = resolve_method(model, method, **options)
    batch = batch or (4 if str(options.get("device", "cpu")).startswith("cuda") else 1)
    return VideoFusion(ir, vi, fm, color=color, color_source=color_source, normalize=normalize,
                       smooth_seconds=smooth_seconds, fps=fps, offset=offset, batch=batch, skip_bad=skip_bad,
                       streams=streams)


def _check_output(out: Path, inputs, overwrite: bool) -> None:
    """Before any work: not an input, not an existing file/frames unless ``overwrite``, folder writable."""
    check_not_input(out, [p for p in inputs if _is_path(p)])
    if out.suffix.lower() in IMAGE_SUFFIXES:
        raise EmmaError(f"video fuses into a video file ({', '.join(VIDEO_SUFFIXES)}) or a folder of frames, not {out.name}")
    if is_video(out):
        if out.is_dir():
            raise EmmaError(f"output {out} is a folder; give a video file name")
        if out.exists() and not overwrite:
            raise EmmaError(f"{out} exists; pass --overwrite to replace it")
        ensure_writable_dir(out.parent)
    else:
        for p in inputs:
            if _is_path(p) and Path(p).is_dir() and out.exists() and os.path.samefile(out, p):
                raise EmmaError(f"output folder {out} is an input folder; choose another")
        if out.is_dir() and list_images(out) and not overwrite:
            raise EmmaError(f"{out} already holds images; pass --overwrite to replace them")
        ensure_writable_dir(out)


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM (``kill``, a job scheduler) stops the run as Ctrl-C does, so the
    temporary video file is removed and the count reported (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def fuse_video_files(ir: Source, vi: Source, out: str | os.PathLike, *, overwrite: bool = False,
                     lossless: bool = False, progress: bool = False, **kwargs) -> VideoReport:
    """Fuse two streams (see :func:`fuse_video`) into a video file, or a folder of ``NNNNNN.png`` frames.

    A video is encoded at the output timeline's frame rate (H.264; ``lossless``: FFV1 in
    .mkv/.avi) to a temporary file renamed when complete; fusion runs in a background thread
    while the main thread encodes. On Ctrl-C, :class:`~emma_fusion.errors.Interrupted` says how
    many frames were done; a video is then not written at all (no partial file under ``out``).
    """
    from ..progress import progress_bar

    out = Path(out)
    _check_output(out, (ir, vi), overwrite)
    fusion = fuse_video(ir, vi, **kwargs)
    frames = _prefetch(fusion, 2 * fusion.batch, threads=torch.get_num_threads())
    bar = progress_bar(frames, enabled=progress, total=fusion.expected, desc="fusing", unit="frame")
    done = 0  # frames handed to the encoder, or written as images

    def images() -> Iterator[np.ndarray]:
        nonlocal done
        for f in bar:
            yield f.image
            done += 1

    try:
        with _sigterm_as_interrupt():
            if is_video(out):
                write_video(out, images(), fusion.fps, lossless=lossless)
            else:
                for img in images():
                    write_image(out / f"{done:06d}.png", img)
    except KeyboardInterrupt:
        if is_video(out):
            raise Interrupted(f"{done} frame(s) fused; {out} not written (no partial file)") from None
        raise Interrupted(f"{done} frame(s) written to {out}") from None
    finally:
        frames.close()
        bar.close()
    return fusion.report
