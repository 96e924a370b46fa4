"""The trainer: configs, exact resume, DDP replicas, quality gate, artefact monitor, real-data smoke test."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import ROOT, shared_path
from emma_fusion.train.data import DatasetSpec, PairedCrops
from emma_fusion.errors import EmmaError
from emma_fusion.train import apply_overrides, load_config, preset, save_config, train_fusion, train_sensing
from emma_fusion.train.config import config_to_toml
from emma_fusion.train.fusion import ArtefactMonitor, check_gate
from emma_fusion.train.loop import Runtime, StopTraining
from emma_fusion.train.sensing import quality_gate
from emma_fusion.weights import load_model, load_state, packaged_models


def _blobs(h: int, w: int, seed: int) -> np.ndarray:
    """A smooth random texture (uint8) that passes the low-contrast filter."""
    rng = np.random.default_rng(seed)
    small = rng.random((h // 4 + 1, w // 4 + 1))
    img = np.kron(small, np.ones((4, 4)))[:h, :w]
    return (30 + 200 * img).astype(np.uint8)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("pairs")
    for k in range(6):
        ir, vi = _blobs(48, 56, k), _blobs(48, 56, 100 + k)
        for sub, arr in (("ir", ir), ("vi", vi), ("fused", ((ir.astype(int) + vi) // 2).astype(np.uint8))):
            (root / sub).mkdir(exist_ok=True)
            Image.fromarray(arr).save(root / sub / f"p{k}.png")
    return root, root / "fused"


def _sensing_cfg(data, out, **kw):
    root, fused = data
    cfg = apply_overrides(preset("cpu", "sensing"), {
        "out": str(out), "width": 4, "batch": 2, "steps": 6, "checkpoint_every": 2, "progress": False,
        "gate_crops": 4, "holdout": 0.2, "data.crop": 32, "data.noise_std": 0.05, "optim.lr": 1e-3, "threads": 1, **kw})
    cfg.data.sets = [DatasetSpec(root=str(root), fused=[str(fused)])]
    return cfg


def _fusion_cfg(data, out, sensing, **kw):
    root, _ = data
    cfg = apply_overrides(preset("cpu", "fusion"), {
        "out": str(out), "batch": 1, "steps": 6, "checkpoint_every": 2, "progress": False, "sensing": str(sensing),
        "skip_gate": True, "data.crop": 32, "monitor.every": 2, "monitor.crops": 2, "threads": 1,
        "transforms.per_step": 2, **kw})
    cfg.data.sets = [DatasetSpec(root=str(root))]
    return cfg


@pytest.fixture(scope="module")
def sensing_run(tiny_data, tmp_path_factory) -> Path:
    return train_sensing(_sensing_cfg(tiny_data, tmp_path_factory.mktemp("runs") / "sensing"))


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_state(path)[0]


def _assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


# -- configs -------------------------------------------------------------------------------
@pytest.mark.parametrize("stage", ["sensing", "fusion"])
@pytest.mark.parametrize("name", ["paper", "cpu", "warmstart", "finetune"])
def test_config_toml_roundtrip(tmp_path, stage, name):
    cfg = preset(name, stage)
    cfg.data.sets = [DatasetSpec(root="a/b", fused=["x", 'q"uote'], weight=2.5)]
    path = save_config(cfg, tmp_path / "c.toml")
    back = load_config(stage, path)
    assert back == cfg
    assert config_to_toml(back) == path.read_text()


def test_paper_preset_matches_the_authors_code():
    s, f = preset("paper", "sensing"), preset("paper", "fusion")
    assert (s.width, s.batch, s.epochs, s.optim.lr, s.optim.lr_step_epochs, s.optim.lr_gamma) == (64, 64, 40, 1e-4, 10, 0.5)
    assert (s.data.noise_std, s.data.crop, s.data.grid_stride, s.optim.schedule) == (0.0, 128, 200, "step")
    # the released code (batch 4, 120 epochs), not the paper's text (batch 8, 100 epochs)
    assert (f.batch, f.epochs, f.optim.lr, f.optim.lr_step_epochs, f.optim.lr_gamma, f.optim.schedule) == (4, 120, 1e-4, 20, 0.5, "step")
    assert (f.data.crop, f.data.grid_stride, f.data.min_contrast, f.data.hflip, f.optim.weight_decay) == (128, 200, 0.1, False, 0.0)
    assert (f.a1, f.a2, f.ablation, f.transforms.per_step, f.init_weights, f.content_weight) == (1.0, 0.1, "full", 0, "", 0.0)
    t = f.transforms
    assert (t.n_shift, t.n_rot, t.n_flip, t.angles, t.include_identity) == (3, 3, 3, [10.0, 130.0, 250.0], True)


def test_grid_epochs_and_the_expected_time_line(tiny_data, sensing_run, tmp_path, caplog):
    caplog.set_level("INFO", logger="emma_fusion.train.notes")
    out = tmp_path / "grid"
    train_fusion(_fusion_cfg(tiny_data, out, sensing_run, **{"data.grid_stride": 16, "monitor.every": 0}))
    recs = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    start = next(r for r in recs if r["type"] == "start")
    assert start["steps_per_epoch"] == 6 * 4  # 48 x 56 images, 32 px patches at stride 16: 2 x 2 each, batch 1
    est = [r for r in recs if r["type"] == "estimate"]
    assert len(est) == 1 and est[0]["step"] == 4 and est[0]["steps_left"] == 6
    assert est[0]["hours"] == pytest.approx(est[0]["sec_per_step"] * 6 / 3600)
    lines = [r.getMessage() for r in caplog.records if r.name == "emma_fusion.train.notes" and "s/step" in r.getMessage()]
    assert len(lines) == 1 and lines[0].startswith("fusion: about 0.0 h (0 min) for 6 steps at ")


def test_config_file_overrides_preset_and_rejects_typos(tmp_path):
    p = tmp_path / "run.toml"
    p.write_text('preset = "cpu"\n[fusion]\nsteps = 7\n[fusion.optim]\nlr = 0.5\n[[fusion.data.sets]]\nroot = "d"\n')
    cfg = load_config("fusion", p)
    assert cfg.steps == 7 and cfg.optim.lr == 0.5 and cfg.batch == preset("cpu", "fusion").batch
    assert cfg.data.sets[0].root == "d"
    with pytest.raises(EmmaError, match="no \\[sensing\\] table"):
        load_config("sensing", p)
    p.write_text("[fusion]\nstepz = 7\n")
    with pytest.raises(EmmaError, match="stepz"):
        load_config("fusion", p)
    p.write_text('[fusion]\nsteps = "7"\n')
    with pytest.raises(EmmaError, match="int"):
        load_config("fusion", p)


# -- resume ----------------------------------------------------------------------------------
def test_sensing_resume_equals_uninterrupted(tiny_data, tmp_path, sensing_run):
    full = sensing_run  # 6 steps in one go
    cut = _sensing_cfg(tiny_data, tmp_path / "cut", steps=4)
    train_sensing(cut)
    resumed = train_sensing(apply_overrides(cut, {"steps": 6}), resume=True)
    for f in ("A_ir.safetensors", "A_vi.safetensors"):
        _assert_same(_weights(full / f), _weights(resumed / f))
    steps = [json.loads(line)["step"] for line in (resumed / "log.jsonl").read_text().splitlines()
             if json.loads(line)["type"] == "step"]
    assert steps == [1, 2, 3, 4, 5, 6]


def test_fusion_resume_after_crash_equals_uninterrupted(tiny_data, sensing_run, tmp_path, monkeypatch):
    ref = train_fusion(_fusion_cfg(tiny_data, tmp_path / "ref", sensing_run))
    cfg = _fusion_cfg(tiny_data, tmp_path / "crash", sensing_run)
    original = PairedCrops.batch

    def crashing(self, indices, seed=None):
        if min(indices) >= 5 * cfg.batch:  # the batch of step 5: after the step-4 checkpoint
            raise KeyboardInterrupt
        return original(self, indices, seed)

    monkeypatch.setattr(PairedCrops, "batch", crashing)
    with pytest.raises(KeyboardInterrupt):
        train_fusion(cfg)
    assert not (tmp_path / "crash" / "ufuser.safetensors").exists()
    monkeypatch.setattr(PairedCrops, "batch", original)
    with pytest.raises(EmmaError, match="already holds a run"):
        train_fusion(cfg)
    resumed = train_fusion(cfg, resume=True)
    _assert_same(_weights(ref), _weights(resumed))


def _sigint_at(step_to_hit: int):
    """A monitor hook that sends this process SIGINT (as Ctrl-C does) after ``step_to_hit``."""
    import signal

    def hook(step):
        if step == step_to_hit:
            os.kill(os.getpid(), signal.SIGINT)
        return None

    return hook


def test_ctrl_c_saves_the_current_step_and_resume_is_exact(tiny_data, sensing_run, tmp_path, monkeypatch):
    """Ctrl-C between checkpoints (every 2 steps) saves step 3 on the way out; resuming gives the same weights."""
    from emma_fusion.train import fusion as fusion_mod
    from emma_fusion.train.loop import TrainingInterrupted

    ref = train_fusion(_fusion_cfg(tiny_data, tmp_path / "ref", sensing_run, **{"monitor.every": 0}))
    cfg = _fusion_cfg(tiny_data, tmp_path / "int", sensing_run, **{"monitor.every": 0})
    original_stage = fusion_mod.Stage
    monkeypatch.setattr(fusion_mod, "Stage", lambda **kw: original_stage(**{**kw, "monitor": _sigint_at(3)}))
    with pytest.raises(TrainingInterrupted, match="step 3") as info:
        train_fusion(cfg)
    assert info.value.step == 3
    assert (tmp_path / "int" / "checkpoints" / "step_00000003" / "state.pt").is_file()
    recs = [json.loads(x) for x in (tmp_path / "int" / "log.jsonl").read_text().splitlines()]
    assert {"type": "interrupted", "step": 3} in recs
    monkeypatch.setattr(fusion_mod, "Stage", original_stage)
    resumed = train_fusion(cfg, resume=True)
    _assert_same(_weights(ref), _weights(resumed))


def test_cli_train_interrupt_exits_130_and_resume_says_where(tiny_data, tmp_path, monkeypatch, capsys):
    from emma_fusion.cli import main
    from emma_fusion.train import sensing as sensing_mod

    root, fused = tiny_data
    args = ["train", "sensing", "--preset", "cpu", "--out", str(tmp_path / "s"), "--data", str(root), "--fused", str(fused),
            "--width", "4", "--batch", "2", "--steps", "4", "--crop", "32", "--threads", "1", "--no-progress"]
    original_stage = sensing_mod.Stage
    monkeypatch.setattr(sensing_mod, "Stage", lambda **kw: original_stage(**{**kw, "monitor": _sigint_at(1)}))
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("interrupted: checkpoint saved at step 1") and "--resume" in err[-1]
    monkeypatch.setattr(sensing_mod, "Stage", original_stage)
    with pytest.raises(SystemExit) as e:
        main([*args, "--resume"])
    passed = json.loads((tmp_path / "s" / "gate.json").read_text())["passed"]
    assert e.value.code == (0 if passed else 1)  # a failed quality gate is a failed command
    out = capsys.readouterr()
    assert "resuming sensing from step 1" in out.err
    assert f"quality gate: {'passed' if passed else 'FAILED'}" in out.out


def test_resume_without_checkpoint_is_an_error(tiny_data, sensing_run, tmp_path):
    with pytest.raises(EmmaError, match="nothing to resume"):
        train_fusion(_fusion_cfg(tiny_data, tmp_path / "none", sensing_run), resume=True)


# -- quality gate and monitor ----------------------------------------------------------------
class _Identity(torch.nn.Module):
    def forward(self, x):
        return x


def test_quality_gate_scores_against_identity(tiny_data):
    root, fused = tiny_data
    held = PairedCrops([DatasetSpec(root=str(root), fused=[str(fused)])], 32, with_fused=True)
    rep = quality_gate({"ir": _Identity(), "vi": _Identity()}, held, 4, 0.8, torch.device("cpu"))
    assert rep["ir"]["ratio"] == pytest.approx(1.0) and not rep["passed"]
    assert quality_gate({"ir": _Identity(), "vi": _Identity()}, held, 4, 1.0, torch.device("cpu"))["passed"]


def test_stage2_refuses_failed_or_missing_gate(tiny_data, sensing_run, tmp_path):
    gate = json.loads((sensing_run / "gate.json").read_text())
    assert {"ir", "vi", "passed", "ratio_max"} <= gate.keys()
    bad = tmp_path / "gate.json"
    bad.write_text(json.dumps({"passed": False}))
    with pytest.raises(EmmaError, match="failed their quality gate"):
        check_gate(bad, skip=False)
    assert check_gate(bad, skip=True) == {"passed": False}
    with pytest.raises(EmmaError, match="--skip-gate"):
        check_gate(None, skip=False)
    if not gate["passed"]:
        with pytest.raises(EmmaError, match="quality gate"):
            train_fusion(_fusion_cfg(tiny_data, tmp_path / "r", sensing_run, skip_gate=False))



def test_stage2_with_the_packaged_sensing_nets(tiny_data, tmp_path):
    """`--sensing emma-sensing` needs no stage 1: the shipped pair loads, passes its recorded gate and trains."""
    models = packaged_models()
    if "emma-sensing-ir" not in models:
        pytest.skip("no packaged sensing nets in this checkout")
    assert models["emma-sensing-ir"]["gate"]["passed"] and models["emma-sensing-ir"]["arch"] == "sensing-unet"
    for m in ("ir", "vi"):  # float16 kernels, float32 batch-norm statistics: finite outputs in [0, 1]-ish range
        net = load_model(f"emma-sensing-{m}", arch="sensing-unet")
        out = net(torch.rand(1, 1, 32, 32))
        assert next(net.parameters()).dtype == torch.float32 and torch.isfinite(out).all()
    run = train_fusion(_fusion_cfg(tiny_data, tmp_path / "r", "emma-sensing", skip_gate=False, steps=2))
    assert run.is_file() and load_model(run) is not None
    with pytest.raises(EmmaError, match="does not fit UFuser"):
        load_model("emma-sensing-ir")

class _Stripes(torch.nn.Module):
    """A 'fuser' that writes one-pixel stripes (the failure seen in the CPU pilot)."""

    def forward(self, i, v):
        f = (i + v) / 2
        f[..., ::2] = 1.0
        f[..., 1::2] = 0.0
        return f


class _Average(torch.nn.Module):
    def forward(self, i, v):
        return (i + v) / 2


def test_monitor_flags_stripes_and_stops(tiny_data, tmp_path):
    cfg = _fusion_cfg(tiny_data, tmp_path, "", **{"monitor.patience": 2})
    ds = PairedCrops(cfg.data.sets, 32)
    batch = ds.batch(range(2))
    rt = Runtime(device=torch.device("cpu"))
    good = ArtefactMonitor(cfg, _Average(), {"ir": _Identity(), "vi": _Identity()}, batch, rt)
    rec = good(2)
    assert rec["violations"] == [] and rec["hf_ratio"] < 1 and rec["sense_ratio_ir"] == pytest.approx(1.0)
    assert good(3) is None  # only every `monitor.every` steps
    bad = ArtefactMonitor(cfg, _Stripes(), None, batch, rt)
    assert bad(2)["hf_ratio"] > cfg.monitor.hf_max
    with pytest.raises(StopTraining, match="fooling"):
        bad(4)



class _Mostly(torch.nn.Module):
    """A fuser whose output is 90% infrared: nets that simply copy it decode it well from the start."""

    def __init__(self, w: float = 0.9) -> None:
        super().__init__()
        self.w = w

    def forward(self, i, v):
        return self.w * i + (1 - self.w) * v


def test_monitor_judges_by_the_start_when_the_nets_know_the_model(tiny_data, tmp_path):
    """Sensing nets trained on the starting model's outputs (emma-sensing) are no alarm at step 0."""
    cfg = _fusion_cfg(tiny_data, tmp_path, "", **{"monitor.patience": 1})
    batch = PairedCrops(cfg.data.sets, 32).batch(range(2))
    rt = Runtime(device=torch.device("cpu"))
    fuser = _Mostly()
    mon = ArtefactMonitor(cfg, fuser, {"ir": _Identity(), "vi": _Identity()}, batch, rt)
    ir, vi = batch["ir"], batch["vi"]
    assert float(torch.nn.functional.mse_loss(fuser(ir, vi), ir)) < float(torch.nn.functional.mse_loss((ir + vi) / 2, ir))
    rec = mon(2)  # A_ir's error on f is 4% of its error on the average, but equal to the start's
    assert rec["sense_ratio_ir"] == pytest.approx(1.0) and rec["violations"] == []
    fuser.w = 0.99  # moving further towards what A_ir decodes best than the start did is flagged
    with pytest.raises(StopTraining, match="A_ir"):
        mon(4)

