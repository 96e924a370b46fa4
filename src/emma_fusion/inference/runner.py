"""Running a fusion network on images of any size: pad to a multiple and crop back, tile large images.

The network's channel attention pools statistics over its whole input, so tiles are large
(default 1024 px), overlap generously (128 px), and their outputs are blended with a smooth
weight ramp so that no seam shows.
"""

from __future__ import annotations

import logging
import math
from typing import Callable

import torch
import torch.nn.functional as F

__all__ = ["pad_to_multiple", "tile_starts", "blend_window", "NetworkRunner"]

log = logging.getLogger(__name__)

Net = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def pad_to_multiple(x: torch.Tensor, multiple: int, minimum: int = 0) -> torch.Tensor:
    """Pad (N, C, H, W) on the bottom and right to a multiple of ``multiple``, at least ``minimum``.

    Reflect padding where the image is large enough to reflect, replicate for the rest
    (a 1-pixel-wide image, or a pad larger than the image).
    """
    h, w = x.shape[-2:]
    th = max(minimum, math.ceil(h / multiple) * multiple)
    tw = max(minimum, math.ceil(w / multiple) * multiple)
    rh, rw = min(th - h, h - 1), min(tw - w, w - 1)
    if rh > 0 or rw > 0:
        x = F.pad(x, (0, max(rw, 0), 0, max(rh, 0)), mode="reflect")
    h, w = x.shape[-2:]
    if th > h or tw > w:
        x = F.pad(x, (0, tw - w, 0, th - h), mode="replicate")
    return x


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of length ``tile`` covering ``size`` with at least ``overlap`` shared."""
    if size <= tile:
        return [0]
    n = math.ceil((size - overlap) / (tile - overlap))
    step = (size - tile) / (n - 1)
    return [round(i * step) for i in range(n)]


def blend_window(h: int, w: int, overlap: int, top: bool, bottom: bool, left: bool, right: bool) -> torch.Tensor:
    """(1, 1, h, w) blending weights of a tile.

    On each side shared with a neighbour, the outer quarter of ``overlap`` gets weight 0 (those
    pixels see the tile border) and the rest of the overlap a raised-cosine ramp up to 1.
    Outputs are divided by the summed weights, so the weights need not sum to one.
    """

    def profile(n: int, lo: bool, hi: bool) -> torch.Tensor:
        p = torch.ones(n)
        margin = min(overlap // 4, n // 4)
        r = min(overlap - margin, n // 2 - margin)
        ramp = torch.zeros(margin + max(r, 0))
        if r > 0:
            ramp[margin:] = 0.5 - 0.5 * torch.cos(torch.pi * (torch.arange(r) + 0.5) / r)
        k = ramp.numel()
        if lo and k:
            p[:k] = ramp
        if hi and k:
            p[n - k:] = torch.minimum(p[n - k:], ramp.flip(0))
        return p

    return (profile(h, top, bottom)[:, None] * profile(w, left, right)[None, :])[None, None]


class NetworkRunner:
    """Run a fusion network on (N, 1, H, W) tensors of any size.

    Args:
        net: callable ``net(ir, vi) -> fused`` on (N, 1, h, w) tensors whose sides are multiples
            of ``multiple`` and at least ``minimum``.
        multiple: the network's size multiple (8 for the U-Fuser).
        minimum: smallest side the network accepts (16: the coarsest scale needs 2 px to reflect).
        tile: tile side in pixels; images with both sides <= ``tile`` run in one piece.
            ``0`` disables tiling.
        overlap: pixels shared by neighbouring tiles (blended with a raised-cosine ramp).
        device: where the network runs; inputs and outputs stay on the CPU.
    """

    def __init__(
        self,
        net: Net,
        multiple: int = 8,
        minimum: int = 16,
        tile: int = 1024,
        overlap: int = 128,
        device: str | torch.device = "cpu",
    ) -> None:
        if tile and (tile % multiple or tile <= overlap):
            raise ValueError(f"tile ({tile}) must be a multiple of {multiple} larger than overlap ({overlap})")
        self.net, self.multiple, self.minimum = net, multiple, minimum
        self.tile, self.overlap, self.device = tile, overlap, torch.device(device)

    def _run(self, ir: torch.Tensor, vi: torch.Tensor) -> torch.Tensor:
        h, w = ir.shape[-2:]
        ir_p = pad_to_multiple(ir, self.multiple, self.minimum).to(self.device)
        vi_p = pad_to_multiple(vi, self.multiple, self.minimum).to(self.device)
        return self.net(ir_p, vi_p)[..., :h, :w].float().cpu()

    @torch.inference_mode()
    def __call__(self, ir: torch.Tensor, vi: torch.Tensor) -> torch.Tensor:
        """Fuse (N, 1, H, W) tensors in [0, 1] into an (N, 1, H, W) tensor in [0, 1]."""
        h, w = ir.shape[-2:]
        if not self.tile or (h <= self.tile and w <= self.tile):
            return self._run(ir, vi)
        out = torch.zeros(ir.shape[0], 1, h, w)
        norm = torch.zeros(1, 1, h, w)
        ys, xs = tile_starts(h, self.tile, self.overlap), tile_starts(w, self.tile, self.overlap)
        log.info("tiling %dx%d into %d tiles", h, w, len(ys) * len(xs))
        for y in ys:
            for x in xs:
                th, tw = min(self.tile, h - y), min(self.tile, w - x)
                sl = (..., slice(y, y + th), slice(x, x + tw))
                win = blend_window(th, tw, self.overlap, y > 0, y + th < h, x > 0, x + tw < w)
                out[sl] += self._run(ir[sl], vi[sl]) * win
                norm[sl] += win
        return out / norm
