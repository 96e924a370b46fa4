"""What a new user trips over (issue 23): hardware it cannot use, existing outputs, exit codes,
progress in logs, messages, training defaults, exact resume, bench names, start-up time."""

from __future__ import annotations

import dataclasses
import json
import logging
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch

import emma_fusion
from emma_fusion import hardware as hw
from emma_fusion.cli import main
from emma_fusion.errors import EmmaError
from emma_fusion.io import read_image, write_image

ROOT = Path(__file__).resolve().parents[1]


def run(capsys, *args):
    with pytest.raises(SystemExit) as e:
        main(list(map(str, args)))
    out = capsys.readouterr()
    return e.value.code or 0, out.out, out.err


@pytest.fixture
def machine():
    """Set the detected hardware for one test: ``machine(cuda=True)``; restored afterwards."""
    previous = hw.set_hardware(None)
    real = hw.hardware()
    yield lambda **fields: hw.set_hardware(dataclasses.replace(real, **fields))
    hw.set_hardware(previous)


# -- 1. hardware it cannot use is a fact, not a crash -----------------------------------------
def test_detection_is_cached_and_agrees_with_torch():
    h = hw.hardware()
    assert h is hw.hardware()
    assert h.cpu_bf16 == (torch.ops.mkldnn._is_mkldnn_bf16_supported() and hw._bf16_convolution_runs())
    assert h.cuda == torch.cuda.is_available() and h.cores >= 1
    assert "CPUExecutionProvider" in h.onnx_providers  # the test extras include onnxruntime


def test_bf16_on_a_cpu_without_it_runs_fp32_with_one_warning(tmp_path, pair, avx2_only, capsys):
    ir, vi = pair
    code, out, err = run(capsys, "fuse", ir, vi, "-o", tmp_path / "b.png", "--precision", "bf16", "--color", "gray")
    assert code == 0 and out.strip() == str(tmp_path / "b.png")
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: --precision bf16 needs a CPU") and "fp32 is used" in lines[0]
    assert run(capsys, "fuse", ir, vi, "-o", tmp_path / "f.png", "--color", "gray")[0] == 0
    np.testing.assert_array_equal(read_image(tmp_path / "b.png"), read_image(tmp_path / "f.png"))
    code, _, err = run(capsys, "fuse", ir, vi, "-o", tmp_path / "h.png", "--precision", "fp16")
    assert code == 2 and err.count("\n") == 1 and "use fp32 (this CPU has no native bf16 either)" in err


def test_bf16_in_the_python_api_falls_back_too(pair, avx2_only, caplog):
    ir, vi = pair
    with caplog.at_level(logging.WARNING):
        bf16 = emma_fusion.fuse(ir, vi, precision="bf16", color="gray")
    assert [r.levelname for r in caplog.records] == ["WARNING"] and "fp32 is used" in caplog.text
    np.testing.assert_array_equal(bf16, emma_fusion.fuse(ir, vi, color="gray"))


def test_bf16_runs_in_bf16_where_the_cpu_has_it(pair, bf16_cpu, caplog):
    ir, vi = pair
    with caplog.at_level(logging.WARNING):
        bf16 = emma_fusion.fuse(ir, vi, precision="bf16", color="gray", normalize="clip")
    fp32 = emma_fusion.fuse(ir, vi, color="gray", normalize="clip")
    assert not caplog.records and 0 < np.abs(bf16 - fp32).max() < 2e-2


def test_an_unexpected_failure_is_one_line_without_an_exception_name(tmp_path, pair, monkeypatch, capsys):
    import emma_fusion.api as api

    def crash(*args, **kwargs):
        raise RuntimeError("mkldnn_convolution: bf16 path needs the cpu support avx_ne_convert or avx512bw\nmore")

    monkeypatch.setattr(api, "fuse_files", crash)
    code, _, err = run(capsys, "fuse", *pair, "-o", tmp_path / "f.png")
    assert code == 1 and err.count("\n") == 1
    assert err.startswith("error: mkldnn_convolution: bf16 path") and "RuntimeError" not in err
    assert err.rstrip().endswith("(run emma -v <command> ... for details)")  # -v goes before the command


