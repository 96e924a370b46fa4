"""Fast metric implementations on one (fused, ir, vi) triplet, sharing intermediate results.

All arrays are float64 (H, W) holding integer gray levels 0..255 (validated by the caller). The
conventions are those of ``../shared/reference/METRICS.md``: §2 for the CDDFuse metrics, §4 for
Nabf / MS-SSIM / FMI, §3 for the named variants. Speed comes from

* histograms and exact integer moment sums (EN, SD, MI, CC, SCD, MSE, PSNR) instead of
  per-metric float passes;
* separable float64 filtering with OpenCV (VIF's Gaussian pyramid, MS-SSIM), integer box sums
  (SSIM) and 3x3 Sobel by ``cv2.filter2D`` (exact on integer data) instead of ``convolve2d``;
* statistics of the fused image computed once and reused for both sources.
"""

from __future__ import annotations

import logging
import math
from functools import cached_property
from typing import Iterable

import cv2
import numpy as np

from ..errors import EmmaError
from .fmi import fmi
from .reading import as_metric_array
from .registry import check_size, resolve_names

__all__ = ["Triplet", "compute"]

log = logging.getLogger(__name__)

_F64 = cv2.CV_64F
_NAN = float("nan")


def _valid_sep_filter(img: np.ndarray, k: np.ndarray) -> np.ndarray:
    """'valid' 2-D correlation of (H, W) float64 ``img`` with the separable kernel outer(k, k)."""
    r = (len(k) - 1) // 2
    out = cv2.sepFilter2D(img, _F64, k, k, borderType=cv2.BORDER_CONSTANT)
    return out[r:img.shape[0] - r, r:img.shape[1] - r]


def _pearson(sxy: int, sx: int, sy: int, sxx: int, syy: int, n: int) -> float:
    """Pearson r from exact integer moment sums; NaN when either variable is constant."""
    dx, dy = n * sxx - sx * sx, n * syy - sy * sy
    if dx <= 0 or dy <= 0:
        return _NAN
    return (n * sxy - sx * sy) / (math.sqrt(dx) * math.sqrt(dy))


def _mi_nats(joint: np.ndarray) -> float:
    """Mutual information (natural log) of a joint count table, as scikit-learn's mutual_info_score."""
    rows, cols = np.nonzero(joint)
    nz = joint[rows, cols].astype(np.float64)
    total = float(nz.sum())
    pi, pj = joint.sum(axis=1), joint.sum(axis=0)
    outer = pi[rows].astype(np.int64) * pj[cols].astype(np.int64)
    p = nz / total
    log_outer = -np.log(outer.astype(np.float64)) + math.log(float(pi.sum())) + math.log(float(pj.sum()))
    terms = p * (np.log(nz) - math.log(total)) + p * log_outer
    terms[np.abs(terms) < np.finfo(np.float64).eps] = 0.0
    return max(float(terms.sum()), 0.0)


def _gauss_1d(n: int, sigma: float) -> np.ndarray:
    """Normalised 1-D Gaussian of n taps (float64); outer(g, g) is MATLAB fspecial('gaussian', n, sigma)."""
    x = np.arange(n, dtype=np.float64) - (n - 1) / 2.0
    g = np.exp(-(x * x) / (2.0 * sigma * sigma))
    return g / g.sum()


# pytorch_msssim's 11-tap window (sigma 1.5) exactly as torch builds it in float32 (exp, then
# division by its float32 sum) and then casts to the data's float64. Its sum is 1 - 3.07e-8, which
# moves MS-SSIM by ~1e-5 relative through the variance terms, so the exact values matter.
_MSSSIM_WIN = np.array([0.0010283803567290306, 0.0075987582094967365, 0.036000773310661316,
                        0.10936068743467331, 0.21300552785396576, 0.26601171493530273,
                        0.21300552785396576, 0.10936068743467331, 0.036000773310661316,
                        0.0075987582094967365, 0.0010283803567290306], dtype=np.float64)


_VIF_KERNELS = [_gauss_1d(2 ** (5 - s) + 1, (2 ** (5 - s) + 1) / 5.0) for s in range(1, 5)]
_MSSSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
_VIFB_WIN = _gauss_1d(11, 1.5)

