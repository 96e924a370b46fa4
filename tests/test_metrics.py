"""emma_fusion.metrics: API, reading/quantisation conventions, robustness, fast == straightforward."""

from __future__ import annotations

import math
import sys
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from emma_fusion.errors import EmmaError
from emma_fusion.metrics import (
    ALL_METRICS,
    CDDFUSE_METRICS,
    HIGHER_IS_BETTER,
    METRICS,
    VARIANTS,
    compute,
    dataset_mean,
    quantize_fused,
    read_metric_image,
    resolve_names,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from metrics_reference import reference_metrics  # noqa: E402

FAST_ALL = [n for n in ALL_METRICS if not n.startswith(("FMI", "MS_SSIM"))]


def _scene(rng: np.random.Generator, h: int, w: int, flat_frac: float = 0.0) -> np.ndarray:
    """Integer 0..255 test image: smooth structure + noise, optionally with a flat block."""
    yy, xx = np.mgrid[0:h, 0:w]
    base = 120 + 60 * np.sin(xx / rng.uniform(3, 15) + rng.uniform(0, 6)) * np.cos(yy / rng.uniform(3, 15))
    img = np.clip(np.round(base + rng.normal(0, rng.uniform(1, 20), (h, w))), 0, 255)
    if flat_frac:
        img[: int(h * flat_frac), : int(w * flat_frac)] = rng.integers(0, 256)
    return img


def _triplet(seed: int, h: int = 48, w: int = 56, flat_frac: float = 0.0):
    rng = np.random.default_rng(seed)
    a, b = _scene(rng, h, w, flat_frac), _scene(rng, h, w, flat_frac)
    f = np.floor((a + b + 1) / 2)
    return f, a, b


# ---------------------------------------------------------------- names and API
def test_names_and_directions():
    assert CDDFUSE_METRICS == ("EN", "SD", "SF", "AG", "MI", "SCD", "VIF", "Qabf", "SSIM", "MSE", "PSNR", "CC")
    assert set(METRICS) == set(CDDFUSE_METRICS) | {"Nabf", "MS_SSIM", "FMI_pixel", "FMI_dct", "FMI_gradient", "FMI_w",
                                                   "TCR", "SKY"}
    assert not set(METRICS) & set(VARIANTS)
    assert [n for n, up in HIGHER_IS_BETTER.items() if not up] == ["MSE", "Nabf", "Nabf_wt0"]


def test_resolve_names():
    assert resolve_names(None) == list(CDDFUSE_METRICS)
    assert resolve_names("en, vif,QABF") == ["EN", "VIF", "Qabf"]
    assert resolve_names(["emma", "EN", "MI"]) == ["EN", "SD", "SF", "AG", "SCD", "VIF", "MI"]
    assert resolve_names("all") == list(ALL_METRICS)
    with pytest.raises(EmmaError, match="unknown metric 'VIFF'"):
        resolve_names("EN,VIFF")
    with pytest.raises(EmmaError):
        resolve_names(" , ")


def test_compute_returns_requested_order_and_floats():
    f, a, b = _triplet(0)
    out = compute(f, a, b)
    assert list(out) == list(CDDFUSE_METRICS)
    assert all(type(v) is float and math.isfinite(v) for v in out.values())
    out = compute(f.astype(np.uint8), a.astype(np.float32), b, ["PSNR", "EN"])
    assert list(out) == ["PSNR", "EN"]


@pytest.mark.parametrize(
    "bad, match",
    [
        (lambda f: f + 0.5, "integer gray levels"),
        (lambda f: f + 300, r"\[0, 255\]"),
        (lambda f: np.where(f > 100, np.nan, f), "NaN"),
        (lambda f: f[..., None], "2-D"),
        (lambda f: f[:-1], "shapes differ"),
    ],
)
def test_invalid_inputs_raise_clear_errors(bad, match):
    f, a, b = _triplet(1)
    with pytest.raises(EmmaError, match=match):
        compute(bad(f), a, b, ["EN"])


def test_minimum_sizes():
    f, a, b = _triplet(2, 30, 40)
    assert math.isfinite(compute(f, a, b, ["EN", "Qabf", "SSIM"])["SSIM"])
    with pytest.raises(EmmaError, match="VIF needs images of at least 41x41 pixels, got 30x40"):
        compute(f, a, b, ["EN", "VIF"])
    f, a, b = _triplet(2, 120, 200)
    with pytest.raises(EmmaError, match="MS_SSIM needs images of at least 161x161"):
        compute(f, a, b, ["MS_SSIM"])
    f, a, b = _triplet(2, 41, 41)
    assert math.isfinite(compute(f, a, b, ["VIF"])["VIF"])


# ---------------------------------------------------------------- fast path == straightforward definitions
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), h=st.integers(41, 70), w=st.integers(41, 70),
       flat=st.sampled_from([0.0, 0.5]), rule=st.sampled_from(["avg", "max", "noisy"]))
