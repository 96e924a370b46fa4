"""Curriculum runs (``fusion.phases``): one TOML, several loss/learning-rate phases, exact resume."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from emma_fusion.errors import EmmaError
from emma_fusion.train import apply_overrides, load_config, preset, save_config, train_fusion
from emma_fusion.train.config import FusionConfig, crop_stream, phase_configs, phase_lr, restart_steps, validation_steps
from emma_fusion.train.data import DatasetSpec, PairedCrops
from emma_fusion.weights import load_state

RECIPE = Path(__file__).resolve().parents[1] / "configs" / "recipe-short.toml"


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pairs")
    rng = np.random.default_rng(5)
    for k in range(4):
        ir = (rng.random((40, 48)) * 60).astype(np.uint8)
        ir[10:22, 12 + k:20 + k] = 220  # a warm target
        vi = np.clip(np.linspace(40, 200, 48)[None, :] + rng.normal(0, 12, (40, 48)), 0, 255).astype(np.uint8)
        for sub, arr in (("ir", ir), ("vi", vi)):
            (root / sub).mkdir(exist_ok=True)
            Image.fromarray(arr).save(root / sub / f"p{k}.png")
    return root


def _cfg(root: Path, out: Path, phases: list[dict]):
    cfg = apply_overrides(preset("warmstart", "fusion"), {
        "out": str(out), "batch": 2, "steps": 0, "checkpoint_every": 2, "progress": False, "threads": 1,
        "data.crop": 32, "monitor.every": 0, "monitor.val_every": 0})
    cfg.data.sets = [DatasetSpec(root=str(root))]
    cfg.phases = phases
    return cfg


TWO = [{"steps": 2, "content_grad_weight": 2.0, "lr": 1e-3, "lr_min": 1e-4},
       {"steps": 3, "content_grad_weight": 10.0, "content_signed": True, "lr": 2e-4, "lr_min": 1e-5}]


def _steps(out: Path) -> list[dict]:
    return [r for r in map(json.loads, (out / "log.jsonl").read_text().splitlines()) if r["type"] == "step"]


def test_the_shipped_recipe_parses_into_four_phases_and_round_trips(tmp_path):
    cfg = load_config("fusion", RECIPE)
    phases = phase_configs(cfg)
    assert [s for s, _ in phases] == [0, 1500, 2100, 3000]
    assert sum(c.steps for _, c in phases) == 3600
    assert phase_lr(phases, 3000) == pytest.approx(1e-4)  # phase 4: a warm restart
    last = phases[-1][1]
    assert (last.content_signed, last.content_vif_weight, last.content_qabf_weight, last.content_sky_weight) == (True, 6.0, 16.0, 2.0)
    assert phases[0][1].content_vif_weight == 0 and not phases[0][1].content_signed
    assert load_config("fusion", save_config(cfg, tmp_path / "c.toml")) == cfg


def test_learning_rate_is_a_cosine_within_each_phase():
    phases = phase_configs(_cfg(Path("."), Path("x"), TWO))
    assert phase_lr(phases, 0) == pytest.approx(1e-3)
    assert phase_lr(phases, 1) == pytest.approx(1e-4 + 0.9e-3 * 0.5 * (1 + math.cos(math.pi / 2)))
    assert phase_lr(phases, 2) == pytest.approx(2e-4)  # the second phase restarts at its own lr
    assert phase_lr(phases, 5) == pytest.approx(1e-5) == phase_lr(phases, 99)


@pytest.mark.parametrize("bad, match", [
    ([{"steps": 2, "batch": 4}], "cannot change between phases"),
    ([{"lr": 1e-3}], "needs steps"),
    ([{"steps": 0}], "needs steps"),
    ([{"steps": 2.5}], "needs steps"),
    ([{"steps": 2}, {"steps": 2, "content_floor_weight": -2.0}], r"phases\[2\]: content_floor_weight must be a finite number >= 0"),
])
def test_bad_phases_are_one_line_errors(bad, match):
    with pytest.raises(EmmaError, match=match):
        phase_configs(_cfg(Path("."), Path("x"), bad))


def test_a_negative_weight_of_a_single_phase_run_is_an_error():
    with pytest.raises(EmmaError, match="fusion: content_scd_weight must be a finite number >= 0"):
        phase_configs(FusionConfig(content_scd_weight=-1.0))


def test_a_nan_weight_is_an_error_too():
    with pytest.raises(EmmaError, match="fusion: a2 must be a finite number >= 0, got nan"):
        phase_configs(FusionConfig(a2=float("nan")))


def test_explicit_steps_must_match_the_phases(tmp_path):
    text = RECIPE.read_text().replace('out = "runs/recipe"', 'out = "runs/recipe"\nsteps = 100')
    (tmp_path / "c.toml").write_text(text)
    with pytest.raises(EmmaError, match="phases add up to 3600"):
        load_config("fusion", tmp_path / "c.toml")


def test_each_phase_trains_with_its_own_loss_and_learning_rate(pairs, tmp_path):
    out = train_fusion(_cfg(pairs, tmp_path / "run", TWO)).parent
    recs = _steps(out)
    assert [r["step"] for r in recs] == [1, 2, 3, 4, 5]
    # logged after each step: the learning rate of the next one
    assert recs[0]["lr"] == pytest.approx(phase_lr(phase_configs(_cfg(pairs, out, TWO)), 1))
    assert recs[1]["lr"] == pytest.approx(2e-4)
    # texture weight 10 (signed) from step 3 on: the loss jumps well above phase 1's
    assert recs[2]["loss"] > 2 * recs[1]["loss"]


def _validated(cfg):
    return apply_overrides(cfg, {"monitor.every": 1, "monitor.val_every": 1, "monitor.val_dir": str(cfg.data.sets[0].root),
                                 "monitor.val_pairs": 2, "monitor.val_metrics": ["SD", "SF"], "monitor.select": "SD+SF"})


def _interrupt_and_resume(cfg, monkeypatch, crash_when) -> Path:
    """Run ``cfg`` until ``crash_when(indices, seed)`` of a training batch (Ctrl-C there), then
    resume it; the resumed run's final weights."""
    original = PairedCrops.batch

    def crashing(self, indices, seed=None):
        if crash_when(indices, seed):
            raise KeyboardInterrupt
        return original(self, indices, seed)

    monkeypatch.setattr(PairedCrops, "batch", crashing)
    with pytest.raises(KeyboardInterrupt):
        train_fusion(cfg)
    monkeypatch.setattr(PairedCrops, "batch", original)
    return train_fusion(cfg, resume=True)


