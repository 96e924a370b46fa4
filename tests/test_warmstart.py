"""The shipped model's recipe: content loss, cosine schedule, flips, TCR, best-by-validation selection."""

from __future__ import annotations

import json
import math

import kornia
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from emma_fusion.train.data import DatasetSpec, PairedCrops
from emma_fusion.errors import EmmaError
from emma_fusion.train.losses import EmmaLoss, abs_sobel, content_loss, polarity_checked, signed_max_gradient
from emma_fusion.metrics import compute
from emma_fusion.nets import UFuser
from emma_fusion.train import apply_overrides, load_config, preset, train_fusion
from emma_fusion.train.fusion import BEST_FILE, selection_score
from emma_fusion.weights import load_state


# ---------------------------------------------------------------- content loss
def test_abs_sobel_of_a_ramp():
    x = torch.arange(8.0).repeat(8, 1)[None, None] / 8  # horizontal ramp, slope 1/8 per pixel
    g = abs_sobel(x)
    assert g[0, 0, 3, 3] == pytest.approx(8 / 8)  # Sobel_x of a unit ramp is 8 x slope; Sobel_y is 0
    assert g[0, 0, 3, 0] == pytest.approx(4 / 8)  # replicate border halves the edge column's difference


def test_content_loss_is_zero_only_for_the_max_composite():
    ir = torch.zeros(1, 1, 16, 16)
    ir[..., 4:8, 4:8] = 0.9  # a warm target on a cold background
    vi = torch.zeros_like(ir)  # a dark, flat visible image: max(i, v) = i, and i has every edge
    target = torch.maximum(ir, vi)
    assert float(content_loss(target, ir, vi)) == pytest.approx(0.0, abs=1e-7)
    vi = vi + 0.2  # a flat grey visible image
    target = torch.maximum(ir, vi)
    washed = (ir + vi) / 2  # averaging halves the target's contrast
    assert float(content_loss(washed, ir, vi)) > float(content_loss(target, ir, vi)) + 0.05
    # the gradient weight scales only the texture term
    a, b = content_loss(washed, ir, vi, 0.0), content_loss(washed, ir, vi, 10.0)
    tex = torch.nn.functional.l1_loss(abs_sobel(washed), torch.maximum(abs_sobel(ir), abs_sobel(vi)))
    assert float(b - a) == pytest.approx(10 * float(tex), rel=1e-5)


def test_signed_texture_term_sees_a_target_turned_dark():
    ir = torch.zeros(1, 1, 16, 16)
    ir[..., 4:10, 5:9] = 0.9  # a warm target
    vi = torch.full_like(ir, 0.3)  # flat visible grey: every edge comes from the infrared image
    assert torch.equal(signed_max_gradient(ir, vi), kornia.filters.spatial_gradient(ir, normalized=False))
    kept = torch.maximum(ir, vi)
    dark = vi.clone()
    dark[..., 4:10, 5:9] = 0.0  # the same edges, opposite polarity
    assert float(content_loss(ir, ir, torch.zeros_like(ir), 5.0, signed=True)) == pytest.approx(0.0, abs=1e-6)
    # |Sobel| gives the dark target's edges nearly full credit; the signed term charges twice their size
    gap_abs = float(content_loss(dark, ir, vi, 5.0) - content_loss(kept, ir, vi, 5.0))
    gap_signed = float(content_loss(dark, ir, vi, 5.0, signed=True) - content_loss(kept, ir, vi, 5.0, signed=True))
    assert gap_signed > 2 * gap_abs
    # per pixel the stronger source wins, signs kept
    vi2 = torch.zeros_like(ir)
    vi2[..., :, 12:] = 1.0  # a strong visible step elsewhere
    g = signed_max_gradient(ir, vi2)
    g_vi = kornia.filters.spatial_gradient(vi2, normalized=False)
    assert torch.equal(g[..., 11:13], g_vi[..., 11:13])


