"""EMMA's losses: the Sobel l1 loss, Eq. 6, the frozen sensing nets and the Table-2 ablations."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from emma_fusion.errors import EmmaError
from emma_fusion.train.losses import ABLATIONS, EmmaLoss, content_loss, gradient_l1, sobel_l1
from emma_fusion.nets import SensingUNet, UFuser
from emma_fusion.train.transforms import Flip, Identity, Shift


def _rand(*shape, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def test_sobel_l1_is_l1_plus_gradient_l1():
    x, y = _rand(2, 1, 16, 16, seed=1), _rand(2, 1, 16, 16, seed=2)
    assert torch.isclose(sobel_l1(x, y), F.l1_loss(x, y) + gradient_l1(x, y))
    assert sobel_l1(x, x) == 0
    # a constant offset changes l1 but not the gradient term
    assert torch.isclose(gradient_l1(x, x + 0.1), torch.tensor(0.0), atol=1e-6)
    assert torch.isclose(sobel_l1(x, x + 0.1), torch.tensor(0.1), atol=1e-6)


def test_gradient_term_uses_both_normalised_sobel_components():
    # a horizontal ramp 0..1 has d/dx = 1/(W-1) per pixel with the /8-normalised Sobel kernel
    w = 9
    ramp = torch.linspace(0, 1, w).repeat(1, 1, w, 1)
    flat = torch.zeros_like(ramp)
    inner = gradient_l1(ramp[..., 1:-1, 1:-1].contiguous(), flat[..., 1:-1, 1:-1].contiguous())
    # half the entries (x component) are 1/(W-1) away from 0 inside; the y component is 0
    assert inner.item() == pytest.approx(0.5 / (w - 1), rel=0.2)
    assert gradient_l1(ramp.transpose(-1, -2), flat).item() == pytest.approx(gradient_l1(ramp, flat).item(), rel=1e-5)


class _Scale(nn.Module):
    """A tiny stand-in 'sensing net' with a BatchNorm to check eval mode."""

    def __init__(self, s):
        super().__init__()
        self.s = nn.Parameter(torch.tensor(float(s)))
        self.bn = nn.BatchNorm2d(1)

    def forward(self, x):
        return self.bn(x) * self.s


class _Avg(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(0.3))

    def forward(self, i, v):
        return self.w * i + (1 - self.w) * v


def _loss(ablation, **kw):
    torch.manual_seed(0)
    return EmmaLoss(_Avg(), _Scale(1.0), _Scale(1.0), ablation=ablation, **kw)


def test_full_loss_matches_eq6_by_hand():
    loss = _loss("full", a1=0.7, a2=0.2)
    loss.train()
    i, v = _rand(2, 1, 8, 8, seed=3), _rand(2, 1, 8, 8, seed=4)
    stack = [Identity(), Shift(1, 2), Flip("v")]
    out = loss(i, v, stack)
    f = loss.fuser(i, v)
    ai, av = loss.sense_ir, loss.sense_vi
    f_t = torch.cat([t(f) for t in stack])
    expect = sobel_l1(ai(f), i) + 0.7 * sobel_l1(av(f), v) + 0.2 * sobel_l1(f_t, loss.fuser(ai(f_t), av(f_t)))
    assert torch.isclose(out.total, expect, atol=1e-6)
    assert set(out.terms) == {"sense_ir", "sense_vi", "equivariant"}


def test_sensing_nets_are_frozen_but_pass_gradients():
    loss = _loss("full")
    loss.train()  # the training loop calls train(); A must stay in eval mode
    assert not loss.sense_ir.training and not loss.sense_vi.training
    assert all(not p.requires_grad for p in loss.sense_ir.parameters())
    before = loss.sense_ir.bn.running_mean.clone()
    i, v = _rand(2, 1, 8, 8, seed=5), _rand(2, 1, 8, 8, seed=6)
    out = loss(i, v, [Identity(), Flip("h")])
    out.total.backward()
    assert loss.fuser.w.grad is not None and loss.fuser.w.grad.abs() > 0  # flows through A to f
    assert loss.sense_ir.s.grad is None
    assert torch.equal(loss.sense_ir.bn.running_mean, before)  # BatchNorm statistics untouched


@pytest.mark.parametrize("ablation,terms", [
    ("I", {"sense_ir", "sense_vi"}),
    ("II", {"plain_ir", "plain_vi", "equivariant"}),
    ("III", {"plain_ir", "plain_vi"}),
    ("IV", {"plain_ir", "plain_vi"}),
    ("content", {"content"}),
    ("equivariant", {"equivariant", "content"}),  # it needs the anchor
])
def test_ablation_terms(ablation, terms):
    kw = {"content_weight": 1.0} if ablation == "equivariant" else {}
    loss = _loss(ablation, **kw) if EmmaLoss.needs_sensing(ablation) else EmmaLoss(_Avg(), ablation=ablation)
    i, v = _rand(2, 1, 8, 8, seed=7), _rand(2, 1, 8, 8, seed=8)
    out = loss(i, v, [Identity(), Flip("h")])
    assert set(out.terms) == terms
    if ablation == "III":
        f = loss.fuser(i, v)
        assert torch.isclose(out.total, F.l1_loss(f, i) + F.l1_loss(f, v))
    if ablation == "IV":  # the transforms augment the inputs: the stack doubles the batch
        assert out.fused.shape[0] == 4
        ia, va = torch.cat([i, Flip("h")(i)]), torch.cat([v, Flip("h")(v)])
        f = loss.fuser(ia, va)
        assert torch.isclose(out.total, F.l1_loss(f, ia) + F.l1_loss(f, va))


def test_ablation_I_ignores_transforms_and_equals_full_without_equivariance():
    i, v = _rand(2, 1, 8, 8, seed=9), _rand(2, 1, 8, 8, seed=10)
    full = _loss("full")(i, v, [Flip("h")])
    only = _loss("I")(i, v, [Flip("h")])
    assert torch.isclose(only.total, full.total - full.terms["equivariant"], atol=1e-6)


def test_equivariant_ablation_is_eq6s_equivariant_term_plus_the_anchor():
    i, v = _rand(2, 1, 8, 8, seed=13), _rand(2, 1, 8, 8, seed=14)
    full = _loss("full")(i, v, [Flip("h")])
    out = _loss("equivariant", content_weight=2.0)(i, v, [Flip("h")])
    assert set(out.terms) == {"equivariant", "content"}
    assert torch.isclose(out.terms["equivariant"], full.terms["equivariant"], atol=1e-6)
    assert torch.isclose(out.total, full.terms["equivariant"] + 2.0 * content_loss(out.fused, i, v), atol=1e-5)


def test_bad_ablation_and_missing_nets():
    with pytest.raises(EmmaError):
        EmmaLoss(_Avg(), ablation="V")
    with pytest.raises(EmmaError):
        EmmaLoss(_Avg(), ablation="full")  # needs A_i, A_v
    with pytest.raises(EmmaError):
        _loss("full")(_rand(1, 1, 8, 8), _rand(1, 1, 8, 8), [])  # needs a stack
    with pytest.raises(EmmaError, match="needs a content anchor"):
        _loss("equivariant")
    for ablation in ABLATIONS:  # every listed ablation builds and runs; sensing nets exactly where needed
        kw = {"content_weight": 1.0} if ablation == "equivariant" else {}
        loss = _loss(ablation, **kw) if EmmaLoss.needs_sensing(ablation) else EmmaLoss(_Avg(), ablation=ablation)
        out = loss(_rand(1, 1, 8, 8), _rand(1, 1, 8, 8), [Identity()])
        assert torch.isfinite(out.total) and out.terms
        if EmmaLoss.needs_sensing(ablation):
            with pytest.raises(EmmaError, match="needs both pseudo-sensing nets"):
                EmmaLoss(_Avg(), ablation=ablation, **kw)


def test_real_networks_grads_are_finite_and_reach_only_the_fuser():
    torch.manual_seed(0)
    loss = EmmaLoss(UFuser(), SensingUNet(4), SensingUNet(4))
    i, v = _rand(1, 1, 16, 16, seed=11), _rand(1, 1, 16, 16, seed=12)
    out = loss(i, v, [Identity(), Shift(3, -5)])
    out.total.backward()
    grads = [p.grad for p in loss.fuser.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert all(p.grad is None for p in loss.sense_ir.parameters())