def test_fast_equals_straightforward(seed, h, w, flat, rule):
    rng = np.random.default_rng(seed)
    a, b = _scene(rng, h, w, flat), _scene(rng, h, w, flat)
    f = {"avg": np.floor((a + b + 1) / 2), "max": np.maximum(a, b),
         "noisy": np.clip(np.round(0.6 * a + 0.4 * b + rng.normal(0, 3, (h, w))), 0, 255)}[rule]
    fast = compute(f, a, b)
    ref = reference_metrics(f, a, b)
    for name in CDDFUSE_METRICS:
        assert fast[name] == pytest.approx(ref[name], rel=1e-9, abs=1e-12), name


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_two_source_metrics_are_symmetric(seed):
    """METRICS.md §1: every two-source metric but TCR and SKY (infrared targets, visible sky) is symmetric in A and B."""
    f, a, b = _triplet(seed, 44, 47)
    symmetric = [n for n in FAST_ALL if n not in ("TCR", "SKY")]
    ab, ba = compute(f, a, b, symmetric), compute(f, b, a, symmetric)
    for name in symmetric:
        assert ab[name] == pytest.approx(ba[name], rel=1e-12, abs=1e-12), name


def test_fused_only_metrics_ignore_the_sources():
    f, a, b = _triplet(4)
    names = ["EN", "SD", "SF", "AG", "AG_vifb"]
    assert compute(f, a, b, names) == compute(f, 255 - a, np.zeros_like(b), names)


# ---------------------------------------------------------------- robustness (METRICS.md §6)
def _quiet_compute(*args):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning from numpy
        return compute(*args, FAST_ALL)


def test_flat_fused_image():
    _, a, b = _triplet(5)
    out = _quiet_compute(np.full_like(a, 77.0), a, b)
    assert out["EN"] == 0.0 and math.copysign(1.0, out["EN"]) == 1.0  # not -0.0
    assert math.isnan(out["CC"])
    assert out["MI"] == 0.0 and out["VIF"] == 0.0
    assert abs(out["SSIM"]) < 0.05 and math.isfinite(out["Qabf"])


def test_flat_source_keeps_vif_substitution():
    f, a, _ = _triplet(6)
    out = _quiet_compute(f, a, np.full_like(a, 30.0))
    assert math.isnan(out["SCD"]) and math.isnan(out["CC"])
    vif_a = compute(f, a, a, ["VIF"])["VIF"] / 2
    assert out["VIF"] == pytest.approx(vif_a + 1.0)  # the flat source's term is replaced by 1.0


def test_identical_and_zero_images():
    _, a, _ = _triplet(7)
    out = _quiet_compute(a, a, a)
    assert out["PSNR"] == math.inf and out["MSE"] == 0.0 and math.isnan(out["SCD"])
    assert out["CC"] == pytest.approx(1.0) and out["SSIM"] == pytest.approx(2.0)
    z = np.zeros((50, 50))
    out = _quiet_compute(z, z, z)
    assert math.isnan(out["Qabf"]) and math.isnan(out["PSNR"]) and math.isnan(out["Nabf_wt0"])
    assert out["VIF"] == 2.0 and out["SSIM"] == pytest.approx(2.0) and out["EN"] == 0.0