@pytest.mark.parametrize("from_best", [False, True])
def test_resume_across_a_phase_boundary_equals_an_uninterrupted_run(pairs, tmp_path, monkeypatch, from_best):
    phases = [TWO[0], {**TWO[1], "from_best": True}] if from_best else TWO
    make = (lambda out: _validated(_cfg(pairs, out, phases))) if from_best else (lambda out: _cfg(pairs, out, phases))
    ref = train_fusion(make(tmp_path / "ref"))
    cfg = make(tmp_path / "cut")
    # step 4's batch: after the step-2 checkpoint and the switch
    resumed = _interrupt_and_resume(cfg, monkeypatch, lambda indices, seed: min(indices) >= 3 * cfg.batch)
    a, b = load_state(ref)[0], load_state(resumed)[0]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert [r["lr"] for r in _steps(tmp_path / "ref")] == [r["lr"] for r in _steps(tmp_path / "cut")]


def test_table2_config_runs_every_loss_on_the_same_budget():
    """configs/table2.toml: the whole transform stack, from random weights, one budget for every loss."""
    cfg = load_config("fusion", RECIPE.parent / "table2.toml")
    assert cfg.init_weights in (None, "") and cfg.transforms.per_step == 0 and cfg.sensing
    assert cfg.steps == cfg.monitor.val_every and cfg.data.crop % 16 == 0
    assert all("/test" not in s.root for s in cfg.data.sets)


def test_the_long_recipe_extends_the_short_one_with_emma_skys_terms():
    """configs/recipe-long.toml: the short recipe's phase 1 and data, longer later phases with
    the sky band and the warm-target term, training splits only."""
    short, long = load_config("fusion", RECIPE), load_config("fusion", RECIPE.parent / "recipe-long.toml")
    phases = phase_configs(long)
    assert [s for s, _ in phases] == [0, 1500, 3300, 4500, 5700, 6900]
    assert sum(c.steps for _, c in phases) == 8100
    assert dataclasses.replace(phases[0][1], out="") == dataclasses.replace(phase_configs(short)[0][1], out="")
    assert (long.data, long.monitor, long.seed, long.batch) == (short.data, short.monitor, short.seed, short.batch)
    for _, c in phases[2:]:
        assert (c.content_sky_weight, c.content_sky_band, c.content_target_weight) == (2.0, 5, 20.0)
    assert phase_lr(phases, 4500) == pytest.approx(1e-4) and phase_lr(phases, 3300) == pytest.approx(2e-4)
    assert all("/test" not in s.root for s in long.data.sets)