@pytest.mark.parametrize("signed", [False, True])
def test_ir_margin_drops_weak_infrared_texture_only(signed):
    """A weak infrared stripe over a flat visible sky stops being a target; a strong warm edge stays one."""
    ir = torch.zeros(1, 1, 24, 24)
    ir[..., ::2, :] += 0.02  # horizontal sensor stripes, G about 0.16
    ir[..., 12:20, 8:14] = 0.8  # a warm target, G up to 3.2
    vi = torch.full_like(ir, 0.5)  # a flat, bright visible sky
    stripes = torch.maximum(ir, vi).clone()
    stripes[..., ::2, :] += 0.02  # the fused image carries the stripes
    clean = torch.maximum(ir, vi)
    loss = lambda f, m: float(content_loss(f, ir, vi, 5.0, signed, ir_margin=m))  # noqa: E731
    assert loss(stripes, 0.0) < loss(clean, 0.0)  # no margin: the stripes are asked for
    assert loss(clean, 0.5) < loss(stripes, 0.5)  # a margin above their G: flat sky is the target
    g = signed_max_gradient(ir, vi, 0.5)
    g_ir = kornia.filters.spatial_gradient(ir, normalized=False)
    assert torch.equal(g[..., 11:13, 8:14], g_ir[..., 11:13, 8:14])  # the target's edge is kept
    assert float(g[..., :8, :].abs().max()) == 0.0  # the stripes are not


def test_polarity_check_keeps_warm_targets_and_a_bright_sky():
    ir = torch.zeros(1, 1, 24, 24)
    ir[..., 12:, :] = 0.8  # warm trees under a cold sky: a strong upward step
    vi = torch.full_like(ir, 0.9)
    vi[..., 12:, :] = 0.4  # bright sky over dark trees: the opposite polarity
    composite = torch.maximum(ir, vi)  # sky 0.9 over trees 0.8: a weak downward step
    g_sel, g_max = signed_max_gradient(ir, vi), kornia.filters.spatial_gradient(composite, normalized=False)
    g_ir = kornia.filters.spatial_gradient(ir, normalized=False)
    edge = (..., slice(11, 13), slice(None))  # the skyline rows
    assert torch.equal(g_sel[edge], g_ir[edge])  # the infrared skyline is the stronger edge
    assert torch.allclose(polarity_checked(g_sel, composite)[edge], g_max[edge])  # but of the wrong sign
    half = polarity_checked(g_sel, composite, strength=0.5)[edge]
    assert torch.allclose(half, (g_sel[edge] + g_max[edge]) / 2)  # strength 0.5: half way
    # the bright-sky composite meets the checked target; the unchecked one asks for a darker sky
    assert float(content_loss(composite, ir, vi, 5.0, True, polarity=1.0)) == pytest.approx(0.0, abs=1e-6)
    assert float(content_loss(composite, ir, vi, 5.0, True)) > 0.5
    # a warm target on a darker background keeps the infrared edge, sign and all
    ir2 = torch.zeros(1, 1, 16, 16)
    ir2[..., 4:10, 5:9] = 0.9
    vi2 = torch.full_like(ir2, 0.3)
    g2 = signed_max_gradient(ir2, vi2)
    assert torch.allclose(polarity_checked(g2, torch.maximum(ir2, vi2)), g2, atol=1e-6)
    # at night the composite is the warm, flat infrared image: visible texture on it stays a target
    ir3 = torch.full((1, 1, 16, 16), 0.8)
    vi3 = torch.zeros_like(ir3)
    vi3[..., :, ::2] = 0.3  # bright paving stripes on a dark night image
    checked = content_loss(torch.maximum(ir3, vi3), ir3, vi3, 5.0, True, polarity=1.0)
    plain = content_loss(torch.maximum(ir3, vi3), ir3, vi3, 5.0, True)
    assert float(checked) == pytest.approx(float(plain), rel=1e-6)  # the same, still-unmet texture target
    assert float(plain) > 0.5


def test_polarity_settings_are_checked():
    x = torch.rand(1, 1, 16, 16)
    with pytest.raises(EmmaError, match="signed texture term"):
        content_loss(x, x, x, polarity=1.0)
    with pytest.raises(EmmaError, match=r"\[0, 1\]"):
        content_loss(x, x, x, signed=True, polarity=1.5)


