"""Bad `emma train` input (options, TOML values, initial weights): one `error:` line, exit code 2,
before any work is done and before the run folder exists."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from emma_fusion.cli import main
from emma_fusion.errors import EmmaError
from emma_fusion.train import apply_overrides, load_config, preset


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> Path:
    """Two tiny pairs in ``ir/`` and ``vi/`` (never read: every case fails before the data)."""
    root = tmp_path_factory.mktemp("pairs")
    rng = np.random.default_rng(0)
    for k in range(2):
        for sub in ("ir", "vi"):
            (root / sub).mkdir(exist_ok=True)
            Image.fromarray((rng.random((40, 48)) * 255).astype(np.uint8)).save(root / sub / f"p{k}.png")
    return root


@pytest.fixture(autouse=True)
def no_work(monkeypatch):
    """Training that gets as far as choosing a device has started work: fail loudly (exit 1, not 2)."""
    from emma_fusion.train import fusion, sensing

    def started(cfg):
        raise RuntimeError("training started")

    monkeypatch.setattr(fusion, "setup_runtime", started)
    monkeypatch.setattr(sensing, "setup_runtime", started)


def _refused(capsys, args: list[str], out: Path, match: str) -> str:
    """Run ``emma ARGS``; assert exit 2, one ``error:`` line containing ``match``, and no ``out``."""
    with pytest.raises(SystemExit) as e:
        main(args)
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2, err
    assert len(err) == 1 and err[0].startswith("error: ") and match in err[0], err
    assert not out.exists()
    return err[0]


def _base(stage: str, out: Path, data: Path) -> list[str]:
    return ["train", stage, "--preset", "cpu", "--out", str(out), "--data", str(data), "--no-progress"]


@pytest.mark.parametrize("stage, option, value, match", [
    ("fusion", "--steps", "-1", "steps must be a whole number >= 0 (0: run for epochs), got -1"),
    ("fusion", "--epochs", "-3", "epochs must be a finite number > 0, got -3.0"),
    ("fusion", "--epochs", "0", "epochs must be a finite number > 0, got 0.0"),
    ("fusion", "--lr", "inf", "optim.lr must be a finite number > 0, got inf"),
    ("fusion", "--lr", "nan", "optim.lr must be a finite number > 0, got nan"),
    ("fusion", "--lr", "-1", "optim.lr must be a finite number > 0, got -1.0"),
    ("fusion", "--max-seconds", "-1", "max_seconds must be a finite number >= 0 (0: no limit), got -1.0"),
    ("fusion", "--batch", "0", "batch must be a whole number >= 1, got 0"),
    ("fusion", "--threads", "-1", "threads must be a whole number >= 0 (0: auto), got -1"),
    ("fusion", "--checkpoint-every", "0", "checkpoint_every must be a whole number >= 1, got 0"),
    ("fusion", "--seed", "-1", "seed must be a whole number >= 0, got -1"),
    ("fusion", "--crop", "0", "data.crop must be a whole number >= 1, got 0"),
    ("sensing", "--seed", "-1", "config sensing: seed must be a whole number >= 0, got -1"),
    ("sensing", "--batch", "0", "batch must be a whole number >= 1, got 0"),
    ("sensing", "--lr", "nan", "optim.lr must be a finite number > 0, got nan"),
    ("sensing", "--width", "-4", "width must be a whole number >= 1, got -4"),
    ("sensing", "--width", "0", "width must be a whole number >= 1, got 0"),
    ("sensing", "--noise-std", "-1", "data.noise_std must be a finite number >= 0, got -1.0"),
    ("sensing", "--noise-std", "nan", "data.noise_std must be a finite number >= 0, got nan"),
    ("sensing", "--max-seconds", "inf", "max_seconds must be a finite number >= 0 (0: no limit), got inf"),
])
def test_a_bad_option_is_one_line_before_any_work(pairs, tmp_path, capsys, stage, option, value, match):
    out = tmp_path / "run"
    line = _refused(capsys, [*_base(stage, out, pairs), option, value], out, match)
    assert line.startswith(f"error: config {stage}: ")


@pytest.mark.parametrize("stage, toml, match", [
    ("fusion", "steps = -5", "config fusion: steps must be a whole number >= 0"),
    ("fusion", "epochs = -1.0", "config fusion: epochs must be a finite number > 0, got -1.0"),
    ("fusion", "steps = 0\nepochs = 0.0", "config fusion: epochs must be a finite number > 0, got 0.0"),
    ("fusion", "batch = -2", "config fusion: batch must be a whole number >= 1, got -2"),
    ("fusion", "log_every = 0", "config fusion: log_every must be a whole number >= 1, got 0"),
    ("fusion", "optim = { lr = inf }", "config fusion: optim.lr must be a finite number > 0, got inf"),
    ("fusion", "optim = { lr_min = -1e-5 }", "config fusion: optim.lr_min must be a finite number >= 0"),
    ("fusion", "optim = { lr_min = nan }", "config fusion: optim.lr_min must be a finite number >= 0, got nan"),
    ("fusion", "monitor = { every = -1 }", "config fusion: monitor.every must be a whole number >= 0 (0: no monitor)"),
    ("fusion", "monitor = { val_every = -5 }", "config fusion: monitor.val_every must be a whole number >= 0"),
    ("fusion", "[[fusion.phases]]\nsteps = 2\nlr = nan",
     "config fusion.phases[1]: lr must be a finite number > 0, got nan"),
    ("fusion", "[[fusion.phases]]\nsteps = 2\n[[fusion.phases]]\nsteps = 2\nlr_min = -1.0",
     "config fusion.phases[2]: lr_min must be a finite number >= 0, got -1.0"),
    ("sensing", "checkpoint_every = 0", "config sensing: checkpoint_every must be a whole number >= 1, got 0"),
    ("sensing", "width = 0", "config sensing: width must be a whole number >= 1, got 0"),
])
def test_a_bad_toml_value_is_one_line_before_any_work(pairs, tmp_path, capsys, stage, toml, match):
    out = tmp_path / "run"
    (tmp_path / "c.toml").write_text(f"[{stage}]\n{toml}\n")
    _refused(capsys, [*_base(stage, out, pairs), "--config", str(tmp_path / "c.toml")], out, match)


@pytest.mark.parametrize("stage, toml, match", [
    ("fusion", "fusion = 5", "error: config: [fusion] must be a table, got int"),
    ("sensing", 'sensing = "x"', "error: config: [sensing] must be a table, got str"),
    ("fusion", "[fusion]\noptim = 5", "error: config: [fusion.optim] must be a table, got int"),
    ("fusion", "[fusion]\nmonitor = [1]", "error: config: [fusion.monitor] must be a table, got list"),
    ("sensing", "[sensing]\ndata = 1.5", "error: config: [sensing.data] must be a table, got float"),
])
def test_a_value_where_a_table_belongs_is_one_line(pairs, tmp_path, capsys, stage, toml, match):
    out = tmp_path / "run"
    (tmp_path / "c.toml").write_text(toml + "\n")
    assert _refused(capsys, [*_base(stage, out, pairs), "--config", str(tmp_path / "c.toml")], out, match) == match


def test_init_weights_holding_nan_are_refused_before_any_work(pairs, tmp_path, capsys):
    from emma_fusion.nets import UFuser
    from emma_fusion.weights import save_weights

    net = UFuser()
    with torch.no_grad():
        for p in net.parameters():
            p.fill_(float("nan"))
    weights = save_weights(tmp_path / "nan.safetensors", net)
    out = tmp_path / "t" / "q"
    args = [*_base("fusion", out, pairs), "--crop", "64", "--steps", "1", "--sensing", "emma-sensing",
            "--init-weights", str(weights)]
    _refused(capsys, args, out, f"weights {weights} hold NaN or infinite values")
    assert not out.parent.exists()


def test_the_library_checks_the_same_values():
    """``apply_overrides`` and ``load_config`` (the API) refuse what the CLI refuses."""
    with pytest.raises(EmmaError, match="config fusion: batch must be a whole number >= 1, got 0"):
        apply_overrides(preset("cpu", "fusion"), {"batch": 0})
    with pytest.raises(EmmaError, match=r"config sensing: optim\.lr must be a finite number > 0, got inf"):
        apply_overrides(preset("cpu", "sensing"), {"optim.lr": float("inf")})
    assert load_config("fusion", None, "cpu").batch == 4  # the presets themselves are valid
    for name in ("paper", "cpu", "warmstart", "finetune"):
        for stage in ("sensing", "fusion"):
            apply_overrides(preset(name, stage), {})


def test_a_sensing_folder_that_does_not_exist_is_named(tmp_path):
    from emma_fusion.train.config import FusionConfig
    from emma_fusion.train.fusion import _sensing_paths

    with pytest.raises(EmmaError, match=r"no such stage-1 run folder or packaged pair \(packaged: emma-sensing\)"):
        _sensing_paths(FusionConfig(sensing=str(tmp_path / "missing")))