def test_the_chain_recipe_is_the_fourteen_phases_of_emma_default_in_one_run():
    """configs/emma-default-chain.toml: phase 1 is the ``warmstart`` preset's loss, the last two are
    the ``finetune`` preset's (documented as emma-default's phases 13-14), 13,500 steps, training splits only."""
    chain = load_config("fusion", RECIPE.parent / "emma-default-chain.toml")
    phases = phase_configs(chain)
    assert len(phases) == 14 and sum(c.steps for _, c in phases) == 13500
    assert [s for s, _ in phases][:4] == [0, 3000, 4200, 5400]
    loss = [f.name for f in dataclasses.fields(chain) if f.name.startswith("content_")]
    first, last = phases[0][1], phases[-1][1]
    warm, fine = preset("warmstart", "fusion"), preset("finetune", "fusion")
    assert all(getattr(first, k) == getattr(warm, k) for k in loss)
    assert all(getattr(last, k) == getattr(fine, k) for k in loss)
    assert phase_lr(phases, 0) == pytest.approx(1e-3) and phase_lr(phases, 12900) == pytest.approx(1e-4)
    assert [c.content_vif_max_gain for _, c in phases[6:9]] == [1.0, 1.0, 1.1]
    assert chain.monitor.select == "VIF+Qabf+TCR"
    assert all("/test" not in s.root for s in chain.data.sets)


def test_a_from_best_phase_starts_from_the_best_validated_weights_with_a_fresh_optimiser(pairs, tmp_path, monkeypatch):
    import emma_fusion.train.fusion as fusion

    seen = []
    original = fusion._restarts_from_best

    def spying(cfg, fuser, monitor, rt):
        hook = original(cfg, fuser, monitor, rt)

        def same_as_best():
            best, now = load_state(monitor.best_path)[0], fuser.state_dict()
            return all(torch.equal(now[k].cpu(), best[k].cpu()) for k in best)

        def wrapped(step, opt):
            before = step > 0 and same_as_best()
            rec = hook(step, opt)
            if rec is not None:
                seen.append((step, before, len(opt.state), same_as_best()))
            return rec
        return wrapped

    monkeypatch.setattr(fusion, "_restarts_from_best", spying)
    keep = fusion.ArtefactMonitor.keep_best  # only step 0 can be the best: phase 2 must go back to it
    monkeypatch.setattr(fusion.ArtefactMonitor, "keep_best", lambda self, step, val: step == 0 and keep(self, step, val))
    phases = [{"steps": 2, "content_grad_weight": 2.0, "lr": 3e-2, "lr_min": 1e-2},
              {"steps": 2, "content_grad_weight": 10.0, "content_signed": True, "lr": 1e-4, "from_best": True}]
    train_fusion(_validated(_cfg(pairs, tmp_path / "run", phases)))
    log = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    first = next(r["validation"] for r in log if r["type"] == "monitor" and r["step"] == 0)
    restarts = [r for r in log if r["type"] == "restart"]
    assert [r["step"] for r in restarts] == [2] and restarts[0]["select"] == pytest.approx(first["select"])
    assert seen == [(2, False, 0, True)]  # step 0's weights loaded over step 2's, Adam's moments cleared


@pytest.mark.parametrize("phases, match", [
    ([{"steps": 2, "from_best": True}], "first phase has no best"),
    ([{"steps": 2}, {"steps": 2, "from_best": "yes"}], "from_best must be true or false"),
])
def test_from_best_errors(phases, match):
    with pytest.raises(EmmaError, match=match):
        phase_configs(_cfg(Path("."), Path("x"), phases))


def test_from_best_needs_validation(pairs, tmp_path):
    phases = [{"steps": 1}, {"steps": 1, "from_best": True}]
    with pytest.raises(EmmaError, match="needs validation pairs"):
        train_fusion(apply_overrides(_cfg(pairs, tmp_path / "run", phases), {"monitor.every": 1}))


def test_phase_learning_rate_is_bit_for_bit_cosine_annealing():
    """A phase's learning rates equal CosineAnnealingLR's, not just approximately: a chained run
    replayed as a phase then updates its weights exactly as the separate run did."""
    phases = phase_configs(_cfg(Path("."), Path("x"), [{"steps": 40, "lr": 1e-3}, {"steps": 1200, "lr": 3e-4, "lr_min": 1e-5}]))
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=3e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=1200, eta_min=1e-5)
    separate = [opt.param_groups[0]["lr"]]
    for _ in range(1200):
        opt.step()
        sched.step()
        separate.append(opt.param_groups[0]["lr"])
    assert [phase_lr(phases, 40 + t) for t in range(1201)] == separate