_CLI = "import sys; from emma_fusion.cli import main; main(sys.argv[1:])"


# -- the CLI -----------------------------------------------------------------------------------
def test_cli_train_runs_both_stages_from_a_toml_file(tiny_data, tmp_path, capsys):
    root, fused = tiny_data
    toml = tmp_path / "run.toml"
    toml.write_text(f"""preset = "cpu"
[sensing]
out = "{tmp_path / 's'}"
width = 4
batch = 2
steps = 2
holdout = 0.2
gate_crops = 2
progress = false
[sensing.data]
crop = 32
[[sensing.data.sets]]
root = "{root}"
fused = ["{fused}"]
[fusion]
out = "{tmp_path / 'f'}"
sensing = "{tmp_path / 's'}"
skip_gate = true
batch = 1
steps = 2
progress = false
[fusion.data]
crop = 32
[[fusion.data.sets]]
root = "{root}"
""")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = lambda *a: subprocess.run([sys.executable, "-c", _CLI, *a], capture_output=True, text=True, env=env)
    r = run("train", "sensing", "--config", str(toml), "--threads", "1")
    passed = json.loads((tmp_path / "s" / "gate.json").read_text())["passed"]
    assert r.returncode == (0 if passed else 1), r.stderr
    assert "quality gate" in r.stdout
    r = run("train", "fusion", "--config", str(toml), "--threads", "1", "--steps", "3")
    assert r.returncode == 0, r.stderr
    assert load_config("fusion", tmp_path / "f" / "config.toml").steps == 3
    from emma_fusion.cli import main

    with pytest.raises(SystemExit) as e:
        main(["train", "fusion", "--out", str(tmp_path / "x"), "--preset", "cpu"])
    assert e.value.code == 2
    assert "error: no training data" in capsys.readouterr().err


