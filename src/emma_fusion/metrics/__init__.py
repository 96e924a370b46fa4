"""Image-fusion quality metrics, computed exactly as the field does (docs/METRICS.md).

Plain names follow the CDDFuse evaluator (the convention of EMMA's and CDDFuse's tables, quirks
included): EN, SD, SF, AG, MI, SCD, VIF, Qabf, SSIM, MSE, PSNR, CC; plus Nabf, MS_SSIM and the
FMI family (Tang's toolbox / Haghighat). Other published conventions have their own names
(``MI_bits``, ``AG_vifb``, ``SSIM_L255``, ...). Inputs are 2-D arrays in the reading convention:
rounded BT.601 luma of the 8-bit files, values 0..255 (:func:`read_metric_image`).

Example::

    from emma_fusion.metrics import compute, read_metric_image
    values = compute(read_metric_image("f.png"), read_metric_image("ir.png"),
                     read_metric_image("vi.png"), ["EN", "VIF"])
"""

from __future__ import annotations

from .core import bright_flat, compute, local_contrast, qabf_map, sky_mask, warm_target_mask
from .dataset import dataset_mean, pair_folders, score_folder
from .reading import quantize_fused, read_metric_image
from .registry import (
    ALL_METRICS,
    CDDFUSE_METRICS,
    DEFAULT_METRICS,
    HIGHER_IS_BETTER,
    METRIC_INFO,
    METRICS,
    VARIANTS,
    MetricInfo,
    resolve_names,
)

__all__ = [
    "METRICS",
    "CDDFUSE_METRICS",
    "DEFAULT_METRICS",
    "VARIANTS",
    "ALL_METRICS",
    "HIGHER_IS_BETTER",
    "MetricInfo",
    "METRIC_INFO",
    "compute",
    "local_contrast",
    "warm_target_mask",
    "sky_mask",
    "bright_flat",
    "qabf_map",
    "resolve_names",
    "read_metric_image",
    "quantize_fused",
    "dataset_mean",
    "score_folder",
    "pair_folders",
]