@pytest.mark.parametrize("signed", [False, True])
def test_base_term_charges_shifted_regions_not_detail(signed):
    """The block-mean term sees a region shifted in brightness, not detail that averages out per block."""
    gen = torch.Generator().manual_seed(0)
    ir, vi = torch.rand(1, 1, 32, 32, generator=gen), torch.rand(1, 1, 32, 32, generator=gen)
    target = torch.maximum(ir, vi)
    checker = (torch.arange(32)[:, None] + torch.arange(32)[None, :]) % 2 * 0.1 - 0.05  # zero mean per 2x2
    loss = lambda f, w: float(content_loss(f, ir, vi, 5.0, signed, base_weight=w, base_size=8))  # noqa: E731
    detail = target + checker
    assert loss(detail, 3.0) == pytest.approx(loss(detail, 0.0), abs=1e-6)
    shifted = target - 0.2  # a whole image darker by 0.2: the texture term cannot see it
    assert loss(shifted, 0.0) - loss(target, 0.0) == pytest.approx(0.2, abs=1e-5)
    assert loss(shifted, 3.0) - loss(shifted, 0.0) == pytest.approx(3 * 0.2, abs=1e-5)
    assert loss(target, 3.0) == pytest.approx(loss(target, 0.0), abs=1e-6)


@pytest.mark.parametrize("signed", [False, True])
def test_gradient_gain_scales_the_texture_target(signed):
    ir = torch.zeros(1, 1, 16, 16)
    ir[..., 4:10, 5:9] = 0.6
    vi = torch.zeros_like(ir)
    boosted = 1.25 * ir  # edges 1.25 x the strongest source's: the texture term is met exactly
    intensity = torch.nn.functional.l1_loss(boosted, ir)
    assert float(content_loss(boosted, ir, vi, 5.0, signed, grad_gain=1.25)) == pytest.approx(float(intensity), abs=1e-6)
    assert float(content_loss(boosted, ir, vi, 5.0, signed)) > float(intensity) + 0.01


def test_content_ablation_and_anchor_terms():
    torch.manual_seed(0)
    fuser = UFuser()
    ir, vi = torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 16)
    with torch.no_grad():
        out = EmmaLoss(fuser, ablation="content")(ir, vi)
    assert list(out.terms) == ["content"]
    assert float(out.total) == pytest.approx(float(content_loss(out.fused, ir, vi)), rel=1e-6)
    assert not EmmaLoss.needs_sensing("content") and not EmmaLoss(fuser, ablation="content").uses_transforms
    with torch.no_grad():
        anchored = EmmaLoss(fuser, ablation="III", content_weight=0.5)(ir, vi)
    assert list(anchored.terms) == ["plain_ir", "plain_vi", "content"]
    assert float(anchored.terms["content"]) == pytest.approx(0.5 * float(content_loss(anchored.fused, ir, vi)), rel=1e-6)


# ---------------------------------------------------------------- TCR
def _scene(seed: int, h: int = 64, w: int = 72) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ir = rng.integers(20, 60, (h, w)).astype(np.float64)
    ir[10:20, 30:36] = 230  # a warm target
    vi = rng.integers(0, 256, (h, w)).astype(np.float64)
    return ir, vi


def test_tcr_of_the_infrared_itself_and_of_its_negative():
    ir, vi = _scene(0)
    assert compute(ir, ir, vi, ["TCR"])["TCR"] == pytest.approx(1.0)
    assert compute(255 - ir, ir, vi, ["TCR"])["TCR"] == pytest.approx(-1.0)
    assert compute(vi, ir, vi, ["TCR"])["TCR"] < 0.3  # the visible image does not show the target
    assert math.isnan(compute(ir, np.full_like(ir, 9.0), vi, ["TCR"])["TCR"])  # no target at all


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), gain=st.sampled_from([0.25, 0.5, 1.0]), offset=st.integers(0, 20))
def test_tcr_measures_the_gain_on_the_targets(seed, gain, offset):
    """Invariant: f = gain * ir + offset keeps exactly ``gain`` of the targets' local contrast."""
    ir, vi = _scene(seed)
    ir = np.round(ir / 4) * 4  # multiples of 4: gain x ir stays on integer levels
    f = gain * ir + offset
    assert compute(f, ir, vi, ["TCR"])["TCR"] == pytest.approx(gain, rel=1e-9)


