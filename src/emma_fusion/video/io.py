"""Reading and writing video with PyAV (FFmpeg): frame sources and an atomic encoder.

PyAV was chosen over OpenCV's video I/O because the OpenCV wheels cannot write H.264 (no
libx264; only MPEG-4 Part 2, MJPEG, FFV1), and OpenCV hides frame timestamps and decode errors.
PyAV's wheels bundle FFmpeg with libx264 and FFV1 and give each frame its presentation time.

A source yields :class:`Frame` objects: ``image`` is a uint8 (or uint16 for 16-bit gray streams)
array, (H, W) for gray streams and (H, W, 3) RGB otherwise; ``time`` is in seconds from the
stream's first frame.
"""

from __future__ import annotations

import itertools
import logging
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from ..errors import EmmaError
from ..io import atomic_write, list_images, read_image

__all__ = ["VIDEO_SUFFIXES", "Frame", "VideoSource", "FolderSource", "is_video", "open_source", "write_video"]

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".mkv", ".avi", ".mov")
LOSSLESS_SUFFIXES = (".mkv", ".avi")  # FFV1
CRF = 18  # libx264 quality: visually lossless (~38 dB PSNR on LLVIP frames)


@dataclass
class Frame:
    """One decoded frame: its index in the stream, time in seconds from the first frame, pixels."""

    index: int
    time: float
    image: np.ndarray


def is_video(path: str | os.PathLike | None) -> bool:
    """True when ``path`` names a video file by its suffix (``.mp4``, ``.mkv``, ``.avi``, ``.mov``)."""
    return path is not None and Path(path).suffix.lower() in VIDEO_SUFFIXES


def _av():
    try:
        import av
    except ImportError:  # pragma: no cover - av is a dependency
        raise EmmaError("video needs PyAV: pip install av") from None
    return av


class VideoSource:
    """The frames of a video file's first video stream, decoded with FFmpeg's own threads.

    ``fps`` (Fraction), ``count`` (frames, None when the container does not say) and ``size``
    ((W, H)) are known after opening. A packet that fails to decode, or a stream that ends more
    than a frame short of the length its header gives (a truncated file), raises
    :class:`EmmaError`; with ``skip_bad`` the bad packets are skipped, the missing frames
    counted in ``bad``, and the rest kept.
    """

    def __init__(self, path: str | os.PathLike, skip_bad: bool = False) -> None:
        av = _av()
        self.path, self.skip_bad, self.bad = Path(path), skip_bad, 0
        if not self.path.is_file():
            raise EmmaError(f"no such video file: {self.path}")
        try:
            self._container = av.open(str(self.path))
        except (av.error.FFmpegError, OSError, ValueError) as e:
            raise EmmaError(f"cannot read video {self.path}: {e}") from None
        if not self._container.streams.video:
            self._container.close()
            raise EmmaError(f"{self.path} has no video stream")
        s = self._stream = self._container.streams.video[0]
        s.thread_type = "AUTO"
        rate = s.average_rate or s.guessed_rate
        if not rate:
            self._container.close()
            raise EmmaError(f"{self.path}: the video stream has no frame rate")
        self.fps, self.count = Fraction(rate), (s.frames or None)
        duration = self._container.duration  # microseconds, from the header (None when unknown)
        self._expected = self.count or (round(duration / 1e6 * float(self.fps)) if duration else None)
        self.size = (s.codec_context.width, s.codec_context.height)
        pix = s.codec_context.pix_fmt or ""
        self._format = "gray16le" if pix.startswith(("gray1", "gray9")) else "gray" if pix.startswith("gray") else "rgb24"

    def __iter__(self) -> Iterator[Frame]:
        av = _av()
        start, n = None, 0
        try:
            packets = self._container.demux(self._stream)
            while True:
                try:
                    packet = next(packets)
                    frames = packet.decode()
                except StopIteration:
                    break
                except av.error.FFmpegError as e:
                    if not self.skip_bad:
                        raise EmmaError(f"corrupt video {self.path} after frame {n}: {e} "
                                        f"(--skip-bad-frames skips such frames)") from None
                    self.bad += 1
                    log.info("%s: skipped a bad packet after frame %d: %s", self.path, n, e)
                    continue
                for fr in frames:
                    t = float(fr.time) if fr.time is not None else n / float(self.fps)
                    start = t if start is None else start
                    yield Frame(n, t - start, fr.to_ndarray(format=self._format))
                    n += 1
        finally:
            self._container.close()
        if n == 0:
            raise EmmaError(f"no frame could be decoded from {self.path}")
        if self._expected and n < self._expected - 1:  # the header's length says frames are missing
            if not self.skip_bad:
                raise EmmaError(f"{self.path} is truncated or damaged: {n} of {self._expected} frames decoded "
                                f"(--skip-bad-frames keeps those)")
            self.bad += self._expected - n