# -- 2. one rule for existing outputs ---------------------------------------------------------
def test_an_existing_output_is_never_replaced_without_overwrite(tmp_path, pair, capsys):
    ir, vi = pair
    out = write_image(tmp_path / "f.png", np.zeros((37, 53), np.float32))
    code, _, err = run(capsys, "fuse", ir, vi, "-o", out, "--method", "average")
    assert code == 2 and "exists; pass --overwrite" in err and read_image(out).max() == 0
    assert run(capsys, "fuse", ir, vi, "-o", out, "--method", "average", "--overwrite")[0] == 0
    assert read_image(out).max() > 0
    with pytest.raises(EmmaError, match="exists; pass --overwrite"):
        emma_fusion.fuse_files(ir, vi, out, method="average")
    assert emma_fusion.fuse_files(ir, vi, out, method="average", overwrite=True) == out
    folders = ("--ir", ir.parent, "--vi", vi.parent, "-o", tmp_path / "o", "--method", "average")
    assert "1 written, 0 skipped" in run(capsys, "fuse", *folders)[1]
    assert "0 written, 1 skipped" in run(capsys, "fuse", *folders)[1]  # folders: the same rule, per file
    demo = ("demo", "--out", tmp_path / "d", "--ir", ir, "--vi", vi, "--threads", "1")
    assert run(capsys, *demo)[0] == 0
    code, _, err = run(capsys, *demo)
    assert code == 2 and "demo_fused.png" in err and "--overwrite" in err
    assert run(capsys, *demo, "--overwrite")[0] == 0
    assert "emma-demo/" in (ROOT / ".gitignore").read_text().splitlines()


# -- 3. a failed sensing-net gate is a failed command -----------------------------------------
@pytest.mark.parametrize("passed", [False, True])
def test_sensing_gate_decides_the_exit_code(tmp_path, monkeypatch, capsys, passed):
    import emma_fusion.train as train_pkg

    def fake_training(cfg, resume=False):
        out = Path(cfg.out)
        out.mkdir(parents=True)
        g = {"mse_sense": 0.01, "mse_identity": 0.02, "ratio": 0.5 if passed else 1.5}
        (out / "gate.json").write_text(json.dumps({"passed": passed, "ratio_max": 0.9, "ir": g, "vi": g}))
        return out

    monkeypatch.setattr(train_pkg, "train_sensing", fake_training)
    code, out, _ = run(capsys, "train", "sensing", "--out", tmp_path / "s", "--data", tmp_path, "--fused", tmp_path)
    assert code == (0 if passed else 1) and f"quality gate: {'passed' if passed else 'FAILED'}" in out


# -- 4. progress -------------------------------------------------------------------------------
def test_no_carriage_returns_off_a_terminal_and_fuse_takes_no_progress(tmp_path, pair, monkeypatch, capsys):
    from emma_fusion.progress import shows_progress

    ir, vi = pair
    code, _, err = run(capsys, "fuse", ir.parent, vi.parent, "-o", tmp_path / "o", "--method", "average")
    assert code == 0 and "\r" not in err and err == ""  # stderr is captured here, as in a log file
    code, out, _ = run(capsys, "fuse", ir.parent, vi.parent, "-o", tmp_path / "o", "--method", "average",
                       "--no-progress", "--overwrite")
    assert code == 0 and "1 written" in out
    assert not shows_progress(True)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert shows_progress(True) and not shows_progress(False)


# -- 5. messages say what happened ----------------------------------------------------------
def test_inputs_given_two_ways_or_mixed_are_named_as_given(tmp_path, pair, capsys):
    ir, vi = pair
    code, _, err = run(capsys, "fuse", ir.parent, vi, "-o", tmp_path / "o")
    assert code == 2 and f"{ir.parent} is a folder but {vi} is a file" in err and "--ir and --vi" not in err
    code, _, err = run(capsys, "fuse", ir, vi.parent, "-o", tmp_path / "o")
    assert code == 2 and f"{ir} is a file but {vi.parent} is a folder" in err and "no such image" not in err
    code, _, err = run(capsys, "fuse", ir, vi, "--ir", ir.parent, "--vi", vi.parent, "-o", tmp_path / "o")
    assert code == 2 and "not both" in err and not (tmp_path / "o").exists()
    code, out, _ = run(capsys, "fuse", ir, vi, "-o", tmp_path / "newdir", "--method", "average")
    assert code == 0 and out.strip() == str(tmp_path / "newdir" / "a.png") and (tmp_path / "newdir" / "a.png").is_file()


