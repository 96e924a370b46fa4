"""scripts/tcr_skyline.py: TCR split into warm targets in front of a bright background and the rest."""

import math

import numpy as np
import pytest

from emma_fusion.metrics import compute

from conftest import load_script


@pytest.fixture(scope="module")
def script():
    return load_script("scripts/tcr_skyline.py")


def _scene() -> tuple[np.ndarray, np.ndarray]:
    """Gray levels 0..255, (160, 200): a bright sky (rows 0-79) with a warm tree top at its lower
    edge, dark ground with a warm person far from the sky."""
    vi = np.full((160, 200), 50.0)
    vi[:80] = 220.0
    ir = np.full((160, 200), 100.0)
    ir[:80] = 40.0
    ir[66:80, 20:40] = 200.0  # tree top against the sky: a skyline target
    ir[130:150, 150:160] = 200.0  # person on the dark ground
    return ir, vi


def test_split_separates_skyline_targets_from_the_rest(script):
    ir, vi = _scene()
    assert script.skyline(ir, vi)[70, 30] and not script.skyline(ir, vi)[140, 155]
    whole, sky_part, rest, magnitude = script.split_tcr(ir, ir, vi)
    assert magnitude == pytest.approx(1.0)
    assert whole == pytest.approx(compute(ir, ir, vi, ["TCR"])["TCR"]) == pytest.approx(1.0)
    assert sky_part == pytest.approx(1.0) and rest == pytest.approx(1.0)
    silhouette = np.maximum(ir, vi)  # the tree top lost in the bright sky, the person kept
    whole, sky_part, rest, _ = script.split_tcr(silhouette, ir, vi)
    assert sky_part < 0.3 < 0.9 < rest
    assert whole == pytest.approx(compute(silhouette, ir, vi, ["TCR"])["TCR"])


def test_split_is_nan_for_a_part_without_targets(script):
    ir, vi = _scene()
    night = np.full_like(vi, 50.0)  # no bright background: every target counts as "elsewhere"
    _, sky_part, rest, magnitude = script.split_tcr(ir, ir, night)
    assert math.isnan(sky_part) and math.isnan(magnitude) and rest == pytest.approx(1.0)


def test_a_dark_silhouette_keeps_its_magnitude_not_its_sign(script):
    ir, vi = _scene()
    dark_tree = vi.copy()
    dark_tree[66:80, 20:40] = 60.0  # the warm tree top drawn dark against the bright sky
    _, sky_part, _, magnitude = script.split_tcr(dark_tree, ir, vi)
    assert sky_part < 0 < 0.5 < magnitude
