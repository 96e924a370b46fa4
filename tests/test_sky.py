"""SKY (bright-background retention): the metric, its mask, the training term and the validation list."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from emma_fusion.metrics import bright_flat, compute, sky_mask
from emma_fusion.train.fusion import _validation_pairs, selection_score
from emma_fusion.train.losses import content_loss, sky_mask_torch, sky_term


def _daytime(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A bright flat visible sky over dark ground; the infrared sky is cold and streaked, with a
    warm target on the ground. (H, W) = (96, 128), gray levels 0..255."""
    rng = np.random.default_rng(seed)
    vi = np.full((96, 128), 60.0)
    vi[:48] = 220.0  # sky
    ir = np.full((96, 128), 120.0)
    ir[:48] = 40.0 + 6.0 * (np.arange(48) % 4 == 0)[:, None]  # cold sky with horizontal streaks
    ir[60:80, 50:62] = 240.0  # warm target on the ground
    vi = np.rint(np.clip(vi + rng.normal(0, 1.0, vi.shape), 0, 255))
    return np.rint(ir), vi


def test_mask_finds_the_sky_and_never_the_warm_target():
    ir, vi = _daytime()
    m = sky_mask(ir, vi)
    assert m.dtype == bool
    assert m[:40].mean() > 0.5  # the sky (its lower edge is near the warmer ground)
    assert not m[48:].any()  # ground and warm target: the visible image is dark there
    hot_vi = vi.copy()
    hot_vi[60:80, 50:62] = 230.0  # a bright visible target that is warm: still not "sky"
    assert not sky_mask(ir, hot_vi)[60:80, 50:62].any()


def test_bright_flat_is_the_visible_half_of_the_sky_mask():
    ir, vi = _daytime()
    bf = bright_flat(vi)
    assert bf[:40].all() and not bf[56:].any()  # the whole bright sky, none of the dark ground
    assert not (sky_mask(ir, vi) & ~bf).any()  # the sky mask never reaches beyond it
    textured = vi.copy()
    textured[:48] += 40.0 * (np.indices((48, 128)).sum(axis=0) % 2)  # bright but not flat
    assert not bright_flat(textured)[:40].any()


def test_sky_retention_of_visible_dark_and_night():
    ir, vi = _daytime()
    assert compute(vi, ir, vi, ["SKY"])["SKY"] == pytest.approx(1.0)
    darkened = np.rint(np.maximum(ir, vi * 0.5))
    assert compute(darkened, ir, vi, ["SKY"])["SKY"] < 0.6
    night_vi = np.full_like(vi, 20.0)  # no bright background: undefined, not 0
    assert math.isnan(compute(night_vi, ir, night_vi, ["SKY"])["SKY"])


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), gain=st.floats(0.3, 1.0))
def test_sky_retention_measures_the_gain(seed, gain):
    ir, vi = _daytime(seed)
    assert compute(np.rint(vi * gain), ir, vi, ["SKY"])["SKY"] == pytest.approx(gain, abs=3e-3)


def test_torch_mask_equals_the_metric_mask():
    ir, vi = _daytime(1)
    mt = sky_mask_torch(torch.tensor(ir / 255, dtype=torch.float32)[None, None],
                        torch.tensor(vi / 255, dtype=torch.float32)[None, None])[0, 0].numpy() > 0
    inner = (slice(16, -16), slice(16, -16))  # the two differ only in how the border is mirrored
    assert (mt[inner] == sky_mask(ir, vi)[inner]).mean() > 0.999


def test_sky_term_is_zero_for_the_visible_image_and_pulls_a_dark_sky_up():
    ir, vi = (torch.tensor(a / 255, dtype=torch.float32)[None, None] for a in _daytime())
    assert sky_term(vi, ir, vi).item() == pytest.approx(0.0, abs=1e-6)
    f = torch.maximum(ir, vi * 0.5).requires_grad_(True)
    sky_term(f, ir, vi).backward()
    assert f.grad[0, 0, 8:40].mean() < 0  # descent raises the sky
    assert f.grad[0, 0, 60:80, 50:62].abs().max() == 0  # the warm target is left to the other terms
    night = torch.full_like(vi, 0.1)
    assert sky_term(night, ir, night).item() == 0.0  # empty mask: nothing added