# Sobel kernels. Qabf: true convolution (kernel flipped for cv2's correlation), zero padding.
_QABF_H1 = np.array([[1, 2, 1], [0, 0, 0], [-1, -2, -1]], dtype=np.float64)  # -> Sy
_QABF_H3 = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float64)  # -> Sx
# Nabf: correlation (x 8; the /8 is applied after, exactly), mirror padding without edge repeat.
_NABF_GV = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float64)
_NABF_GH = np.array([[-1, -2, -1], [0, 0, 0], [1, 2, 1]], dtype=np.float64)


def _avg_pool2(x: np.ndarray) -> np.ndarray:
    """torch avg_pool2d(kernel 2, stride 2, padding (H%2, W%2)), zero padding counted in the mean."""
    ph, pw = x.shape[0] % 2, x.shape[1] % 2
    if ph or pw:
        x = np.pad(x, ((ph, ph), (pw, pw)))
    h2, w2 = x.shape[0] // 2, x.shape[1] // 2
    x = x[: 2 * h2, : 2 * w2]
    return (x[0::2, 0::2] + x[1::2, 0::2] + x[0::2, 1::2] + x[1::2, 1::2]) / 4.0


class Triplet:
    """Lazily computed, shared intermediates of one triplet and the metric values built on them.

    ``f``, ``a``, ``b``: float64 (H, W) arrays of integers 0..255 for fused, ir and vi.
    Each public method returns one metric as a Python float.
    """

    def __init__(self, f: np.ndarray, a: np.ndarray, b: np.ndarray) -> None:
        self.f, self.a, self.b = f, a, b
        self.h, self.w = f.shape
        self.n = f.size

    # ---------------------------------------------------------------- histograms and moments
    @cached_property
    def _levels(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Integer (intp) versions of f, a, b, flattened."""
        return tuple(x.ravel().astype(np.intp) for x in (self.f, self.a, self.b))

    @cached_property
    def _hist_f(self) -> np.ndarray:
        return np.bincount(self._levels[0], minlength=256)

    def _joint(self, k: int) -> np.ndarray:
        fl = self._levels[0]
        return np.bincount(fl * 256 + self._levels[k], minlength=65536).reshape(256, 256)

    @cached_property
    def _sums(self) -> dict[str, int]:
        """Exact integer sums: s_x = Σx and s_xy = Σx·y for x, y in {a, b, f}."""
        a, b, f = (x.ravel() for x in (self.a, self.b, self.f))
        out = {"a": int(a.sum()), "b": int(b.sum()), "f": int(f.sum())}
        for name, (x, y) in {"aa": (a, a), "bb": (b, b), "ff": (f, f), "af": (a, f), "bf": (b, f),
                             "ab": (a, b)}.items():
            out[name] = int(np.dot(x, y))  # float64 dot is exact: integer terms, partial sums < 2**53
        return out

    def EN(self) -> float:
        p = self._hist_f[self._hist_f > 0] / self.n
        return float(-np.sum(p * np.log2(p))) + 0.0  # + 0.0 turns the flat image's -0.0 into 0.0

    def SD(self) -> float:
        lv = np.arange(256, dtype=np.float64)
        h = self._hist_f.astype(np.float64)
        mean = float(h @ lv) / self.n
        return math.sqrt(float(h @ (lv - mean) ** 2) / self.n)

    def MI(self) -> float:
        return _mi_nats(self._joint(1)) + _mi_nats(self._joint(2))

    def MI_bits(self) -> float:
        return self.MI() / math.log(2.0)

    def _sq_err(self, x: str) -> int:
        s = self._sums
        return s[x + x] - 2 * s[x + "f"] + s["ff"]

    def MSE(self) -> float:
        return (self._sq_err("a") + self._sq_err("b")) / (2.0 * self.n)

    def _psnr(self, peak: float) -> float:
        mse = self.MSE()
        if mse == 0:
            return math.inf if peak > 0 else _NAN
        return -math.inf if peak == 0 else 10.0 * math.log10(peak * peak / mse)

    def PSNR(self) -> float:
        return self._psnr(float(self.f.max()))

    def PSNR_peak255(self) -> float:
        return self._psnr(255.0)

    def CC(self) -> float:
        s, n = self._sums, self.n
        r = (_pearson(s["af"], s["a"], s["f"], s["aa"], s["ff"], n)
             + _pearson(s["bf"], s["b"], s["f"], s["bb"], s["ff"], n)) / 2.0
        if math.isnan(r):
            log.warning("CC is undefined (NaN): an input image is constant")
        return r

    def SCD(self) -> float:
        s, n = self._sums, self.n
        total = 0.0
        for x, y in (("a", "b"), ("b", "a")):  # r(F - y, x) with D = F - y
            sd = s["f"] - s[y]
            sdd = s["ff"] - 2 * s[y + "f"] + s[y + y]
            sdx = s[x + "f"] - s["ab"]
            total += _pearson(sdx, sd, s[x], sdd, s[x + x], n)
        return total

    # ---------------------------------------------------------------- gradients of F
    def SF(self) -> float:
        dx = np.diff(self.f, axis=1)
        dy = np.diff(self.f, axis=0)
        if dx.size == 0 or dy.size == 0:
            return _NAN
        return math.sqrt(float(np.vdot(dx, dx)) / dx.size + float(np.vdot(dy, dy)) / dy.size)

    @cached_property
    def _ag_sum(self) -> float:
        f = self.f
        gx = np.empty_like(f)
        gy = np.empty_like(f)
        gx[:, 0] = f[:, 1] - f[:, 0]
        gx[:, -1] = f[:, -1] - f[:, -2]
        gx[:, 1:-1] = (f[:, 2:] - f[:, :-2]) / 2
        gy[0, :] = f[1, :] - f[0, :]
        gy[-1, :] = f[-1, :] - f[-2, :]
        gy[1:-1, :] = (f[2:, :] - f[:-2, :]) / 2
        gx *= gx
        gy *= gy
        gx += gy
        gx /= 2
        return float(np.sqrt(gx, out=gx).sum())

    def AG(self) -> float:
        return self._ag_sum / self.n

    def AG_vifb(self) -> float:
        return self._ag_sum / ((self.h - 1) * (self.w - 1))

    # ---------------------------------------------------------------- VIF (vifp_mscale, summed)
    @cached_property
    def _vif(self) -> tuple[float, float]:
        eps, sigma_nsq = 1e-10, 2.0
        imgs = [self.a, self.b, self.f]
        num, den = [0.0, 0.0], [0.0, 0.0]
        for s, k in enumerate(_VIF_KERNELS, start=1):
            if s > 1:
                imgs = [np.ascontiguousarray(_valid_sep_filter(x, k)[::2, ::2]) for x in imgs]
            a, b, f = imgs
            mu_f = _valid_sep_filter(f, k)
            s2 = _valid_sep_filter(f * f, k) - mu_f * mu_f
            np.maximum(s2, 0.0, out=s2)
            s2_small = s2 < eps
            for i, x in enumerate((a, b)):
                mu = _valid_sep_filter(x, k)
                s1 = _valid_sep_filter(x * x, k) - mu * mu
                np.maximum(s1, 0.0, out=s1)
                s12 = _valid_sep_filter(x * f, k) - mu * mu_f
                g = s12 / (s1 + eps)
                sv = s2 - g * s12
                m1 = s1 < eps
                g[m1] = 0.0
                sv[m1] = s2[m1]
                s1[m1] = 0.0
                g[s2_small] = 0.0
                sv[s2_small] = 0.0
                m3 = g < 0
                sv[m3] = s2[m3]
                g[m3] = 0.0
                np.maximum(sv, eps, out=sv)
                num[i] += float(np.log10(1.0 + g * g * s1 / (sv + sigma_nsq)).sum())
                den[i] += float(np.log10(1.0 + s1 / sigma_nsq).sum())
        # den == 0 (reference flat at every scale) gives NaN in the reference, which CDDFuse replaces by 1.0
        return tuple(nu / de if de != 0 else 1.0 for nu, de in zip(num, den))

    def VIF(self) -> float:
        return self._vif[0] + self._vif[1]

    # ---------------------------------------------------------------- Qabf (Xydeas-Petrovic)
    @cached_property
    def _qabf_grad(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """(strength g, orientation alpha) of a, b, f: Sobel convolution, zero padding, arctan rule."""
        out = []
        for x in (self.a, self.b, self.f):
            sx = cv2.filter2D(x, _F64, _QABF_H3[::-1, ::-1].copy(), borderType=cv2.BORDER_CONSTANT)
            sy = cv2.filter2D(x, _F64, _QABF_H1[::-1, ::-1].copy(), borderType=cv2.BORDER_CONSTANT)
            g = np.sqrt(sx * sx + sy * sy)
            zero = sx == 0
            alpha = np.arctan(np.divide(sy, sx, out=np.zeros_like(sy), where=~zero))
            alpha[zero] = math.pi / 2
            out.append((g, alpha))
        return out

    def Qabf(self) -> float:
        (ga, aa), (gb, ab), (gf, af) = self._qabf_grad
        total = 0.0
        for gx, ax in ((ga, aa), (gb, ab)):
            lo, hi = np.minimum(gx, gf), np.maximum(gx, gf)
            G = np.divide(lo, hi, out=np.zeros_like(lo), where=hi > 0)
            eq = gx == gf
            G[eq] = gf[eq]  # MATLAB quirk: equal strengths give g_F, not 1
            A = 1.0 - np.abs(ax - af) / (math.pi / 2)
            q = 0.9994 / (1.0 + np.exp(-15.0 * (G - 0.5))) * (0.9879 / (1.0 + np.exp(-22.0 * (A - 0.8))))
            total += float(np.vdot(q, gx))
        den = float(ga.sum() + gb.sum())
        return total / den if den > 0 else _NAN

    # ---------------------------------------------------------------- Nabf (Kumar's modified N^AB/F)
    @cached_property
    def _nabf_grad(self) -> list[tuple[np.ndarray, np.ndarray]]:
        out = []
        for x in (self.a, self.b, self.f):
            gv = cv2.filter2D(x, _F64, _NABF_GV, borderType=cv2.BORDER_REFLECT_101) / 8.0
            gh = cv2.filter2D(x, _F64, _NABF_GH, borderType=cv2.BORDER_REFLECT_101) / 8.0
            g = np.sqrt(gh * gh + gv * gv)
            with np.errstate(divide="ignore", invalid="ignore"):
                alpha = np.arctan(gv / gh)  # gh == 0, gv != 0 -> +-pi/2
            alpha[(gv == 0) & (gh == 0)] = 0.0
            out.append((g, alpha))
        return out

    def _nabf(self, w_min: float) -> float:
        (ga, aa), (gb, ab), (gf, af) = self._nabf_grad
        na = (gf > ga) & (gf > gb)
        num, den = 0.0, 0.0
        for gx, ax in ((ga, aa), (gb, ab)):
            lo, hi = np.minimum(gx, gf), np.maximum(gx, gf)
            G = np.divide(lo, hi, out=np.zeros_like(lo), where=lo > 0)
            A = np.abs(np.abs(ax - af) - math.pi / 2) * (2 / math.pi)
            q = np.sqrt(0.9999 / (1 + np.exp(-19.0 * (G - 0.5))) * (0.9995 / (1 + np.exp(-22.0 * (A - 0.5)))))
            w = np.where(gx >= 2.0, gx**1.5, w_min)
            num += float(((1.0 - q[na]) * w[na]).sum())
            den += float(w.sum())
        return num / den if den > 0 else _NAN

    def Nabf(self) -> float:
        return self._nabf(0.001)

    def Nabf_wt0(self) -> float:
        return self._nabf(0.0)

    # ---------------------------------------------------------------- SSIM (skimage, 7x7 box)
    @cached_property
    def _box7(self) -> dict[str, np.ndarray]:
        """Exact integer 7x7 window sums (valid region) of a, b, f, their squares and products."""
        def box(x: np.ndarray) -> np.ndarray:
            return cv2.boxFilter(x, _F64, (7, 7), normalize=False, borderType=cv2.BORDER_CONSTANT)[3:-3, 3:-3]
        a, b, f = self.a, self.b, self.f
        return {"a": box(a), "b": box(b), "f": box(f), "aa": box(a * a), "bb": box(b * b),
                "ff": box(f * f), "af": box(a * f), "bf": box(b * f)}

    def _ssim_box(self, data_range: float) -> float:
        c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
        s = self._box7
        sf, sff = s["f"], s["ff"]
        total = 0.0
        for x in ("a", "b"):
            sx, sxx, sxf = s[x], s[x + x], s[x + "f"]
            pxy = sx * sf
            # skimage: u = S/49, v = 49/48 (S2/49 - u^2) = (49 S2 - S^2) / 2352, exactly on integer sums
            a1 = 2.0 * pxy / 2401.0 + c1
            a2 = 2.0 * (49.0 * sxf - pxy) / 2352.0 + c2
            sx2, sf2 = sx * sx, sf * sf
            b1 = (sx2 + sf2) / 2401.0 + c1
            b2 = (49.0 * (sxx + sff) - sx2 - sf2) / 2352.0 + c2
            total += float(np.mean(a1 * a2 / (b1 * b2)))
        return total

    def SSIM(self) -> float:
        return self._ssim_box(2.0)

    def SSIM_L255(self) -> float:
        return self._ssim_box(255.0)

    # ---------------------------------------------------------------- Gaussian-window SSIMs
    def SSIM_vifb(self) -> float:
        c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
        k = _VIFB_WIN
        f = self.f
        mf = _valid_sep_filter(f, k)
        vf = _valid_sep_filter(f * f, k) - mf * mf
        total = 0.0
        for x in (self.a, self.b):
            mx = _valid_sep_filter(x, k)
            vx = _valid_sep_filter(x * x, k) - mx * mx
            cxf = _valid_sep_filter(x * f, k) - mx * mf
            m = (2 * mx * mf + c1) * (2 * cxf + c2) / ((mx * mx + mf * mf + c1) * (vx + vf + c2))
            total += float(m.mean())
        return total

    def _ms_ssim(self, scale: float) -> float:
        c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
        k = _MSSSIM_WIN
        a, b, f = (x * scale for x in (self.a, self.b, self.f)) if scale != 1 else (self.a, self.b, self.f)
        mcs: list[list[float]] = [[], []]
        ssim_last = [0.0, 0.0]
        for level in range(5):
            mf = _valid_sep_filter(f, k)
            vf = _valid_sep_filter(f * f, k) - mf * mf
            for i, x in enumerate((a, b)):
                mx = _valid_sep_filter(x, k)
                vx = _valid_sep_filter(x * x, k) - mx * mx
                cxf = _valid_sep_filter(x * f, k) - mx * mf
                cs = (2 * cxf + c2) / (vx + vf + c2)
                if level < 4:
                    mcs[i].append(max(float(cs.mean()), 0.0))
                else:
                    ssim = (2 * mx * mf + c1) / (mx * mx + mf * mf + c1) * cs
                    ssim_last[i] = max(float(ssim.mean()), 0.0)
            if level < 4:
                a, b, f = (_avg_pool2(x) for x in (a, b, f))
        w = _MSSSIM_WEIGHTS
        return sum(math.prod(v**wi for v, wi in zip(mcs[i] + [ssim_last[i]], w)) for i in range(2))

    def MS_SSIM(self) -> float:
        return self._ms_ssim(1.0)

    def MS_SSIM_x255(self) -> float:
        return self._ms_ssim(255.0)

    # ---------------------------------------------------------------- FMI (fast-FMI, window 3)
    def FMI_pixel(self) -> float:
        return fmi(self.f, self.a, self.b, "none")

    def FMI_dct(self) -> float:
        return fmi(self.f, self.a, self.b, "dct")

    def FMI_gradient(self) -> float:
        return fmi(self.f, self.a, self.b, "gradient")

    def FMI_w(self) -> float:
        return fmi(self.f, self.a, self.b, "wavelet")


def compute(fused: np.ndarray, ir: np.ndarray, vi: np.ndarray,
            names: str | Iterable[str] | None = None) -> dict[str, float]:
    """Metric values of one fused image against its two sources: {name: float}, in request order.

    ``fused``, ``ir``, ``vi``: 2-D arrays of the same shape in the reading convention (integer gray
    levels 0..255, any real dtype), e.g. from :func:`read_metric_image` or :func:`quantize_fused`.
    ``names``: metric names or groups (see :func:`resolve_names`); default the 12 CDDFuse metrics.
    Undefined values (e.g. CC of a flat image) are NaN; images below a metric's minimum size raise
    :class:`EmmaError`.
    """
    wanted = resolve_names(names)
    f = as_metric_array(fused, "fused image")
    a = as_metric_array(ir, "ir image")
    b = as_metric_array(vi, "vi image")
    if not (f.shape == a.shape == b.shape):
        raise EmmaError(f"image shapes differ: fused {f.shape}, ir {a.shape}, vi {b.shape}")
    check_size(f.shape, wanted)
    t = Triplet(f, a, b)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return {n: float(getattr(t, n)()) for n in wanted}