def test_tcr_by_hand():
    """Direct evaluation of the definition (reflect-padded 31x31 box mean, 98th percentile mask)."""
    ir, vi = _scene(3, 40, 50)
    f = np.clip(np.round(0.7 * ir + 0.3 * vi), 0, 255)

    def local(x):
        p = np.pad(x, 15, mode="symmetric")
        box = np.lib.stride_tricks.sliding_window_view(p, (31, 31)).mean(axis=(-1, -2))
        return x - box

    ci, cf = local(ir), local(f)
    mask = ci >= np.percentile(ci, 98)
    assert compute(f, ir, vi, ["TCR"])["TCR"] == pytest.approx(cf[mask].mean() / ci[mask].mean(), rel=1e-9)


# ---------------------------------------------------------------- schedule, flips, selection
def test_selection_score():
    assert selection_score("VIF+TCR", {"VIF": 0.5, "TCR": 0.75, "EN": 7}) == 1.25
    assert selection_score("VIF+TCR", {"VIF": 0.5, "TCR": 1.3}) == 1.5  # TCR counts up to 1
    assert selection_score("EN", {"EN": 7.2}) == 7.2
    assert selection_score("VIF + TCR", {"VIF": 0.5, "TCR": float("nan")}) == -math.inf
    with pytest.raises(EmmaError, match="Qabf"):
        selection_score("Qabf", {"VIF": 1.0})


def _pairs(tmp_path, n=3, h=40, w=48):
    rng = np.random.default_rng(0)
    for k in range(n):
        for m in ("ir", "vi"):
            (tmp_path / m).mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (h, w)).astype(np.uint8)).save(tmp_path / m / f"p{k}.png")
    return tmp_path


def test_hflip_flips_every_image_of_a_crop_the_same_way(tmp_path):
    root = _pairs(tmp_path / "d")
    spec = [DatasetSpec(root=str(root))]
    plain = PairedCrops(spec, 16, seed=3, min_contrast=0.0)
    flipped = PairedCrops(spec, 16, seed=3, min_contrast=0.0, hflip=True)
    n_flipped = 0
    for k in range(20):
        a, b = plain.sample(k), flipped.sample(k)  # the same crop position: flips are drawn last
        same = torch.equal(a["ir"], b["ir"])
        mirrored = torch.equal(a["ir"].flip(-1), b["ir"])
        assert same or mirrored
        assert torch.equal(a["vi"].flip(-1) if mirrored and not same else a["vi"], b["vi"])
        n_flipped += mirrored and not same
        assert torch.equal(flipped.sample(k)["ir"], b["ir"])  # deterministic
    assert 4 <= n_flipped <= 16


def test_warmstart_preset_runs_anneals_and_keeps_the_best(tmp_path):
    root = _pairs(tmp_path / "train")
    val = _pairs(tmp_path / "val", n=2, h=48, w=48)
    cfg = apply_overrides(preset("warmstart", "fusion"), {
        "out": str(tmp_path / "run"), "batch": 2, "steps": 4, "checkpoint_every": 2, "progress": False, "threads": 1,
        "data.crop": 32, "data.min_contrast": 0.0, "monitor.every": 2, "monitor.crops": 2,
        "monitor.val_dir": str(val), "monitor.val_every": 2, "monitor.val_metrics": ["EN", "TCR"],
        "monitor.select": "EN+TCR"})
    cfg.data.sets = [DatasetSpec(root=str(root))]
    assert cfg.ablation == "content" and cfg.optim.schedule == "cosine" and cfg.data.hflip
    final = train_fusion(cfg)
    recs = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    lrs = [r["lr"] for r in recs if r["type"] == "step"]
    assert lrs[-1] == pytest.approx(cfg.optim.lr_min) and lrs[0] < cfg.optim.lr and lrs == sorted(lrs, reverse=True)
    scores = [r["validation"]["select"] for r in recs if "validation" in r]
    assert len(scores) == 3
    best_state, meta = load_state(tmp_path / "run" / BEST_FILE)
    assert float(meta["score"]) == pytest.approx(max(scores), abs=1e-6)
    assert int(meta["step"]) == [0, 2, 4][int(np.argmax(scores))]
    assert set(best_state) == set(load_state(final)[0])