def test_content_loss_adds_the_sky_term_with_its_weight():
    ir, vi = (torch.tensor(a / 255, dtype=torch.float32)[None, None] for a in _daytime())
    f = torch.maximum(ir, vi * 0.5)
    base = content_loss(f, ir, vi)
    expected = (base + 3.0 * sky_term(f, ir, vi)).item()
    assert content_loss(f, ir, vi, sky_weight=3.0).item() == pytest.approx(expected, rel=1e-6)


def test_selection_caps_sky_at_one():
    assert selection_score("VIF+SKY", {"VIF": 0.5, "SKY": 1.3}) == pytest.approx(1.5)
    assert selection_score("VIF+SKY", {"VIF": 0.5, "SKY": 0.8}) == pytest.approx(1.3)


def test_validation_list_file(tmp_path):
    from PIL import Image

    ir, vi = _daytime()
    for name, a in (("a_ir.png", ir), ("a_vi.png", vi)):
        Image.fromarray(a.astype(np.uint8)).save(tmp_path / name)
    listed = tmp_path / "val.txt"
    listed.write_text(f"# comment\n\n{tmp_path / 'a_ir.png'} {tmp_path / 'a_vi.png'}\n")
    pairs = _validation_pairs("", 0, str(listed))
    assert len(pairs) == 1 and pairs[0][0].shape == (96, 128)
    listed.write_text(f"{tmp_path / 'a_ir.png'}\n")
    with pytest.raises(Exception, match="expected 'IR VI'"):
        _validation_pairs("", 0, str(listed))
    listed.write_text(f"{tmp_path / 'a_ir.png'} {tmp_path / 'nope.png'}\n")
    with pytest.raises(Exception, match="no such image file"):
        _validation_pairs("", 0, str(listed))
    with pytest.raises(Exception, match="alternatives"):
        _validation_pairs(str(tmp_path), 0, str(listed))


def test_shipped_recipe_config_loads():
    from pathlib import Path

    from emma_fusion.train.config import load_config

    root = Path(__file__).resolve().parents[1]
    cfg = load_config("fusion", root / "configs" / "emma-sky.toml")
    assert cfg.content_sky_weight > 0 and cfg.content_signed and cfg.init_weights == "emma-default"
    assert cfg.content_target_weight > 0 and cfg.content_sky_band == 5
    assert cfg.monitor.val_list == "configs/val_pairs.txt" and "SKY" in cfg.monitor.select
    lines = [ln for ln in (root / "configs" / "val_pairs.txt").read_text().splitlines() if ln and not ln.startswith("#")]
    assert all("/test/" not in ln for ln in lines)  # validation never reads a test split
    blend = load_config("fusion", root / "configs" / "sky-blend.toml")  # the measured candidate
    assert (blend.content_sky_mean, blend.content_sky_polarity, blend.content_qabf_weight) == (15, 16, 24.0)
    assert blend.init_weights == "emma-default" and blend.monitor.val_list == cfg.monitor.val_list


def test_the_surround_of_a_warm_target_is_not_sky():
    """A warm target in front of a bright flat wall: its cold-looking surround (below the raised
    31 x 31 mean) is the target's background, whose contrast TCR measures; far from it, sky."""
    vi = np.full((96, 160), 220.0)
    ir = np.full((96, 160), 40.0) + 6.0 * (np.arange(96) % 4 == 0)[:, None]  # cold sky, streaked
    ir[40:56, 30:38] = 240.0  # warm target
    m = sky_mask(ir, vi)
    assert not m[25:71, 15:53].any()  # within 15 px of the target
    assert m[16:-16, 90:-16].mean() > 0.7  # far from it (the streak rows themselves are warmer)
    mt = sky_mask_torch(torch.tensor(ir / 255, dtype=torch.float32)[None, None],
                        torch.tensor(vi / 255, dtype=torch.float32)[None, None])[0, 0].numpy() > 0
    assert not mt[25:71, 15:53].any() and mt[16:-16, 90:-16].mean() > 0.7