class FolderSource:
    """Image files as frames, at ``fps`` frames per second, in the order given (default: sorted by name)."""

    def __init__(self, files: Sequence[Path], fps: float | Fraction, name: str) -> None:
        if not files:
            raise EmmaError(f"no images in {name}")
        self.files, self.fps, self.count, self.bad = list(files), Fraction(fps).limit_denominator(1001), len(files), 0
        self.path = Path(name)

    def __iter__(self) -> Iterator[Frame]:
        for i, p in enumerate(self.files):
            yield Frame(i, i / float(self.fps), read_image(p))


def open_source(path: str | os.PathLike, fps: float | None = None, skip_bad: bool = False):
    """A :class:`VideoSource` for a video file, or a :class:`FolderSource` (needs ``fps``) for a folder."""
    p = Path(path)
    if p.is_dir():
        if not fps:
            raise EmmaError(f"{p} is a frame folder: give its frame rate with --fps")
        return FolderSource(list(list_images(p).values()), fps, str(p))
    if not is_video(p) and p.exists():
        raise EmmaError(f"{p} is not a video ({', '.join(VIDEO_SUFFIXES)}) or a frame folder")
    return VideoSource(p, skip_bad=skip_bad)


def _encoder_settings(path: Path, color: bool, lossless: bool) -> tuple[str, str, dict]:
    """(codec, pixel format, options) for ``path``'s container."""
    if lossless:
        if path.suffix.lower() not in LOSSLESS_SUFFIXES:
            raise EmmaError(f"lossless video (FFV1) needs a {' or '.join(LOSSLESS_SUFFIXES)} file, not {path.name}")
        return "ffv1", "bgr0" if color else "gray", {}
    return "libx264", "yuv420p", {"crf": str(CRF), "preset": "veryfast"}


def write_video(path: str | os.PathLike, frames: Iterable[np.ndarray], fps: Fraction, lossless: bool = False) -> int:
    """Encode float [0, 1] frames ((H, W) gray or (H, W, 3) RGB, all one size) into ``path``, atomically.

    H.264 (libx264, CRF 18, yuv420p) by default; ``lossless``: FFV1 in .mkv/.avi (RGB or gray kept
    exactly at 8 bits). Written to a temporary file beside ``path`` and renamed when the last frame
    is in; if ``frames`` raises (an error, Ctrl-C), nothing is left under ``path``. Returns the
    number of frames written.
    """
    av, path = _av(), Path(path)
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise EmmaError(f"output {path} needs a video suffix: one of {', '.join(VIDEO_SUFFIXES)}")
    count = 0

    def encode(tmp: Path) -> None:
        nonlocal count
        it = iter(frames)
        first = next(it, None)
        if first is None:
            raise EmmaError("no frame pair to fuse: nothing written")
        color = first.ndim == 3
        codec, pix, opts = _encoder_settings(path, color, lossless)
        with av.open(str(tmp), "w") as out:
            s = out.add_stream(codec, rate=fps, options=opts)
            s.height, s.width = first.shape[:2]
            s.pix_fmt, s.thread_type = pix, "AUTO"
            for img in itertools.chain([first], it):
                u8 = (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)
                frame = av.VideoFrame.from_ndarray(u8, format="rgb24" if color else "gray")
                out.mux(s.encode(frame))
                count += 1
            out.mux(s.encode())

    atomic_write(path, encode)
    return count
