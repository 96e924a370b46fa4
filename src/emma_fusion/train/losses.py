"""EMMA's training losses: the Sobel-gradient l1 loss and Eq. 6 with the paper's ablations.

All tensors are (N, 1, H, W) float in [0, 1] unless stated otherwise.

Eq. 6 (``ablation="full"``)::

    L(A_i(f), i) + a1 L(A_v(f), v) + a2 L(f_t, F(A_i(f_t), A_v(f_t))),   f = F(i, v),  f_t = T f

with ``L(x, y) = l1(x, y) + l1(grad x, grad y)``, ``grad`` the normalised 3x3 Sobel gradient
(both components). The ablations of the paper's Table 2:

- ``"I"``: without the equivariant term;
- ``"II"``: the plain loss ``l1(f, i) + a1 l1(f, v)`` in place of the two sensing terms;
- ``"III"``: II without the equivariant term;
- ``"IV"``: III with the same transforms used as data augmentation on the inputs.

Besides the paper's loss, ``ablation="content"`` trains the U-Fuser with the cheap content loss
:func:`content_loss` alone (no sensing nets, one fuser pass per sample): the warm start of the
shipped model. With ``content_weight > 0`` the content loss is added to any other ablation as an
anchor term (``terms["content"]``). ``ablation="equivariant"`` keeps only Eq. 6's equivariant term
(``a2 L(f_t, F(A_i(f_t), A_v(f_t)))``): EMMA's prior on its own, meant beside that anchor (alone,
a constant f minimises it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from kornia.filters import spatial_gradient
from torch import nn

from ..errors import EmmaError
from ..metrics.core import SKY_WARM_MARGIN
from .metric_losses import qabf_score, scd_score, vif_score
from .transforms import Transform, apply_stack

__all__ = ["ABLATIONS", "ABLATION_TERMS", "AUGMENTED_ABLATIONS", "sobel_l1", "gradient_l1", "abs_sobel", "signed_max_gradient", "polarity_checked", "content_loss", "sky_mask_torch", "sky_term", "near_sky", "floor_term", "target_term", "check_content_options", "EmmaLoss", "LossOutput"]

#: Each ablation is the list of its terms (weights: a1 on the visible terms, a2 on the equivariant one).
ABLATION_TERMS: dict[str, tuple[str, ...]] = {
    "full": ("sense_ir", "sense_vi", "equivariant"),
    "I": ("sense_ir", "sense_vi"),
    "II": ("plain_ir", "plain_vi", "equivariant"),
    "III": ("plain_ir", "plain_vi"),
    "IV": ("plain_ir", "plain_vi"),
    "content": ("content",),
    "equivariant": ("equivariant",),
}
#: Ablations that apply the transform stack to the inputs as data augmentation.
AUGMENTED_ABLATIONS = frozenset({"IV"})
ABLATIONS = tuple(ABLATION_TERMS)
_SENSING_TERMS = {"sense_ir", "sense_vi", "equivariant"}


def gradient_l1(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean |grad x - grad y| over both normalised Sobel components (kornia, replicate border)."""
    gx = spatial_gradient(x, mode="sobel", order=1, normalized=True)
    gy = spatial_gradient(y, mode="sobel", order=1, normalized=True)
    return F.l1_loss(gx, gy)


