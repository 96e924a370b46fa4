"""Two-scale image fusion (TIF), Bavirisetti & Dhuli, Infrared Physics & Technology 2016."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..base import register_method
from ._common import ClassicalMethod, require
from ._filters import box_mean, median3

__all__ = ["TwoScaleFusion"]


@register_method(
    "tif",
    "Two-scale image fusion: mean-filter base layers averaged, detail layers weighted by saliency",
    "Bavirisetti & Dhuli, Two-scale image fusion of visible and infrared images using saliency detection, IPT 76, 2016",
)
@dataclass
class TwoScaleFusion(ClassicalMethod):
    """TIF.

    Bavirisetti, D. P. & Dhuli, R., "Two-scale image fusion of visible and infrared images using
    saliency detection", Infrared Physics & Technology 76:52-64, 2016.

    1. Base layer B_n = mean filter of I_n (35 x 35); detail D_n = I_n - B_n.
    2. Saliency xi_n = (B_n - median3x3(I_n))^2 (the mean-filtered minus the median-filtered image).
    3. Detail weights w_n = xi_n / (xi_ir + xi_vi) (0.5 each where both saliencies are zero).
    4. F = (B_ir + B_vi) / 2 + w_ir D_ir + w_vi D_vi.

    Args (the paper's defaults): mean_size = 35, median_size = 3 (only 3 is supported).
    Borders use half-sample symmetric extension (the authors' code wraps around circularly,
    which mixes opposite image borders).
    """

    name = "tif"
    mean_size: int = 35
    median_size: int = 3

    def validate(self) -> None:
        require(int(self.mean_size) == self.mean_size and self.mean_size >= 1 and self.mean_size % 2 == 1,
                f"tif: mean_size must be an odd integer >= 1, got {self.mean_size}")
        require(self.median_size == 3, f"tif: only median_size 3 is supported, got {self.median_size}")

    def fuse_pair(self, ir: np.ndarray, vi: np.ndarray) -> np.ndarray:
        r = int(self.mean_size) // 2
        b_ir, b_vi = box_mean(ir, r), box_mean(vi, r)
        s_ir = (b_ir - median3(ir)) ** 2
        s_vi = (b_vi - median3(vi)) ** 2
        total = s_ir + s_vi
        w_ir = np.divide(s_ir, total, out=np.full_like(total, 0.5), where=total > 1e-20)
        return 0.5 * (b_ir + b_vi) + w_ir * (ir - b_ir) + (1.0 - w_ir) * (vi - b_vi)
