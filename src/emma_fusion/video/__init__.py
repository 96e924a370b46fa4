"""Video fusion: infrared and visible streams (files, frame folders or your own frames) to a fused video.

- :mod:`.io`: PyAV (FFmpeg) sources and the atomic encoder (H.264, or lossless FFV1).
- :mod:`.pairing`: pairing frames by index or by timestamp, dropped/repeated frames counted.
- :mod:`.fuse`: :func:`fuse_video` (an iterator of fused frames) and :func:`fuse_video_files`.
"""

from __future__ import annotations

from .fuse import FusedFrame, RangeSmoother, VideoFusion, VideoReport, fuse_video, fuse_video_files
from .io import VIDEO_SUFFIXES, is_video, write_video
from .pairing import PairingReport, parse_offset

__all__ = ["fuse_video", "fuse_video_files", "FusedFrame", "VideoFusion", "VideoReport", "RangeSmoother",
           "PairingReport", "parse_offset", "VIDEO_SUFFIXES", "is_video", "write_video"]
