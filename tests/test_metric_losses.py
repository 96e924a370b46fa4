"""The differentiable VIF, Qabf and SCD training terms score what the bench's metrics score."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from emma_fusion.errors import EmmaError
from emma_fusion.metrics import compute
from emma_fusion.train.losses import content_loss
from emma_fusion.train.metric_losses import qabf_score, scd_score, vif_score


def _scene(seed: int, h: int = 72, w: int = 88) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Integer grey images (infrared, visible, a fused one) with smooth structure, edges and noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    vi = 90 + 60 * np.sin(xx / 7.0) * np.cos(yy / 11.0) + rng.normal(0, 6, (h, w))
    ir = 40 + 10 * np.cos(yy / 5.0) + rng.normal(0, 4, (h, w))
    ir[20:40, 30:45] += 150  # a warm target
    f = 0.5 * ir + 0.5 * vi + rng.normal(0, 3, (h, w))
    return tuple(np.clip(np.rint(x), 0, 255) for x in (ir, vi, f))


def _t(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(x / 255.0)[None, None]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_terms_equal_the_scored_metrics(seed):
    ir, vi, f = _scene(seed)
    ref = compute(f, ir, vi, ["VIF", "Qabf"])
    vif = float(vif_score(_t(ir), _t(f)) + vif_score(_t(vi), _t(f)))
    assert vif == pytest.approx(ref["VIF"], rel=1e-6)
    # Qabf differs only by the metric's tie rule (equal strengths) and a 1e-10 under the square root
    assert float(qabf_score(_t(ir), _t(vi), _t(f))) == pytest.approx(ref["Qabf"], abs=2e-3)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), gain=st.floats(0.3, 0.9))
def test_vif_of_an_image_with_itself_is_one_and_attenuation_costs(seed, gain):
    ir, vi, _ = _scene(seed)
    x = _t(vi)
    assert float(vif_score(x, x)) == pytest.approx(1.0, abs=1e-9)
    flat = x.mean() + gain * (x - x.mean())  # less contrast: less of the reference's information
    assert float(vif_score(x, flat)) < 1.0


def test_terms_are_batched_and_differentiable():
    scenes = [_scene(s) for s in range(2)]
    ir, vi, f = (torch.cat([_t(sc[k]) for sc in scenes]).float() for k in range(3))
    f = f.requires_grad_()
    assert vif_score(ir, f).shape == (2,) and qabf_score(ir, vi, f).shape == (2,)
    (vif_score(ir, f) + vif_score(vi, f) + qabf_score(ir, vi, f)).sum().backward()
    assert torch.isfinite(f.grad).all() and f.grad.abs().sum() > 0
    # each image's score depends on that image only
    s0 = vif_score(ir[:1], f[:1].detach())
    assert torch.allclose(vif_score(ir, f.detach())[:1], s0)


def test_a_flat_reference_scores_one_as_the_metric_does():
    flat = np.full((64, 64), 128.0)
    noise = np.rint(np.random.default_rng(0).uniform(0, 255, (64, 64)))
    assert compute(noise, flat, noise, ["VIF"])["VIF"] == pytest.approx(2.0)  # 1 (flat) + 1 (itself)
    assert float(vif_score(_t(flat), _t(noise))) == 1.0


def test_metric_terms_in_the_content_loss():
    ir, vi, _ = _scene(3)
    ir, vi = _t(ir).float(), _t(vi).float()
    composite = torch.maximum(ir, vi)
    base = content_loss(composite, ir, vi, 2.0)
    vif = float(vif_score(ir, composite) + vif_score(vi, composite))
    qabf = float(qabf_score(ir, vi, composite))
    with_terms = content_loss(composite, ir, vi, 2.0, vif_weight=0.5, qabf_weight=2.0)
    assert float(with_terms) == pytest.approx(float(base) + 0.5 * (2 - vif) + 2.0 * (1 - qabf), rel=1e-5)
    # a fused image that keeps more of both sources' structure costs less than a washed-out one
    washed = 0.5 + 0.3 * (composite - 0.5)
    assert content_loss(composite, ir, vi, 0.0, vif_weight=1.0, qabf_weight=1.0) < content_loss(
        washed, ir, vi, 0.0, vif_weight=1.0, qabf_weight=1.0)


def test_vif_visible_share_weights_the_two_sources():
    ir, vi, _ = _scene(5)
    ir, vi = _t(ir).float(), _t(vi).float()
    f = 0.7 * vi + 0.3 * ir  # mostly the visible image
    v_ir, v_vi = float(vif_score(ir, f)), float(vif_score(vi, f))
    for share in (0.0, 0.5, 0.8, 1.0):
        loss = float(content_loss(f, ir, vi, 0.0, vif_weight=1.0, vif_visible_share=share))
        expected = float(content_loss(f, ir, vi, 0.0)) + 2 - 2 * ((1 - share) * v_ir + share * v_vi)
        assert loss == pytest.approx(expected, rel=1e-5)
    # 0.5 is the scored sum: the default
    assert float(content_loss(f, ir, vi, 0.0, vif_weight=1.0)) == pytest.approx(
        float(content_loss(f, ir, vi, 0.0, vif_weight=1.0, vif_visible_share=0.5)))
    # a visible-heavy share prefers the visible-heavy image over the infrared-heavy one
    g = 0.3 * vi + 0.7 * ir
    def cost(x, s):
        return float(content_loss(x, ir, vi, 0.0, vif_weight=1.0, vif_visible_share=s))
    assert cost(f, 0.9) < cost(g, 0.9) and cost(g, 0.1) < cost(f, 0.1)
    with pytest.raises(EmmaError, match=r"visible share must be in \[0, 1\]"):
        content_loss(f, ir, vi, vif_weight=1.0, vif_visible_share=1.5)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10_000), stretch=st.floats(1.1, 1.6))
def test_capped_vif_does_not_pay_for_contrast_stretching(seed, stretch):
    _, vi, _ = _scene(seed)
    x = _t(vi)
    stretched = x.mean() + stretch * (x - x.mean())
    assert float(vif_score(x, stretched)) > 1.02  # the metric rewards stretching
    assert float(vif_score(x, stretched, max_gain=1.0)) == pytest.approx(1.0, abs=1e-3)
    weaker = x.mean() + 0.6 * (x - x.mean())  # below the cap nothing changes
    assert float(vif_score(x, weaker, max_gain=1.0)) == pytest.approx(float(vif_score(x, weaker)), rel=1e-9)


def test_terms_ignore_bf16_autocast():
    """Under mixed precision (stage 2 with amp) the terms are still computed in float32."""
    ir, vi, f = (_t(x).float() for x in _scene(4))
    ref = (vif_score(ir, f), qabf_score(ir, vi, f))
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        got = (vif_score(ir, f), qabf_score(ir, vi, f))
    assert all(g.dtype == torch.float32 and torch.equal(g, r) for g, r in zip(got, ref))


def test_vif_needs_41_pixels():
    from emma_fusion.train.metric_losses import VIF_MIN_SIZE

    x = torch.rand(1, 1, VIF_MIN_SIZE, VIF_MIN_SIZE + 7)
    assert torch.isfinite(vif_score(x, x.flip(-1))).all()
    with pytest.raises(ValueError, match="at least 41 x 41 pixels, not 40 x 48"):
        vif_score(torch.rand(1, 1, 40, 48), torch.rand(1, 1, 40, 48))


@pytest.mark.parametrize("seed", [0, 4])
def test_scd_term_equals_the_scored_metric(seed):
    ir, vi, f = _scene(seed)
    assert float(scd_score(_t(ir), _t(vi), _t(f))) == pytest.approx(compute(f, ir, vi, ["SCD"])["SCD"], rel=1e-6)


def test_scd_rewards_the_sum_over_either_source_and_reaches_the_loss():
    ir, vi, _ = _scene(5)
    ir, vi = _t(ir).float(), _t(vi).float()
    total = (ir + vi).requires_grad_()
    assert float(scd_score(ir, vi, total.detach())) == pytest.approx(2.0, abs=1e-5)  # r(i, i) + r(v, v)
    assert float(scd_score(ir, vi, vi)) < 1.0  # f = v: r(0, i) = 0 and r(v - i, v) < 1
    scd_score(ir, vi, total).sum().backward()
    assert torch.isfinite(total.grad).all()
    base = content_loss(vi, ir, vi, 2.0)
    with_term = content_loss(vi, ir, vi, 2.0, scd_weight=3.0)
    assert float(with_term) == pytest.approx(float(base) + 3.0 * (2 - float(scd_score(ir, vi, vi))), rel=1e-5)


def test_scd_weight_of_a_run_reaches_its_content_loss():
    from emma_fusion.nets.ufuser import UFuser
    from emma_fusion.train.config import FusionConfig
    from emma_fusion.train.fusion import _loss_summary, make_loss

    cfg = FusionConfig(ablation="content", content_scd_weight=4.0)
    assert make_loss(cfg, UFuser(), None).content_loss.keywords["scd_weight"] == 4.0
    assert _loss_summary(cfg).endswith("SCD 4")


def test_scd_of_a_flat_source_is_finite_with_finite_gradients():
    ir = torch.full((1, 1, 48, 48), 0.3)  # a flat infrared crop (a saturated or uniform region)
    vi = torch.rand(1, 1, 48, 48, generator=torch.Generator().manual_seed(0))
    f = vi.clone().requires_grad_()
    score = scd_score(ir, vi, f)  # r(f - v, i) = 0 (flat i), r(f - i, v) = 1
    assert float(score.detach()) == pytest.approx(1.0, abs=1e-5)
    score.sum().backward()
    assert torch.isfinite(f.grad).all()
