"""Straightforward implementations of the metrics, written from the definitions in METRICS.md.

This is the baseline of ``benchmarks/metrics.py`` and an oracle for the tests: one function per
metric, each computing everything it needs on its own with plain numpy + scipy, the way the usual
evaluators do (``scipy.signal.convolve2d`` for VIF and Qabf, ``scipy.ndimage.uniform_filter`` for
SSIM, a distinct-value contingency table for MI, a per-window loop for FMI). Float64 throughout.
Inputs: float (H, W) arrays of integer gray levels 0..255; argument order (F, A, B).
Not part of the library: slow on purpose, no input validation.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.ndimage import uniform_filter
from scipy.signal import convolve2d

__all__ = ["REFERENCE", "CDDFUSE_NAMES", "reference_metrics", "fmi_loop"]


def _r(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation; NaN (0/0) when either input is constant."""
    xm, ym = x - x.mean(), y - y.mean()
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.sum(xm * ym) / np.sqrt(np.sum(xm * xm) * np.sum(ym * ym)))


def EN(f, a, b):
    h = np.bincount(np.round(f).astype(np.uint8).ravel(), minlength=256) / f.size
    p = h[h > 0]
    return float(-np.sum(p * np.log2(p))) + 0.0


def SD(f, a, b):
    return float(np.std(f))


def SF(f, a, b):
    return math.sqrt(np.mean((f[:, 1:] - f[:, :-1]) ** 2) + np.mean((f[1:, :] - f[:-1, :]) ** 2))


def AG(f, a, b):
    gy, gx = np.gradient(f)
    return float(np.mean(np.sqrt((gx**2 + gy**2) / 2)))


def _mi_nats(x: np.ndarray, y: np.ndarray) -> float:
    """Mutual information (ln) from the contingency table of the distinct values of x and y."""
    xv, xi = np.unique(x.ravel(), return_inverse=True)
    yv, yi = np.unique(y.ravel(), return_inverse=True)
    joint = np.zeros((len(xv), len(yv)))
    np.add.at(joint, (xi.ravel(), yi.ravel()), 1)
    pxy = joint / joint.sum()
    px, py = pxy.sum(axis=1, keepdims=True), pxy.sum(axis=0, keepdims=True)
    nz = pxy > 0
    return max(float(np.sum(pxy[nz] * np.log(pxy[nz] / (px @ py)[nz]))), 0.0)


def MI(f, a, b):
    return _mi_nats(f, a) + _mi_nats(f, b)


def MSE(f, a, b):
    return float((np.mean((a - f) ** 2) + np.mean((b - f) ** 2)) / 2)


def PSNR(f, a, b):
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(10 * np.log10(np.max(f) ** 2 / MSE(f, a, b)))


def CC(f, a, b):
    return (_r(a, f) + _r(b, f)) / 2


def SCD(f, a, b):
    return _r(f - b, a) + _r(f - a, b)


def _fspecial_gauss(n: int, sigma: float) -> np.ndarray:
    x = np.arange(n) - (n - 1) / 2
    h = np.exp(-(x[:, None] ** 2 + x[None, :] ** 2) / (2 * sigma**2))
    h[h < np.finfo(float).eps * h.max()] = 0
    return h / h.sum()


def _vifp(ref: np.ndarray, dist: np.ndarray) -> float:
    sigma_nsq, eps = 2.0, 1e-10
    num = den = 0.0
    for scale in range(1, 5):
        n = 2 ** (5 - scale) + 1
        win = _fspecial_gauss(n, n / 5)
        if scale > 1:
            ref = convolve2d(ref, win, mode="valid")[::2, ::2]
            dist = convolve2d(dist, win, mode="valid")[::2, ::2]
        mu1, mu2 = convolve2d(ref, win, mode="valid"), convolve2d(dist, win, mode="valid")
        s1 = np.maximum(convolve2d(ref * ref, win, mode="valid") - mu1 * mu1, 0)
        s2 = np.maximum(convolve2d(dist * dist, win, mode="valid") - mu2 * mu2, 0)
        s12 = convolve2d(ref * dist, win, mode="valid") - mu1 * mu2
        g = s12 / (s1 + eps)
        sv = s2 - g * s12
        m = s1 < eps
        g[m], sv[m], s1[m] = 0, s2[m], 0
        m = s2 < eps
        g[m], sv[m] = 0, 0
        m = g < 0
        sv[m], g[m] = s2[m], 0
        sv[sv <= eps] = eps
        num += np.sum(np.log10(1 + g**2 * s1 / (sv + sigma_nsq)))
        den += np.sum(np.log10(1 + s1 / sigma_nsq))
    with np.errstate(invalid="ignore"):
        v = num / den
    return 1.0 if np.isnan(v) else float(v)


def VIF(f, a, b):
    return _vifp(a, f) + _vifp(b, f)


def _qabf_grad(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    sx = convolve2d(x, np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]), mode="same")
    sy = convolve2d(x, np.array([[1, 2, 1], [0, 0, 0], [-1, -2, -1]]), mode="same")
    g = np.sqrt(sx**2 + sy**2)
    alpha = np.full_like(x, math.pi / 2)
    nz = sx != 0
    alpha[nz] = np.arctan(sy[nz] / sx[nz])
    return g, alpha


