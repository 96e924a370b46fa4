"""metrics.qabf_map (Qabf pixel by pixel) and scripts/qabf_regions.py (where a fusion loses Qabf)."""

import numpy as np
import pytest

from emma_fusion.metrics import compute, qabf_map

from conftest import load_script


def _pair(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A daytime pair: bright flat visible sky over textured ground; streaked cold infrared sky;
    and a fusion of them. Gray levels 0..255, (64, 80)."""
    rng = np.random.default_rng(seed)
    vi = np.rint(np.clip(np.r_[np.full((24, 80), 225.0), 90 + 40 * rng.random((40, 80))], 0, 255))
    ir = np.rint(np.r_[40 + 8.0 * (np.arange(24)[:, None] % 3 == 0) * np.ones((1, 80)), 130 + 30 * rng.random((40, 80))])
    return np.rint((ir + vi) / 2), ir, vi


def test_qabf_map_adds_up_to_qabf():
    f, ir, vi = _pair()
    num, den = qabf_map(f, ir, vi)
    assert num.shape == den.shape == f.shape
    assert num.sum() / den.sum() == pytest.approx(compute(f, ir, vi, ["Qabf"])["Qabf"], rel=1e-12)


def test_region_split_adds_up_and_places_a_sky_change_in_the_sky():
    script = load_script("scripts/qabf_regions.py")
    f0, ir, vi = _pair()
    f1 = f0.copy()
    f1[3:12] = np.rint(f0[3:12].mean())  # inside the sky only: the infrared streaks there are gone
    parts = script.region_split(f0, f1, ir, vi, band=5)
    q = [compute(f, ir, vi, ["Qabf"])["Qabf"] for f in (f0, f1)]
    assert parts["total"] == pytest.approx(q[1] - q[0], abs=1e-12)
    assert parts["flat"] + parts["band"] + parts["else"] == pytest.approx(parts["total"], abs=1e-12)
    assert parts["flat"] < 0 and parts["else"] == 0.0