def sobel_l1(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``L(x, y) = l1(x, y) + l1(grad x, grad y)`` (scalar)."""
    return F.l1_loss(x, y) + gradient_l1(x, y)


def abs_sobel(x: torch.Tensor) -> torch.Tensor:
    """``|Sobel_x x| + |Sobel_y x|`` (3x3, unnormalised, replicate border): (N, 1, H, W) -> same shape."""
    g = spatial_gradient(x, mode="sobel", order=1, normalized=False)
    return g.abs().sum(dim=2)


def _strongest(ir: torch.Tensor, vi: torch.Tensor, ir_margin: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(signed Sobel gradient of the stronger source, mask where it is the infrared one)."""
    g_ir = spatial_gradient(ir, mode="sobel", order=1, normalized=False)
    g_vi = spatial_gradient(vi, mode="sobel", order=1, normalized=False)
    take_ir = g_ir.abs().sum(dim=2, keepdim=True) >= g_vi.abs().sum(dim=2, keepdim=True) + ir_margin
    return torch.where(take_ir, g_ir, g_vi), take_ir


def signed_max_gradient(ir: torch.Tensor, vi: torch.Tensor, ir_margin: float = 0.0) -> torch.Tensor:
    """Per pixel, the Sobel gradient (both components, signs kept) of the source whose edge is stronger.

    ``(N, 1, H, W)`` x 2 -> ``(N, 1, 2, H, W)`` (unnormalised 3x3 Sobel, replicate border); the source
    is chosen by ``G = |Sobel_x| + |Sobel_y|``: the infrared one where ``G_ir >= G_vi + ir_margin``.
    """
    return _strongest(ir, vi, ir_margin)[0]


def polarity_checked(
    g: torch.Tensor, composite: torch.Tensor, where: torch.Tensor | None = None, strength: float = 1.0
) -> torch.Tensor:
    """Move each Sobel component of ``g`` whose sign disagrees with ``composite``'s edge towards the composite's.

    ``g``: (N, 1, 2, H, W) signed Sobel target; ``composite``: (N, 1, H, W), the image whose edge
    polarity decides (the max composite). A zero component of the composite agrees with any sign.
    ``where`` ((N, 1, 1, H, W) bool, optional) limits the check to those pixels. A disagreeing
    component becomes ``(1 - strength) * g + strength * g_composite`` (``strength`` in [0, 1]; 1:
    the composite's edge).
    """
    g_c = spatial_gradient(composite, mode="sobel", order=1, normalized=False)
    wrong = g * g_c < 0
    if where is not None:
        wrong = wrong & where
    return torch.where(wrong, torch.lerp(g, g_c, strength), g)


def _block_mean(x: torch.Tensor, size: int) -> torch.Tensor:
    """Means over ``size`` x ``size`` blocks (a partial last block included): (N, C, H, W) -> (N, C, ceil(H/size), ceil(W/size))."""
    return F.avg_pool2d(x, size, stride=size, ceil_mode=True, count_include_pad=False)


def _box_mean(x: torch.Tensor, size: int) -> torch.Tensor:
    """Mean over a ``size`` x ``size`` window (odd size, reflect border): (N, C, H, W) -> same shape."""
    r = size // 2
    return F.avg_pool2d(F.pad(x, (r, r, r, r), mode="reflect"), size, stride=1)


def _local_contrast(x: torch.Tensor) -> torch.Tensor:
    """TCR's local contrast ``x - boxmean31(x)`` (:func:`emma_fusion.metrics.local_contrast`) on (N, C, H, W)."""
    return x - _box_mean(x, 31)


SKY_FLAT_TOLERANCE = 3.0
"""Grey levels an infrared pixel's smoothed value may lie above its 31 x 31 mean and still count as sky."""


def _bright_flat(vi: torch.Tensor, bright: float) -> torch.Tensor:
    """Bright, flat visible ground: ``vi >= bright / 255`` and local std over 15 x 15 below 8 / 255 (bool, same shape)."""
    mean = _box_mean(vi, 15)
    var = _box_mean(vi * vi, 15) - mean * mean
    return (vi >= bright / 255.0) & (var < (8.0 / 255.0) ** 2)


def sky_mask_torch(ir: torch.Tensor, vi: torch.Tensor, band: int = 15, smooth: int = 0,
                   bright: float = 170.0) -> torch.Tensor:
    """The SKY metric's mask (:func:`emma_fusion.metrics.sky_mask`) on tensors in [0, 1].

    ``vi >= 170/255``, local std of ``vi`` over 15 x 15 below ``8/255``, ``ir`` below its own
    31 x 31 mean, and no pixel within 15 px more than ``SKY_WARM_MARGIN / 255`` above its own
    31 x 31 mean: a bright, flat visible background in front of which the infrared is locally
    colder (a clear sky), never a warm target or the background right around one. ``band``: how
    far (px) that exclusion reaches (15: the metric's; 0: the warm pixels only). ``smooth`` > 1:
    the "locally colder" test compares the infrared image's ``smooth`` x ``smooth`` mean (not the
    pixel) with its 31 x 31 mean plus ``SKY_FLAT_TOLERANCE`` (3 grey levels), so sensor noise and
    streaks do not punch holes in a flat sky; ``bright``:
    the visible threshold in grey levels (170: the metric's). ir, vi: (N, 1, H, W), H, W > 15;
    returns a float (N, 1, H, W) mask of 0s and 1s.
    """
    ci = _local_contrast(ir)
    warm = (ci > SKY_WARM_MARGIN / 255.0).to(vi.dtype)
    near_warm = (F.max_pool2d(warm, 2 * band + 1, stride=1, padding=band) if band > 0 else warm) > 0
    cold = (_box_mean(ir, smooth) - _box_mean(ir, 31) < SKY_FLAT_TOLERANCE / 255.0) if smooth > 1 else ci < 0
    m = _bright_flat(vi, bright) & cold & ~near_warm
    return m.to(vi.dtype)


def sky_term(f: torch.Tensor, ir: torch.Tensor, vi: torch.Tensor, band: int = 15, smooth: int = 0,
             bright: float = 170.0, mean: int = 0) -> torch.Tensor:
    """Keep the visible image where :func:`sky_mask_torch` holds (scalar; 0 where the mask is empty)::

        sum(|f - v| m) / sum(m) + sum((|d_x f - d_x v| + |d_y f - d_y v|) m) / sum(m)

    with unnormalised Sobel derivatives: the sky stays as bright and as smooth as the visible
    image, without the infrared camera's cold tone and streaks. ``band``, ``smooth``, ``bright``: as
    in :func:`sky_mask_torch`. ``mean`` k > 1 (odd) compares only the k x k local means of f and v,
    ``sum(|B_k f - B_k v| m) / sum(m)``: the sky's brightness is held to the visible image's and
    its fine texture (edges finer than k px) is left to the other terms. f, ir, vi: (N, 1, H, W) in [0, 1].
    """
    m = sky_mask_torch(ir, vi, band, smooth, bright).detach()
    area = m.sum()
    if area < 1:
        return f.sum() * 0.0
    if mean > 1:
        return ((_box_mean(f, mean) - _box_mean(vi, mean)).abs() * m).sum() / area
    g = (spatial_gradient(f, mode="sobel", order=1, normalized=False)
         - spatial_gradient(vi, mode="sobel", order=1, normalized=False)).abs().sum(dim=2)
    return ((f - vi).abs() * m).sum() / area + (g * m).sum() / area


def near_sky(ir: torch.Tensor, vi: torch.Tensor, band: int, reach: int, smooth: int = 0,
             bright: float = 170.0) -> torch.Tensor:
    """Pixels within ``reach`` px of :func:`sky_mask_torch`'s mask (bool (N, 1, H, W); ir, vi: (N, 1, H, W) in [0, 1])."""
    m = sky_mask_torch(ir, vi, band, smooth, bright).detach()
    return F.max_pool2d(m, 2 * reach + 1, stride=1, padding=reach) > 0


def floor_term(f: torch.Tensor, vi: torch.Tensor, bright: float = 170.0, ir: torch.Tensor | None = None,
               warm: float = 0.0, mean: int = 0) -> torch.Tensor:
    """Never darker than a bright, flat visible background (scalar; 0 where there is none)::

        sum(relu(v - f) m) / sum(m),   m = v >= bright / 255 and local std of v over 15 x 15 < 8 / 255

    A one-sided sky term without the infrared tests: wherever the visible image is bright and flat
    (a daytime sky, right up to the trees and roofs in front of it, where :func:`sky_term`'s band
    leaves off), f may be brighter than the visible image (a warm target) but not darker (the
    infrared image's cold sky, a dark rim drawn to make an edge). ``warm`` > 0 (grey levels, with
    ``ir``): pixels within 3 px of one whose infrared 7 x 7 mean lies more than ``warm`` above its
    31 x 31 mean are left out, so a warm target in front of bright smoke, fog or a pale wall may stay darker than it.
    ``mean`` k > 1 (odd) compares the k x k local means of f and v instead of the pixels.
    f, vi, ir: (N, 1, H, W) in [0, 1].
    """
    m = _bright_flat(vi, bright)
    if warm > 0 and ir is not None:
        hot = (_box_mean(ir, 7) - _box_mean(ir, 31) > warm / 255.0).to(vi.dtype)
        m = m & ~(F.max_pool2d(hot, 7, stride=1, padding=3) > 0)
    m = m.to(f.dtype).detach()
    area = m.sum()
    if area < 1:
        return f.sum() * 0.0
    if mean > 1:
        f, vi = _box_mean(f, mean), _box_mean(vi, mean)
    return (F.relu(vi - f) * m).sum() / area


def target_term(f: torch.Tensor, ir: torch.Tensor, floor: float = 8.0 / 255.0) -> torch.Tensor:
    """Keep the infrared image's warm targets at least as salient in f (scalar; 0 where none)::

        sum(relu(c_i - c_f) m) / sum(m),   c_i = i - boxmean31(i),  c_f = f - [boxmean31(f)],
        m = c_i >= its 98th percentile (per sample) and c_i > floor

    The training form of TCR (:meth:`emma_fusion.metrics.core.Triplet.TCR`): at the pixels where the
    infrared image is most warmer than its 31 x 31 surroundings, f's local contrast should not fall
    below the infrared image's. A hinge: contrast above the infrared's costs nothing. ``floor``
    keeps crops without a warm target (a flat patch) from asking for noise. f's surround mean
    ``boxmean31(f)`` is held fixed (detached): the term raises the target, never darkens what is
    around it (measured: with the mean in the graph, 300 steps at weight 20 drew dark halos
    round poles, palms and roofs against bright skies). f, ir: (N, 1, H, W) in [0, 1], H, W > 15.
    """
    ci = _local_contrast(ir)
    cf = f - _box_mean(f, 31).detach()
    q = torch.quantile(ci.detach().flatten(1).float(), 0.98, dim=1).to(ci.dtype).view(-1, 1, 1, 1)
    m = ((ci >= q) & (ci > floor)).to(f.dtype).detach()
    area = m.sum()
    if area < 1:
        return f.sum() * 0.0
    return (F.relu(ci.detach() - cf) * m).sum() / area


def check_content_options(signed: bool = False, polarity: float = 0.0, vif_visible_share: float = 0.5,
                          sky_band: int = 15, sky_polarity: int = 0, sky_smooth: int = 0,
                          sky_bright: float = 170.0, sky_mean: int = 0) -> None:
    """Raise :class:`EmmaError` (one line) on content-loss settings :func:`content_loss` cannot use."""
    if polarity and not signed:
        raise EmmaError("content polarity needs the signed texture term (content_signed = true)")
    if not 0.0 <= polarity <= 1.0:
        raise EmmaError(f"content polarity must be in [0, 1], got {polarity}")
    if not 0.0 <= vif_visible_share <= 1.0:
        raise EmmaError(f"content VIF visible share must be in [0, 1], got {vif_visible_share}")
    if sky_band < 0:
        raise EmmaError(f"content sky band must be >= 0 px, got {sky_band}")
    if sky_polarity < 0:
        raise EmmaError(f"content sky polarity reach must be >= 0 px, got {sky_polarity}")
    for name, side in (("smooth", sky_smooth), ("mean", sky_mean)):
        if side < 0 or (side > 1 and side % 2 == 0):
            raise EmmaError(f"content sky {name} must be 0, 1 or an odd window side, got {side}")
    if not 0.0 <= sky_bright <= 255.0:
        raise EmmaError(f"content sky bright must be a grey level in [0, 255], got {sky_bright}")
    if sky_polarity and not signed:
        raise EmmaError("content sky polarity needs the signed texture term (content_signed = true)")


def content_loss(
    f: torch.Tensor, ir: torch.Tensor, vi: torch.Tensor, grad_weight: float = 10.0, signed: bool = False,
    grad_gain: float = 1.0, ir_margin: float = 0.0, base_weight: float = 0.0, base_size: int = 16,
    polarity: float = 0.0, vif_weight: float = 0.0, qabf_weight: float = 0.0, vif_max_gain: float = 0.0,
    vif_visible_share: float = 0.5, sky_weight: float = 0.0, target_weight: float = 0.0,
    sky_band: int = 15, sky_polarity: int = 0, sky_smooth: int = 0, sky_bright: float = 170.0,
    floor_weight: float = 0.0, floor_warm: float = 0.0, scd_weight: float = 0.0, sky_mean: int = 0,
) -> torch.Tensor:
    """Max-intensity and max-gradient content loss (scalar)::

        l1(f, max(i, v)) + grad_weight * l1(G f, max(G i, G v)),   G = |Sobel_x| + |Sobel_y|

    It asks f to keep the brighter source (warm targets at night) and the stronger edge of either
    source; one fuser pass per sample, no sensing nets. With ``signed=True`` the texture term
    compares the Sobel components themselves with :func:`signed_max_gradient` (the stronger
    source's gradient, signs kept), so an edge of the wrong polarity (a warm target turned dark)
    costs as much as a missing one; ``|Sobel|`` alone is blind to it. ``grad_gain`` scales the
    texture target (above 1: edges and detail stronger than in either source). With ``ir_margin``
    the infrared edge is the target only where it beats the visible one by that much (in ``G``
    units; a unit step gives 4): weak infrared texture, such as a thermal sensor's stripes in a
    flat sky, is not asked for where the visible image is flat.

    ``polarity`` in [0, 1] (signed term only) moves an *infrared* component of that target whose
    sign disagrees with the max composite's edge that far towards the composite's edge
    (:func:`polarity_checked`; 1: the composite's edge, 0: no check): at a skyline, where the
    infrared image has cold sky over warm trees and the visible image bright sky over dark trees,
    the stronger infrared edge would otherwise pull the visible sky dark. Visible edges are never
    replaced: at night the composite is the brighter infrared image, whose flat surfaces would
    otherwise erase the visible texture on them.

    ``base_weight`` adds ``base_weight * l1(P f, P max(i, v))`` with ``P`` the mean over
    ``base_size`` x ``base_size`` blocks: it holds the image's coarse brightness layout to the max
    composite's. Without it the texture term, whose target (edges taken from either source) is not
    the gradient of any one image, can shift whole regions (a visible sky turned grey by the
    infrared image's edges), which lowers SD after min-max scaling (measured effect: small,
    docs/TRAINING.md).

    ``vif_weight`` and ``qabf_weight`` add the scored metrics themselves
    (:mod:`.metric_losses`): ``vif_weight * (2 - VIF) + qabf_weight * (1 - Qabf)``, batch means,
    with VIF summed over both sources as the bench scores it. Both reward f for keeping each
    source's local structure, which the max composite alone does not. ``vif_max_gain > 0`` caps
    the VIF term's per-window gain (:func:`.metric_losses.vif_score`): 1 stops it from paying for
    contrast stretching, which raises the metric without keeping more of either source.
    ``vif_visible_share`` s in [0, 1] weights the two sources' VIF in that term as
    ``2 * ((1 - s) * VIF(i, f) + s * VIF(v, f))``: 0.5 (default) is the scored sum; above 0.5 asks
    for more of the visible image's structure (the half that low-contrast visible scenes lose).

    ``sky_weight`` adds ``sky_weight * sky_term(f, ir, vi)`` (:func:`sky_term`): where the visible
    image is bright and flat and the infrared locally colder (a daytime sky), f keeps the visible
    image's brightness and smoothness instead of the max-gradient target's infrared streaks;
    ``sky_band`` (px) is how far around a warm pixel that term stays off (15: the SKY metric's band).
    ``target_weight`` adds ``target_weight * target_term(f, ir)`` (:func:`target_term`): the warm
    targets' local contrast (what TCR scores) kept at least at the infrared image's.

    ``sky_polarity`` R > 0 (px; signed term only): within R px of :func:`sky_mask_torch`'s mask, an
    infrared component of the texture target whose sign disagrees with the *visible* image's edge
    takes the visible edge (:func:`near_sky`): where warm roofs and trees meet a bright sky the
    skyline keeps the visible image's polarity, so the fused sky does not darken towards them.
    ``sky_smooth``, ``sky_bright``: the sky mask's noise smoothing and visible threshold
    (:func:`sky_mask_torch`'s ``smooth`` and ``bright``; 0 and 170: the SKY metric's mask).
    ``floor_weight`` adds ``floor_weight * floor_term(f, vi, sky_bright)`` (:func:`floor_term`): f
    no darker than the visible image wherever that is bright and flat; ``floor_warm`` > 0 (grey
    levels) leaves out where the infrared is locally warmer than that (:func:`floor_term`'s ``warm``).
    ``sky_mean`` k > 1 (odd): the sky and floor terms compare k x k local means only, so they hold
    the sky's brightness and leave its fine texture to the texture, VIF and Qabf terms.
    ``scd_weight`` adds ``scd_weight * (2 - SCD)`` (:func:`.metric_losses.scd_score`, batch mean):
    more of each source beyond the other, which the max composite (one source per pixel) lacks.
    """
    check_content_options(signed, polarity, vif_visible_share, sky_band, sky_polarity, sky_smooth, sky_bright, sky_mean)
    target = torch.maximum(ir, vi)
    intensity = F.l1_loss(f, target)
    if base_weight > 0:
        intensity = intensity + base_weight * F.l1_loss(_block_mean(f, base_size), _block_mean(target, base_size))
    g_t, take_ir = _strongest(ir, vi, ir_margin)
    if signed:
        g_f = spatial_gradient(f, mode="sobel", order=1, normalized=False)
        if polarity > 0:
            g_t = polarity_checked(g_t, target, take_ir, polarity)
        if sky_polarity > 0:
            near = near_sky(ir, vi, sky_band, sky_polarity, sky_smooth, sky_bright)
            g_t = polarity_checked(g_t, vi, take_ir & near.unsqueeze(2))
        # sum over the two components, so the scale matches the unsigned term's G = |gx| + |gy|
        texture = (g_f - grad_gain * g_t).abs().sum(dim=2).mean()
    else:
        texture = F.l1_loss(abs_sobel(f), grad_gain * g_t.abs().sum(dim=2))
    loss = intensity + grad_weight * texture
    if vif_weight > 0:
        cap = vif_max_gain or None
        vif = 2.0 * ((1.0 - vif_visible_share) * vif_score(ir, f, cap) + vif_visible_share * vif_score(vi, f, cap))
        loss = loss + vif_weight * (2.0 - vif.mean())
    if qabf_weight > 0:
        loss = loss + qabf_weight * (1.0 - qabf_score(ir, vi, f).mean())
    if sky_weight > 0:
        loss = loss + sky_weight * sky_term(f, ir, vi, sky_band, sky_smooth, sky_bright, sky_mean)
    if target_weight > 0:
        loss = loss + target_weight * target_term(f, ir)
    if floor_weight > 0:
        loss = loss + floor_weight * floor_term(f, vi, sky_bright, ir, floor_warm, sky_mean)
    if scd_weight > 0:
        loss = loss + scd_weight * (2.0 - scd_score(ir, vi, f).mean())
    return loss


@dataclass
class LossOutput:
    """The total loss, its named terms (detached 0-d tensors, for logging) and the fused batch."""

    total: torch.Tensor
    terms: dict[str, torch.Tensor]
    fused: torch.Tensor


class EmmaLoss(nn.Module):
    """Eq. 6 of the paper and its Table-2 ablations, as one module.

    Args:
        fuser: the U-Fuser ``F(ir, vi) -> f`` (trained).
        sense_ir, sense_vi: ``A_i``, ``A_v`` (frozen here: eval mode, ``requires_grad=False``;
            gradients still flow through them to ``f``). Not needed for ablations III and IV.
        a1, a2: weights of the visible sensing term and of the equivariant term.
        ablation: one of :data:`ABLATIONS`.
        plain_grad: use ``L`` (l1 + gradient) instead of plain l1 in the ablation II-IV terms.
        content_weight: weight of :func:`content_loss` added as an anchor term (0: none; the
            ``"content"`` ablation uses the content loss alone, with weight 1 when this is 0).
        content: the content loss, ``(f, ir, vi) -> scalar`` (default: :func:`content_loss` with its
            defaults); bind other settings with ``functools.partial(content_loss, signed=True, ...)``.

    ``forward(ir, vi, transforms)`` returns a :class:`LossOutput`; ``transforms`` is the step's
    transform stack (ignored by ablations I and III).
    """

    def __init__(
        self,
        fuser: nn.Module,
        sense_ir: nn.Module | None = None,
        sense_vi: nn.Module | None = None,
        *,
        a1: float = 1.0,
        a2: float = 0.1,
        ablation: str = "full",
        plain_grad: bool = False,
        content_weight: float = 0.0,
        content: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        super().__init__()
        if ablation not in ABLATIONS:
            raise EmmaError(f"unknown ablation {ablation!r}; choose one of {', '.join(ABLATIONS)}")
        content_weight = float(content_weight) or (1.0 if ablation == "content" else 0.0)
        if ablation == "equivariant" and content_weight <= 0:
            raise EmmaError("ablation 'equivariant' needs a content anchor (content_weight > 0): "
                            "alone, a constant image minimises it")
        self.term_names = ABLATION_TERMS[ablation] + (("content",) if content_weight > 0 and ablation != "content" else ())
        if self.needs_sensing(ablation) and (sense_ir is None or sense_vi is None):
            raise EmmaError(f"ablation {ablation!r} needs both pseudo-sensing nets A_i and A_v")
        self.fuser = fuser
        self.sense_ir = _freeze(sense_ir) if self.needs_sensing(ablation) else None
        self.sense_vi = _freeze(sense_vi) if self.needs_sensing(ablation) else None
        self.a1, self.a2, self.ablation = float(a1), float(a2), ablation
        self.content_weight = content_weight
        self.content_loss = content or content_loss
        self.plain: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = sobel_l1 if plain_grad else F.l1_loss
        self.weights = {"sense_ir": 1.0, "sense_vi": self.a1, "plain_ir": 1.0, "plain_vi": self.a1,
                        "equivariant": self.a2, "content": self.content_weight}

    @staticmethod
    def needs_sensing(ablation: str) -> bool:
        """Whether ``ablation`` uses A_i and A_v (a sensing or an equivariant term)."""
        return bool(set(ABLATION_TERMS.get(ablation, ())) & _SENSING_TERMS)

    @property
    def uses_transforms(self) -> bool:
        """Whether the loss takes a transform stack (equivariant term or augmentation)."""
        return "equivariant" in self.term_names or self.ablation in AUGMENTED_ABLATIONS

    def train(self, mode: bool = True) -> "EmmaLoss":
        super().train(mode)
        for a in (self.sense_ir, self.sense_vi):
            if a is not None:
                a.eval()  # BatchNorm keeps its running statistics
        return self

    # -- the terms: each maps (ir, vi, f, transforms) to an unweighted scalar ------------------------
    def _sense_ir(self, ir, vi, f, transforms):
        return sobel_l1(self.sense_ir(f), ir)

    def _sense_vi(self, ir, vi, f, transforms):
        return sobel_l1(self.sense_vi(f), vi)

    def _plain_ir(self, ir, vi, f, transforms):
        return self.plain(f, ir)

    def _plain_vi(self, ir, vi, f, transforms):
        return self.plain(f, vi)

    def _content(self, ir, vi, f, transforms):
        return self.content_loss(f, ir, vi)

    def _equivariant(self, ir, vi, f, transforms):
        if not transforms:
            raise EmmaError(f"ablation {self.ablation!r} needs a transform stack")
        f_t = apply_stack(f, transforms)
        return sobel_l1(f_t, self.fuser(self.sense_ir(f_t), self.sense_vi(f_t)))

    def forward(self, ir: torch.Tensor, vi: torch.Tensor, transforms: Sequence[Transform] = ()) -> LossOutput:
        if self.ablation in AUGMENTED_ABLATIONS:
            if not transforms:
                raise EmmaError(f"ablation {self.ablation} needs a transform stack (used as data augmentation)")
            ir, vi = apply_stack(ir, transforms), apply_stack(vi, transforms)
        f = self.fuser(ir, vi)
        terms = {name: self.weights[name] * getattr(self, f"_{name}")(ir, vi, f, transforms) for name in self.term_names}
        total = torch.stack(list(terms.values())).sum()
        return LossOutput(total=total, terms={k: v.detach() for k, v in terms.items()}, fused=f)


def _freeze(net: nn.Module) -> nn.Module:
    net.eval()
    net.requires_grad_(False)
    return net
