"""Fast metric implementations on one (fused, ir, vi) triplet, sharing intermediate results.

All arrays are float64 (H, W) holding integer gray levels 0..255 (validated by the caller). The
conventions are those of ``../shared/reference/METRICS.md``: §2 for the CDDFuse metrics, §4 for
Nabf / MS-SSIM / FMI, §3 for the named variants. Speed comes from

* histograms and exact integer moment sums (EN, SD, MI, CC, SCD, MSE, PSNR) instead of
  per-metric float passes;
* separable float64 filtering with OpenCV (VIF's Gaussian pyramid, MS-SSIM), integer box sums
  (SSIM) and 3x3 Sobel by ``cv2.filter2D`` (exact on integer data) instead of ``convolve2d``;
* statistics of the fused image computed once and reused for both sources;
* elementwise maths on row blocks that stay in cache (``_row_blocks``).
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

__all__ = ["Triplet", "compute", "local_contrast", "warm_target_mask", "sky_mask", "qabf_map", "SKY_MIN_COVER",
           "SKY_WARM_MARGIN"]

log = logging.getLogger(__name__)

_F64 = cv2.CV_64F
_NAN = float("nan")


def local_contrast(x: np.ndarray) -> np.ndarray:
    """TCR's local contrast ``x - boxmean31(x)`` (31 x 31 box, half-sample symmetric border ``dcba|abcd``).

    x: (H, W) float array (any range); returns the same shape.
    """
    return x - cv2.blur(x, (31, 31), borderType=cv2.BORDER_REFLECT)


def warm_target_mask(ir: np.ndarray) -> np.ndarray:
    """Where TCR looks: pixels whose infrared local contrast is in its top 2% (numpy's linear
    percentile), (H, W) bool. ir: (H, W) float array (any range)."""
    ci = local_contrast(ir)
    return ci >= np.percentile(ci, 98)


#: SKY is defined (not NaN) only where its mask covers at least this share of the image.
SKY_MIN_COVER = 0.02


#: SKY's mask leaves out everything within 15 px of a pixel this much warmer than its 31 x 31 mean.
SKY_WARM_MARGIN = 30.0


def bright_flat(vi: np.ndarray) -> np.ndarray:
    """A bright, flat visible background (a daytime sky, a white wall): ``vi >= 170`` and the local
    standard deviation of ``vi`` over 15 x 15 below 8. vi: (H, W) float array of gray levels
    0..255; returns (H, W) bool. The visible half of :func:`sky_mask`."""
    mean = cv2.blur(vi, (15, 15), borderType=cv2.BORDER_REFLECT)
    var = cv2.blur(vi * vi, (15, 15), borderType=cv2.BORDER_REFLECT) - mean * mean
    return (vi >= 170.0) & (var < 64.0)


def sky_mask(ir: np.ndarray, vi: np.ndarray) -> np.ndarray:
    """Where SKY looks: bright, flat visible background in front of which the infrared is locally colder.

    ``vi >= 170``, the local standard deviation of ``vi`` over 15 x 15 below 8, ``local_contrast(ir) < 0``
    (the infrared colder than its 31 x 31 surroundings: a clear sky), and no pixel within 15 px (a
    31 x 31 window) whose ``local_contrast(ir)`` exceeds :data:`SKY_WARM_MARGIN`: the cold-looking
    surround of a warm target (or of warm trees at a skyline) is the target's background, whose
    contrast TCR measures, not sky. ir, vi: (H, W) float arrays of gray levels 0..255; returns
    (H, W) bool. The training term ``content_sky_weight`` uses the same mask
    (:func:`emma_fusion.train.losses.sky_mask_torch`).
    """
    ci = local_contrast(ir)
    near_warm = cv2.dilate((ci > SKY_WARM_MARGIN).astype(np.uint8), np.ones((31, 31), np.uint8)) > 0
    return bright_flat(vi) & (ci < 0) & ~near_warm


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
    """Normalised 1-D Gaussian of n taps (float64); outer(g, g) is MATLAB fspecial('gaussian', n, sigma).

    (fspecial's zeroing of entries below eps * max never triggers for the sizes used here.)
    """
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


def _row_blocks(h: int, w: int, target: int = 16384) -> list[slice]:
    """Row slices of about ``target`` elements: elementwise maths on blocks that stay in cache."""
    step = max(1, target // max(w, 1))
    return [slice(r, min(r + step, h)) for r in range(0, h, step)]


def _vif_sums(mu_x: np.ndarray, exx: np.ndarray, exf: np.ndarray, mu_f: np.ndarray,
              eff: np.ndarray) -> tuple[float, float]:
    """One scale of vifp: (num, den) sums from the filtered maps mu_x, E[x^2], E[xf], mu_f, E[f^2].

    Equivalent to the reference's clamps and fix-ups: the num term is 0 unless sigma1^2 >= eps,
    sigma2^2 >= eps and sigma12 >= 0 (i.e. g >= 0); the den term is 0 where sigma1^2 < eps.
    """
    eps = 1e-10
    num = den = 0.0
    for sl in _row_blocks(*mu_x.shape):
        mx, mf = mu_x[sl], mu_f[sl]
        s1 = exx[sl] - mx * mx
        s2 = eff[sl] - mf * mf
        s12 = exf[sl] - mx * mf
        ok1 = s1 >= eps
        valid = ok1 & (s2 >= eps) & (s12 >= 0)
        g = s12 / (s1 + eps)
        sv = s2 - g * s12
        np.maximum(sv, eps, out=sv)
        sv += 2.0  # sigma_nsq
        g *= g
        g *= s1
        g /= sv
        g *= valid
        g += 1.0
        num += float(np.log10(g, out=g).sum())
        s1 *= ok1
        s1 *= 0.5
        s1 += 1.0
        den += float(np.log10(s1, out=s1).sum())
    return num, den


def _ssim_sum(sx, sxx, sxf, sf, sff, c1: float, c2: float) -> float:
    """Σ of skimage's SSIM map from exact 7x7 window sums S (u = S/49, v = (49 S2 - S^2) / 2352)."""
    k1, k2 = 2401.0 * c1, 2352.0 * c2
    total = 0.0
    for sl in _row_blocks(*sx.shape):
        x, f = sx[sl].astype(np.float64), sf[sl].astype(np.float64)
        pxy = x * f
        x2, f2 = x * x, f * f
        num = 49.0 * sxf[sl]
        num -= pxy
        num *= 2.0
        num += k2
        pxy *= 2.0
        pxy += k1
        num *= pxy
        x2 += f2
        den = sxx[sl] + sff[sl].astype(np.float64)
        den *= 49.0
        den -= x2
        den += k2
        x2 += k1
        den *= x2
        num /= den
        total += float(num.sum())
    return total


def _sobel_qabf(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(Sx, Sy) of Qabf: true 2-D convolution, 'same' size, zero padding (exact on integer data)."""
    sx = cv2.filter2D(x, _F64, _QABF_H3[::-1, ::-1].copy(), borderType=cv2.BORDER_CONSTANT)
    sy = cv2.filter2D(x, _F64, _QABF_H1[::-1, ::-1].copy(), borderType=cv2.BORDER_CONSTANT)
    return sx, sy


def _qabf_strength_angle(sx: np.ndarray, sy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    g = np.sqrt(sx * sx + sy * sy)
    zero = sx == 0
    alpha = np.arctan(sy / sx)
    alpha[zero] = math.pi / 2  # arctan, not arctan2; pi/2 wherever Sx == 0
    return g, alpha


def _qabf_q(gx, ax, gf, af) -> np.ndarray:
    """Edge preservation Q^{XF} = Q_g * Q_alpha (Tg 0.9994, kg -15, Dg 0.5, Ta 0.9879, ka -22, Da 0.8)."""
    G = np.minimum(gx, gf)
    G /= np.maximum(gx, gf)
    eq = gx == gf
    G[eq] = gf[eq]  # MATLAB quirk: equal strengths give g_F, not 1
    G -= 0.5
    G *= -15.0
    np.exp(G, out=G)
    G += 1.0
    A = ax - af
    np.abs(A, out=A)
    A *= 22.0 / (math.pi / 2)  # ka * (A - Da) with A = 1 - |dalpha| / (pi/2), ka = -22, Da = 0.8
    A += -22.0 * (1.0 - 0.8)
    np.exp(A, out=A)
    A += 1.0
    A *= G
    return np.divide(0.9994 * 0.9879, A, out=A)


def qabf_map(f: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Qabf pixel by pixel: ``(num, den)`` with ``Qabf = num.sum() / den.sum()``.

    ``num = Q^AF g_A + Q^BF g_B`` and ``den = g_A + g_B`` (g: Sobel edge strength), so summing
    ``num / den.sum()`` over a region gives that region's share of Qabf, and the difference of two
    fusions' ``num`` shows where one keeps the sources' edges better. f, a, b: (H, W) float arrays
    of gray levels 0..255; returns two (H, W) float64 arrays.
    """
    (ax, ay), (bx, by), (fx, fy) = (_sobel_qabf(np.asarray(x, np.float64)) for x in (a, b, f))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # 0 / 0 where neither has an edge (weight 0)
        ga, aa = _qabf_strength_angle(ax, ay)
        gb, ab = _qabf_strength_angle(bx, by)
        gf, af = _qabf_strength_angle(fx, fy)
        return _qabf_q(ga, aa, gf, af) * ga + _qabf_q(gb, ab, gf, af) * gb, ga + gb


def _nabf_grad(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(gv, gh) x 8 of Nabf: Sobel correlation with mirror padding that does not repeat the edge."""
    gv = cv2.filter2D(x, _F64, _NABF_GV, borderType=cv2.BORDER_REFLECT_101)
    gh = cv2.filter2D(x, _F64, _NABF_GH, borderType=cv2.BORDER_REFLECT_101)
    return gv, gh


def _nabf_strength_angle(gv8: np.ndarray, gh8: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    gv, gh = gv8 / 8.0, gh8 / 8.0
    g = np.sqrt(gh * gh + gv * gv)
    alpha = np.arctan(gv / gh)  # gh == 0, gv != 0 -> +-pi/2
    alpha[(gv == 0) & (gh == 0)] = 0.0
    return g, alpha


def _nabf_q(gx, ax, gf, af) -> np.ndarray:
    """Q^{XF} = sqrt(Qg * Qa) with Nrg 0.9999, kg 19, sg 0.5, Nra 0.9995, ka 22, sa 0.5."""
    lo, hi = np.minimum(gx, gf), np.maximum(gx, gf)
    G = np.divide(lo, hi, out=np.zeros_like(lo), where=lo > 0)
    A = np.abs(np.abs(ax - af) - math.pi / 2) * (2 / math.pi)
    return np.sqrt(0.9999 / (1 + np.exp(-19.0 * (G - 0.5))) * (0.9995 / (1 + np.exp(-22.0 * (A - 0.5)))))


class Triplet:
    """Lazily computed, shared intermediates of one triplet and the metric values built on them.

    ``f``, ``a``, ``b``: float64 C-contiguous (H, W) arrays of integers 0..255 (fused, ir, vi).
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

    def _joint(self, i: int, j: int) -> np.ndarray:
        """256x256 joint count table of images i, j (0 = f, 1 = a, 2 = b); rows index image i."""
        key = self._levels[i] * 256
        key += self._levels[j]
        return np.bincount(key, minlength=65536).reshape(256, 256)

    @cached_property
    def _joint_fa(self) -> np.ndarray:
        return self._joint(0, 1)

    @cached_property
    def _joint_fb(self) -> np.ndarray:
        return self._joint(0, 2)

    @cached_property
    def _hist_f(self) -> np.ndarray:
        if "_joint_fa" in self.__dict__:
            return self._joint_fa.sum(axis=1)
        return np.bincount(self._levels[0], minlength=256)

    @cached_property
    def _sums(self) -> dict[str, int]:
        """Exact integer moments from the joint histograms: s_x = Σx, s_xy = Σx·y (x, y in a, b, f)."""
        lv = np.arange(256, dtype=np.int64)
        jfa, jfb = self._joint_fa, self._joint_fb
        hf, ha, hb = jfa.sum(axis=1), jfa.sum(axis=0), jfb.sum(axis=0)
        out = {}
        for name, h in (("f", hf), ("a", ha), ("b", hb)):
            out[name] = int(h @ lv)
            out[name + name] = int(h @ (lv * lv))
        out["af"] = int(lv @ jfa @ lv)
        out["bf"] = int(lv @ jfb @ lv)
        return out

    @cached_property
    def _sum_ab(self) -> int:
        lv = np.arange(256, dtype=np.int64)
        return int(lv @ self._joint(1, 2) @ lv)

    def EN(self) -> float:
        p = self._hist_f[self._hist_f > 0] / self.n
        return float(-np.sum(p * np.log2(p))) + 0.0  # + 0.0 turns the flat image's -0.0 into 0.0

    def SD(self) -> float:
        lv = np.arange(256, dtype=np.float64)
        h = self._hist_f.astype(np.float64)
        mean = float(h @ lv) / self.n
        return math.sqrt(float(h @ (lv - mean) ** 2) / self.n)

    def MI(self) -> float:
        return _mi_nats(self._joint_fa) + _mi_nats(self._joint_fb)

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
        lv = np.nonzero(self._hist_f)[0]
        return self._psnr(float(lv[-1]))

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
        for x, y in (("a", "b"), ("b", "a")):  # r(D, x) with D = F - y
            sd = s["f"] - s[y]
            sdd = s["ff"] - 2 * s[y + "f"] + s[y + y]
            sdx = s[x + "f"] - self._sum_ab
            total += _pearson(sdx, sd, s[x], sdd, s[x + x], n)
        return total

    # ---------------------------------------------------------------- gradients of F
    def SF(self) -> float:
        f = self.f
        dx = f[:, 1:] - f[:, :-1]
        dy = f[1:, :] - f[:-1, :]
        if dx.size == 0 or dy.size == 0:
            return _NAN
        return math.sqrt(float(np.einsum("ij,ij->", dx, dx)) / dx.size
                         + float(np.einsum("ij,ij->", dy, dy)) / dy.size)

    @cached_property
    def _ag_sum(self) -> float:
        """Σ sqrt((Gx² + Gy²) / 2) with numpy-gradient differences (central inside, one-sided at edges)."""
        f = self.f
        gx = np.empty_like(f)
        gy = np.empty_like(f)
        np.subtract(f[:, 2:], f[:, :-2], out=gx[:, 1:-1])
        gx[:, 1:-1] *= 0.5
        gx[:, 0] = f[:, 1] - f[:, 0]
        gx[:, -1] = f[:, -1] - f[:, -2]
        np.subtract(f[2:, :], f[:-2, :], out=gy[1:-1, :])
        gy[1:-1, :] *= 0.5
        gy[0, :] = f[1, :] - f[0, :]
        gy[-1, :] = f[-1, :] - f[-2, :]
        total = 0.0
        for sl in _row_blocks(self.h, self.w):
            x, y = gx[sl], gy[sl]
            x *= x
            y *= y
            x += y
            x *= 0.5
            total += float(np.sqrt(x, out=x).sum())
        return total

    def AG(self) -> float:
        return self._ag_sum / self.n

    def AG_vifb(self) -> float:
        return self._ag_sum / ((self.h - 1) * (self.w - 1))

    # ---------------------------------------------------------------- VIF (vifp_mscale, summed)
    @cached_property
    def _vif(self) -> tuple[float, float]:
        imgs = [self.a, self.b, self.f]
        num, den = [0.0, 0.0], [0.0, 0.0]
        for s, k in enumerate(_VIF_KERNELS, start=1):
            if s > 1:  # low-pass ('valid') and keep every other row/column
                imgs = [np.ascontiguousarray(_valid_sep_filter(x, k)[::2, ::2]) for x in imgs]
            a, b, f = imgs
            mu_f = _valid_sep_filter(f, k)
            eff = _valid_sep_filter(f * f, k)
            for i, x in enumerate((a, b)):
                nu, de = _vif_sums(_valid_sep_filter(x, k), _valid_sep_filter(x * x, k),
                                   _valid_sep_filter(x * f, k), mu_f, eff)
                num[i] += nu
                den[i] += de
        # den == 0 (reference flat at every scale) gives NaN in the reference, which CDDFuse replaces by 1.0
        return tuple(nu / de if de != 0 else 1.0 for nu, de in zip(num, den))

    def VIF(self) -> float:
        return self._vif[0] + self._vif[1]

    # ---------------------------------------------------------------- Qabf (Xydeas-Petrovic)
    def Qabf(self) -> float:
        (ax, ay), (bx, by), (fx, fy) = (_sobel_qabf(x) for x in (self.a, self.b, self.f))
        num = den = 0.0
        for sl in _row_blocks(self.h, self.w):
            ga, aa = _qabf_strength_angle(ax[sl], ay[sl])
            gb, ab = _qabf_strength_angle(bx[sl], by[sl])
            gf, af = _qabf_strength_angle(fx[sl], fy[sl])
            num += float(np.einsum("ij,ij->", _qabf_q(ga, aa, gf, af), ga))
            num += float(np.einsum("ij,ij->", _qabf_q(gb, ab, gf, af), gb))
            den += float(ga.sum() + gb.sum())
        return num / den if den > 0 else _NAN

    # ---------------------------------------------------------------- Nabf (Kumar's modified N^AB/F)
    @cached_property
    def _nabf_grads(self) -> list[tuple[np.ndarray, np.ndarray]]:
        return [_nabf_grad(x) for x in (self.a, self.b, self.f)]

    def _nabf(self, w_min: float) -> float:
        (av, ah), (bv, bh), (fv, fh) = self._nabf_grads
        num = den = 0.0
        for sl in _row_blocks(self.h, self.w):
            ga, aa = _nabf_strength_angle(av[sl], ah[sl])
            gb, ab = _nabf_strength_angle(bv[sl], bh[sl])
            gf, af = _nabf_strength_angle(fv[sl], fh[sl])
            na = (gf > ga) & (gf > gb)
            for gx, ax in ((ga, aa), (gb, ab)):
                w = np.where(gx >= 2.0, gx**1.5, w_min)  # Td = 2, Lg = 1.5
                q = _nabf_q(gx, ax, gf, af)
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
        """Exact 7x7 window sums (valid region, int32) of a, b, f, their squares and products."""
        def box(x: np.ndarray) -> np.ndarray:
            return cv2.boxFilter(x, cv2.CV_32S, (7, 7), normalize=False, borderType=cv2.BORDER_CONSTANT)[3:-3, 3:-3]
        a, b, f = (x.astype(np.uint16) for x in (self.a, self.b, self.f))  # products <= 65025 fit uint16
        return {"a": box(a), "b": box(b), "f": box(f), "aa": box(a * a), "bb": box(b * b),
                "ff": box(f * f), "af": box(a * f), "bf": box(b * f)}

    def _ssim_box(self, data_range: float) -> float:
        """skimage structural_similarity defaults (7x7 box, 49/48 covariance, 3-pixel crop), summed."""
        c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
        s = self._box7
        count = s["f"].size
        return sum(_ssim_sum(s[x], s[x + x], s[x + "f"], s["f"], s["ff"], c1, c2) / count for x in ("a", "b"))

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

    # ---------------------------------------------------------------- target contrast retention
    def TCR(self) -> float:
        """Target contrast retention: how much of the infrared image's hot-spot contrast f keeps.

        ``ci = a - boxmean31(a)``, ``cf = f - boxmean31(f)`` (31 x 31 box, half-sample symmetric
        border ``dcba|abcd``); mask = pixels with ``ci >= 98th percentile of ci`` (numpy's linear
        interpolation); ``TCR = mean(cf[mask]) / mean(ci[mask])``; NaN when ``mean(ci[mask]) <= 0``.
        """
        ci, cf = local_contrast(self.a), local_contrast(self.f)
        mask = warm_target_mask(self.a)
        denom = float(ci[mask].mean())
        return float(cf[mask].mean()) / denom if denom > 0 else _NAN

    # ---------------------------------------------------------------- sky / bright background
    def SKY(self) -> float:
        """Sky (bright background) retention: ``mean(f[m]) / mean(b[m])`` over :func:`sky_mask`.

        1 keeps the visible image's bright, flat background (a daytime sky) as bright as it is;
        below 1 the infrared image's cold sky darkens it. NaN when the mask covers under
        :data:`SKY_MIN_COVER` of the image (night scenes, no sky).
        """
        m = sky_mask(self.a, self.b)
        if m.mean() < SKY_MIN_COVER:
            return _NAN
        return float(self.f[m].mean() / self.b[m].mean())


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
