"""The warm-target contrast term (``content_target_weight``): the training form of TCR."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from emma_fusion.metrics import compute
from emma_fusion.train.losses import content_loss, target_term


def _scene(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A bright flat visible sky over dark ground; the infrared has a cold sky and one warm target.
    (1, 1, 96, 128) in [0, 1]."""
    rng = np.random.default_rng(seed)
    vi = np.full((96, 128), 60.0)
    vi[:48] = 220.0
    ir = np.full((96, 128), 120.0)
    ir[:48] = 40.0
    ir[60:80, 50:62] = 240.0
    vi = np.clip(vi + rng.normal(0, 1.0, vi.shape), 0, 255)
    return (torch.tensor(a / 255, dtype=torch.float32)[None, None] for a in (ir, vi))


def test_zero_when_the_target_is_kept_and_positive_when_lost():
    ir, vi = _scene()
    assert target_term(ir, ir).item() == pytest.approx(0.0, abs=1e-7)
    assert target_term(vi, ir).item() > 0.2  # the visible image alone drops the warm target


def test_hinge_more_contrast_costs_nothing():
    ir, _ = _scene()
    stronger = (ir - 0.5) * 1.5 + 0.5  # every local contrast scaled by 1.5
    assert target_term(stronger, ir).item() == pytest.approx(0.0, abs=1e-7)


def test_descent_brightens_the_target_only():
    ir, vi = _scene()
    f = vi.clone().requires_grad_(True)
    target_term(f, ir).backward()
    assert f.grad[0, 0, 62:78, 52:60].mean() < 0  # descent raises the target
    assert f.grad[0, 0, :20].abs().max() == 0  # the sky, far from the target, is left alone
    assert f.grad.max() <= 0  # descent only raises pixels: it never darkens a surround (no halo)


def test_flat_infrared_asks_nothing():
    flat = torch.full((2, 1, 64, 64), 0.4)
    f = torch.rand(2, 1, 64, 64)
    assert target_term(f, flat).item() == 0.0


@settings(max_examples=15, deadline=None)
@given(st.floats(0.2, 0.9))
def test_term_tracks_tcr(gain):
    """Scaling the target's contrast by g < 1 lowers TCR to about g and raises the term."""
    ir, vi = _scene()
    f = ir.clone()
    f[..., 55:85, 45:67] = 120 / 255 + gain * (ir[..., 55:85, 45:67] - 120 / 255)
    as_u8 = lambda t: np.rint(t[0, 0].numpy() * 255)  # noqa: E731
    tcr = compute(as_u8(f), as_u8(ir), as_u8(vi), ["TCR"])["TCR"]
    assert tcr < 1.0
    assert target_term(f, ir).item() > target_term(ir, ir).item()


def test_content_loss_adds_the_target_term_with_its_weight():
    ir, vi = _scene()
    f = torch.maximum(ir, vi) * 0.8
    expected = (content_loss(f, ir, vi) + 5.0 * target_term(f, ir)).item()
    assert content_loss(f, ir, vi, target_weight=5.0).item() == pytest.approx(expected, rel=1e-6)