def _qabf_q(gx, ax, gf, af):
    G = np.zeros_like(gx)
    m = gx > gf
    G[m] = gf[m] / gx[m]
    m = gx == gf
    G[m] = gf[m]
    m = gx < gf
    G[m] = gx[m] / gf[m]
    A = 1 - np.abs(ax - af) / (math.pi / 2)
    return 0.9994 / (1 + np.exp(-15 * (G - 0.5))) * 0.9879 / (1 + np.exp(-22 * (A - 0.8)))


def Qabf(f, a, b):
    (ga, aa), (gb, ab), (gf, af) = _qabf_grad(a), _qabf_grad(b), _qabf_grad(f)
    num = np.sum(_qabf_q(ga, aa, gf, af) * ga + _qabf_q(gb, ab, gf, af) * gb)
    den = np.sum(ga + gb)
    return float(num / den) if den > 0 else float("nan")


def _ssim_skimage(x: np.ndarray, y: np.ndarray, data_range: float) -> float:
    """scikit-image structural_similarity defaults: 7x7 uniform window, sample covariance, crop 3."""
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    cov = 49 / 48
    ux, uy = uniform_filter(x, 7), uniform_filter(y, 7)
    vx = cov * (uniform_filter(x * x, 7) - ux * ux)
    vy = cov * (uniform_filter(y * y, 7) - uy * uy)
    vxy = cov * (uniform_filter(x * y, 7) - ux * uy)
    s = (2 * ux * uy + c1) * (2 * vxy + c2) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
    return float(s[3:-3, 3:-3].mean())


def SSIM(f, a, b):
    return _ssim_skimage(f, a, 2.0) + _ssim_skimage(f, b, 2.0)


REFERENCE = {"EN": EN, "SD": SD, "SF": SF, "AG": AG, "MI": MI, "SCD": SCD, "VIF": VIF, "Qabf": Qabf,
             "SSIM": SSIM, "MSE": MSE, "PSNR": PSNR, "CC": CC}
CDDFUSE_NAMES = tuple(REFERENCE)


def reference_metrics(f: np.ndarray, a: np.ndarray, b: np.ndarray, names=CDDFUSE_NAMES) -> dict[str, float]:
    """The straightforward value of each named CDDFuse metric, each computed independently."""
    f, a, b = (np.asarray(x, dtype=np.float64) for x in (f, a, b))
    return {n: REFERENCE[n](f, a, b) for n in names}


# ------------------------------------------------------------------ FMI, one window at a time
def _fmi_window(x: np.ndarray, f: np.ndarray) -> tuple[float, np.ndarray]:
    """Normalised MI of one pair of 3x3 windows (Haghighat's loop body); returns (value, f as left)."""
    if np.array_equal(x, f):
        return 1.0, f

    def norm(w):
        lo, hi = w.min(), w.max()
        return np.ones_like(w) if hi == lo else (w - lo) / (hi - lo)

    x, f = norm(x), norm(f)
    px, pf = x.ravel(order="F") / x.sum(), f.ravel(order="F") / f.sum()
    cx, cf = np.cumsum(px), np.cumsum(pf)
    tx, tf = px - px.mean(), pf - pf.mean()
    s = np.sum(tx * tf)
    c = 0.0 if s == 0 else s / math.sqrt(np.sum(tx * tx) * np.sum(tf * tf))
    i = np.arange(1, 10)
    sdx = math.sqrt(max(np.sum(i * i * px) - np.sum(i * px) ** 2, 0.0))
    sdf = math.sqrt(max(np.sum(i * i * pf) - np.sum(i * pf) ** 2, 0.0))
    U, V = np.meshgrid(cf, cx, indexing="ij")
    if c >= 0:
        C = 0.5 * (U + V - np.abs(U - V))
        k = 0.0 if (c == 0 or sdx == 0 or sdf == 0) else c / (np.sum(C - U * V) / (sdf * sdx))
    else:
        C = 0.5 * (U + V - 1 + np.abs(U + V - 1))
        k = 0.0 if (sdx == 0 or sdf == 0) else c / (np.sum(C - U * V) / (sdf * sdx))
    Cp = np.zeros((10, 10))
    Cp[1:, 1:] = C
    dC = Cp[1:, 1:] - Cp[:-1, 1:] - Cp[1:, :-1] + Cp[:-1, :-1]
    jp = k * dC + (1 - k) * np.outer(pf, px)
    hj = sum(-p * math.log2(abs(p)) for p in jp.ravel() if p != 0)
    hx = sum(-p * math.log2(p) for p in px if p != 0)
    hf = sum(-p * math.log2(p) for p in pf if p != 0)
    mi = hx + hf - hj
    return (0.0 if mi == 0 else 2 * mi / (hx + hf)), f


def fmi_loop(fa: np.ndarray, fb: np.ndarray, ff: np.ndarray) -> float:
    """Fast-FMI of precomputed feature maps (sources fa, fb; fused ff) with a per-window loop."""
    h, w = ff.shape
    total = 0.0
    for p in range(1, h - 1):
        for q in range(1, w - 1):
            win = (slice(p - 1, p + 2), slice(q - 1, q + 2))
            v_a, f_left = _fmi_window(fa[win], ff[win])  # MATLAB overwrites the fused window here
            v_b, _ = _fmi_window(fb[win], f_left)
            total += (v_a + v_b) / 2
    return total / ((h - 2) * (w - 2))