def test_help_shows_options_as_typed(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "220")
    for command in (["fuse"], ["train", "fusion"], ["bench"]):
        code, out, _ = run(capsys, *command, "--help")
        assert code == 0 and "<bool>" not in out and "list[" not in out
    assert "--overwrite  " in run(capsys, "fuse", "--help")[1]
    assert "<str> (repeatable)" in run(capsys, "train", "fusion", "--help")[1]


@pytest.mark.parametrize("args, says", [
    (["fuse", "a.png", "b.png", "--color", "rgb"], "Invalid value for '--color'"),
    (["fuse", "a.png", "b.png", "--streams", "0"], "Invalid value for '--streams'"),
    (["bogus"], "No such command 'bogus'"),
    (["methods", "extra"], "unexpected extra argument"),
    (["export", "onnx"], "Missing argument"),
])
def test_a_bad_command_line_is_one_error_line(args, says, capsys):
    code, out, err = run(capsys, *args)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err.startswith("error: ") and says in err and "--help)" in err


def test_no_command_shows_the_help(capsys):
    code, out, _ = run(capsys)
    assert code == 2 and "Usage: " in out and "fuse" in out


def test_bench_help_names_the_default_metrics(monkeypatch, capsys):
    from emma_fusion.bench import BENCH_METRICS

    monkeypatch.setenv("COLUMNS", "400")
    out = " ".join(run(capsys, "bench", "--help")[1].split())
    assert "Default: " + ",".join(BENCH_METRICS) + "." in out


# -- 6. training defaults fit the machine; 7. resume is exact with the defaults --------------
def test_cpu_preset_by_default_without_a_gpu(machine, capsys):
    from emma_fusion.cli.train import _default_preset

    machine(cuda=False)
    assert _default_preset(None) == "cpu" and _default_preset("auto") == "cpu"
    assert "no CUDA GPU here: using the cpu preset" in capsys.readouterr().err
    machine(cuda=True)
    assert _default_preset(None) is None and _default_preset("cuda:1") is None and _default_preset("cpu") == "cpu"


def _pairs(root: Path, n: int = 3) -> Path:
    rng = np.random.default_rng(1)
    for k in range(n):
        base = rng.random((48, 56), dtype=np.float32)
        write_image(root / "ir" / f"p{k}.png", np.clip(base + 0.3 * rng.random((48, 56), dtype=np.float32), 0, 1))
        write_image(root / "vi" / f"p{k}.png", np.clip(base * 0.7 + 0.1, 0, 1))
    return root


def _train_with_val(tmp_path, machine, monkeypatch, capsys, *extra):
    """`emma train fusion --val ...` (content loss, batch 1, 48 px crops) on a CPU: (code, out, err, run folder)."""
    import emma_fusion.train.loop as loop

    machine(cuda=False)
    monkeypatch.setattr(loop, "auto_threads", lambda: 1)
    run_dir = tmp_path / "run"
    code, out, err = run(capsys, "train", "fusion", "--data", _pairs(tmp_path / "train"), "--val", _pairs(tmp_path / "val"),
                         "--out", run_dir, "--ablation", "content", "--batch", "1", "--crop", "48", *extra)
    return code, out, err, run_dir


def test_val_with_the_cpu_preset_prints_each_validation_and_keeps_the_best(tmp_path, machine, monkeypatch, capsys):
    code, out, err, run_dir = _train_with_val(tmp_path, machine, monkeypatch, capsys, "--steps", "2", "--val-pairs", "2")
    assert code == 0, err
    assert "no CUDA GPU here: using the cpu preset" in err and "fusion: 1 torch thread (auto" in err
    vals = [ln for ln in err.splitlines() if " validation: " in ln]
    assert [v.split()[1] for v in vals] == ["0", "2"] and all("VIF" in v and "Qabf" in v for v in vals)
    assert "best by validation (VIF+Qabf)" in out and (run_dir / "ufuser_best.safetensors").is_file()
    start = json.loads((run_dir / "log.jsonl").read_text().splitlines()[0])
    assert start["type"] == "start" and start["threads"] == 1
    assert tomllib.loads((run_dir / "config.toml").read_text())["fusion"]["threads"] == 1