# -- data parallel -------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_DDP_WORKER = r"""
import sys, torch
torch.set_num_threads(1)
from emma_fusion.train import fusion, sensing
from emma_fusion.train.config import load_config
kept = {}
orig_run = fusion.run_stage
def spy(cfg, stage, rt, resume=False):
    kept.update(stage.models)
    return orig_run(cfg, stage, rt, resume)
fusion.run_stage = spy
sensing.run_stage = spy
stage, cfg_path, dump = sys.argv[1:4]
cfg = load_config(stage, cfg_path)
(sensing.train_sensing if stage == "sensing" else fusion.train_fusion)(cfg)
rank = int(__import__("os").environ["RANK"])
torch.save({k: {n: p.detach().clone() for n, p in m.named_parameters()} for k, m in kept.items()}, f"{dump}.{rank}")
"""


@pytest.mark.parametrize("stage", [pytest.param("sensing", marks=pytest.mark.slow), "fusion"])
def test_ddp_two_gloo_processes_hold_identical_replicas(tiny_data, sensing_run, tmp_path, stage):
    if stage == "sensing":
        cfg = _sensing_cfg(tiny_data, tmp_path / "run", steps=3, checkpoint_every=100)
    else:
        cfg = _fusion_cfg(tiny_data, tmp_path / "run", sensing_run, steps=3, checkpoint_every=100)
    cfg_path = save_config(cfg, tmp_path / "cfg.toml")
    worker = tmp_path / "worker.py"
    worker.write_text(_DDP_WORKER)
    port = _free_port()
    procs = []
    for rank in range(2):
        env = {**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2",
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "OMP_NUM_THREADS": "1",
               "PYTHONPATH": str(ROOT / "src")}
        procs.append(subprocess.Popen([sys.executable, str(worker), stage, str(cfg_path), str(tmp_path / "dump")],
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), "\n".join(outs)
    a, b = (torch.load(tmp_path / f"dump.{r}", weights_only=True) for r in range(2))
    assert a.keys() == b.keys() and a
    for net in a:
        _assert_same(a[net], b[net])
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert log[0]["world"] == 2 and [r["step"] for r in log if r["type"] == "step"] == [1, 2, 3]
    # the replicas saw different crops: a single process with the same seed trains differently
    single = (train_sensing if stage == "sensing" else train_fusion)(apply_overrides(cfg, {"out": str(tmp_path / "one")}))
    name = "A_ir" if stage == "sensing" else "ufuser"
    one = _weights(single / f"{name}.safetensors" if stage == "sensing" else single)
    assert any(not torch.equal(one[k], a[name][k]) for k in a[name])


# -- smoke test on real pairs ------------------------------------------------------------------
def test_smoke_both_stages_on_real_pairs(tmp_path):
    rs = shared_path("data", "RoadScene", "train")
    fused = shared_path("data", "results", "IFCNN", "RoadScene_train")
    test_ir = shared_path("data", "RoadScene", "test", "ir", "FLIR_00211.jpg")
    sets = [DatasetSpec(root=str(rs), fused=[str(fused)])]
    s_cfg = apply_overrides(preset("cpu", "sensing"), {
        "out": str(tmp_path / "s"), "width": 4, "batch": 4, "steps": 20, "progress": False, "gate_crops": 4,
        "data.crop": 32, "optim.lr": 2e-3, "checkpoint_every": 100, "threads": 1})
    s_cfg.data.sets = sets
    s_dir = train_sensing(s_cfg)
    f_cfg = apply_overrides(preset("cpu", "fusion"), {
        "out": str(tmp_path / "f"), "batch": 2, "steps": 12, "progress": False, "sensing": str(s_dir),
        "skip_gate": True, "data.crop": 32, "optim.lr": 2e-3, "checkpoint_every": 100, "threads": 1,
        "monitor.every": 6, "monitor.crops": 2})
    f_cfg.data.sets = [DatasetSpec(root=str(rs))]
    weights = train_fusion(f_cfg)
    for run in (s_dir, weights.parent):
        losses = [r["loss"] for r in map(json.loads, (run / "log.jsonl").read_text().splitlines()) if r["type"] == "step"]
        assert np.mean(losses[-3:]) < np.mean(losses[:3]), (run.name, losses)
    assert type(load_model(weights)).__name__ == "UFuser"
    out = tmp_path / "fused.png"
    from emma_fusion.cli import main

    vi = test_ir.parent.parent / "vi" / test_ir.name
    with pytest.raises(SystemExit) as e:
        main(["fuse", str(test_ir), str(vi), "-o", str(out), "--weights", str(weights), "--threads", "1"])
    assert e.value.code in (0, None) and out.is_file()
    assert np.asarray(Image.open(out)).std() > 1


def test_validation_folder_is_scored_in_the_log(tmp_path):
    """monitor.val_dir: whole validation pairs are fused and scored with metrics, logged per run."""
    import json

    from emma_fusion.train import load_config, train_fusion
    from emma_fusion.io import write_image

    rng = np.random.default_rng(0)
    for d in ("train", "val"):
        for k in range(3):
            base = rng.random((48, 56), dtype=np.float32)
            write_image(tmp_path / d / "ir" / f"p{k}.png", np.clip(base + 0.3 * rng.random((48, 56), dtype=np.float32), 0, 1))
            write_image(tmp_path / d / "vi" / f"p{k}.png", np.clip(base * 0.7 + 0.1, 0, 1))
    cfg_file = tmp_path / "run.toml"
    cfg_file.write_text(f"""
preset = "cpu"
[fusion]
out = "{tmp_path / 'run'}"
ablation = "III"
batch = 2
steps = 4
checkpoint_every = 100
progress = false
threads = 1
monitor = {{ every = 2, crops = 2, val_dir = "{tmp_path / 'val'}", val_pairs = 2, val_every = 2, val_metrics = ["EN", "VIF"] }}
data = {{ crop = 32, min_contrast = 0.0, sets = [{{ root = "{tmp_path / 'train'}" }}] }}
""")
    train_fusion(load_config("fusion", cfg_file))
    recs = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    vals = [r["validation"] for r in recs if "validation" in r]
    assert len(vals) == 3  # steps 0, 2 and 4
    assert set(vals[0]) == {"EN", "VIF", "select"} and all(np.isfinite(v["EN"]) and v["EN"] > 0 for v in vals)
    assert all(v["select"] == v["VIF"] for v in vals)  # no monitor.select: the default sum, VIF+Qabf, has VIF here
    assert (tmp_path / "run" / "ufuser_best.safetensors").is_file()
