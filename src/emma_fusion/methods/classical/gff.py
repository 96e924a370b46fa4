"""Guided filtering based fusion (GFF), Li, Kang & Hu, IEEE TIP 2013."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..base import register_method
from ._common import ClassicalMethod, require
from ._filters import box_mean, correlate, gaussian_blur, guided_filter

__all__ = ["GuidedFilterFusion"]

_LAPLACIAN = np.array([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])


@register_method(
    "gff",
    "Guided filtering fusion: two-scale decomposition, saliency weight maps refined by guided filters",
    "Li, Kang & Hu, Image fusion with guided filtering, IEEE TIP 22(7), 2013",
)
@dataclass
class GuidedFilterFusion(ClassicalMethod):
    """GFF.

    Li, S., Kang, X. & Hu, J., "Image fusion with guided filtering", IEEE Trans. Image Processing
    22(7):2864-2875, 2013.

    1. Two-scale decomposition: base B_n = I_n * Z (31 x 31 mean filter), detail D_n = I_n - B_n.
    2. Saliency S_n = |I_n * L| * g (3 x 3 Laplacian, then an 11 x 11 Gaussian with sigma 5).
    3. Binary maps P_n = 1 where S_n is the largest (ties go to the infrared image).
    4. Weights W^B_n = G_{r1,eps1}(P_n, I_n), W^D_n = G_{r2,eps2}(P_n, I_n) (guided filters guided
       by the source), clipped to [0, 1] and normalised to sum to one.
    5. F = sum_n W^B_n B_n + W^D_n D_n.

    Args (the paper's defaults): r1 = 45, eps1 = 0.3, r2 = 7, eps2 = 1e-6 (guided filter radii
    and regularisation, on [0, 1] intensities); base_size = 31 (mean filter side); saliency
    Gaussian radius 5 and sigma 5. Borders: replicate, as the authors' code.
    """

    name = "gff"
    r1: int = 45
    eps1: float = 0.3
    r2: int = 7
    eps2: float = 1e-6
    base_size: int = 31
    saliency_radius: int = 5
    saliency_sigma: float = 5.0

    def validate(self) -> None:
        for label, v in (("r1", self.r1), ("r2", self.r2), ("saliency_radius", self.saliency_radius)):
            require(int(v) == v and v >= 0, f"gff: {label} must be an integer >= 0, got {v}")
        require(self.eps1 > 0 and self.eps2 > 0, "gff: eps1 and eps2 must be > 0")
        require(int(self.base_size) == self.base_size and self.base_size >= 1 and self.base_size % 2 == 1,
                f"gff: base_size must be an odd integer >= 1, got {self.base_size}")
        require(self.saliency_sigma > 0, "gff: saliency_sigma must be > 0")

    def _saliency(self, x: np.ndarray) -> np.ndarray:
        h = np.abs(correlate(x, _LAPLACIAN, mode="edge"))
        return gaussian_blur(h, self.saliency_sigma, int(self.saliency_radius), mode="edge")

    def _weights(self, ir: np.ndarray, vi: np.ndarray, p_ir: np.ndarray, r: int, eps: float) -> tuple[np.ndarray, np.ndarray]:
        w_ir = np.clip(guided_filter(ir, p_ir, r, eps, mode="edge"), 0.0, 1.0) + 1e-12
        w_vi = np.clip(guided_filter(vi, 1.0 - p_ir, r, eps, mode="edge"), 0.0, 1.0) + 1e-12
        total = w_ir + w_vi
        return w_ir / total, w_vi / total

    def fuse_pair(self, ir: np.ndarray, vi: np.ndarray) -> np.ndarray:
        p_ir = (self._saliency(ir) >= self._saliency(vi)).astype(np.float64)
        wb_ir, wb_vi = self._weights(ir, vi, p_ir, int(self.r1), self.eps1)
        wd_ir, wd_vi = self._weights(ir, vi, p_ir, int(self.r2), self.eps2)
        rb = int(self.base_size) // 2
        b_ir, b_vi = box_mean(ir, rb, mode="edge"), box_mean(vi, rb, mode="edge")
        return wb_ir * b_ir + wb_vi * b_vi + wd_ir * (ir - b_ir) + wd_vi * (vi - b_vi)