def test_crop_stream_and_validation_steps_of_phases():
    cfg = _cfg(Path("."), Path("x"), [{"steps": 5, "val_every": 2}, {"steps": 4, "seed": 7, "val_every": 3},
                                      {"steps": 2}])
    cfg = apply_overrides(cfg, {"seed": 3, "monitor.val_every": 10})
    assert crop_stream(cfg) == [(3, 0), (7, 5), (7, 5)]  # phase 3 continues phase 2's stream
    assert validation_steps(cfg) == {0, 2, 4, 5, 8, 9, 11}  # each phase's own grid and its last step


@pytest.mark.parametrize("key, value", [("seed", -1), ("seed", "7"), ("channels_last", "yes"),
                                        ("val_every", 0), ("val_every", 2.5)])
def test_bad_phase_run_keys_are_one_line_errors(key, value):
    with pytest.raises(EmmaError, match=f"phases\\[2\\]: {key} must be"):
        phase_configs(_cfg(Path("."), Path("x"), [{"steps": 2}, {"steps": 2, key: value}]))


def test_a_curriculum_replays_chained_runs_bit_for_bit(pairs, tmp_path):
    """Two separate runs, the second from the first's best weights with its own seed, layout,
    schedule and validation interval, equal one curriculum whose second phase sets the same."""
    first = {"steps": 3, "content_grad_weight": 2.0, "lr": 3e-3, "lr_min": 1e-4}
    second = {"steps": 4, "content_grad_weight": 10.0, "content_signed": True, "lr": 1e-3, "lr_min": 1e-5}

    def run(out: Path, phases: list[dict], **over):
        cfg = _validated(_cfg(pairs, out, []))
        cfg = apply_overrides(cfg, {"monitor.val_every": 2, "channels_last": False, **over})
        if len(phases) == 1:  # a plain run: the phase's settings at the top level
            p = phases[0]
            top = {k: v for k, v in p.items() if k.startswith("content_")}
            cfg = apply_overrides(cfg, {**top, "steps": p["steps"], "optim.lr": p["lr"], "optim.lr_min": p["lr_min"],
                                        "optim.schedule": "cosine"})
        else:
            cfg.phases = phases
        return train_fusion(cfg)

    run(tmp_path / "a", [first])
    b = run(tmp_path / "b", [second], seed=7, channels_last=True, init_weights=str(tmp_path / "a" / "ufuser_best.safetensors"),
            **{"monitor.val_every": 3})
    one = run(tmp_path / "one", [first, {**second, "from_best": True, "seed": 7, "channels_last": True, "val_every": 3}])

    def same(x: Path, y: Path) -> bool:
        a, c = load_state(x)[0], load_state(y)[0]
        return a.keys() == c.keys() and all(torch.equal(a[k], c[k]) for k in a)

    assert same(tmp_path / "one" / "ufuser_start_phase02.safetensors", tmp_path / "a" / "ufuser_best.safetensors")
    assert same(one, b) and same(one.with_name("ufuser_best.safetensors"), b.with_name("ufuser_best.safetensors"))
    val = [r["step"] for r in map(json.loads, (tmp_path / "one" / "log.jsonl").read_text().splitlines())
           if r["type"] == "monitor" and r.get("validation")]
    assert val == [0, 2, 3, 6, 7]


def test_select_caps_per_phase_rescores_the_kept_weights(tmp_path):
    """A phase that counts TCR up to 1 judges later validations against the kept weights' score
    by its own sum; a phase's last-step validation is judged by that phase's sum."""
    from emma_fusion.nets import UFuser
    from emma_fusion.train.fusion import ArtefactMonitor, _phase_caps

    cfg = _cfg(Path("."), tmp_path, [{"steps": 4, "select_caps": False}, {"steps": 4}])
    cfg = apply_overrides(cfg, {"monitor.select": "VIF+TCR", "monitor.val_metrics": ["VIF", "TCR"]})
    mon = ArtefactMonitor.__new__(ArtefactMonitor)
    mon.cfg, mon.fuser, mon.best_path = cfg.monitor, UFuser(), tmp_path / "best.safetensors"
    mon.best, mon.best_scores, mon.caps_at = -math.inf, {}, _phase_caps(cfg)
    assert mon.keep_best(2, {"VIF": 0.5, "TCR": 1.4})  # uncapped 1.9
    assert not mon.keep_best(4, {"VIF": 0.95, "TCR": 0.9})  # 1.85: phase 1's last step, uncapped sum
    assert mon.keep_best(6, {"VIF": 0.6, "TCR": 1.2})  # capped 1.6 beats the kept 0.5 + 1
    assert mon.best == pytest.approx(1.6) and mon.best_scores == {"VIF": 0.6, "TCR": 1.2}


