"""scripts/composite_tradeoff.py: the hand-made fusions behind the TNO trade-off in docs/TRAINING_HISTORY.md."""


import numpy as np
import pytest

from emma_fusion.metrics import compute

from conftest import load_script


@pytest.fixture(scope="module")
def script():
    return load_script("scripts/composite_tradeoff.py")


def _pair(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A textured visible image and a flat infrared one with one warm target (8-bit levels in [0, 1])."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:96, 0:112]
    vi = 0.5 + 0.2 * np.sin(xx / 5.0) * np.cos(yy / 7.0) + rng.normal(0, 0.02, (96, 112))
    ir = 0.3 + rng.normal(0, 0.01, (96, 112))
    ir[36:60, 46:62] = 0.9  # 3.6% of the image: TCR's top 2% lies inside it
    return np.round(ir * 255) / 255, np.round(np.clip(vi, 0, 1) * 255) / 255


def test_warm_mask_covers_the_target_and_is_feathered(script):
    ir, _ = _pair()
    m = script.warm_mask(ir)
    assert m.shape == ir.shape and 0.0 <= m.min() and m.max() <= 1.0
    assert m[44:52, 50:58].min() > 0.99  # the target itself
    assert m[:20, :20].max() < 0.01  # far from it
    assert 0.0 < m[30:66, 36:46].mean() < 1.0  # a soft edge, not a hard cut


def test_candidates_keep_what_they_claim(script):
    ir, vi = _pair()
    fused = np.maximum(ir, vi) * 0.9
    c = script.candidates(ir, vi, fused)
    assert {"max", "gff", "visible", "visible + warm targets", "model", "model x 0.5 + max x 0.5"} <= set(c)
    np.testing.assert_array_equal(c["visible"], vi)
    np.testing.assert_allclose(c["model x 0.5 + max x 0.5"], 0.5 * fused + 0.5 * np.maximum(ir, vi))
    score = {k: compute(script._minmax255(f), ir * 255, vi * 255, ["TCR"])["TCR"] for k, f in c.items()}
    assert score["visible"] < 0.2 < 0.8 < score["visible + warm targets"]  # pasting puts the target back
    assert score["max + warm contrast"] > 0.8  # the target's local contrast restored
    assert "model" not in script.candidates(ir, vi)


def test_sky_composites_take_the_visible_sky_and_keep_the_rest(script):
    """A bright flat visible sky over a dark model fusion: pasted, the sky is the visible image's;
    lifted, it is brighter by k of the gap and keeps the model's streaks; away from it nothing moves."""
    yy, xx = np.mgrid[0:224, 0:128]
    vi = np.where(yy < 112, 0.9, 0.3 + 0.1 * np.sin(xx / 3.0))
    ir = np.full((224, 128), 0.4)
    fused = np.where(yy < 112, 0.35 + 0.03 * np.sin(yy * 1.5), 0.5)  # a dark sky with streaks
    m = script.bright_flat_mask(vi)
    assert m[:90].min() > 0.99 and m[140:].max() < 1e-6
    c = script.candidates(ir, vi, fused)
    np.testing.assert_allclose(c["model, visible sky"][:90], vi[:90], atol=1e-6)
    np.testing.assert_allclose(c["model, visible sky"][140:], fused[140:])
    lifted = c["model, sky lifted x 0.9"]
    gap = (vi - fused)[10:20, 40:80].mean()
    assert abs((lifted - fused)[10:20, 40:80].mean() - 0.9 * gap) < 0.05 * gap
    streak = np.diff(lifted[5:25, 64])
    np.testing.assert_allclose(streak, np.diff(fused[5:25, 64]), atol=0.01)  # the model's edges stay
    np.testing.assert_allclose(lifted[200:], fused[200:], atol=1e-3)
