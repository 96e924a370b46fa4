"""Classical fusion methods: sizes, determinism, identity, sharpness vs averaging, and the filters."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from conftest import shared_path
from hypothesis import given, settings
from hypothesis import strategies as st

from emma_fusion.errors import EmmaError
from emma_fusion.io import read_image, to_gray
from emma_fusion.methods import classical as C
from emma_fusion.methods.base import get_method, list_methods
from emma_fusion.methods.classical import _filters as F
from emma_fusion.methods.classical.cbf import cross_bilateral_pair, detail_strength
from emma_fusion.methods.classical.multiscale import collapse, laplacian_pyramid, _generating_kernel

METHODS = C.CLASSICAL_METHODS
MULTISCALE = [m for m in METHODS if m != "average"]


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))[None, None]


def _load(dataset: str, stem: str, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    root = shared_path("data", dataset, "test")
    out = []
    for side in ("ir", "vi"):
        path = next(p for p in (root / side).iterdir() if p.stem == stem)
        g = to_gray(read_image(path))
        if scale != 1.0:
            g = cv2.resize(g, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        out.append(np.clip(g, 0, 1).astype(np.float32))
    return out[0], out[1]


def _sf(x: np.ndarray) -> float:
    """Spatial frequency: sqrt(mean horizontal difference^2 + mean vertical difference^2)."""
    x = x.astype(np.float64)
    return float(np.sqrt(np.mean(np.diff(x, axis=1) ** 2) + np.mean(np.diff(x, axis=0) ** 2)))


def _ag(x: np.ndarray) -> float:
    """Average gradient: mean of sqrt((gx^2 + gy^2) / 2)."""
    gy, gx = np.gradient(x.astype(np.float64))
    return float(np.mean(np.sqrt((gx**2 + gy**2) / 2)))


# --- registry ---------------------------------------------------------------------------------


def test_registry_lists_every_method_with_reference():
    infos = {i.name: i for i in list_methods()}
    for name in METHODS:
        assert name in infos, name
        assert infos[name].description
    for name in MULTISCALE:
        assert any(ch.isdigit() for ch in infos[name].reference), f"{name} reference lacks a year"


@pytest.mark.parametrize("name", METHODS)
def test_get_method_builds_named_method_and_accepts_device(name):
    m = get_method(name.upper(), device="cpu")
    assert m.name == name
    assert isinstance(m, C.ClassicalMethod)


def test_aliases_and_options():
    assert isinstance(get_method("laplacian"), C.LaplacianPyramid)
    assert get_method("gff", r1=20).r1 == 20
    with pytest.raises(EmmaError, match="r1"):
        get_method("gff", r1=-1)
    with pytest.raises(EmmaError, match="wavelet"):
        get_method("dwt", wavelet="nope")


# --- shapes and errors ------------------------------------------------------------------------


@pytest.mark.parametrize("dataset,stem", [("RoadScene", "FLIR_00977"), ("TNO", "24")])
def test_output_keeps_odd_real_sizes(dataset, stem):
    ir, vi = _load(dataset, stem)
    assert ir.shape[0] % 2 == 1 or ir.shape[1] % 2 == 1
    for name in METHODS:
        out = get_method(name)(_t(ir), _t(vi))
        assert out.shape == (1, 1, *ir.shape), name
        assert out.dtype == torch.float32
        assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


@pytest.mark.parametrize("name", METHODS)
def test_batch_equals_items(name):
    ir, vi = _load("TNO", "19", 0.25)
    ir2, vi2 = np.flipud(vi).copy(), np.flipud(ir).copy()
    m = get_method(name)
    batch = m(torch.cat([_t(ir), _t(ir2)]), torch.cat([_t(vi), _t(vi2)]))
    assert torch.equal(batch[0:1], m(_t(ir), _t(vi)))
    assert torch.equal(batch[1:2], m(_t(ir2), _t(vi2)))


def test_rejects_bad_inputs():
    m = get_method("gff")
    with pytest.raises(EmmaError, match="shapes differ"):
        m(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 9))
    with pytest.raises(EmmaError, match=r"\(N, 1, H, W\)"):
        m(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8))
    with pytest.raises(EmmaError, match="empty"):
        m(torch.rand(1, 1, 0, 8), torch.rand(1, 1, 0, 8))


# --- determinism and identity -----------------------------------------------------------------


@pytest.mark.parametrize("name", METHODS)
def test_deterministic(name):
    ir, vi = _load("RoadScene", "FLIR_04593", 0.5)
    a = get_method(name)(_t(ir), _t(vi))
    b = get_method(name)(_t(ir.copy()), _t(vi.copy()))
    assert torch.equal(a, b)


@pytest.mark.parametrize("name", METHODS)
def test_identical_inputs_give_that_image(name):
    _, vi = _load("TNO", "10", 0.5)
    out = get_method(name)(_t(vi), _t(vi))[0, 0].numpy()
    assert np.abs(out - vi).max() <= 1 / 255


@settings(max_examples=15, deadline=None)
@given(h=st.integers(1, 24), w=st.integers(1, 24), seed=st.integers(0, 2**16))
def test_identity_and_size_any_shape(h, w, seed):
    rng = np.random.default_rng(seed)
    x, y = rng.random((h, w), dtype=np.float32), rng.random((h, w), dtype=np.float32)
    for name in METHODS:
        m = get_method(name)
        assert m(_t(x), _t(y)).shape == (1, 1, h, w), name
        assert np.abs(m(_t(x), _t(x))[0, 0].numpy() - x).max() <= 1 / 255, name


# --- relationships on real images ---------------------------------------------------------------


@pytest.mark.parametrize("stem", ["01", "05", "15", "24"])
def test_multiscale_sharper_than_average_on_tno(stem):
    ir, vi = _load("TNO", stem, 0.5)
    avg = get_method("average")(_t(ir), _t(vi))[0, 0].numpy()
    sf0, ag0 = _sf(avg), _ag(avg)
    for name in MULTISCALE:
        f = get_method(name)(_t(ir), _t(vi))[0, 0].numpy()
        assert _sf(f) > 1.1 * sf0, f"{name}: SF {_sf(f):.4f} vs average {sf0:.4f}"
        assert _ag(f) > 1.1 * ag0, f"{name}: AG {_ag(f):.4f} vs average {ag0:.4f}"


def test_fused_lies_between_sources_for_average():
    ir, vi = _load("TNO", "19", 0.5)
    out = get_method("average")(_t(ir), _t(vi))[0, 0].numpy()
    np.testing.assert_allclose(out, (ir + vi) / 2, atol=1e-6)


# --- building blocks against brute-force references --------------------------------------------


@pytest.mark.parametrize("mode", ["symmetric", "edge", "reflect", "wrap"])
@pytest.mark.parametrize("shape,r", [((1, 1), 3), ((3, 5), 4), ((6, 7), 2), ((9, 4), 0)])
def test_box_mean_matches_padded_reference(mode, shape, r):
    x = np.random.default_rng(1).random(shape)
    p = np.pad(x, r, mode=mode)
    ref = np.array([[p[i : i + 2 * r + 1, j : j + 2 * r + 1].mean() for j in range(shape[1])] for i in range(shape[0])])
    np.testing.assert_allclose(F.box_mean(x, r, mode), ref, atol=1e-12)


def test_guided_filter_matches_definition():
    rng = np.random.default_rng(2)
    g, p, r, eps = rng.random((7, 9)), rng.random((7, 9)), 2, 0.01
    gp, pp = np.pad(g, r, mode="symmetric"), np.pad(p, r, mode="symmetric")
    a = np.zeros_like(g)
    b = np.zeros_like(g)
    for i in range(7):
        for j in range(9):
            wg, wp = gp[i : i + 2 * r + 1, j : j + 2 * r + 1], pp[i : i + 2 * r + 1, j : j + 2 * r + 1]
            a[i, j] = (np.mean(wg * wp) - wg.mean() * wp.mean()) / (wg.var() + eps)
            b[i, j] = wp.mean() - a[i, j] * wg.mean()
    ref = F.box_mean(a, r) * g + F.box_mean(b, r)
    np.testing.assert_allclose(F.guided_filter(g, p, r, eps), ref, atol=1e-10)
    np.testing.assert_allclose(F.guided_filter(g, np.ones_like(g), 45, 0.3), 1.0, atol=1e-12)


def test_cross_bilateral_matches_brute_force():
    rng = np.random.default_rng(3)
    a, b = rng.random((6, 8)), rng.random((6, 8))
    s, sr, k = 1.8, 0.1, 5
    r = k // 2
    pa, pb = np.pad(a, r, mode="symmetric"), np.pad(b, r, mode="symmetric")
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    gs = np.exp(-(yy**2 + xx**2) / (2 * s**2))
    ref = np.zeros_like(a)
    for i in range(6):
        for j in range(8):
            wb = pb[i : i + k, j : j + k]
            wt = gs * np.exp(-((wb - b[i, j]) ** 2) / (2 * sr**2))
            ref[i, j] = np.sum(wt * pa[i : i + k, j : j + k]) / wt.sum()
    out_a, _ = cross_bilateral_pair(a, b, s, sr, k)
    np.testing.assert_allclose(out_a, ref, atol=1e-5)


def test_detail_strength_is_sum_of_covariance_eigenvalues():
    d = np.random.default_rng(4).standard_normal((7, 8))
    n = 5
    p = np.pad(d, n // 2, mode="symmetric")
    got = detail_strength(d, n)
    for i, j in [(0, 0), (3, 4), (6, 7)]:
        x = p[i : i + n, j : j + n]
        ref = np.linalg.eigvalsh(np.cov(x, rowvar=False)).sum() + np.linalg.eigvalsh(np.cov(x.T, rowvar=False)).sum()
        assert got[i, j] == pytest.approx(ref, rel=1e-9)


@pytest.mark.parametrize("shape", [(1, 1), (2, 3), (5, 5), (37, 50)])
def test_laplacian_pyramid_reconstructs_exactly(shape):
    x = np.random.default_rng(5).random(shape)
    k = _generating_kernel(0.4)
    for depth in range(0, 4):
        if depth and min(shape) < 2**depth:
            continue
        np.testing.assert_allclose(collapse(laplacian_pyramid(x, depth, k), k), x, atol=1e-12)