def test_the_emma_default_config_replays_the_fourteen_runs_as_they_were_run():
    """configs/emma-default.toml: each phase after the first a separate run as recorded in
    docs/TRAINING_HISTORY.md (its seed, layout, validation interval, selection sum), training splits only."""
    cfg = load_config("fusion", RECIPE.parent / "emma-default.toml")
    phases = phase_configs(cfg)
    assert [c.steps for _, c in phases] == [3000, 1200, 1200, 900, 900, 900, 900, 900] + [600] * 6
    assert restart_steps(cfg) == [s for s, _ in phases[1:]]
    assert [seed for seed, _ in crop_stream(cfg)] == [0] * 7 + [1, 5, 12, 21, 31, 42, 51]
    assert [first for _, first in crop_stream(cfg)] == [s for s, _ in phases]  # every phase restarts its crops
    assert [c.channels_last for _, c in phases] == [False, False] + [True] * 12
    assert [c.monitor.val_every for _, c in phases] == [250, 250] + [150] * 12
    assert [c.monitor.select_caps for _, c in phases] == [False] * 6 + [True] * 8
    assert [c.optim.lr for _, c in phases][:4] == [1e-3, 3e-4, 3e-4, 1e-4]
    assert [(c.content_vif_weight, c.content_qabf_weight, c.content_vif_max_gain) for _, c in phases][6:] == \
        [(4.0, 8.0, 1.0)] * 2 + [(4.0, 8.0, 1.1)] + [(4.0, 12.0, 1.3)] * 3 + [(6.0, 16.0, 1.3)] * 2
    assert [c.content_grad_gain for _, c in phases][3:6] == [1.0, 1.1, 1.15]
    assert all("/test" not in s.root for s in cfg.data.sets) and cfg.monitor.val_pairs == 6


def test_a_layout_set_by_every_phase_overrides_the_runs(pairs, tmp_path):
    """Phases that all say ``channels_last = true`` in a run that says false train as a
    channels-last run does (the run-level key is only the default)."""
    def run(out: Path, phases: list[dict], cl: bool) -> dict:
        cfg = apply_overrides(_cfg(pairs, out, phases), {"channels_last": cl})
        return load_state(train_fusion(cfg))[0]

    cl = [{**p, "channels_last": True} for p in TWO]
    a, b, c = run(tmp_path / "a", cl, False), run(tmp_path / "b", TWO, True), run(tmp_path / "c", TWO, False)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)  # the layout does change the rounding here


def test_resume_across_a_layout_switch_equals_an_uninterrupted_run(pairs, tmp_path, monkeypatch):
    phases = [TWO[0], {**TWO[1], "channels_last": True, "seed": 3}]

    def make(out: Path):
        return apply_overrides(_cfg(pairs, out, phases), {"channels_last": False})

    ref = train_fusion(make(tmp_path / "ref"))
    cfg = make(tmp_path / "cut")
    # step 4's batch: phase 2's second (its stream, seed 3, restarts at index 0), after the step-2 checkpoint
    resumed = _interrupt_and_resume(cfg, monkeypatch, lambda indices, seed: seed == 3 and min(indices) >= cfg.batch)
    a, b = load_state(ref)[0], load_state(resumed)[0]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_resumed_log_keeps_one_restart_record_per_phase_start(tmp_path):
    """Resuming from the checkpoint at a phase start makes that phase's restart again; its record
    from the interrupted run goes, so the log holds one restart record per phase start."""
    from emma_fusion.train.loop import JsonlLog

    path = tmp_path / "log.jsonl"
    old = [{"type": "start", "step": 0}, {"type": "monitor", "step": 150}, {"type": "checkpoint", "step": 150},
           {"type": "restart", "step": 150}, {"type": "train", "step": 160}]
    path.write_text("".join(json.dumps(r) + "\n" for r in old) + '{"type": "tra')  # cut by a crash
    log = JsonlLog(path, True, 150)
    log.write({"type": "restart", "step": 150})
    log.close()
    kept = [json.loads(x) for x in path.read_text().splitlines()]
    assert kept == old[:3] + [{"type": "restart", "step": 150}]
