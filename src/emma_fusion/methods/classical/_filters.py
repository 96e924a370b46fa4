"""Small image filters shared by the classical methods, valid for any image size (even 1 x 1).

Every function takes and returns a 2-D float array (H, W); values are not range-limited.
``mode`` names the border extension as :func:`numpy.pad` does: ``"symmetric"`` (half-sample
mirror, MATLAB's ``'symmetric'``), ``"edge"`` (MATLAB's ``'replicate'``), ``"reflect"`` (mirror
without repeating the edge) or ``"wrap"``. The first three map onto OpenCV border types, which
extend correctly even when the window is larger than the image (checked against :func:`numpy.pad`
in the tests); ``"wrap"`` pads explicitly.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = [
    "box_mean",
    "correlate",
    "gaussian_kernel",
    "gaussian_blur",
    "median3",
    "guided_filter",
    "max_abs_select",
]


_CV_BORDER = {"symmetric": cv2.BORDER_REFLECT, "edge": cv2.BORDER_REPLICATE, "reflect": cv2.BORDER_REFLECT_101}


def _apply(x: np.ndarray, ry: int, rx: int, mode: str, fn) -> np.ndarray:
    """Run ``fn(array, border)`` with the border extension ``mode``; output has x's size."""
    border = _CV_BORDER.get(mode)
    if border is not None:
        return fn(x, border)
    padded = np.pad(x, ((ry, ry), (rx, rx)), mode=mode)
    return fn(padded, cv2.BORDER_CONSTANT)[ry : ry + x.shape[0], rx : rx + x.shape[1]]


def _radii(r: int | tuple[int, int]) -> tuple[int, int]:
    return (r, r) if isinstance(r, (int, np.integer)) else (int(r[0]), int(r[1]))


def box_mean(x: np.ndarray, r: int | tuple[int, int], mode: str = "symmetric") -> np.ndarray:
    """Mean over a (2 ry + 1) x (2 rx + 1) window centred on each pixel; ``r`` = radius or (ry, rx)."""
    ry, rx = _radii(r)
    if ry == 0 and rx == 0:
        return x.copy()
    return _apply(x, ry, rx, mode, lambda a, b: cv2.blur(a, (2 * rx + 1, 2 * ry + 1), borderType=b))


def correlate(x: np.ndarray, kernel: np.ndarray, mode: str = "symmetric") -> np.ndarray:
    """2-D correlation with an odd-sized ``kernel`` (MATLAB ``imfilter`` semantics), same size out."""
    ky, kx = kernel.shape[0] // 2, kernel.shape[1] // 2
    k = kernel.astype(x.dtype)
    return _apply(x, ky, kx, mode, lambda a, b: cv2.filter2D(a, -1, k, borderType=b))


def gaussian_kernel(sigma: float, radius: int) -> np.ndarray:
    """Normalised 1-D sampled Gaussian of length 2 radius + 1 (as MATLAB ``fspecial('gaussian')``)."""
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-(t**2) / (2.0 * sigma**2))
    return k / k.sum()


def gaussian_blur(x: np.ndarray, sigma: float, radius: int, mode: str = "symmetric") -> np.ndarray:
    """Separable Gaussian filter with a (2 radius + 1)^2 window."""
    if radius == 0:
        return x.copy()
    k = gaussian_kernel(sigma, radius).astype(x.dtype)
    return _apply(x, radius, radius, mode, lambda a, b: cv2.sepFilter2D(a, -1, k, k, borderType=b))


def median3(x: np.ndarray, mode: str = "symmetric") -> np.ndarray:
    """3 x 3 median filter (computed in float32, which is exact enough for [0, 1] images)."""
    padded = np.pad(x.astype(np.float32), 1, mode=mode)
    return cv2.medianBlur(padded, 3)[1:-1, 1:-1].astype(x.dtype)


def guided_filter(
    guide: np.ndarray,
    src: np.ndarray,
    r: int,
    eps: float,
    mode: str = "symmetric",
    dtype: type = np.float64,
    mean_src: np.ndarray | None = None,
) -> np.ndarray:
    """Guided filter (He, Sun & Tang, ECCV 2010 / TPAMI 2013) with box windows of radius ``r``.

    Output q = mean(a) * guide + mean(b) with a = cov(guide, src) / (var(guide) + eps) and
    b = mean(src) - a * mean(guide), all means over (2r+1)^2 windows. float64 by default,
    because eps can be as small as 1e-6 and the variance is a difference of two means; pass
    ``dtype=np.float32`` when eps is large. ``mean_src`` may pass a precomputed box mean of src.
    """
    g = guide.astype(dtype, copy=False)
    p = src.astype(dtype, copy=False)
    mean_g = box_mean(g, r, mode)
    mean_p = box_mean(p, r, mode) if mean_src is None else mean_src
    var_g = box_mean(g * g, r, mode) - mean_g * mean_g
    cov_gp = box_mean(g * p, r, mode) - mean_g * mean_p
    a = cov_gp / (var_g + dtype(eps))
    b = mean_p - a * mean_g
    return box_mean(a, r, mode) * g + box_mean(b, r, mode)


def max_abs_select(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pixel-wise choose-max-absolute: ``a`` where |a| >= |b| (ties go to ``a``), else ``b``."""
    return np.where(np.abs(a) >= np.abs(b), a, b)