def test_bad_schedule_is_a_clear_error(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text('preset = "warmstart"\n[fusion]\noptim = { schedule = "linear" }\n[[fusion.data.sets]]\nroot = "x"\n')
    cfg = load_config("fusion", p)
    cfg.out = str(tmp_path / "run")
    root = _pairs(tmp_path / "d")
    cfg.data.sets = [DatasetSpec(root=str(root))]
    cfg = apply_overrides(cfg, {"steps": 1, "data.crop": 32, "monitor.every": 0, "progress": False})
    with pytest.raises(EmmaError, match="schedule"):
        train_fusion(cfg)


def test_fine_tune_the_shipped_model_by_name(tmp_path):
    """`--init-weights emma-default`: a user continues the shipped U-Fuser on their own pairs."""
    from emma_fusion.weights import load_model, packaged_models

    if "emma-default" not in packaged_models():
        pytest.skip("no shipped model in this checkout")
    root = _pairs(tmp_path / "train")
    cfg = apply_overrides(preset("warmstart", "fusion"), {
        "out": str(tmp_path / "run"), "batch": 1, "steps": 1, "progress": False, "threads": 1, "optim.lr": 1e-12,
        "data.crop": 32, "data.min_contrast": 0.0, "monitor.every": 0, "init_weights": "emma-default"})
    cfg.data.sets = [DatasetSpec(root=str(root))]
    out = load_state(train_fusion(cfg))[0]
    shipped = load_model("emma-default").state_dict()
    assert max(float((out[k] - shipped[k]).abs().max()) for k in shipped) < 1e-6  # lr ~0: still the shipped weights


def test_finetune_preset_is_the_shipped_models_last_recipe():
    """`--preset finetune` = scripts/train_warmstart.sh with phase 14's settings, from emma-default."""
    ws, ft = preset("warmstart", "fusion"), preset("finetune", "fusion")
    assert ft.init_weights == "emma-default" and ft.ablation == "content" and ft.steps == 600
    assert (ft.content_signed, ft.content_grad_weight, ft.content_grad_gain) == (True, 10.0, 1.15)
    assert (ft.content_vif_weight, ft.content_vif_max_gain, ft.content_qabf_weight) == (6.0, 1.3, 16.0)
    assert (ft.optim.lr, ft.optim.schedule, ft.optim.lr_min) == (1e-4, "cosine", 1e-5)
    assert ft.monitor.val_every == 150 and ft.monitor.select == ws.monitor.select == "VIF+Qabf+TCR"
    assert (ft.batch, ft.data.crop, ft.data.hflip) == (ws.batch, ws.data.crop, ws.data.hflip) == (8, 96, True)


def test_finetune_preset_runs_from_the_shipped_model(tmp_path, capsys, caplog):
    """`emma train fusion --preset finetune --data DIR`: the metric terms run and the result loads."""
    from emma_fusion.cli import app
    from emma_fusion.weights import load_model, packaged_models

    if "emma-default" not in packaged_models():
        pytest.skip("no shipped model in this checkout")
    root = _pairs(tmp_path / "train", h=56, w=64)
    cfg = tmp_path / "c.toml"
    cfg.write_text('preset = "finetune"\n[fusion]\nbatch = 1\nthreads = 1\nlog_every = 1\n'
                   'data = { crop = 48, min_contrast = 0.0 }\n')
    val = _pairs(tmp_path / "val", n=5, h=56, w=64)
    caplog.set_level("INFO", logger="emma_fusion.train.fusion")
    try:
        app(["train", "fusion", "--config", str(cfg), "--data", str(root), "--out", str(tmp_path / "run"),
             "--val", str(val), "--val-pairs", "0", "--steps", "1", "--no-progress"], standalone_mode=False)
    except SystemExit as e:
        assert e.code in (0, None)
    assert "validation: 5 of the 5 pairs" in caplog.text  # --val-pairs 0: every pair, not the default 4
    rec = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines() if '"step"' in x]
    step = next(r for r in rec if r["type"] == "step")
    assert np.isfinite(step["loss"]) and step["loss"] > step["content"] - 1e-6
    assert [r["step"] for r in rec if "validation" in r] == [0, 1]  # --val: scored at the start and the end
    assert "best by validation (VIF+Qabf+TCR)" in capsys.readouterr().out
    load_model(tmp_path / "run" / "ufuser.safetensors")
    load_model(tmp_path / "run" / "ufuser_best.safetensors")


