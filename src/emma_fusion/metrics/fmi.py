"""Feature mutual information (Haghighat's fast-FMI, 3x3 windows), vectorised over windows.

METRICS.md §4: features ``none`` (pixels), ``dct`` (orthonormal 2-D DCT-II), ``gradient`` (horizontal
derivative only, like MATLAB ``gradient(x)``) and ``wavelet`` (one-level ``dmey`` DWT, tiled and
rescaled to [0, 1]). Every interior 3x3 window of each pair (source, fused) is turned into a pdf,
a copula-based joint pdf is built and the normalised MI of the pair is averaged over both sources
and all windows. The MATLAB quirk (the fused window is normalised in place during the first pair)
is reproduced.
"""

from __future__ import annotations

import numpy as np
import pywt
from scipy.fft import dctn

__all__ = ["fmi", "fmi_features", "fmi_maps"]

_IDX = np.arange(1, 10, dtype=np.float64)
_IDX2 = _IDX**2
_CHUNK = 4096  # windows per vectorised block (keeps the 9x9 tables in cache)


def _rerange(x: np.ndarray) -> np.ndarray:
    lo, hi = x.min(), x.max()
    return (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)


def fmi_features(x: np.ndarray, feature: str) -> np.ndarray:
    """Feature map of one float64 (H, W) image for FMI: 'none', 'dct', 'gradient' or 'wavelet'."""
    if feature == "none":
        return x
    if feature == "dct":
        return dctn(x, type=2, norm="ortho")
    if feature == "gradient":
        return np.gradient(x, axis=1)
    if feature == "wavelet":
        ca, (ch, cv, cd) = pywt.dwt2(x, "dmey", mode="symmetric")
        return _rerange(np.block([[ca, ch], [cv, cd]]))
    raise ValueError(f"unknown FMI feature {feature!r}")


def _windows(x: np.ndarray) -> np.ndarray:
    """All interior 3x3 windows of (H, W) ``x``, flattened column-major: (P, 9), P = (H-2)(W-2)."""
    v = np.lib.stride_tricks.sliding_window_view(x, (3, 3))
    return np.ascontiguousarray(v.transpose(0, 1, 3, 2)).reshape(-1, 9)


def _normalise(w: np.ndarray) -> np.ndarray:
    """Min-max normalise each row of (K, 9) ``w`` to [0, 1]; constant rows become all ones."""
    lo = w.min(axis=1, keepdims=True)
    rng = w.max(axis=1, keepdims=True) - lo
    const = rng[:, 0] == 0
    out = (w - lo) / np.where(rng == 0, 1.0, rng)
    out[const] = 1.0
    return out


def _plogp(p: np.ndarray, axis: tuple[int, ...] | int) -> np.ndarray:
    """Σ p·log2|p| over ``axis``, zeros skipped (|p|: the copula's joint pdf can be negative).

    Zeros contribute 0·log2(tiny) = 0, so clamping |p| at 1e-300 is the same as skipping them.
    """
    return (p * np.log2(np.maximum(np.abs(p), 1e-300))).sum(axis=axis)


def _pair(xn: np.ndarray, fn: np.ndarray) -> np.ndarray:
    """Normalised FMI of each window pair; xn, fn are (K, 9) normalised windows. Returns (K,)."""
    px = xn / xn.sum(axis=1, keepdims=True)
    pf = fn / fn.sum(axis=1, keepdims=True)
    cx, cf = np.cumsum(px, axis=1), np.cumsum(pf, axis=1)
    tx = px - px.mean(axis=1, keepdims=True)
    tf = pf - pf.mean(axis=1, keepdims=True)
    cov = np.einsum("ki,ki->k", tx, tf)
    with np.errstate(divide="ignore", invalid="ignore"):
        c = np.where(cov == 0, 0.0, cov / np.sqrt(np.einsum("ki,ki->k", tx, tx) * np.einsum("ki,ki->k", tf, tf)))
    sdx = np.sqrt(np.maximum(px @ _IDX2 - (px @ _IDX) ** 2, 0.0))
    sdf = np.sqrt(np.maximum(pf @ _IDX2 - (pf @ _IDX) ** 2, 0.0))

    # Frechet bound copula C(i, j) of cdf_f(i) (rows) and cdf_x(j) (columns): upper if c >= 0, else lower
    u, v = cf[:, :, None], cx[:, None, :]
    upper = c >= 0
    cop = np.minimum(u, v)
    lower = ~upper
    if lower.any():
        cop[lower] = np.maximum(u[lower] + v[lower] - 1.0, 0.0)
    degenerate = (sdx == 0) | (sdf == 0) | (upper & (c == 0))
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = (cop.sum(axis=(1, 2)) - cf.sum(axis=1) * cx.sum(axis=1)) / (sdf * sdx)
        k = np.where(degenerate, 0.0, c / corr)[:, None, None]
    # joint pdf: k * (2-D difference of C, with C = 0 at index 0) + (1 - k) * pdf_f (x) pdf_x
    rows = np.empty_like(cop)
    rows[:, 0] = cop[:, 0]
    np.subtract(cop[:, 1:], cop[:, :-1], out=rows[:, 1:])
    jpdf = cop  # reuse the buffer: jpdf = column difference of the row differences
    jpdf[:, :, 0] = rows[:, :, 0]
    np.subtract(rows[:, :, 1:], rows[:, :, :-1], out=jpdf[:, :, 1:])
    jpdf *= k
    jpdf += ((1.0 - k[:, :, 0]) * pf)[:, :, None] * px[:, None, :]
    hx, hf = -_plogp(px, 1), -_plogp(pf, 1)
    mi = hx + hf + _plogp(jpdf, (1, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(mi == 0, 0.0, 2.0 * mi / (hx + hf))


def _fmi_map_block(aw: np.ndarray, bw: np.ndarray, fw: np.ndarray) -> np.ndarray:
    """FMI map values (mean of the two pairs) for (K, 9) raw windows of a, b and f."""
    out_a = np.ones(len(fw))
    eq_a = np.all(aw == fw, axis=1)
    todo = ~eq_a
    fn = _normalise(fw)
    if todo.any():
        out_a[todo] = _pair(_normalise(aw[todo]), fn[todo])
    # MATLAB quirk: fSub was overwritten by its normalised version unless the (a, f) windows were equal
    f_seen = np.where(eq_a[:, None], fw, fn)
    out_b = np.ones(len(fw))
    eq_b = np.all(bw == f_seen, axis=1)
    todo = ~eq_b
    if todo.any():
        out_b[todo] = _pair(_normalise(bw[todo]), fn[todo])
    return (out_a + out_b) / 2.0


def fmi_maps(fa: np.ndarray, fb: np.ndarray, ff: np.ndarray) -> float:
    """Fast-FMI of precomputed feature maps (sources fa, fb; fused ff), all (H, W) float64, H, W >= 3."""
    aw, bw, fw = _windows(fa), _windows(fb), _windows(ff)
    total = 0.0
    for s in range(0, len(fw), _CHUNK):
        sl = slice(s, s + _CHUNK)
        total += float(_fmi_map_block(aw[sl], bw[sl], fw[sl]).sum())
    return total / len(fw)


def fmi(f: np.ndarray, a: np.ndarray, b: np.ndarray, feature: str = "none") -> float:
    """Fast-FMI of fused ``f`` against sources ``a`` and ``b`` (float64 (H, W), H, W >= 3)."""
    return fmi_maps(*(fmi_features(x, feature) for x in (a, b, f)))