def test_val_every_sets_the_validation_interval(tmp_path, machine, monkeypatch, capsys):
    code, out, err, run_dir = _train_with_val(tmp_path, machine, monkeypatch, capsys, "--steps", "3", "--val-pairs", "1",
                                              "--val-every", "1")
    assert code == 0, err
    assert [ln.split()[1] for ln in err.splitlines() if " validation: " in ln] == ["0", "1", "2", "3"]
    assert tomllib.loads((run_dir / "config.toml").read_text())["fusion"]["monitor"]["val_every"] == 1


def test_resume_reuses_the_recorded_threads_and_is_exact(tmp_path, monkeypatch):
    import emma_fusion.train.loop as loop
    from emma_fusion.train import apply_overrides, preset, train_fusion
    from emma_fusion.train.data import DatasetSpec
    from emma_fusion.weights import load_state

    def cfg(out: Path, steps: int):
        c = apply_overrides(preset("cpu", "fusion"), {"out": str(out), "ablation": "content", "steps": steps, "batch": 1,
                                                      "data.crop": 32, "data.min_contrast": 0.0, "progress": False,
                                                      "monitor.every": 0, "checkpoint_every": 2})
        c.data.sets = [DatasetSpec(root=str(tmp_path / "d"))]
        return c

    _pairs(tmp_path / "d")
    monkeypatch.setattr(loop, "auto_threads", lambda: 1)
    straight = train_fusion(cfg(tmp_path / "a", 4))
    train_fusion(cfg(tmp_path / "b", 2))
    monkeypatch.setattr(loop, "auto_threads", lambda: 2)  # the machine's load changed meanwhile
    resumed = train_fusion(cfg(tmp_path / "b", 4), resume=True)
    assert torch.get_num_threads() == 1
    log = [json.loads(x) for x in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    assert {"type": "resume", "step": 2, "threads": 1} in log
    a, b = load_state(straight)[0], load_state(resumed)[0]
    assert all(torch.equal(a[k], b[k]) for k in a)


# -- 8. bench names a split's dataset after its parent and warns about unused results ---------
def test_bench_names_splits_after_their_parent_and_warns_about_unmatched_results(tmp_path, caplog):
    from emma_fusion.bench import BenchConfig, discover_datasets, run_bench

    rng = np.random.default_rng(2)
    for split, stem in (("test", "a"), ("train", "b")):
        for role in ("ir", "vi"):
            write_image(tmp_path / "MSRS" / split / role / f"{stem}.png", rng.random((24, 32), dtype=np.float32))
    assert [d.name for d in discover_datasets(tmp_path / "MSRS")] == ["MSRS", "MSRS_train"]
    write_image(tmp_path / "r" / "Peer" / "MSRS" / "a.png", rng.random((24, 32), dtype=np.float32))
    write_image(tmp_path / "r" / "Peer" / "test" / "a.png", rng.random((24, 32), dtype=np.float32))
    with caplog.at_level(logging.WARNING):
        res = run_bench(BenchConfig(data=[tmp_path / "MSRS"], out=tmp_path / "o", methods=["none"], split="test",
                                    results=[str(tmp_path / "r")], metrics=["EN"], jobs=1, html=False, progress=False))
    assert res.tables["MSRS"][0].n == 1
    warned = [r.getMessage() for r in caplog.records if "matched no dataset" in r.getMessage()]
    assert len(warned) == 1 and "Peer: results folder(s) test matched no dataset benchmarked (MSRS)" in warned[0]


# -- 9. start-up --------------------------------------------------------------------------------
def test_the_cli_starts_without_torch():
    code = "import sys, emma_fusion, emma_fusion.cli; print(sorted({'torch', 'numpy', 'PIL'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    assert callable(emma_fusion.fuse) and callable(emma_fusion.load_model)  # the public API, imported on use


# -- 10. the README states what stays true --------------------------------------------------
def test_readme_quotes_no_test_counts():
    import re

    text = (ROOT / "README.md").read_text()
    assert not re.search(r"\d+ passed|\d+ skipped", text)


def test_threads_above_the_usable_cores_are_cut_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="emma_fusion.hardware"):
        assert hw.clamp_threads(8, cores=2) == 2
    assert "8 threads requested, but this process can use 2 CPU cores: using 2" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="emma_fusion.hardware"):
        assert hw.clamp_threads(2, cores=2) == 2 and hw.clamp_threads(1, cores=4) == 1
    assert not caplog.records