def test_validation_pairs_count(tmp_path):
    from emma_fusion.train.fusion import _validation_pairs

    val = _pairs(tmp_path / "val", n=6, h=24, w=32)
    assert len(_validation_pairs(str(val), 0)) == 6  # 0: every pair
    assert len(_validation_pairs(str(val), 2)) == 2
    assert _validation_pairs("", 4) == []  # no folder, no validation
    with pytest.raises(EmmaError, match="val_pairs must be >= 0"):
        _validation_pairs(str(val), -1)


def test_val_option_needs_ir_and_vi_folders(tmp_path, capsys):
    from emma_fusion.cli import app

    root = _pairs(tmp_path / "train", h=56, w=64)
    with pytest.raises((EmmaError, SystemExit)) as e:
        app(["train", "fusion", "--preset", "finetune", "--data", str(root), "--val", str(tmp_path / "nope"),
             "--out", str(tmp_path / "run"), "--crop", "48", "--steps", "1", "--no-progress"], standalone_mode=False)
    assert f"no such folder: {tmp_path / 'nope' / 'ir'}" in (str(e.value) + capsys.readouterr().err)
    assert not (tmp_path / "run" / "ufuser.safetensors").exists()


def test_vif_term_with_too_small_crops_is_a_clear_error(tmp_path):
    """VIF's four scales need 41 pixels: a smaller crop is refused before training, in one line."""
    cfg = apply_overrides(preset("finetune", "fusion"), {
        "out": str(tmp_path / "run"), "steps": 1, "data.crop": 32, "progress": False, "init_weights": ""})
    cfg.data.sets = [DatasetSpec(root=str(_pairs(tmp_path / "d")))]
    with pytest.raises(EmmaError, match="content_vif_weight needs a crop of at least 41 pixels"):
        train_fusion(cfg)


@pytest.mark.slow
def test_train_warmstart_script_runs_on_the_shared_data(tmp_path):
    """scripts/train_warmstart.sh (the shipped model's recipe) with the env of phase 14 and the
    RoadScene-heavy validation: a valid TOML, 18 validation pairs, scored at the first and last step."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from conftest import shared_path

    data = shared_path("data")
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "INIT": "emma-default", "SIGNED": "true", "GRAD_WEIGHT": "10", "GAIN": "1.15", "VIF": "6",
           "VIF_CAP": "1.3", "QABF": "16", "VAL_ROADSCENE": "12", "SELECT": "VIF+Qabf+TCR+SCD", "THREADS": "1",
           "VIF_VI": "0.5"}
    run = tmp_path / "run"
    proc = subprocess.run(["bash", str(repo / "scripts" / "train_warmstart.sh"), str(data), str(run), "1"],
                          cwd=repo, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    toml = (run / "warmstart.toml").read_text()
    assert 'val_pairs = 18' in toml and 'select = "VIF+Qabf+TCR+SCD"' in toml and "content_vif_weight = 6" in toml
    assert "content_vif_visible_share = 0.5" in toml
    assert len(list((run / "val" / "ir").iterdir())) == 18
    recs = [json.loads(x) for x in (run / "fusion" / "log.jsonl").read_text().splitlines()]
    vals = [r for r in recs if "validation" in r]
    assert [r["step"] for r in vals] == [0, 1] and all(np.isfinite(r["validation"]["select"]) for r in vals)
    assert (run / "fusion" / "ufuser_best.safetensors").is_file()
