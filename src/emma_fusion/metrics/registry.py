"""Metric names, their meaning and direction, and name resolution (docs/METRICS.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

from ..errors import EmmaError

__all__ = ["MetricInfo", "METRIC_INFO", "METRICS", "VARIANTS", "ALL_METRICS", "CDDFUSE_METRICS",
           "DEFAULT_METRICS", "HIGHER_IS_BETTER", "resolve_names", "check_size"]


@dataclass(frozen=True)
class MetricInfo:
    """What one metric name means: direction, minimum image size, and the convention it belongs to."""

    name: str
    higher_is_better: bool
    min_size: tuple[int, int]  # (min H, min W)
    description: str
    variant_of: str | None = None  # the plain metric this is an alternative convention of


_INFO = [
    MetricInfo("EN", True, (1, 1), "Shannon entropy of F, 256 levels, bits"),
    MetricInfo("SD", True, (1, 1), "population standard deviation of F (0-255 scale)"),
    MetricInfo("SF", True, (2, 2), "spatial frequency of F, row/col means over their own counts"),
    MetricInfo("AG", True, (2, 2), "average gradient of F (numpy gradient), mean over H*W"),
    MetricInfo("MI", True, (1, 1), "MI(F;A) + MI(F;B), natural log (nats), one bin per gray level"),
    MetricInfo("SCD", True, (1, 1), "sum of the correlations of differences r(F-B,A) + r(F-A,B)"),
    MetricInfo("VIF", True, (41, 41), "pixel-domain multi-scale VIF (vifp_mscale), summed over sources"),
    MetricInfo("Qabf", True, (1, 1), "Xydeas-Petrovic edge preservation, Sobel conv2 with zero padding"),
    MetricInfo("SSIM", True, (7, 7), "ssim(F,A) + ssim(F,B), skimage 7x7 box, data_range = 2"),
    MetricInfo("MSE", False, (1, 1), "(mse(A,F) + mse(B,F)) / 2 on the 0-255 scale"),
    MetricInfo("PSNR", True, (1, 1), "10 log10(max(F)^2 / MSE): peak is max of F"),
    MetricInfo("CC", True, (1, 1), "(r(A,F) + r(B,F)) / 2, Pearson correlation"),
    MetricInfo("Nabf", False, (2, 2), "fusion artefacts, Kumar's modified N^AB/F (weight 0.001 below Td)"),
    MetricInfo("MS_SSIM", True, (161, 161), "msssim(A,F) + msssim(B,F), pytorch_msssim, data_range 255"),
    MetricInfo("FMI_pixel", True, (3, 3), "fast-FMI on raw pixels, 3x3 windows"),
    MetricInfo("FMI_dct", True, (3, 3), "fast-FMI on the orthonormal 2-D DCT, 3x3 windows"),
    MetricInfo("FMI_gradient", True, (3, 3), "fast-FMI on the horizontal gradient, 3x3 windows"),
    MetricInfo("FMI_w", True, (3, 3), "fast-FMI on the one-level dmey DWT (PyWavelets, 'symmetric')"),
    MetricInfo("TCR", True, (1, 1), "target contrast retention: IR hot-spot (top 2%) local contrast kept in F"),
    MetricInfo("SKY", True, (1, 1), "sky retention: F / VI brightness where VI is bright and flat and IR locally colder"),
    # alternative conventions (METRICS.md §3)
    MetricInfo("AG_vifb", True, (2, 2), "AG summed as usual but divided by (H-1)(W-1) (Tang, VIFB)", "AG"),
    MetricInfo("MI_bits", True, (1, 1), "MI in bits (Tang's toolbox, 256x256 histogram) = MI / ln 2", "MI"),
    MetricInfo("PSNR_peak255", True, (1, 1), "10 log10(255^2 / MSE)", "PSNR"),
    MetricInfo("SSIM_L255", True, (7, 7), "skimage SSIM with data_range = 255, summed", "SSIM"),
    MetricInfo("SSIM_vifb", True, (11, 11), "11x11 Gaussian (1.5) 'valid' SSIM, L = 255, summed (VIFB)", "SSIM"),
    MetricInfo("MS_SSIM_x255", True, (161, 161), "MS-SSIM of the Python port: data x255, data_range 255",
               "MS_SSIM"),
    MetricInfo("Nabf_wt0", False, (2, 2), "Nabf of the Python port: weight 0 (not 0.001) below Td", "Nabf"),
]

METRIC_INFO: dict[str, MetricInfo] = {m.name: m for m in _INFO}
METRICS: tuple[str, ...] = tuple(m.name for m in _INFO if m.variant_of is None)
VARIANTS: tuple[str, ...] = tuple(m.name for m in _INFO if m.variant_of is not None)
ALL_METRICS: tuple[str, ...] = METRICS + VARIANTS
CDDFUSE_METRICS: tuple[str, ...] = METRICS[:12]
DEFAULT_METRICS: tuple[str, ...] = CDDFUSE_METRICS
HIGHER_IS_BETTER: dict[str, bool] = {m.name: m.higher_is_better for m in _INFO}

_GROUPS = {"all": ALL_METRICS, "primary": METRICS, "cddfuse": CDDFUSE_METRICS,
           "emma": ("EN", "SD", "SF", "AG", "SCD", "VIF"), "variants": VARIANTS}
_BY_LOWER = {n.lower(): n for n in ALL_METRICS}


def resolve_names(names: str | Iterable[str] | None = None) -> list[str]:
    """Canonical metric names from a list or a comma-separated string (case-insensitive).

    ``None`` gives :data:`DEFAULT_METRICS` (the 12 CDDFuse metrics). The group names ``all``,
    ``primary``, ``cddfuse``, ``emma`` (EMMA's Table 1) and ``variants`` expand to their members.
    """
    if names is None:
        return list(DEFAULT_METRICS)
    if isinstance(names, str):
        names = names.split(",")
    out: list[str] = []
    for raw in names:
        key = raw.strip()
        if not key:
            continue
        group = _GROUPS.get(key.lower())
        found = list(group) if group else [_BY_LOWER.get(key.lower())]
        if found == [None]:
            raise EmmaError(f"unknown metric {key!r}; choose from {', '.join(ALL_METRICS)} "
                            f"or a group ({', '.join(_GROUPS)})")
        out.extend(n for n in found if n not in out)
    if not out:
        raise EmmaError("no metric names given")
    return out


def check_size(shape: tuple[int, int], names: Sequence[str]) -> None:
    """Raise :class:`EmmaError` when an (H, W) image is below a requested metric's minimum size."""
    h, w = shape
    for n in names:
        mh, mw = METRIC_INFO[n].min_size
        if h < mh or w < mw:
            raise EmmaError(f"{n} needs images of at least {mh}x{mw} pixels, got {h}x{w}")
