"""Colour and black handling around every method: hue and saturation of the colour source kept,
gray inputs untouched, pixels black in both sources kept at 0 (issue 26, medical pairs)."""

from __future__ import annotations

import colorsys

import numpy as np
import pytest

import emma_fusion
from emma_fusion.core import keep_black
from emma_fusion.io import colorize, read_image, rgb_to_ycbcr, to_gray, ycbcr_to_rgb


def _hsv(rgb: np.ndarray) -> np.ndarray:
    return np.array([colorsys.rgb_to_hsv(*px) for px in rgb.reshape(-1, 3)])


def _hue_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Circular hue difference in degrees (colorsys hues are in [0, 1))."""
    return np.abs((a - b + 0.5) % 1.0 - 0.5) * 360


def test_colorize_gray_source_gives_the_luma_unchanged():
    rng = np.random.default_rng(0)
    src = np.repeat(rng.random((16, 16, 1), dtype=np.float32), 3, axis=2)
    luma = rng.random((16, 16), dtype=np.float32)
    out = colorize(luma, rgb_to_ycbcr(src))
    for c in range(3):
        np.testing.assert_allclose(out[..., c], luma, atol=1e-6)


def test_colorize_same_luma_is_the_source():
    rng = np.random.default_rng(1)
    src = rng.random((16, 16, 3), dtype=np.float32)
    ycc = rgb_to_ycbcr(src)
    np.testing.assert_allclose(colorize(ycc[..., 0], ycc), src, atol=1e-5)


def test_colorize_keeps_hue_exactly_and_luma_within_slack():
    rng = np.random.default_rng(2)
    src = rng.random((40, 40, 3), dtype=np.float32)
    luma = rng.random((40, 40), dtype=np.float32)
    out = colorize(luma, rgb_to_ycbcr(src))
    h0, h1 = _hsv(src), _hsv(out)
    coloured = (h0[:, 1] > 0.2) & (h1[:, 1] > 0.05)
    assert coloured.sum() > 500
    assert _hue_diff(h0[coloured, 0], h1[coloured, 0]).max() < 0.5
    assert np.abs(to_gray(out) - luma).max() <= 0.1 + 1e-5
    # the old merge (same Cb/Cr, per-channel clipping) shifts hue on the same data
    old = _hsv(ycbcr_to_rgb(np.dstack([luma, rgb_to_ycbcr(src)[..., 1:]])))
    both = coloured & (old[:, 1] > 0.05)
    assert _hue_diff(h0[both, 0], old[both, 0]).max() > 5


def test_colorize_keeps_saturation_of_a_dark_colour_under_brighter_luma():
    purple = np.array([[[0.36, 0.13, 0.47]]], np.float32)  # SPECT's dark purple ring
    ycc = rgb_to_ycbcr(purple)
    brighter = ycc[..., 0] * 1.5
    s_src = _hsv(purple)[0, 1]
    assert abs(_hsv(colorize(brighter, ycc))[0, 1] - s_src) < 0.02
    # the old merge made it a pastel (lilac): saturation down by more than 0.1
    old = ycbcr_to_rgb(np.dstack([brighter, ycc[..., 1:]]))
    assert s_src - _hsv(old)[0, 1] > 0.1


def test_colorize_does_not_amplify_chroma_beyond_the_cap():
    dim_teal = np.array([[[0.08, 0.16, 0.15]]], np.float32)
    ycc = rgb_to_ycbcr(dim_teal)
    out = rgb_to_ycbcr(colorize(np.full((1, 1), 0.8, np.float32), ycc))
    chroma = np.hypot(*(ycc[0, 0, 1:] - 0.5))
    assert np.hypot(*(out[0, 0, 1:] - 0.5)) <= 2 * chroma + 1e-6


def test_keep_black_removes_the_black_level_and_pins_zero():
    ir = np.zeros((32, 32), np.float32)
    vi = np.zeros((32, 32), np.float32)
    ir[8:24, 8:24] = 0.5
    vi[12:20, 4:28] = 0.7
    fused = 0.011 + 0.9 * np.maximum(ir, vi)  # a sigmoid that never reaches 0
    out = keep_black(fused, ir, vi)
    black = (ir == 0) & (vi == 0)
    assert np.all(out[black] == 0)
    np.testing.assert_allclose(out[~black], (fused[~black] - 0.011) / (1 - 0.011), atol=1e-6)
    # no common black: unchanged
    np.testing.assert_array_equal(keep_black(fused, ir + 0.1, vi), fused)


@pytest.mark.parametrize("method", ["average", "gff"])
def test_black_background_stays_black_for_classical_methods(method):
    rng = np.random.default_rng(3)
    mri = np.zeros((48, 48), np.float32)
    mri[10:38, 10:38] = rng.random((28, 28), dtype=np.float32) * 0.8 + 0.1
    pet = np.zeros((48, 48, 3), np.float32)
    pet[16:32, 16:32] = (0.36, 0.13, 0.47)
    out = emma_fusion.fuse(pet, mri, method=method)
    black = (mri == 0) & (pet.max(axis=2) == 0)
    assert out.ndim == 3 and np.all(out[black] == 0)


def test_network_on_real_medical_pairs(shared):
    """emma-default on Harvard MRI-CT/PET/SPECT: background exactly 0, PET/SPECT hue and saturation kept."""
    harvard = shared("data", "Harvard")
    for kind, stem in (("MRI_CT", "11"), ("MRI_PET", "11"), ("MRI_SPECT", "11")):
        other = read_image(harvard / kind / "other" / f"{stem}.png")
        mri = read_image(harvard / kind / "mri" / f"{stem}.png")
        out = emma_fusion.fuse(other, mri, threads=1)
        out8 = np.round(out * 255)
        black = (other.reshape(*other.shape[:2], -1).max(axis=2) == 0) & (mri.reshape(*mri.shape[:2], -1).max(axis=2) == 0)
        assert black.mean() > 0.3
        assert out8[black].max() == 0, kind
        if kind == "MRI_CT":
            continue
        h0, h1 = _hsv(other), _hsv(out8 / 255)
        coloured = (h0[:, 1] > 0.25) & (h0[:, 2] > 0.1)
        dh = _hue_diff(h0[coloured, 0], h1[coloured, 0])
        # before issue 26 (same Cb/Cr, per-channel clipping): p95 6.8 / 3.6 degrees, saturation -0.15 / -0.04
        assert np.percentile(dh, 95) < 3.0, kind
        assert (h1[coloured, 1] - h0[coloured, 1]).mean() > -0.1, kind
