"""Properties of the equivariance transforms: exact inverses, composition, the authors' stack."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from emma_fusion.errors import EmmaError
from emma_fusion.train.transforms import (
    Compose,
    Flip,
    Identity,
    Rotate,
    Shift,
    TransformSampler,
    apply_stack,
)

sizes = st.integers(min_value=2, max_value=12)


def _image(n: int, h: int, w: int, seed: int) -> torch.Tensor:
    return torch.rand(n, 1, h, w, generator=torch.Generator().manual_seed(seed))


@st.composite
def exact_transforms(draw, h: int, w: int):
    kind = draw(st.sampled_from(["shift", "flip", "rot"]))
    if kind == "shift":
        return Shift(draw(st.integers(-3 * h, 3 * h)), draw(st.integers(-3 * w, 3 * w)))
    if kind == "flip":
        return Flip(draw(st.sampled_from(["h", "v", "hv"])))
    step = 90.0 if h == w else 180.0  # quarter turns of non-square images are interpolated
    return Rotate(step * draw(st.integers(-5, 5)))


@settings(max_examples=60, deadline=None)
@given(h=sizes, w=sizes, seed=st.integers(0, 1000), data=st.data())
def test_inverse_undoes_exact_transforms(h, w, seed, data):
    x = _image(2, h, w, seed)
    t = data.draw(exact_transforms(h, w))
    y = t(x)
    assert y.shape == x.shape
    assert torch.equal(t.inverse()(y), x)
    assert t.exact


@settings(max_examples=40, deadline=None)
@given(n=sizes, seed=st.integers(0, 1000), data=st.data())
def test_composition_applies_right_first_and_inverts(n, seed, data):
    x = _image(1, n, n, seed)  # square, so every quarter turn is a permutation
    a, b, c = (data.draw(exact_transforms(n, n)) for _ in range(3))
    comp = a @ b @ c
    assert isinstance(comp, Compose) and len(comp.transforms) == 3
    assert torch.equal(comp(x), a(b(c(x))))
    assert torch.equal(comp.inverse()(comp(x)), x)
    assert torch.equal((comp.inverse() @ comp)(x), x)


def test_shift_is_circular_roll():
    x = torch.arange(12.0).reshape(1, 1, 3, 4)
    y = Shift(1, -1)(x)
    assert y[0, 0, 1, 0] == x[0, 0, 0, 1]
    assert y[0, 0, 0, 3] == x[0, 0, 2, 0]  # wraps around both axes


def test_flips_mirror_the_right_axes():
    x = torch.arange(6.0).reshape(1, 1, 2, 3)
    assert torch.equal(Flip("h")(x)[0, 0, 0], torch.tensor([2.0, 1.0, 0.0]))
    assert torch.equal(Flip("v")(x)[0, 0, :, 0], torch.tensor([3.0, 0.0]))
    assert torch.equal(Flip("hv")(x), Flip("h")(Flip("v")(x)))
    with pytest.raises(EmmaError):
        Flip("x")


def test_quarter_turn_matches_kornia_convention():
    from kornia.geometry.transform import rotate

    x = _image(1, 7, 7, 3)
    ref = rotate(x, torch.tensor([90.0]))
    assert torch.allclose(Rotate(90.0)(x), ref, atol=1e-5)
    # non-square: a quarter turn cannot be a permutation that keeps the shape -> interpolated, shape kept
    y = Rotate(90.0)(_image(1, 6, 8, 1))
    assert y.shape == (1, 1, 6, 8)


def test_arbitrary_rotation_is_approximate_and_loses_corners():
    x = torch.ones(1, 1, 33, 33)
    t = Rotate(130.0)
    assert not t.exact
    back = t.inverse()(t(x))
    assert back[0, 0, 0, 0] < 0.5  # a corner is lost (zero padding)
    assert torch.allclose(back[..., 12:21, 12:21], x[..., 12:21, 12:21], atol=1e-4)  # the centre survives


def test_sampler_draws_the_authors_stack():
    s = TransformSampler()
    stack = s.full_stack(16, 20, torch.Generator().manual_seed(0))
    assert len(stack) == s.stack_size == 10
    assert isinstance(stack[0], Identity)
    shifts = [t for t in stack if isinstance(t, Shift)]
    assert len(shifts) == 3
    assert len({t.dy for t in shifts}) == 3 and len({t.dx for t in shifts}) == 3  # without replacement
    assert all(1 <= abs(t.dy) <= 15 and 1 <= abs(t.dx) <= 19 for t in shifts)
    assert [t.angle for t in stack if isinstance(t, Rotate)] == [10.0, 130.0, 250.0]
    assert [t.axes for t in stack if isinstance(t, Flip)] == ["h", "v", "hv"]


def test_sampler_is_reproducible_and_per_step_subsamples():
    s = TransformSampler(per_step=2)
    a = s.sample(16, 16, torch.Generator().manual_seed(5))
    b = s.sample(16, 16, torch.Generator().manual_seed(5))
    assert a == b and len(a) == 2
    seen = {type(t) for seed in range(40) for t in s.sample(16, 16, torch.Generator().manual_seed(seed))}
    assert seen == {Identity, Shift, Rotate, Flip}


def test_apply_stack_concatenates_along_batch():
    x = _image(3, 8, 8, 0)
    stack = [Identity(), Flip("h"), Shift(1, 2)]
    y = apply_stack(x, stack)
    assert y.shape == (9, 1, 8, 8)
    assert torch.equal(y[3:6], Flip("h")(x))


@pytest.mark.parametrize("kwargs", [dict(n_rot=4), dict(n_flip=4), dict(per_step=11), dict(n_shift=0, n_rot=0, n_flip=0, include_identity=False)])
def test_sampler_rejects_bad_settings(kwargs):
    with pytest.raises(EmmaError):
        TransformSampler(**kwargs)


def test_too_many_shifts_for_the_size():
    with pytest.raises(EmmaError):
        TransformSampler(n_shift=5).full_stack(3, 3, torch.Generator())
