"""Padding, tiling and blending around a network."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from emma_fusion.inference.runner import NetworkRunner, blend_window, pad_to_multiple, tile_starts
from emma_fusion.nets import UFuser


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 40), st.integers(1, 40), st.sampled_from([8, 16]))
def test_pad_to_multiple_shapes_and_content(h, w, m):
    x = torch.rand(1, 1, h, w)
    y = pad_to_multiple(x, m, minimum=16)
    assert y.shape[-2] % m == 0 and y.shape[-1] % m == 0
    assert y.shape[-2] >= max(h, 16) and y.shape[-1] >= max(w, 16)
    assert torch.equal(y[..., :h, :w], x)


def test_pad_reflects_when_possible():
    x = torch.arange(10.0).reshape(1, 1, 1, 10).expand(1, 1, 10, 10).contiguous()
    y = pad_to_multiple(x, 16)
    assert torch.equal(y[0, 0, 0, 10:], torch.tensor([8.0, 7, 6, 5, 4, 3]))


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 5000), st.sampled_from([256, 512, 1024]), st.sampled_from([32, 64, 128]))
def test_tiles_cover_with_overlap(size, tile, overlap):
    starts = tile_starts(size, tile, overlap)
    assert starts[0] == 0 and min(size, starts[-1] + tile) == size
    for a, b in zip(starts, starts[1:]):
        assert b - a <= tile - overlap
        assert b > a


def test_blend_window_ignores_tile_borders():
    w = blend_window(128, 128, 32, True, True, True, True)[0, 0]
    assert torch.all(w[:8] == 0) and torch.all(w[:, -8:] == 0)
    assert w[64, 64] == 1 and torch.all(w >= 0)
    assert torch.all(blend_window(16, 16, 32, False, False, False, False) == 1)


class Blur:
    """A tiny translation-equivariant stand-in network (local average of the mean of both inputs)."""

    def __call__(self, ir, vi):
        x = (ir + vi) / 2
        return torch.nn.functional.avg_pool2d(torch.nn.functional.pad(x, (1, 1, 1, 1), mode="reflect"), 3, 1)


@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (17, 9), (64, 200)])
def test_runner_keeps_size(shape):
    ir, vi = torch.rand(1, 1, *shape), torch.rand(1, 1, *shape)
    out = NetworkRunner(Blur(), tile=0)(ir, vi)
    assert out.shape == ir.shape


def test_tiling_is_exact_for_local_network():
    ir, vi = torch.rand(1, 1, 300, 410), torch.rand(1, 1, 300, 410)
    whole = NetworkRunner(Blur(), tile=0)(ir, vi)
    tiled = NetworkRunner(Blur(), tile=128, overlap=32)(ir, vi)
    torch.testing.assert_close(tiled, whole, atol=1e-6, rtol=0)


def test_ufuser_any_size_and_deterministic():
    net = UFuser().eval()
    runner = NetworkRunner(net)
    for h, w in [(1, 1), (7, 30), (33, 17)]:
        ir, vi = torch.rand(1, 1, h, w), torch.rand(1, 1, h, w)
        a, b = runner(ir, vi), runner(ir, vi)
        assert a.shape == (1, 1, h, w)
        assert torch.equal(a, b)
        assert 0 <= a.min() and a.max() <= 1
