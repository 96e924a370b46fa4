"""Bad input on purpose (issue 13): inputs are never replaced, Ctrl-C stops cleanly with exit 130,
float images are scaled by their values, `emma metrics` scores what it can, bad options give one
`error:` line; and a fuzz run over malformed files that must never crash or touch other files."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import emma_fusion
from emma_fusion.cli import main
from emma_fusion.errors import EmmaError, Interrupted
from emma_fusion.io import read_image, write_image

ROOT = Path(__file__).resolve().parents[1]
INTERRUPTED = re.compile(r"^interrupted: (\d+) of (\d+) written; re-run to continue$")


def run(capsys, *args):
    """Run the ``emma`` CLI in-process; returns (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as e:
        main(list(map(str, args)))
    out = capsys.readouterr()
    return e.value.code or 0, out.out, out.err


def snapshot(root: Path, skip: Path | None = None) -> dict[str, str]:
    """sha1 of every file under ``root`` except those under ``skip``."""
    files = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and not (skip and (p == skip or skip in p.parents)):
            files[str(p.relative_to(root))] = hashlib.sha1(p.read_bytes()).hexdigest()
    return files


def make_folders(root: Path, n: int, shape=(20, 24)) -> tuple[Path, Path]:
    rng = np.random.default_rng(n)
    for k in range(n):
        write_image(root / "ir" / f"{k:02d}.png", rng.random(shape, dtype=np.float32))
        write_image(root / "vi" / f"{k:02d}.png", rng.random((*shape, 3), dtype=np.float32))
    return root / "ir", root / "vi"


def assert_one_error_line(err: str, *needles: str) -> None:
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, err


# 1. Inputs are never overwritten ---------------------------------------------------------------


@pytest.fixture
def pair_here(tmp_path, monkeypatch):
    """ir.png and vi.png in the current directory (a new user's `emma fuse ir.png vi.png -o .`)."""
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    write_image(tmp_path / "ir.png", rng.random((24, 30), dtype=np.float32))
    write_image(tmp_path / "vi.png", rng.random((24, 30, 3), dtype=np.float32))
    return Path("ir.png"), Path("vi.png")


@pytest.mark.parametrize("target", [".", "vi.png", "ir.png", "sub/../vi.png", "link.png"])
def test_pair_output_may_not_be_an_input(tmp_path, pair_here, capsys, target):
    ir, vi = pair_here
    (tmp_path / "sub").mkdir()
    (tmp_path / "link.png").symlink_to(tmp_path / "ir.png")
    before = snapshot(tmp_path)
    code, _, err = run(capsys, "fuse", ir, vi, "-o", target, "--method", "average")
    assert code == 2
    assert_one_error_line(err, "is the input file")
    assert snapshot(tmp_path) == before


def test_output_folder_names_the_file_after_the_infrared_stem(tmp_path, pair_here, capsys):
    ir, vi = pair_here
    (tmp_path / "out").mkdir()
    code, out, err = run(capsys, "fuse", ir, vi, "-o", "out", "--method", "average")
    assert code == 0, err
    assert out.strip() == str(Path("out") / "ir.png") and (tmp_path / "out" / "ir.png").is_file()


@pytest.mark.parametrize("which", ["vi", "ir", "vi-link"])
def test_folder_output_may_not_be_an_input_folder(tmp_path, capsys, which):
    ir_dir, vi_dir = make_folders(tmp_path, 2)
    (tmp_path / "vi-link").symlink_to(vi_dir)
    before = snapshot(tmp_path)
    code, _, err = run(capsys, "fuse", "--ir", ir_dir, "--vi", vi_dir, "--out", tmp_path / which,
                       "--overwrite", "--method", "average")
    assert code == 2
    assert_one_error_line(err, "input folder")
    assert snapshot(tmp_path) == before


def test_api_refuses_to_replace_an_input(tmp_path):
    ir, vi = make_folders(tmp_path, 1)
    before = snapshot(tmp_path)
    with pytest.raises(EmmaError, match="is the input file"):
        emma_fusion.fuse_files(ir / "00.png", vi / "00.png", vi / "00.png", method="average")
    assert snapshot(tmp_path) == before


# 2. Ctrl-C -------------------------------------------------------------------------------------

_SLOW_FUSE = """
import signal, sys, time
# a shell that starts the test run in the background ("&") makes SIGINT ignored, and children
# inherit that: give this child the default Ctrl-C handler, as a terminal would
signal.signal(signal.SIGINT, signal.default_int_handler)
import emma_fusion.api as api
fuse_files = api.fuse_files
def slow(*args, **kwargs):
    time.sleep(0.3)
    return fuse_files(*args, **kwargs)
api.fuse_files = slow
from emma_fusion.cli import main
main(sys.argv[1:])
"""


def test_sigint_in_folder_run_exits_130_and_reruns_resume(tmp_path, capsys):
    """A real SIGINT mid-run: exit 130, one line, no leftovers, and a re-run finishes the rest."""
    ir_dir, vi_dir = make_folders(tmp_path, 12)
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}
    cmd = [sys.executable, "-c", _SLOW_FUSE, "fuse", "--ir", str(ir_dir), "--vi", str(vi_dir),
           "--out", str(out), "--method", "average", "--streams", "2"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while len(list(out.glob("*.png"))) < 2 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "terminate called" not in err
    m = INTERRUPTED.match(err.rstrip("\n").splitlines()[-1])
    assert m, err
    written = sorted(p.name for p in out.iterdir())
    assert int(m.group(1)) == len(written) < 12 and m.group(2) == "12"
    assert all(not name.startswith(".") for name in written)  # no temporary files left
    code, stdout, _ = run(capsys, "fuse", "--ir", ir_dir, "--vi", vi_dir, "--out", out, "--method", "average")
    assert code == 0 and f"{12 - len(written)} written, {len(written)} skipped" in stdout


def _interrupt_on_call(n: int, real):
    """A stand-in for ``real`` that raises KeyboardInterrupt on its ``n``-th call."""
    calls = []

    def fake(*args, **kwargs):
        calls.append(1)
        if len(calls) == n:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    return fake


def test_keyboard_interrupt_in_folder_run_says_what_was_written(tmp_path, capsys, monkeypatch):
    """Ctrl-C in the main thread while pair 3 runs: it is finished, pairs 4-5 are cancelled."""
    import emma_fusion.api as api

    ir_dir, vi_dir = make_folders(tmp_path, 5)
    real = api.fuse_files
    calls = []

    def slow_from_third(*args, **kwargs):
        calls.append(1)
        if len(calls) >= 3:
            time.sleep(0.3)
        return real(*args, **kwargs)

    monkeypatch.setattr(api, "fuse_files", slow_from_third)
    monkeypatch.setattr(api, "_record", _interrupt_on_call(3, api._record))
    code, _, err = run(capsys, "fuse", "--ir", ir_dir, "--vi", vi_dir, "--out", tmp_path / "o",
                       "--method", "average", "--streams", "1")
    assert code == 130
    assert err.splitlines()[-1] == "interrupted: 3 of 5 written; re-run to continue"
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["00.png", "01.png", "02.png"]
    assert len(calls) == 3


def test_keyboard_interrupt_in_pair_mode(tmp_path, pair_here, capsys, monkeypatch):
    ir, vi = pair_here
    monkeypatch.setattr("emma_fusion.api.fuse", _interrupt_on_call(1, None))
    code, _, err = run(capsys, "fuse", ir, vi, "-o", "f.png", "--method", "average")
    assert code == 130 and err == "interrupted: nothing written\n"
    assert not (tmp_path / "f.png").exists()


def test_keyboard_interrupt_in_metrics(tmp_path, capsys, monkeypatch):
    from emma_fusion.metrics import dataset

    ir_dir, vi_dir = make_folders(tmp_path, 3, shape=(48, 48))
    monkeypatch.setattr(dataset, "_score_one", _interrupt_on_call(2, dataset._score_one))
    code, _, err = run(capsys, "metrics", "--ir", ir_dir, "--vi", vi_dir, "--fused", ir_dir, "-m", "en",
                       "--workers", "1", "--no-progress", "--json", tmp_path / "m.json")
    assert code == 130
    assert err == "interrupted: 1 of 3 image(s) scored; no files written\n"
    assert not (tmp_path / "m.json").exists()


def test_keyboard_interrupt_in_bench(tmp_path, capsys, monkeypatch):
    import emma_fusion.bench

    monkeypatch.setattr(emma_fusion.bench, "run_bench", _interrupt_on_call(1, None))
    code, _, err = run(capsys, "bench", "--data", tmp_path, "--out", tmp_path / "b")
    assert code == 130
    assert err.startswith("interrupted: finished images and scores are kept in") and err.count("\n") == 1


def test_score_folder_raises_interrupted_with_the_count(tmp_path, monkeypatch):
    from emma_fusion.metrics import dataset

    ir_dir, vi_dir = make_folders(tmp_path, 4, shape=(48, 48))
    monkeypatch.setattr(dataset, "_score_one", _interrupt_on_call(4, dataset._score_one))
    with pytest.raises(Interrupted, match="3 of 4 image"):
        dataset.score_folder(ir_dir, vi_dir, ir_dir, ["EN"], workers=1)


# 3. Float images -------------------------------------------------------------------------------


def _float_tiff(path: Path, arr) -> Path:
    Image.fromarray(np.asarray(arr, np.float32)).save(path)
    return path


def test_float_tiff_in_unit_range_is_read_as_is(tmp_path):
    arr = np.linspace(0, 1, 48, dtype=np.float32).reshape(6, 8)
    np.testing.assert_allclose(read_image(_float_tiff(tmp_path / "f.tif", arr)), arr, atol=1e-7)


@pytest.mark.parametrize("peak", [255.0, 65535.0])
def test_float_tiff_with_integer_levels_is_scaled_by_its_range(tmp_path, peak):
    arr = np.linspace(0, peak, 48, dtype=np.float32).reshape(6, 8)
    np.testing.assert_allclose(read_image(_float_tiff(tmp_path / "f.tif", arr)), arr / peak, atol=1e-6)


@pytest.mark.parametrize("bad, why", [(np.nan, "NaN"), (np.inf, "infinite"), (-2.0, "outside"), (1e6, "outside")])
def test_float_tiff_with_bad_values_is_bad_input(tmp_path, pair_here, capsys, bad, why):
    arr = np.full((24, 30), 0.5, np.float32)
    arr[3, 4] = bad
    _float_tiff(tmp_path / "bad.tif", arr)
    code, _, err = run(capsys, "fuse", "bad.tif", "vi.png", "-o", "f.png", "--method", "average")
    assert code == 2
    assert_one_error_line(err, "bad.tif", why)
    assert "produced" not in err and not (tmp_path / "f.png").exists()


def test_float_tiff_infrared_is_not_black_in_the_output(tmp_path, pair_here, capsys):
    ir = np.tile(np.linspace(0.2, 0.9, 30, dtype=np.float32), (24, 1))
    _float_tiff(tmp_path / "ir.tif", ir)
    _float_tiff(tmp_path / "black.tif", np.zeros((24, 30)))
    code, _, err = run(capsys, "fuse", "ir.tif", "black.tif", "-o", "f.png", "--method", "average",
                       "--normalize", "clip", "--color", "gray")
    assert code == 0, err
    np.testing.assert_allclose(read_image(tmp_path / "f.png"), ir / 2, atol=1 / 255)


# 4. `emma metrics` scores what it can ----------------------------------------------------------


def test_metrics_scores_the_rest_and_lists_failures_and_missing(tmp_path, capsys):
    ir_dir, vi_dir = make_folders(tmp_path, 3, shape=(48, 48))
    fused = tmp_path / "fused"
    fused.mkdir()
    for k in ("00", "02"):
        (fused / f"{k}.png").write_bytes((ir_dir / f"{k}.png").read_bytes())
    (fused / "01.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (fused / "99.png").write_bytes((ir_dir / "00.png").read_bytes())  # no sources
    code, stdout, err = run(capsys, "metrics", "--ir", ir_dir, "--vi", vi_dir, "--fused", fused, "-m", "en,sd",
                            "--workers", "2", "--no-progress", "--json", tmp_path / "m.json", "--csv", tmp_path / "m.csv")
    assert code == 1
    doc = json.loads((tmp_path / "m.json").read_text())
    assert list(doc["per_image"]) == ["00", "02"] and doc["mean"]["EN"] is not None
    assert list(doc["excluded_images"]["failed"]) == ["01"] and "cannot decode" in doc["excluded_images"]["failed"]["01"]
    assert doc["excluded_images"]["missing"] == {"99": "no infrared, no visible image"}
    assert "error: cannot score 01: cannot decode" in err and "99" in err and "Traceback" not in err
    assert (tmp_path / "m.csv").read_text().count("\n") == 3 and "2 image(s)" in stdout


def test_metrics_refuses_to_write_json_over_an_input(tmp_path, capsys):
    ir_dir, vi_dir = make_folders(tmp_path, 2, shape=(48, 48))
    before = snapshot(tmp_path)
    code, _, err = run(capsys, "metrics", "--ir", ir_dir, "--vi", vi_dir, "--fused", ir_dir,
                       "--json", ir_dir / "00.png", "--workers", "1", "--no-progress")
    assert code == 2
    assert_one_error_line(err, "is the input file")
    assert snapshot(tmp_path) == before


# 5. Error messages -----------------------------------------------------------------------------


@pytest.mark.parametrize("option, needle", [
    (["--tile", "-1"], "--tile"), (["--tile", "100"], "--tile"), (["--threads", "-3"], "--threads"),
    (["--threads", "0"], "--threads"), (["--precision", "fp16"], "fp16"), (["--bits", "12"], "--bits"),
])
def test_bad_option_values_give_one_error_line(tmp_path, pair_here, capsys, option, needle):
    ir, vi = pair_here
    code, _, err = run(capsys, "fuse", ir, vi, "-o", "f.png", *option)
    assert code == 2
    assert_one_error_line(err, needle)
    assert "ValueError" not in err and "RuntimeError" not in err


def test_unwritable_output_is_found_before_any_pair_is_fused(tmp_path, capsys, monkeypatch):
    ir_dir, vi_dir = make_folders(tmp_path, 3)
    calls = []
    real = emma_fusion.api.fuse
    monkeypatch.setattr("emma_fusion.api.fuse", lambda *a, **k: calls.append(1) or real(*a, **k))
    (tmp_path / "a-file").write_text("not a folder")
    code, _, err = run(capsys, "fuse", "--ir", ir_dir, "--vi", vi_dir, "--out", tmp_path / "a-file" / "out",
                       "--method", "average")
    assert code == 2 and calls == []
    assert_one_error_line(err, "cannot write to output folder")
    code, _, err = run(capsys, "fuse", ir_dir / "00.png", vi_dir / "00.png", "-o", tmp_path / "a-file" / "f.png",
                       "--method", "average")
    assert code == 2 and calls == []
    assert_one_error_line(err, "cannot write to output folder")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root can write to read-only folders")
def test_read_only_output_folder(tmp_path, capsys):
    ir_dir, vi_dir = make_folders(tmp_path, 2)
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        code, _, err = run(capsys, "fuse", "--ir", ir_dir, "--vi", vi_dir, "--out", ro, "--method", "average")
    finally:
        ro.chmod(0o700)
    assert code == 2
    assert_one_error_line(err, "cannot write to output folder")


def test_warnings_are_printed_once(tmp_path, capsys):
    ir_dir, vi_dir = make_folders(tmp_path, 2)
    write_image(ir_dir / "lonely.png", np.zeros((20, 24), np.float32))
    vi_bad = vi_dir / "01.png"
    vi_bad.write_bytes(b"broken")
    handler = logging.StreamHandler(sys.stderr)  # what `emma` sets up outside pytest
    logging.getLogger().addHandler(handler)
    try:
        code, _, err = run(capsys, "fuse", "--ir", ir_dir, "--vi", vi_dir, "--out", tmp_path / "o", "--method", "average")
    finally:
        logging.getLogger().removeHandler(handler)
    assert code == 1
    assert err.count("lonely") == 1 and err.count("cannot identify") == 1, err


def test_backend_help_keeps_the_extra_name(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    code, out, _ = run(capsys, "fuse", "--help")
    assert code == 0 and "emma-fusion[onnx]" in out


# Fuzz: malformed inputs ------------------------------------------------------------------------

FORMATS = {".png": "PNG", ".jpg": "JPEG", ".bmp": "BMP", ".tif": "TIFF"}


def _malformed(folder: Path) -> list[Path]:
    """Random bytes, truncations of every format, odd modes and sizes (all 12 x 16 where sized); one stem per file."""
    rng = np.random.default_rng(13)
    folder.mkdir(parents=True)
    files = []
    gray = rng.integers(0, 256, (12, 16), dtype=np.uint8)
    for suffix, fmt in FORMATS.items():
        good = folder / f"good_{suffix[1:]}{suffix}"
        Image.fromarray(gray).save(good, format=fmt)
        data = good.read_bytes()
        for cut in (0, 1, 8, 30, len(data) // 2, len(data) - 1):
            p = folder / f"cut{cut}_{suffix[1:]}{suffix}"
            p.write_bytes(data[:cut])
            files.append(p)
        p = folder / f"random_{suffix[1:]}{suffix}"
        p.write_bytes(rng.integers(0, 256, 300, dtype=np.uint8).tobytes())
        files.append(p)
        p = folder / f"header_{suffix[1:]}{suffix}"
        p.write_bytes(data[:16] + rng.integers(0, 256, len(data) - 16, dtype=np.uint8).tobytes())
        files.append(p)
    modes = {
        "bilevel.png": Image.fromarray(gray > 128), "palette.png": Image.fromarray(gray).convert("P"),
        "la.png": Image.fromarray(gray).convert("LA"), "rgba.png": Image.fromarray(gray).convert("RGBA"),
        "i16.png": Image.fromarray(gray.astype(np.uint16) * 257), "i16t.tif": Image.fromarray(gray.astype(np.uint16) * 257),
        "i32.tif": Image.fromarray(gray.astype(np.int32) * 1000), "neg.tif": Image.fromarray(gray.astype(np.int32) - 300),
        "f01.tif": Image.fromarray(gray.astype(np.float32) / 255), "nan.tif": Image.fromarray(np.full((12, 16), np.nan, np.float32)),
        "cmyk.jpg": Image.fromarray(gray).convert("CMYK"), "cmykt.tif": Image.fromarray(gray).convert("CMYK"),
        "one.png": Image.new("L", (1, 1), 7), "row.png": Image.new("L", (16, 1), 7), "col.png": Image.new("L", (1, 12), 7),
        "wide.png": Image.new("L", (400, 2), 7), "flat.png": Image.new("L", (16, 12), 0),
    }
    for name, img in modes.items():
        img.save(folder / name)
        files.append(folder / name)
    return files


def _partner(vi_dir: Path, src: Path) -> Path:
    """A valid visible image with ``src``'s stem and, where readable, its size."""
    try:
        size = Image.open(src).size
    except Exception:
        size = (16, 12)
    rng = np.random.default_rng(len(src.name))
    arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    path = vi_dir / f"{src.stem}.png"
    Image.fromarray(arr).save(path)
    return path


def test_fuzz_pair_mode_never_crashes_or_touches_other_files(tmp_path, capsys):
    bad = _malformed(tmp_path / "bad")
    vi_dir = tmp_path / "vi"
    vi_dir.mkdir()
    out = tmp_path / "out"
    for k, src in enumerate(bad):
        vi = _partner(vi_dir, src)
        before = snapshot(tmp_path, skip=out)
        for a, b in ((src, vi), (vi, src)):
            code, _, err = run(capsys, "fuse", a, b, "-o", out / f"{k}.png", "--method", "average")
            assert code in (0, 2), (src.name, err)
            assert "Traceback" not in err and "produced" not in err, (src.name, err)  # input is to blame
            assert err == "" if code == 0 else err.startswith("error: ") and err.count("\n") == 1, (src.name, err)
        assert snapshot(tmp_path, skip=out) == before, src.name
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []


def test_fuzz_folder_mode_and_metrics(tmp_path, capsys):
    bad = _malformed(tmp_path / "ir")
    vi_dir = tmp_path / "vi"
    vi_dir.mkdir()
    for src in bad:
        _partner(vi_dir, src)
    out = tmp_path / "out"
    before = snapshot(tmp_path, skip=out)
    code, stdout, err = run(capsys, "fuse", "--ir", tmp_path / "ir", "--vi", vi_dir, "--out", out, "--method", "average")
    assert code == 1 and "Traceback" not in err
    n_written, n_failed = (int(re.search(rf"(\d+) {w}", stdout).group(1)) for w in ("written", "failed"))
    n_pairs = len({p.stem for p in bad} & {p.stem for p in vi_dir.iterdir()})
    assert n_written == len(list(out.iterdir())) and n_written + n_failed == n_pairs and n_failed > 0
    assert all(line.startswith(("error: ", "warning: ", "fusing")) for line in err.splitlines() if line.strip()), err
    code, _, err = run(capsys, "metrics", "--ir", tmp_path / "ir", "--vi", vi_dir, "--fused", tmp_path / "ir",
                       "-m", "en,sd,mse", "--workers", "1", "--no-progress", "--json", out / "m.json")
    assert code == 1 and "Traceback" not in err
    doc = json.loads((out / "m.json").read_text())
    assert len(doc["per_image"]) + len(doc["excluded_images"]["failed"]) == n_pairs
    assert snapshot(tmp_path, skip=out) == before