def test_fuse_with_more_threads_than_cores_runs_on_the_cores(tmp_path, capsys, caplog, monkeypatch):
    monkeypatch.setattr(hw, "usable_cores", lambda: 1)
    before = torch.get_num_threads()
    try:
        ir, vi = tmp_path / "ir.png", tmp_path / "vi.png"
        rng = np.random.default_rng(0)
        write_image(ir, rng.random((40, 48), dtype=np.float32))
        write_image(vi, rng.random((40, 48), dtype=np.float32))
        with caplog.at_level(logging.WARNING, logger="emma_fusion.hardware"):
            code, _, err = run(capsys, "fuse", ir, vi, "-o", tmp_path / "f.png", "--threads", "64")
        assert code == 0, err
        assert "64 threads requested, but this process can use 1 CPU core: using 1" in caplog.text
        assert torch.get_num_threads() == 1 and (tmp_path / "f.png").is_file()
    finally:
        torch.set_num_threads(before)


def test_cli_log_lines_read_warning_colon_message():
    from emma_fusion.cli import _Format

    record = logging.LogRecord("emma_fusion.x", logging.WARNING, __file__, 1, "Cut to %d", (2,), None)
    assert _Format(verbose=False).format(record) == "warning: Cut to 2"
    assert _Format(verbose=True).format(record) == "WARNING emma_fusion.x: Cut to 2"


def test_cli_warnings_reach_stderr_as_warning_lines():
    code = ("import logging, sys; from emma_fusion.cli import main; "
            "from emma_fusion.hardware import clamp_threads; import emma_fusion.cli as c; "
            "c._root(verbose=False); clamp_threads(9, cores=1)")
    err = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stderr
    assert err.strip() == "warning: 9 threads requested, but this process can use 1 CPU core: using 1"


@pytest.mark.parametrize("command", [
    ["demo", "-o", "{f}"],
    ["pseudo-gt", "--ir", "{ir}", "--vi", "{vi}", "-o", "{f}", "-m", "average"],
    ["bench", "-d", "{d}", "-o", "{f}", "-m", "average", "--jobs", "1", "--threads", "1"],
])
def test_a_file_where_an_output_folder_belongs_is_one_line(tmp_path, pair, capsys, command):
    f = tmp_path / "taken.png"
    f.write_bytes(b"keep")
    ir, vi = pair
    args = [a.format(f=f, ir=ir.parent, vi=vi.parent, d=ir.parent.parent) for a in command]
    code, _, err = run(capsys, *args)
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: ") and str(f) in err
    assert f.read_bytes() == b"keep"


def test_bench_checks_its_report_path_before_any_work(tmp_path, pair, capsys):
    ir, _ = pair
    (tmp_path / "r.md").mkdir()
    code, _, err = run(capsys, "bench", "-d", ir.parent.parent, "-o", tmp_path / "o", "-m", "average",
                       "--jobs", "1", "--threads", "1", "--report-md", tmp_path / "r.md")
    assert code == 2 and err == f"error: --report-md {tmp_path / 'r.md'} is a folder; give a .md file name\n"
    assert not (tmp_path / "o").exists()


def test_a_training_run_refuses_a_file_as_its_folder(tmp_path):
    from emma_fusion.train.loop import _prepare_out

    f = tmp_path / "taken.png"
    f.write_bytes(b"keep")
    with pytest.raises(EmmaError, match="is a file; give a folder for the run"):
        _prepare_out(f, False, None)


@pytest.mark.parametrize("extra, says", [
    (["--data", "{pairs}", "--sensing", "{tmp}/missing"], "no such stage-1 run folder or packaged pair"),
    (["--data", "{tmp}/empty", "--sensing", "emma-sensing"], "no image pairs with matching names found"),
])
def test_refused_training_input_is_the_error_line_alone(tmp_path, pair, capsys, extra, says):
    """No setup notes (preset, threads) before the error: they appear once the run has started."""
    (tmp_path / "empty" / "ir").mkdir(parents=True)
    (tmp_path / "empty" / "vi").mkdir()
    threads = torch.get_num_threads()
    args = ["train", "fusion", "--out", tmp_path / "run", "--steps", "1", "--threads", "1", "--no-progress",
            *[a.format(tmp=tmp_path, pairs=pair[0].parent.parent) for a in extra]]
    try:
        code, _, err = run(capsys, *args)
    finally:
        torch.set_num_threads(threads)
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: ") and says in err, err
    assert not (tmp_path / "run").exists()
