"""Cross bilateral filter fusion (CBF), Shreyamsha Kumar, SIViP 2015."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..base import register_method
from ._common import ClassicalMethod, require
from ._filters import box_mean

__all__ = ["CrossBilateralFusion", "cross_bilateral_pair"]


def cross_bilateral_pair(a: np.ndarray, b: np.ndarray, sigma_s: float, sigma_r: float, ksize: int) -> tuple[np.ndarray, np.ndarray]:
    """Cross (joint) bilateral filter of ``a`` guided by ``b`` and of ``b`` guided by ``a``.

    Each output pixel is a weighted mean over a ksize x ksize window of the filtered image, with
    weights exp(-d^2 / 2 sigma_s^2) * exp(-(g_q - g_p)^2 / 2 sigma_r^2), where g is the *other*
    image. Computed in float32; each range weight is computed once for a shift and its mirror
    (the weight between p and q is symmetric), which halves the exponentials.
    """
    h, w = a.shape
    r = ksize // 2
    pa = np.pad(a.astype(np.float32), r, mode="symmetric")
    pb = np.pad(b.astype(np.float32), r, mode="symmetric")
    inv = np.float32(-1.0 / (2.0 * sigma_r**2))
    num_a = np.zeros((h, w), np.float32)
    num_b = np.zeros((h, w), np.float32)
    den_a = np.zeros((h, w), np.float32)
    den_b = np.zeros((h, w), np.float32)
    ca, cb = pa[r : r + h, r : r + w], pb[r : r + h, r : r + w]
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            if (dy, dx) < (0, 0):
                continue
            gs = np.float32(np.exp(-(dy * dy + dx * dx) / (2.0 * sigma_s**2)))
            if dy == 0 and dx == 0:
                num_a += gs * ca
                num_b += gs * cb
                den_a += gs
                den_b += gs
                continue
            _accumulate(pa, pb, dy, dx, r, h, w, gs, inv, num_a, den_a, num_b, den_b)
    return num_a / den_a, num_b / den_b


def _accumulate(pa, pb, dy, dx, r, h, w, gs, inv, num_a, den_a, num_b, den_b) -> None:
    """Add the contributions of shifts +s and -s (s = (dy, dx)) to both filters."""
    # Pixels p in an extended frame covering both the image and the image shifted by -s.
    ys, xs = r - max(dy, 0), r - max(dx, 0)
    ye, xe = r + h + max(-dy, 0), r + w + max(-dx, 0)
    # p ranges over [ys, ye) x [xs, xe) of the padded arrays; q = p + s.
    a_p, b_p = pa[ys:ye, xs:xe], pb[ys:ye, xs:xe]
    a_q, b_q = pa[ys + dy : ye + dy, xs + dx : xe + dx], pb[ys + dy : ye + dy, xs + dx : xe + dx]
    wa = b_q - b_p  # filter of a is guided by b
    np.multiply(wa, wa, out=wa)
    wa *= inv
    np.exp(wa, out=wa)
    wa *= gs
    wb = a_q - a_p  # filter of b is guided by a
    np.multiply(wb, wb, out=wb)
    wb *= inv
    np.exp(wb, out=wb)
    wb *= gs
    # Shift +s: p is an image pixel, the neighbour q = p + s.
    iy, ix = r - ys, r - xs  # offset of the image inside the extended frame
    sl = (slice(iy, iy + h), slice(ix, ix + w))
    num_a += wa[sl] * a_q[sl]
    den_a += wa[sl]
    num_b += wb[sl] * b_q[sl]
    den_b += wb[sl]
    # Shift -s: the image pixel is q' = p + s, its neighbour is p.
    sl2 = (slice(iy - dy, iy - dy + h), slice(ix - dx, ix - dx + w))
    num_a += wa[sl2] * a_p[sl2]
    den_a += wa[sl2]
    num_b += wb[sl2] * b_p[sl2]
    den_b += wb[sl2]


def detail_strength(d: np.ndarray, size: int) -> np.ndarray:
    """Sum of the eigenvalues of the horizontal and vertical covariance matrices of each window.

    For a size x size window X (rows = observations), trace(cov(X)) is the sum of the unbiased
    variances of its columns, and trace(cov(X^T)) the sum of those of its rows; the sum of a
    covariance matrix's eigenvalues is its trace, so no eigen-decomposition is needed.
    """
    r = size // 2
    n = float(size)
    d = d.astype(np.float64, copy=False)
    d2 = d * d
    col_var = (box_mean(d2, (r, 0)) - box_mean(d, (r, 0)) ** 2) * (n / (n - 1.0))
    row_var = (box_mean(d2, (0, r)) - box_mean(d, (0, r)) ** 2) * (n / (n - 1.0))
    strength = n * (box_mean(col_var, (0, r)) + box_mean(row_var, (r, 0)))
    return np.maximum(strength, 0.0)


@register_method(
    "cbf",
    "Cross bilateral filter fusion: pixel weights from the covariance of CBF detail images",
    "Shreyamsha Kumar, Image fusion based on pixel significance using cross bilateral filter, SIViP 9(5), 2015",
)
@dataclass
class CrossBilateralFusion(ClassicalMethod):
    """CBF.

    Shreyamsha Kumar, B. K., "Image fusion based on pixel significance using cross bilateral
    filter", Signal, Image and Video Processing 9(5):1193-1204, 2015.

    1. Cross bilateral filtering: A_CBF = CBF(A guided by B), B_CBF = CBF(B guided by A);
       detail images D_A = A - A_CBF, D_B = B - B_CBF.
    2. Weights: for a w x w window of D around each pixel, the sum of the eigenvalues of the
       horizontal and of the vertical covariance matrices (detail strength).
    3. F = (w_A A + w_B B) / (w_A + w_B) (the plain average where both weights vanish).

    Args (the paper's defaults): sigma_s = 1.8, sigma_r = 25 on 8-bit intensities (25/255 here,
    on [0, 1]), ksize = 11 (bilateral window), cov_window = 5 (covariance window).
    Borders use half-sample symmetric extension.
    """

    name = "cbf"
    sigma_s: float = 1.8
    sigma_r: float = 25.0 / 255.0
    ksize: int = 11
    cov_window: int = 5

    def validate(self) -> None:
        require(self.sigma_s > 0 and self.sigma_r > 0, "cbf: sigma_s and sigma_r must be > 0")
        for label, v in (("ksize", self.ksize), ("cov_window", self.cov_window)):
            require(int(v) == v and v >= 1 and v % 2 == 1, f"cbf: {label} must be an odd integer >= 1, got {v}")
        require(self.cov_window >= 3, f"cbf: cov_window must be >= 3, got {self.cov_window}")

    def fuse_pair(self, ir: np.ndarray, vi: np.ndarray) -> np.ndarray:
        f_ir, f_vi = cross_bilateral_pair(ir, vi, self.sigma_s, self.sigma_r, int(self.ksize))
        w_ir = detail_strength(ir - f_ir, int(self.cov_window))
        w_vi = detail_strength(vi - f_vi, int(self.cov_window))
        total = w_ir + w_vi
        avg = 0.5 * (ir + vi)
        fused = np.divide(w_ir * ir + w_vi * vi, total, out=avg.copy(), where=total > 1e-20)
        return fused
