"""Averaging and the two textbook multi-scale transforms: Laplacian pyramid and DWT fusion."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import pywt

from ..base import register_method
from ._common import ClassicalMethod, require
from ._filters import max_abs_select

__all__ = ["Average", "LaplacianPyramid", "WaveletDWT"]


@register_method(
    "average",
    "Pixel-wise mean of the two images (the simplest baseline)",
    "-",
    aliases=("avg", "mean"),
)
@dataclass
class Average(ClassicalMethod):
    """F = (IR + VI) / 2. No parameters."""

    name = "average"

    def fuse_pair(self, ir: np.ndarray, vi: np.ndarray) -> np.ndarray:
        return 0.5 * (ir + vi)


# --- Laplacian pyramid ------------------------------------------------------------------------


def _generating_kernel(a: float) -> np.ndarray:
    """Burt & Adelson's 5-tap generating kernel w = [1/4 - a/2, 1/4, a, 1/4, 1/4 - a/2]."""
    return np.array([0.25 - a / 2, 0.25, a, 0.25, 0.25 - a / 2], dtype=np.float64)


def _filter5(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    return cv2.sepFilter2D(x, -1, k, k, borderType=cv2.BORDER_REFLECT_101)


def pyr_reduce(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    """REDUCE: low-pass with the generating kernel, keep every second row and column."""
    return _filter5(x, k)[::2, ::2]


def pyr_expand(x: np.ndarray, shape: tuple[int, int], k: np.ndarray) -> np.ndarray:
    """EXPAND: insert zeros up to ``shape``, low-pass with 2 * kernel in each direction."""
    up = np.zeros(shape, dtype=x.dtype)
    up[::2, ::2] = x
    return _filter5(up, 2.0 * k)


def pyramid_depth(shape: tuple[int, int], levels: int) -> int:
    """Number of REDUCE steps that fit ``shape`` (the smallest side halves down to >= 1 pixel)."""
    return max(0, min(levels, int(math.floor(math.log2(min(shape))))))


def laplacian_pyramid(x: np.ndarray, depth: int, k: np.ndarray) -> list[np.ndarray]:
    """[L_0, ..., L_{depth-1}, G_depth]: band-pass levels, then the low-pass residual."""
    pyr, g = [], x
    for _ in range(depth):
        g_next = pyr_reduce(g, k)
        pyr.append(g - pyr_expand(g_next, g.shape, k))
        g = g_next
    pyr.append(g)
    return pyr


def collapse(pyr: list[np.ndarray], k: np.ndarray) -> np.ndarray:
    """Invert :func:`laplacian_pyramid` exactly."""
    g = pyr[-1]
    for band in reversed(pyr[:-1]):
        g = band + pyr_expand(g, band.shape, k)
    return g


@register_method(
    "lp",
    "Laplacian pyramid fusion: max-absolute band-pass coefficients, averaged low-pass residual",
    "Burt & Adelson, The Laplacian pyramid as a compact image code, IEEE Trans. Commun. 31(4), 1983",
    aliases=("laplacian", "laplacian-pyramid"),
)
@dataclass
class LaplacianPyramid(ClassicalMethod):
    """Laplacian-pyramid fusion.

    Burt, P. J. & Adelson, E. H., "The Laplacian pyramid as a compact image code", IEEE Trans.
    Communications 31(4):532-540, 1983 (the pyramid, generating kernel with a = 0.4); the
    fusion rule is the usual one for that pyramid (Burt 1984; Toet 1989): at every band-pass
    level keep the coefficient with the larger magnitude, average the low-pass residual.

    Args:
        levels: number of band-pass levels (default 4), reduced automatically for small images so
            the coarsest level keeps at least one pixel; a 1 x 1 image gets 0 levels (averaging).
        a: the generating kernel's central weight (0.4 in the paper; 0.375 gives the binomial).
    """

    name = "lp"
    levels: int = 4
    a: float = 0.4

    def validate(self) -> None:
        require(int(self.levels) == self.levels and self.levels >= 0, f"lp: levels must be an integer >= 0, got {self.levels}")
        require(0.25 <= self.a <= 0.5, f"lp: a must lie in [0.25, 0.5], got {self.a}")

    def fuse_pair(self, ir: np.ndarray, vi: np.ndarray) -> np.ndarray:
        k = _generating_kernel(self.a)
        depth = pyramid_depth(ir.shape, int(self.levels))
        pa, pb = laplacian_pyramid(ir, depth, k), laplacian_pyramid(vi, depth, k)
        fused = [max_abs_select(la, lb) for la, lb in zip(pa[:-1], pb[:-1])]
        fused.append(0.5 * (pa[-1] + pb[-1]))
        return collapse(fused, k)


# --- Discrete wavelet transform ---------------------------------------------------------------


def _window_max(x: np.ndarray, size: int) -> np.ndarray:
    if size <= 1:
        return x
    return cv2.dilate(x, np.ones((size, size), np.uint8), borderType=cv2.BORDER_REPLICATE)


def _majority(mask: np.ndarray, size: int) -> np.ndarray:
    """Consistency verification: a coefficient follows the majority of its size x size window."""
    if size <= 1:
        return mask
    votes = cv2.blur(mask.astype(np.float32), (size, size), borderType=cv2.BORDER_REPLICATE)
    return votes > 0.5


@register_method(
    "dwt",
    "Discrete wavelet transform fusion: window max-absolute detail with consistency check, averaged approximation",
    "Li, Manjunath & Mitra, Multisensor image fusion using the wavelet transform, GMIP 57(3), 1995",
    aliases=("wavelet",),
)
@dataclass
class WaveletDWT(ClassicalMethod):
    """DWT fusion (PyWavelets).

    Li, H., Manjunath, B. S. & Mitra, S. K., "Multisensor image fusion using the wavelet
    transform", Graphical Models and Image Processing 57(3):235-245, 1995: activity of a detail
    coefficient = the maximum absolute value in a 3 x 3 window; pick the source with the larger
    activity; consistency verification with a 3 x 3 majority filter on the binary decision map;
    the approximation band is averaged.

    Args:
        wavelet: PyWavelets wavelet name (default ``"db2"``).
        levels: decomposition levels (default 3), reduced for small images (0 = averaging).
        window: activity window side (3; 1 = plain pixel-wise max-absolute).
        consistency: majority-filter window for consistency verification (3; 1 = off).
        mode: PyWavelets signal extension (``"symmetric"``).
    """

    name = "dwt"
    wavelet: str = "db2"
    levels: int = 3
    window: int = 3
    consistency: int = 3
    mode: str = "symmetric"

    def validate(self) -> None:
        require(self.wavelet in pywt.wavelist(kind="discrete"), f"dwt: unknown discrete wavelet {self.wavelet!r}")
        require(int(self.levels) == self.levels and self.levels >= 0, f"dwt: levels must be an integer >= 0, got {self.levels}")
        for label, v in (("window", self.window), ("consistency", self.consistency)):
            require(int(v) == v and v >= 1 and v % 2 == 1, f"dwt: {label} must be an odd integer >= 1, got {v}")
        require(self.mode in pywt.Modes.modes, f"dwt: unknown extension mode {self.mode!r}")

    def _select(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        take_a = _window_max(np.abs(a), self.window) >= _window_max(np.abs(b), self.window)
        take_a = _majority(take_a, self.consistency)
        return np.where(take_a, a, b)

    def fuse_pair(self, ir: np.ndarray, vi: np.ndarray) -> np.ndarray:
        w = pywt.Wavelet(self.wavelet)
        depth = min(int(self.levels), pywt.dwt_max_level(min(ir.shape), w.dec_len))
        if depth <= 0:
            return 0.5 * (ir + vi)
        ca = pywt.wavedec2(ir, w, mode=self.mode, level=depth)
        cb = pywt.wavedec2(vi, w, mode=self.mode, level=depth)
        fused = [0.5 * (ca[0] + cb[0])]
        for da, db in zip(ca[1:], cb[1:]):
            fused.append(tuple(self._select(x, y) for x, y in zip(da, db)))
        return pywt.waverec2(fused, w, mode=self.mode)[: ir.shape[0], : ir.shape[1]]
