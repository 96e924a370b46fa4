"""The values of the fusion options, without heavy imports: ``emma --help`` builds its choices from
them before torch is loaded."""

from __future__ import annotations

from typing import Literal

__all__ = ["Color", "ColorSource", "Normalize", "VideoNormalize"]

Color = Literal["ycbcr", "gray"]
ColorSource = Literal["auto", "vi", "ir", "none"]
Normalize = Literal["minmax", "clip"]
#: Video output scaling: ``smooth`` (a steady min-max range over time) or a per-frame ``Normalize``
#: (the same values as :data:`emma_fusion.video.fuse.VideoNormalize`).
VideoNormalize = Literal["smooth", "minmax", "clip"]
