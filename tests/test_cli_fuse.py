"""`emma fuse` and the Python API end to end, including every bad-input path."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import emma_fusion
from emma_fusion.cli import main
from emma_fusion.errors import EmmaError
from emma_fusion.io import read_image, write_image
from emma_fusion.nets import SensingUNet, UFuser
from emma_fusion.weights import load_model, save_weights


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    return save_weights(tmp_path_factory.mktemp("w") / "ufuser.safetensors", UFuser())


def run(capsys, *args):
    with pytest.raises(SystemExit) as e:
        main(list(map(str, args)))
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


def test_fuse_pair_colour_and_gray(tmp_path, pair, weights, capsys):
    ir, vi = pair
    code, _, err = run(capsys, "fuse", ir, vi, "-o", tmp_path / "f.png", "--weights", weights)
    assert code == 0, err
    rgb = read_image(tmp_path / "f.png")
    assert rgb.shape == (37, 53, 3)
    code, _, _ = run(capsys, "fuse", ir, vi, "-o", tmp_path / "g.png", "--weights", weights, "--color", "gray")
    gray = read_image(tmp_path / "g.png")
    assert gray.shape == (37, 53)
    assert gray.min() == 0 and gray.max() == 1  # min-max normalised like the authors' outputs
    # The colour output's luma is the gray output (chroma put back around the same fused Y).
    y = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
    assert np.median(np.abs(y - gray)) < 1 / 255  # (RGB gamut clipping moves a few saturated pixels)


def test_python_api_matches_cli(tmp_path, pair, weights, capsys):
    ir, vi = pair
    run(capsys, "fuse", ir, vi, "-o", tmp_path / "f.png", "--weights", weights, "--color", "gray")
    api = emma_fusion.fuse(ir, vi, load_model(weights), color="gray")
    assert np.abs(api - read_image(tmp_path / "f.png")).max() <= 0.5 / 255 + 1e-6
    pil = emma_fusion.fuse(Image.open(ir), Image.open(vi), str(weights), color="gray")
    np.testing.assert_array_equal(pil, api)


def test_folder_mode_pairs_skips_and_overwrites(tmp_path, pair, weights, capsys):
    ir, vi = pair
    write_image(ir.parent / "lonely.png", np.zeros((8, 8), np.float32))
    out = tmp_path / "out"
    code, stdout, err = run(capsys, "fuse", "--ir", ir.parent, "--vi", vi.parent, "--out", out, "--weights", weights, "--method", "emma")
    assert code in (0, None), err
    assert "lonely" in err and "1 written" in stdout
    before = (out / "a.png").stat().st_mtime_ns
    code, stdout, _ = run(capsys, "fuse", "--ir", ir.parent, "--vi", vi.parent, "--out", out, "--weights", weights)
    assert "1 skipped" in stdout and (out / "a.png").stat().st_mtime_ns == before
    code, stdout, _ = run(capsys, "fuse", "--ir", ir.parent, "--vi", vi.parent, "--out", out, "--weights", weights, "--overwrite")
    assert "1 written" in stdout


def test_pair_mode_keeps_an_existing_output_without_overwrite(tmp_path, pair, capsys):
    ir, vi = pair
    out = tmp_path / "f.png"
    out.write_bytes(b"keep me")
    code, _, err = run(capsys, "fuse", ir, vi, "-o", out, "--method", "average")
    assert code == 2 and "exists; pass --overwrite" in err and err.count("\n") == 1
    assert out.read_bytes() == b"keep me"
    code, stdout, err = run(capsys, "fuse", ir, vi, "-o", out, "--method", "average", "--overwrite")
    assert code in (0, None), err
    assert out.read_bytes() != b"keep me" and str(out) in stdout


def test_no_default_model_message(tmp_path, pair, capsys, monkeypatch):
    monkeypatch.setattr("emma_fusion.weights.packaged_models", lambda: {})
    ir, vi = pair
    code, _, err = run(capsys, "fuse", ir, vi, "-o", tmp_path / "f.png")
    assert code == 2 and err.startswith("error: no default model") and err.count("\n") == 1


def _bad_inputs(tmp_path, pair, weights):
    ir, vi = pair
    trunc = tmp_path / "trunc.png"
    trunc.write_bytes(ir.read_bytes()[:40])
    small = write_image(tmp_path / "small.png", np.zeros((10, 10), np.float32))
    empty_dir = tmp_path / "empty"
    empty_dir.mkdir()
    wrong = save_weights(tmp_path / "sensing.safetensors", SensingUNet(4))
    junk_w = tmp_path / "junk.pth"
    junk_w.write_bytes(b"garbage")
    return {
        "missing file": (["fuse", tmp_path / "nope.png", vi, "-o"], "no such image"),
        "truncated": (["fuse", trunc, vi, "-o"], "cannot read"),
        "size mismatch": (["fuse", small, vi, "-o"], "sizes differ"),
        "empty folders": (["fuse", "--ir", empty_dir, "--vi", empty_dir, "--out"], "no image pairs"),
        "wrong checkpoint": (["fuse", ir, vi, "--weights", wrong, "-o"], "does not fit UFuser"),
        "corrupt checkpoint": (["fuse", ir, vi, "--weights", junk_w, "-o"], "cannot read weights"),
        "missing checkpoint": (["fuse", ir, vi, "--weights", tmp_path / "x.safetensors", "-o"], "no such weights"),
    }


@pytest.mark.parametrize("case", ["missing file", "truncated", "size mismatch", "empty folders", "wrong checkpoint", "corrupt checkpoint", "missing checkpoint"])
def test_bad_input_one_line_error_and_no_output(tmp_path, pair, weights, capsys, case):
    args, msg = _bad_inputs(tmp_path, pair, weights)[case]
    out = tmp_path / "result" / "f.png"
    out.parent.mkdir()
    out.write_bytes(b"previous result")
    target = out if "--out" not in args else out.parent
    extra = ([] if "--weights" in args else ["--weights", weights]) + ["--overwrite"]  # the bad input must be what stops it
    code, _, err = run(capsys, *args, target, *extra)
    assert code == 2, err
    assert msg in err and err.startswith("error: ") and err.count("\n") == 1
    assert out.read_bytes() == b"previous result"
    assert sorted(p.name for p in out.parent.iterdir()) == ["f.png"]


def test_zero_size_array_rejected():
    with pytest.raises(EmmaError, match="empty"):
        emma_fusion.fuse(np.zeros((0, 5)), np.zeros((0, 5)), UFuser())


def test_nan_output_is_an_error(pair):
    ir, vi = pair
    with pytest.raises(EmmaError, match="NaN"):
        emma_fusion.fuse(ir, vi, lambda a, b, key=None: a * float("nan"))


def test_pseudo_colour_source_is_used_for_medical_pairs():
    mri = np.random.default_rng(1).random((32, 32), dtype=np.float32)
    pet = np.zeros((32, 32, 3), np.float32)
    pet[..., 0] = 0.8  # strongly red pseudo-colour
    out = emma_fusion.fuse(pet, mri, lambda a, b, key=None: (a + b) / 2)
    assert out.ndim == 3 and (out[..., 0] - out[..., 2]).mean() > 0.2
    gray = emma_fusion.fuse(pet, mri, lambda a, b, key=None: (a + b) / 2, color_source="vi")
    assert gray.ndim == 2  # the MRI is gray, so there is no chroma to restore


def test_folder_mode_reports_bad_pair_and_fuses_the_rest(tmp_path, weights, capsys):
    rng = np.random.default_rng(1)
    for stem, shape_vi in [("good", (20, 30)), ("bad", (21, 30))]:
        write_image(tmp_path / "ir" / f"{stem}.png", rng.random((20, 30), dtype=np.float32))
        write_image(tmp_path / "vi" / f"{stem}.png", rng.random(shape_vi, dtype=np.float32))
    code, stdout, err = run(capsys, "fuse", "--ir", tmp_path / "ir", "--vi", tmp_path / "vi", "--out", tmp_path / "o", "--weights", weights)
    assert code == 1 and "1 written" in stdout and "1 failed" in stdout
    assert "bad" in err and "sizes differ" in err
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["good.png"]


def test_precision_and_backend_options(tmp_path, pair, weights, capsys):
    ir, vi = pair
    ref = emma_fusion.fuse(ir, vi, method="emma", weights=str(weights), color="gray", normalize="clip", fast=False)
    fast = emma_fusion.fuse(ir, vi, method="emma", weights=str(weights), color="gray", normalize="clip")
    assert np.abs(fast - ref).max() < 1e-5
    bf16 = emma_fusion.fuse(ir, vi, method="emma", weights=str(weights), color="gray", normalize="clip", precision="bf16")
    assert np.abs(bf16 - ref).max() < 2e-2
    code, _, err = run(capsys, "fuse", ir, vi, "-o", tmp_path / "x.png", "--weights", weights, "--backend", "tensorflow")
    assert code == 2 and "unknown backend" in err


@pytest.mark.parametrize("streams", [1, 3])
def test_folder_streams_give_the_same_files_and_restore_threads(tmp_path, weights, streams):
    """Pairs in flight at once (each with a share of the threads) change nothing in the outputs."""
    rng = np.random.default_rng(2)
    for k in range(4):
        write_image(tmp_path / "ir" / f"{k}.png", rng.random((24 + k, 40), dtype=np.float32))
        write_image(tmp_path / "vi" / f"{k}.png", rng.random((24 + k, 40, 3), dtype=np.float32))
    threads = torch.get_num_threads()
    model = load_model(weights)
    ref = emma_fusion.fuse_folder(tmp_path / "ir", tmp_path / "vi", tmp_path / "seq", model, progress=False, streams=1)
    rep = emma_fusion.fuse_folder(tmp_path / "ir", tmp_path / "vi", tmp_path / "par", model, progress=False, streams=streams)
    assert torch.get_num_threads() == threads
    assert [p.name for p in rep.written] == [p.name for p in ref.written] == [f"{k}.png" for k in range(4)]
    for a, b in zip(ref.written, rep.written):
        diff = np.abs(read_image(a) * 255 - read_image(b) * 255).max()
        assert diff <= 1  # 8-bit rounding of values equal to ~1e-7


@pytest.mark.parametrize("method", ["gff", "dwt"])
def test_folder_streams_with_classical_methods(tmp_path, method):
    rng = np.random.default_rng(3)
    for k in range(3):
        write_image(tmp_path / "ir" / f"{k}.png", rng.random((30, 41), dtype=np.float32))
        write_image(tmp_path / "vi" / f"{k}.png", rng.random((30, 41), dtype=np.float32))
    outs = []
    for streams in (1, 2):
        rep = emma_fusion.fuse_folder(tmp_path / "ir", tmp_path / "vi", tmp_path / f"s{streams}", method=method, progress=False, streams=streams)
        outs.append([read_image(p) for p in rep.written])
    assert len(outs[0]) == len(outs[1]) == 3  # both runs wrote every pair
    for a, b in zip(*outs):
        np.testing.assert_array_equal(a, b)


def test_method_options_come_from_the_registry(tmp_path, capsys):
    """Each method takes the options its registry entry lists; a network-only option with a classical
    method is refused in one line, before anything is read or written."""
    from emma_fusion.methods.base import method_info

    assert {"weights", "tile", "precision", "backend", "threads", "device"} <= method_info("emma").options
    assert "weights" not in method_info("gff").options and "device" in method_info("gff").options
    rng = np.random.default_rng(4)
    write_image(tmp_path / "ir.png", rng.random((24, 32), dtype=np.float32))
    write_image(tmp_path / "vi.png", rng.random((24, 32), dtype=np.float32))
    for flag, value in (("--weights", "x.safetensors"), ("--tile", "512"), ("--precision", "bf16")):
        code, _, err = run(capsys, "fuse", tmp_path / "ir.png", tmp_path / "vi.png", "-o", tmp_path / "f.png",
                           "--method", "gff", flag, value)
        assert code == 2 and f"{flag} does not apply to --method gff" in err
    assert not (tmp_path / "f.png").exists()
    code, _, _ = run(capsys, "fuse", tmp_path / "ir.png", tmp_path / "vi.png", "-o", tmp_path / "f.png",
                     "--method", "gff", "--threads", "1")
    assert code == 0 and (tmp_path / "f.png").is_file()


def test_files_given_as_folders_get_the_one_pair_hint(tmp_path, pair, capsys):
    ir, vi = pair
    code, _, err = run(capsys, "fuse", "--ir", ir, "--vi", vi, "--out", tmp_path / "o.png", "--method", "average")
    assert code == 2 and "for one pair: emma fuse IR VI -o OUT" in err
    assert not (tmp_path / "o.png").exists()
    with pytest.raises(EmmaError, match="not a folder"):
        emma_fusion.io.list_images(ir)


@pytest.mark.parametrize("extra, named", [
    (["--fps", "-5"], "--fps"),
    (["--offset", "abc"], "--offset"),
    (["--lossless", "--batch", "2"], "--lossless, --batch"),
])
def test_video_options_for_images_are_refused(tmp_path, pair, weights, capsys, extra, named):
    code, _, err = run(capsys, "fuse", *pair, "-o", tmp_path / "f.png", "-w", weights, *extra)
    verb = "apply" if "," in named else "applies"
    assert code == 2 and err == f"error: {named} {verb} to video only; these inputs and output are images\n"
    assert not (tmp_path / "f.png").exists()


def test_a_folder_with_two_images_of_one_stem_is_refused(tmp_path, pair, weights, capsys):
    ir, vi = pair
    Image.open(ir).save(ir.with_suffix(".jpg"))
    code, _, err = run(capsys, "fuse", "--ir", ir.parent, "--vi", vi.parent, "-o", tmp_path / "out", "-w", weights)
    assert code == 2 and "two images named a in" in err and err.count("\n") == 1


def test_an_unknown_device_is_one_line(tmp_path, pair, weights, capsys):
    code, _, err = run(capsys, "fuse", *pair, "-o", tmp_path / "f.png", "-w", weights, "--device", "tpu")
    assert code == 2 and err == "error: unknown device 'tpu'; use cpu, cuda or cuda:N\n"