def test_sky_band_sets_how_close_to_a_warm_target_the_term_reaches():
    ir, vi = (torch.tensor(a / 255, dtype=torch.float32)[None, None] for a in _daytime())
    ir = ir.clone()
    ir[..., 20:28, 60:68] = 1.0  # a warm object in the sky
    wide, narrow = sky_mask_torch(ir, vi), sky_mask_torch(ir, vi, band=0)
    assert wide[..., 10:38, 50:78].sum() < narrow[..., 10:38, 50:78].sum()  # the metric's band is left out
    assert narrow[..., 20:28, 60:68].sum() == 0  # never the warm pixels themselves
    assert torch.equal(sky_mask_torch(ir, vi, band=15), wide)
    with pytest.raises(Exception, match="sky band"):
        content_loss(vi, ir, vi, sky_weight=1.0, sky_band=-1)


def test_bad_content_settings_fail_before_any_work(tmp_path):
    """A bad loss setting in any phase is a one-line error before data loading and validation."""
    from emma_fusion.errors import EmmaError
    from emma_fusion.train.config import FusionConfig
    from emma_fusion.train.fusion import train_fusion

    cfg = FusionConfig(out=str(tmp_path / "run"), phases=[{"steps": 1}, {"steps": 1, "content_sky_band": -2}])
    with pytest.raises(EmmaError, match="sky band"):
        train_fusion(cfg)
    assert not (tmp_path / "run").exists()


def _skyline() -> tuple[torch.Tensor, torch.Tensor]:
    """A warm roof under a cold sky in the infrared, a dark roof under a bright sky in the visible
    image; the infrared skyline is the stronger edge. (1, 1, 96, 96) in [0, 1]."""
    ir = torch.full((1, 1, 96, 96), 0.1)
    ir[..., 48:, :] = 0.8
    vi = torch.full((1, 1, 96, 96), 0.85)
    vi[..., 48:, :] = 0.3
    return ir, vi


def test_sky_polarity_gives_the_skyline_the_visible_images_sign():
    from emma_fusion.train.losses import _strongest, near_sky, polarity_checked

    ir, vi = _skyline()
    g, take_ir = _strongest(ir, vi, 0.0)
    assert g[0, 0, 1, 47:49, 40].min() > 2.5  # the infrared edge: brighter below the skyline
    near = near_sky(ir, vi, band=5, reach=16)
    assert near[0, 0, 47:49, 40].all() and not near[0, 0, 80:, 40].any()
    g2 = polarity_checked(g, vi, take_ir & near.unsqueeze(2))
    assert torch.allclose(g2[0, 0, 1, 47:49, 40], torch.full((2,), -2.2))  # now the visible edge
    assert torch.equal(g2[..., 60:, :], g[..., 60:, :])  # away from the sky nothing changes


def test_sky_polarity_lowers_the_loss_of_the_visible_skyline_only_by_day():
    ir, vi = _skyline()
    kw = {"signed": True, "grad_gain": 1.15, "sky_band": 5}
    f = vi.clone()  # keeps the visible skyline: the plain texture term charges it the infrared edge
    assert content_loss(f, ir, vi, sky_polarity=16, **kw) < content_loss(f, ir, vi, **kw)
    night = vi * 0.2  # no bright sky: the option changes nothing
    assert content_loss(night, ir, night, sky_polarity=16, **kw) == content_loss(night, ir, night, **kw)


