"""Differentiable versions of two fusion metrics, VIF and Qabf, for use as training terms.

They follow the scored definitions of docs/METRICS.md (``emma_fusion.metrics``) on float images,
so a term in the loss is the number the bench reports, not a proxy of it:

- :func:`vif_score`: pixel-domain multi-scale VIF (``vifp_mscale``) of one source against the
  fused image; the metric VIF is ``vif_score(ir, f) + vif_score(vi, f)``.
- :func:`qabf_score`: Xydeas-Petrovic edge preservation of both sources in the fused image.
- :func:`scd_score`: the sum of the correlations of differences, ``r(f - v, i) + r(f - i, v)``.

Inputs are (N, 1, H, W) float in [0, 1] (scaled to 0..255 inside, the metrics' grey levels);
outputs are (N,) per-image float32 (or float64) scores, computed with autocast off. The metrics' non-differentiable fix-ups (VIF's clamps, Qabf's
``arctan`` at ``Sx = 0``) are kept as ``torch.where`` selections, so gradients are those of the
branch taken. Images must be larger than about 40 x 40 (VIF's fourth scale).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..metrics.core import _VIF_KERNELS

__all__ = ["vif_score", "qabf_score", "scd_score", "VIF_MIN_SIZE"]

_VIF_NOISE = 2.0  # sigma_nsq, in grey levels squared
_EPS = 1e-10
_HALF_PI = math.pi / 2
# The smallest side VIF's four scales fit in: each scale filters (valid) and halves what the last left.
VIF_MIN_SIZE = 41


def _valid_filter(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Separable 'valid' filtering with the 1-D kernel ``g``: (N, C, H, W) -> (N, C, H-n+1, W-n+1)."""
    c = x.shape[1]
    x = F.conv2d(x, g.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
    return F.conv2d(x, g.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)


def _vif_terms(ref: torch.Tensor, dist: torch.Tensor, g: torch.Tensor,
               max_gain: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """VIF's per-image numerator and denominator sums at one scale: (N, 1, H, W) x 2 -> (N,), (N,)."""
    stats = _valid_filter(torch.cat([ref, dist, ref * ref, dist * dist, ref * dist], dim=1), g)
    mu1, mu2, e11, e22, e12 = stats.unbind(dim=1)
    s1 = (e11 - mu1 * mu1).clamp_min(0.0)
    s2 = (e22 - mu2 * mu2).clamp_min(0.0)
    s12 = e12 - mu1 * mu2
    gain = s12 / (s1 + _EPS)
    sv = s2 - gain * s12
    flat1 = s1 < _EPS
    gain = torch.where(flat1, torch.zeros_like(gain), gain)
    sv = torch.where(flat1, s2, sv)
    s1 = torch.where(flat1, torch.zeros_like(s1), s1)
    flat2 = s2 < _EPS
    gain = torch.where(flat2, torch.zeros_like(gain), gain)
    sv = torch.where(flat2, torch.zeros_like(sv), sv)
    negative = gain < 0
    sv = torch.where(negative, s2, sv)
    gain = torch.where(negative, torch.zeros_like(gain), gain)
    sv = sv.clamp_min(_EPS)
    if max_gain is not None:  # the residual sv keeps the true gain; only the credited signal is capped
        gain = gain.clamp_max(max_gain)
    num = torch.log10(1.0 + gain * gain * s1 / (sv + _VIF_NOISE)).sum(dim=(-2, -1))
    den = torch.log10(1.0 + s1 / _VIF_NOISE).sum(dim=(-2, -1))
    return num, den


def vif_score(ref: torch.Tensor, dist: torch.Tensor, max_gain: float | None = None) -> torch.Tensor:
    """Multi-scale pixel-domain VIF of ``dist`` with ``ref`` as reference: (N, 1, H, W) x 2 -> (N,).

    Four scales, Gaussian windows of 17, 9, 5 and 3 taps; numerator and denominator summed over
    the scales before dividing; a reference flat at every scale scores 1 (the metric's rule).
    ``max_gain`` (None: the metric) caps each window's gain ``g`` in the numerator: with 1, a
    contrast-stretched copy of ``ref`` scores 1, as ``ref`` itself does, where the metric gives
    it more than 1 (VIF rewards stretching; a training term need not).
    """
    if min(ref.shape[-2:]) < VIF_MIN_SIZE:
        raise ValueError(f"VIF needs images of at least {VIF_MIN_SIZE} x {VIF_MIN_SIZE} pixels, "
                         f"not {ref.shape[-2]} x {ref.shape[-1]}")
    with _full_precision(ref):
        return _vif(_wide(ref) * 255.0, _wide(dist) * 255.0, max_gain)


def _full_precision(x: torch.Tensor) -> torch.autocast:
    """Autocast off: the variances are differences of large sums, which bf16/fp16 would cancel away."""
    return torch.autocast(device_type=x.device.type, enabled=False)


def _wide(x: torch.Tensor) -> torch.Tensor:
    """``x`` as float32, or float64 if it is already."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def _vif(ref: torch.Tensor, dist: torch.Tensor, max_gain: float | None) -> torch.Tensor:
    """:func:`vif_score` on 0..255 images."""
    num = den = 0.0
    for s, k in enumerate(_VIF_KERNELS, start=1):  # the metric's own windows, so both use the same numbers
        g = torch.from_numpy(k).to(ref)
        if s > 1:
            ref = _valid_filter(ref, g)[..., ::2, ::2]
            dist = _valid_filter(dist, g)[..., ::2, ::2]
        n, d = _vif_terms(ref, dist, g, max_gain)
        num, den = num + n, den + d
    return torch.where(den > 0, num / torch.where(den > 0, den, torch.ones_like(den)), torch.ones_like(den))


def _sobel(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Qabf's Sobel components (Sx, Sy) with zero padding, 'same' size: (N, 1, H, W) -> 2 x (N, 1, H, W).

    torch correlates where the metric convolves: both components change sign, which leaves the
    strength and ``arctan(Sy / Sx)`` unchanged.
    """
    k = x.new_tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
    kernels = torch.stack([k, k.t()]).unsqueeze(1)
    sx, sy = F.conv2d(x, kernels, padding=1).split(1, dim=1)
    return sx, sy


def _strength_angle(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Edge strength ``sqrt(Sx^2 + Sy^2)`` and orientation ``arctan(Sy / Sx)`` (pi/2 where Sx = 0)."""
    sx, sy = _sobel(x)
    zero = sx == 0
    angle = torch.where(zero, torch.full_like(sx, _HALF_PI), torch.atan(sy / torch.where(zero, torch.ones_like(sx), sx)))
    strength = torch.sqrt(sx * sx + sy * sy + _EPS)
    return strength, angle


def _preservation(gx: torch.Tensor, ax: torch.Tensor, gf: torch.Tensor, af: torch.Tensor) -> torch.Tensor:
    """Per-pixel edge preservation Q^{XF} = Q_g * Q_alpha of one source X in F (sigmoids of the metric)."""
    ratio = torch.minimum(gx, gf) / torch.maximum(gx, gf)
    q_g = 0.9994 / (1.0 + torch.exp(-15.0 * (ratio - 0.5)))
    orientation = 1.0 - (ax - af).abs() / _HALF_PI
    q_a = 0.9879 / (1.0 + torch.exp(-22.0 * (orientation - 0.8)))
    return q_g * q_a


def qabf_score(a: torch.Tensor, b: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """Qabf of ``f`` fused from ``a`` and ``b``: (N, 1, H, W) x 3 -> (N,), in [0, 1].

    The sources' edge strengths weight each pixel's preservation; the weights carry no gradient.
    """
    with _full_precision(f):
        (ga, aa), (gb, ab), (gf, af) = (_strength_angle(_wide(x) * 255.0) for x in (a, b, f))
    ga, gb = ga.detach(), gb.detach()
    num = (_preservation(ga, aa, gf, af) * ga + _preservation(gb, ab, gf, af) * gb).sum(dim=(1, 2, 3))
    return num / (ga + gb).sum(dim=(1, 2, 3)).clamp_min(_EPS)


def _correlation(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Pearson correlation of two (N, 1, H, W) images, per image: -> (N,); 0 where either is flat."""
    x = x - x.mean(dim=(1, 2, 3), keepdim=True)
    y = y - y.mean(dim=(1, 2, 3), keepdim=True)
    energy = (x * x).sum(dim=(1, 2, 3)) * (y * y).sum(dim=(1, 2, 3))
    flat = energy <= _EPS
    den = torch.sqrt(energy.clamp_min(_EPS))  # clamped, so a flat image's gradient is 0, not 0 * inf
    num = (x * y).sum(dim=(1, 2, 3))
    return torch.where(flat, torch.zeros_like(num), num / den)


def scd_score(ir: torch.Tensor, vi: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """SCD of ``f`` fused from ``ir`` and ``vi``: (N, 1, H, W) x 3 -> (N,), in [-2, 2].

    ``r(f - vi, ir) + r(f - ir, vi)``: how much of each source the fused image carries beyond the
    other. It is scale-free, so [0, 1] images give the metric's value on 0..255 ones.
    """
    with _full_precision(f):
        i, v, x = (_wide(t) for t in (ir, vi, f))
        return _correlation(x - v, i) + _correlation(x - i, v)