def test_dataset_mean_skips_non_finite_and_counts():
    per = {"x": {"CC": 0.5, "PSNR": 20.0}, "y": {"CC": float("nan"), "PSNR": math.inf}, "z": {"CC": 0.7, "PSNR": 30.0}}
    mean, excluded = dataset_mean(per)
    assert mean == {"CC": pytest.approx(0.6), "PSNR": 25.0} and excluded == {"CC": 1, "PSNR": 1}
    mean, excluded = dataset_mean({"y": per["y"]}, ["CC"])
    assert math.isnan(mean["CC"]) and excluded == {"CC": 1}


# ---------------------------------------------------------------- reading and quantisation conventions
def test_read_metric_image_gray_and_colour(tmp_path):
    rng = np.random.default_rng(8)
    gray = rng.integers(0, 256, (20, 30), dtype=np.uint8)
    Image.fromarray(gray).save(tmp_path / "g.png")
    got = read_metric_image(tmp_path / "g.png")
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, gray)
    rgb = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "c.png")
    got = read_metric_image(tmp_path / "c.png")
    luma = rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    assert np.all(got == np.round(got)) and np.all(np.abs(got - luma) <= 0.5 + 1e-4)
    # OpenCV's own float pipeline, which the CDDFuse evaluator uses, rounded half to even
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR).astype(np.float32)
    np.testing.assert_array_equal(got, np.round(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)))


def test_read_metric_image_errors(tmp_path):
    with pytest.raises(EmmaError, match="no such image"):
        read_metric_image(tmp_path / "missing.png")
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(EmmaError, match="cannot decode"):
        read_metric_image(tmp_path / "bad.png")


def test_quantize_fused_levels_and_imsave_rounding():
    levels = (np.arange(256, dtype=np.float32) / np.float32(255)).reshape(16, 16)
    np.testing.assert_array_equal(quantize_fused(levels), np.arange(256).reshape(16, 16))
    # an exact .5 after x255 is rounded DOWN by imageio's "+ 0.499999999 then truncate"
    half = np.float32(2.5) / np.float32(255)
    assert half * np.float32(255) == np.float32(2.5)
    q = quantize_fused(np.array([[0.0, half, 1.0]], dtype=np.float32))
    np.testing.assert_array_equal(q, [[0, 2, 255]])
    assert quantize_fused(np.full((1, 1, 4, 4), 0.5)).shape == (4, 4)
    np.testing.assert_array_equal(quantize_fused(np.full((4, 4), 0.5)), 127)  # constant: plain uint8 cast
    with pytest.raises(EmmaError, match=r"\[0, 1\]"):
        quantize_fused(np.full((4, 4), 1.5))


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_quantize_fused_is_rounding_within_half_a_level(seed):
    rng = np.random.default_rng(seed)
    x = rng.random((9, 13)).astype(np.float32)
    x = (x - x.min()) / (x.max() - x.min())  # min-max, as EMMA's test script
    q = quantize_fused(x)
    assert q.min() == 0 and q.max() == 255 and np.all(q == np.round(q))
    assert np.all(np.abs(q - x.astype(np.float64) * 255) <= 0.5 + 1e-4)
    compute(q, q, q, ["EN"])  # accepted as a metric input


def test_warm_target_mask_is_tcrs_mask():
    """The public helpers are what TCR uses: a fused image that keeps ir's local contrast on the
    mask scores 1, and the mask is the top 2% of that contrast."""
    from emma_fusion.metrics import local_contrast, warm_target_mask

    rng = np.random.default_rng(3)
    ir = np.rint(np.clip(60 + rng.normal(0, 4, (80, 96)), 0, 255))
    ir[30:42, 40:48] = 220  # a warm target
    mask = warm_target_mask(ir)
    assert mask.dtype == bool and 0.015 <= mask.mean() <= 0.03
    assert mask[30:42, 40:48].mean() > 0.8  # mostly on the target
    np.testing.assert_allclose(local_contrast(np.full((40, 40), 7.0)), 0.0, atol=1e-9)
    assert compute(ir, ir, np.zeros_like(ir), ["TCR"])["TCR"] == pytest.approx(1.0)