def test_sky_polarity_needs_the_signed_texture_term():
    from emma_fusion.errors import EmmaError

    ir, vi = _skyline()
    with pytest.raises(EmmaError, match="signed texture term"):
        content_loss(vi, ir, vi, sky_polarity=16)
    with pytest.raises(EmmaError, match=">= 0 px"):
        content_loss(vi, ir, vi, signed=True, sky_polarity=-1)


def test_smoothed_mask_fills_a_noisy_infrared_sky_and_still_skips_the_warm_target():
    rng = np.random.default_rng(5)
    ir, vi = _daytime(2)
    ir = np.clip(ir + rng.normal(0, 3.0, ir.shape), 0, 255)  # sensor noise on the cold sky
    t = (torch.tensor(a / 255, dtype=torch.float32)[None, None] for a in (ir, vi))
    ir_t, vi_t = t
    plain = sky_mask_torch(ir_t, vi_t, band=5)[0, 0]
    smooth = sky_mask_torch(ir_t, vi_t, band=5, smooth=7)[0, 0]
    sky = (slice(4, 36), slice(16, -16))
    assert plain[sky].mean() < 0.75 < 0.95 < smooth[sky].mean()  # noise halves the plain test's sky
    assert not smooth[48:].any()
    dim_vi = vi_t * (150 / 220)  # a duller sky: only a lower threshold takes it
    assert not sky_mask_torch(ir_t, dim_vi, band=5, smooth=7)[0, 0].any()
    assert sky_mask_torch(ir_t, dim_vi, band=5, smooth=7, bright=140)[0, 0][sky].mean() > 0.95


def test_sky_mask_options_are_checked():
    from emma_fusion.errors import EmmaError

    ir, vi = _skyline()
    with pytest.raises(EmmaError, match="odd window side"):
        content_loss(vi, ir, vi, sky_smooth=4)
    with pytest.raises(EmmaError, match=r"\[0, 255\]"):
        content_loss(vi, ir, vi, sky_bright=300)


def test_sky_mask_keys_of_a_run_reach_its_content_loss():
    from emma_fusion.nets.ufuser import UFuser
    from emma_fusion.train.config import FusionConfig
    from emma_fusion.train.fusion import _loss_summary, make_loss

    cfg = FusionConfig(ablation="content", content_signed=True, content_sky_weight=2.0, content_sky_band=5,
                       content_sky_polarity=16, content_sky_smooth=7, content_sky_bright=140.0)
    loss = make_loss(cfg, UFuser(), None)
    assert {k: loss.content_loss.keywords[k] for k in ("sky_polarity", "sky_smooth", "sky_bright")} == {
        "sky_polarity": 16, "sky_smooth": 7, "sky_bright": 140.0}
    assert "sky 2 (band 5, smooth 7, from 140)" in _loss_summary(cfg) and "sky polarity 16 px" in _loss_summary(cfg)


def test_floor_term_costs_only_a_darker_fused_image_on_bright_flat_visible_ground():
    from emma_fusion.train.losses import floor_term

    ir, vi = _daytime(3)
    vi_t = torch.tensor(vi / 255, dtype=torch.float32)[None, None]
    assert floor_term(vi_t, vi_t).item() == 0.0
    assert floor_term((vi_t + 0.2).clamp(max=1), vi_t).item() == 0.0  # brighter (a warm target) is free
    dark = vi_t.clone()
    dark[..., :20, :] -= 0.3  # the upper sky darkened, as the infrared's cold sky would
    assert floor_term(dark, vi_t).item() == pytest.approx(0.3 * 20 / 41, rel=0.05)  # rows 0-40 are flat
    dark_ground = vi_t.clone()
    dark_ground[..., 56:, :] -= 0.2  # the ground is not bright: no cost
    assert floor_term(dark_ground, vi_t).item() == 0.0
    assert floor_term(vi_t, vi_t * 0.2).item() == 0.0  # no bright background anywhere: 0, not NaN
    f = dark.clone().requires_grad_()
    floor_term(f, vi_t).backward()
    assert (f.grad[..., :20, 20:-20] < 0).all() and (f.grad[..., 24:, :] == 0).all()  # only brightens


