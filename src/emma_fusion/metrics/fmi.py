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

__all__ = ["fmi", "fmi_features"]

_IDX = np.arange(1, 10, dtype=np.float64)
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


def _entropy(p: np.ndarray, axis: tuple[int, ...] | int) -> np.ndarray:
    """Σ -p·log2|p| over ``axis``, skipping zeros (|p| handles the copula's negative masses)."""
    nz = p != 0
    t = np.zeros_like(p)
    t[nz] = -p[nz] * np.log2(np.abs(p[nz]))
    return t.sum(axis=axis)


def _pair(xn: np.ndarray, fn: np.ndarray) -> np.ndarray:
    """Normalised FMI of each window pair; xn, fn are (K, 9) normalised windows. Returns (K,)."""
    px = xn / xn.sum(axis=1, keepdims=True)
    pf = fn / fn.sum(axis=1, keepdims=True)
    cx, cf = np.cumsum(px, axis=1), np.cumsum(pf, axis=1)
    tx = px - px.mean(axis=1, keepdims=True)
    tf = pf - pf.mean(axis=1, keepdims=True)
    cov = (tx * tf).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        c = np.where(cov == 0, 0.0, cov / np.sqrt((tx * tx).sum(axis=1) * (tf * tf).sum(axis=1)))
    sdx = np.sqrt(np.maximum((px * _IDX**2).sum(axis=1) - (px @ _IDX) ** 2, 0.0))
    sdf = np.sqrt(np.maximum((pf * _IDX**2).sum(axis=1) - (pf @ _IDX) ** 2, 0.0))

    u, v = cf[:, :, None], cx[:, None, :]  # rows: fused index i, columns: source index j
    upper = c >= 0
    cop = np.where(upper[:, None, None], np.minimum(u, v), np.maximum(u + v - 1.0, 0.0))
    uv = u * v
    corr = (cop - uv).sum(axis=(1, 2)) / (sdf * sdx)
    degenerate = (sdx == 0) | (sdf == 0) | (upper & (c == 0))
    with np.errstate(divide="ignore", invalid="ignore"):
        k = np.where(degenerate, 0.0, c / corr)
    dc = np.diff(np.pad(cop, ((0, 0), (1, 0), (1, 0))), axis=1)
    dc = np.diff(dc, axis=2)
    kk = k[:, None, None]
    jpdf = kk * dc + (1.0 - kk) * (pf[:, :, None] * px[:, None, :])
    hj = _entropy(jpdf, axis=(1, 2))
    hx, hf = _entropy(px, axis=1), _entropy(pf, axis=1)
    mi = hx + hf - hj
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


def fmi(f: np.ndarray, a: np.ndarray, b: np.ndarray, feature: str = "none") -> float:
    """Fast-FMI of fused ``f`` against sources ``a`` and ``b`` (float64 (H, W), H, W >= 3)."""
    fa, fb, ff = (fmi_features(x, feature) for x in (a, b, f))
    aw, bw, fw = _windows(fa), _windows(fb), _windows(ff)
    total = 0.0
    for s in range(0, len(fw), _CHUNK):
        sl = slice(s, s + _CHUNK)
        total += float(_fmi_map_block(aw[sl], bw[sl], fw[sl]).sum())
    return total / len(fw)
