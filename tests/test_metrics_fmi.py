"""FMI (fast-FMI, METRICS.md §4): golden values and the vectorised code against a per-window loop."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED, shared_path
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emma_fusion.metrics import compute, read_metric_image
from emma_fusion.metrics.fmi import fmi, fmi_features, fmi_maps

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from metrics_reference import fmi_loop  # noqa: E402

VECTORS = SHARED / "reference" / "vectors"
FEATURES = {"FMI_pixel": "none", "FMI_dct": "dct", "FMI_gradient": "gradient", "FMI_w": "wavelet"}
CASES = json.loads((VECTORS / "expected.json").read_text()) if (VECTORS / "expected.json").is_file() else {}
# the six FLIR cases (about 300x530) take several CPU-seconds each: run with -m slow
FAST_CASES = [c for c in sorted(CASES) if c.startswith("synth")] or ["<no vectors>"]
SLOW_CASES = [c for c in sorted(CASES) if not c.startswith("synth")] or ["<no vectors>"]


def _check_case(case: str) -> None:
    shared_path("reference", "vectors", "expected.json")
    c = CASES[case]
    f, a, b = (read_metric_image(VECTORS / c[k]) for k in ("fused", "ir", "vi"))
    got = compute(f, a, b, list(FEATURES))
    bad = [f"{n}: got {got[n]!r}, expected {c['metrics'][n]!r}" for n in FEATURES
           if not math.isclose(got[n], c["metrics"][n], rel_tol=1e-6, abs_tol=1e-6)]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("case", FAST_CASES)
def test_fmi_golden_synthetic(case):
    _check_case(case)


@pytest.mark.slow
@pytest.mark.parametrize("case", SLOW_CASES)
def test_fmi_golden_flir(case):
    _check_case(case)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), h=st.integers(3, 9), w=st.integers(3, 9),
       levels=st.sampled_from([2, 3, 256]), kind=st.sampled_from(["int", "float", "binary"]))
def test_vectorised_fmi_equals_window_loop(seed, h, w, levels, kind):
    """Few levels make equal, constant and 0/1 windows (the MATLAB (B, F) quirk) frequent."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, levels, (h, w)).astype(np.float64)
    b = rng.integers(0, levels, (h, w)).astype(np.float64)
    f = np.where(rng.random((h, w)) < 0.5, a, np.maximum(a, b))
    if kind == "float":  # feature-like maps: signed floats with repeats
        a, b, f = (x / (levels - 1) - 0.3 for x in (a, b, f))
    elif kind == "binary":
        b[: h // 2] = f[: h // 2] > 0  # 0/1 windows equal to the normalised fused window
    assert fmi_maps(a, b, f) == pytest.approx(fmi_loop(a, b, f), rel=1e-12, abs=1e-12)


def test_features_are_the_documented_maps():
    rng = np.random.default_rng(5)
    x = rng.integers(0, 256, (8, 11)).astype(np.float64)
    np.testing.assert_array_equal(fmi_features(x, "none"), x)
    np.testing.assert_array_equal(fmi_features(x, "gradient"), np.gradient(x, axis=1))  # horizontal only
    d = fmi_features(x, "dct")
    assert np.sum(d**2) == pytest.approx(np.sum(x**2))  # orthonormal
    w = fmi_features(x, "wavelet")
    assert w.min() == 0.0 and w.max() == 1.0


def test_identical_images_give_one():
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, (12, 15)).astype(np.float64)
    for feature in FEATURES.values():
        assert fmi(x, x, x, feature) == 1.0