def test_floor_weight_of_a_run_reaches_its_content_loss():
    from emma_fusion.nets.ufuser import UFuser
    from emma_fusion.train.config import FusionConfig
    from emma_fusion.train.fusion import _loss_summary, make_loss

    cfg = FusionConfig(ablation="content", content_signed=True, content_floor_weight=2.0)
    assert make_loss(cfg, UFuser(), None).content_loss.keywords["floor_weight"] == 2.0
    assert _loss_summary(cfg).endswith("floor 2")
    ir, vi = (torch.tensor(a / 255, dtype=torch.float32)[None, None] for a in _daytime(4))
    dark = vi * 0.5
    assert content_loss(dark, ir, vi, floor_weight=2.0) > content_loss(dark, ir, vi) + 0.1


def test_floor_term_can_leave_a_warm_target_in_bright_smoke_free():
    from emma_fusion.train.losses import floor_term

    vi = torch.full((1, 1, 96, 128), 220 / 255)  # bright, flat smoke
    ir = torch.full_like(vi, 100 / 255)
    ir[..., 40:60, 50:70] = 200 / 255  # a warm target behind it
    f = vi.clone()
    f[..., 40:60, 50:70] = 120 / 255  # shown darker than the smoke, so it stands out
    assert floor_term(f, vi) > 0.01  # without the infrared test the floor hides it (0.39 x 400 px / 12288)
    assert floor_term(f, vi, ir=ir, warm=8.0).item() == 0.0
    sky = f.clone()
    sky[..., :10, :] -= 0.2  # darkened smoke away from the target still costs
    assert floor_term(sky, vi, ir=ir, warm=8.0) > 0


def test_sky_mean_holds_the_sky_brightness_and_leaves_its_fine_texture_free():
    from emma_fusion.errors import EmmaError
    from emma_fusion.train.losses import floor_term

    ir, vi = _daytime()
    ir_t, vi_t = (torch.from_numpy(a / 255.0).float()[None, None] for a in (ir, vi))
    rows = torch.arange(96, dtype=torch.float32)[:, None]
    streaked = (vi_t + 0.04 * torch.where(rows % 4 < 2, 1.0, -1.0)).clamp(0, 1)  # zero-mean streaks
    assert sky_term(streaked, ir_t, vi_t).item() > 0.1  # pixels and edges: the streaks cost
    assert sky_term(streaked, ir_t, vi_t, mean=15).item() < 0.005  # 15 x 15 means: they do not
    assert floor_term(streaked, vi_t).item() > 0.01
    assert floor_term(streaked, vi_t, mean=15).item() < 0.005
    darker = vi_t - 0.2  # a darker sky costs either way
    assert sky_term(darker, ir_t, vi_t, mean=15).item() == pytest.approx(0.2, rel=0.05)
    assert floor_term(darker, vi_t, mean=15).item() == pytest.approx(0.2, rel=0.05)
    with pytest.raises(EmmaError, match="sky mean must be"):
        content_loss(vi_t, ir_t, vi_t, sky_weight=1.0, sky_mean=4)


def test_sky_mean_of_a_run_reaches_its_content_loss():
    from emma_fusion.nets.ufuser import UFuser
    from emma_fusion.train.config import FusionConfig
    from emma_fusion.train.fusion import _loss_summary, make_loss

    cfg = FusionConfig(ablation="content", content_sky_weight=1.0, content_sky_mean=15)
    assert make_loss(cfg, UFuser(), None).content_loss.keywords["sky_mean"] == 15
    assert "sky 1 (15x15 means)" in _loss_summary(cfg)
