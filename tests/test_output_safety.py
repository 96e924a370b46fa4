"""Outputs are never replaced without --overwrite, bad paths and options give one `error:` line
(exit 2) before any work and name the user's path (never a temporary file), and the metric reader
takes the float TIFFs `emma fuse` takes (`emma export onnx`, `emma metrics`, `emma bench`, `emma demo`)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from emma_fusion.cli import main
from emma_fusion.errors import EmmaError

EXISTS = "exists; pass --overwrite to replace it (overwrite=True in Python)"


def run(cap, *args):
    """Run the ``emma`` CLI in-process; returns (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as e:
        main(list(map(str, args)))
    out = cap.readouterr()
    return e.value.code or 0, out.out, out.err


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_one_error_line(err: str, *needles: str) -> None:
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err and ".tmp" not in err, err
    for needle in needles:
        assert needle in err, err


@pytest.fixture
def no_model(monkeypatch):
    """Fail the test if a command loads a model: the refusals come before any work."""
    def load_model(*args, **kwargs):
        raise AssertionError("the model was loaded before the output was checked")

    monkeypatch.setattr("emma_fusion.weights.load_model", load_model)


# `emma export onnx` -----------------------------------------------------------------------------


def test_export_refuses_an_existing_file_without_overwrite(tmp_path, capsys, no_model):
    out = tmp_path / "m.onnx"
    out.write_bytes(b"an earlier export")
    before = sha(out)
    code, stdout, err = run(capsys, "export", "onnx", out)
    assert code == 2 and stdout == ""
    assert_one_error_line(err, f"error: {out} {EXISTS}")
    assert sha(out) == before


@pytest.mark.parametrize("name", ["img.png", "model", "m.onnx.bak"])
def test_export_needs_the_onnx_suffix(tmp_path, capsys, no_model, name):
    out = tmp_path / name
    out.write_bytes(b"not to be replaced")
    before = sha(out)
    code, _, err = run(capsys, "export", "onnx", out, "--overwrite")
    assert code == 2
    assert_one_error_line(err, str(out), "must end in .onnx")
    assert sha(out) == before


def test_export_to_a_folder_says_so(tmp_path, capsys, no_model):
    code, _, err = run(capsys, "export", "onnx", f"{tmp_path}/")
    assert code == 2
    assert_one_error_line(err, f"error: {tmp_path} is a folder; give a file name ending in .onnx")
    assert list(tmp_path.iterdir()) == []


def test_export_to_an_unwritable_place_names_the_users_path(tmp_path, capsys, no_model):
    (tmp_path / "a-file").write_text("a file, not a folder")
    out = tmp_path / "a-file" / "x.onnx"
    code, _, err = run(capsys, "export", "onnx", out)
    assert code == 2
    assert_one_error_line(err, f"error: cannot write {out}: ")


@pytest.mark.parametrize("opset", ["999", "13"])
def test_export_checks_the_opset_up_front(tmp_path, capsys, no_model, opset):
    code, _, err = run(capsys, "export", "onnx", tmp_path / "m.onnx", "--opset", opset)
    assert code == 2
    assert_one_error_line(err, f"opset {opset}", "17..")
    assert list(tmp_path.iterdir()) == []


def test_export_api_refuses_before_exporting(tmp_path, monkeypatch):
    from emma_fusion.inference.onnx import export_onnx, max_opset
    from emma_fusion.nets import UFuser

    monkeypatch.setattr("emma_fusion.inference.onnx.fold_weights", lambda m: pytest.fail("exported anyway"))
    out = tmp_path / "m.onnx"
    out.write_bytes(b"kept")
    with pytest.raises(EmmaError, match="overwrite=True"):
        export_onnx(UFuser(), out)
    with pytest.raises(EmmaError, match=r"\.onnx"):
        export_onnx(UFuser(), tmp_path / "m.png", overwrite=True)
    with pytest.raises(EmmaError, match="not supported"):
        export_onnx(UFuser(), tmp_path / "new.onnx", opset=max_opset() + 1)
    assert out.read_bytes() == b"kept" and sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


def test_export_overwrite_replaces_the_file(tmp_path, capsys):
    pytest.importorskip("onnx")
    out = tmp_path / "m.onnx"
    out.write_bytes(b"an earlier export")
    code, stdout, err = run(capsys, "export", "onnx", out, "--overwrite")
    assert code == 0, err
    assert stdout.strip() == str(out) and out.read_bytes() != b"an earlier export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]  # no temporary file left


# `emma metrics` ---------------------------------------------------------------------------------


@pytest.fixture
def triplets(tmp_path):
    """ir/, vi/, fused/ with two 48x48 triplets; ``fused/b.png`` is damaged when asked."""
    rng = np.random.default_rng(3)
    dirs = {k: tmp_path / k for k in ("ir", "vi", "fused")}
    for d in dirs.values():
        d.mkdir()
    for stem in ("a", "b"):
        ir, vi = rng.integers(0, 256, (2, 48, 48), dtype=np.uint8)
        Image.fromarray(ir).save(dirs["ir"] / f"{stem}.png")
        Image.fromarray(vi).save(dirs["vi"] / f"{stem}.png")
        Image.fromarray(np.maximum(ir, vi)).save(dirs["fused"] / f"{stem}.png")
    return dirs


def _metrics(cap, dirs, *extra):
    return run(cap, "metrics", "--ir", dirs["ir"], "--vi", dirs["vi"], "--fused", dirs["fused"], "-m", "EN,SD",
               "-j", "1", "--no-progress", *extra)


@pytest.mark.parametrize("option", ["--json", "--csv"])
def test_metrics_refuses_an_existing_report_before_scoring(tmp_path, triplets, capsys, monkeypatch, option):
    monkeypatch.setattr("emma_fusion.metrics.score_folder", lambda *a, **k: pytest.fail("scored anyway"))
    report = tmp_path / "report.txt"
    report.write_text("an earlier report\n")
    before = sha(report)
    code, stdout, err = _metrics(capsys, triplets, option, report)
    assert code == 2 and stdout == ""
    assert_one_error_line(err, f"error: {report} {EXISTS}")
    assert sha(report) == before


def test_metrics_with_failures_keeps_an_existing_report(tmp_path, triplets, capsys):
    (triplets["fused"] / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n damaged")
    report = tmp_path / "m.json"
    report.write_text("{}\n")
    before = sha(report)
    code, _, err = _metrics(capsys, triplets, "--json", report)
    assert code == 2
    assert_one_error_line(err, EXISTS)
    assert sha(report) == before
    code, _, err = _metrics(capsys, triplets, "--json", report, "--overwrite")  # asked: what was scored
    assert code == 1 and "cannot score b" in err
    doc = json.loads(report.read_text())
    assert list(doc["per_image"]) == ["a"] and list(doc["excluded_images"]["failed"]) == ["b"]


def test_metrics_report_on_a_folder_names_the_users_path(triplets, capsys):
    code, _, err = _metrics(capsys, triplets, "--json", triplets["ir"])
    assert code == 2
    assert_one_error_line(err, f"error: {triplets['ir']} is a folder; give a file name")


def test_metrics_json_and_csv_may_not_be_one_file(tmp_path, triplets, capsys):
    code, _, err = _metrics(capsys, triplets, "--json", tmp_path / "m.out", "--csv", tmp_path / "m.out")
    assert code == 2
    assert_one_error_line(err, "same file")
    assert not (tmp_path / "m.out").exists()


@pytest.mark.parametrize("workers", ["0", "-2"])
def test_metrics_refuses_zero_workers(triplets, capsys, workers):
    code, stdout, err = run(capsys, "metrics", "--ir", triplets["ir"], "--vi", triplets["vi"],
                            "--fused", triplets["fused"], "-j", workers, "--no-progress")
    assert code == 2 and stdout == ""
    assert_one_error_line(err, f"--workers must be at least 1 (got {workers})")


def test_score_folder_and_writers_keep_the_rule(tmp_path, triplets):
    from emma_fusion.metrics import score_folder
    from emma_fusion.metrics.dataset import write_csv, write_json

    with pytest.raises(EmmaError, match="at least 1"):
        score_folder(triplets["ir"], triplets["vi"], triplets["fused"], "EN", workers=0)
    res = score_folder(triplets["ir"], triplets["vi"], triplets["fused"], "EN", workers=1)
    for write in (write_json, write_csv):
        out = tmp_path / f"kept.{write.__name__}"
        out.write_text("kept")
        with pytest.raises(EmmaError, match="overwrite=True"):
            write(res, out)
        assert out.read_text() == "kept"
        write(res, out, overwrite=True)
        assert out.read_text() != "kept"


# Float TIFF fused images: read as `emma fuse` reads them, no OpenCV warning --------------------


def _float_tiffs(triplets: dict[str, Path]) -> Path:
    """fused_tif/: the fused images of ``triplets`` as float32 TIFFs in [0, 1]."""
    out = triplets["fused"].parent / "fused_tif"
    out.mkdir()
    for png in sorted(triplets["fused"].glob("*.png")):
        arr = np.asarray(Image.open(png), dtype=np.float32) / 255
        Image.fromarray(arr).save(out / f"{png.stem}.tif")
    return out


def test_metrics_scores_float_tiffs_like_their_png(triplets, capfd):
    tifs = _float_tiffs(triplets)
    code, tif_out, err = run(capfd, "metrics", "--ir", triplets["ir"], "--vi", triplets["vi"], "--fused", tifs,
                             "-m", "EN,SD,SF,MI,SSIM", "-j", "1", "--no-progress")
    assert code == 0, err
    assert "WARN" not in err and "cannot decode" not in err and err == "", err
    code, png_out, _ = _metrics(capfd, triplets, "-m", "EN,SD,SF,MI,SSIM")
    assert code == 0
    assert tif_out.splitlines()[1:] == png_out.splitlines()[1:]  # same table under the title


def test_read_metric_image_of_a_float_tiff_equals_its_8bit_png(tmp_path):
    from emma_fusion.io import write_image
    from emma_fusion.metrics import read_metric_image

    rgb = np.random.default_rng(5).random((20, 24, 3), dtype=np.float32)
    Image.fromarray(rgb[..., 0]).save(tmp_path / "gray.tif")
    np.testing.assert_array_equal(read_metric_image(tmp_path / "gray.tif"),
                                  read_metric_image(write_image(tmp_path / "gray.png", rgb[..., 0])))
    bad = tmp_path / "bad.tif"
    Image.fromarray(np.full((8, 8), np.nan, np.float32)).save(bad)
    with pytest.raises(EmmaError, match="NaN"):
        read_metric_image(bad)


def test_bench_scores_float_tiff_results(tmp_path, capfd):
    rng = np.random.default_rng(7)
    for stem in ("a", "b"):
        ir, vi = rng.integers(0, 256, (2, 64, 64), dtype=np.uint8)
        for kind, arr in (("ir", ir), ("vi", vi)):
            (tmp_path / "data" / "DS" / kind).mkdir(parents=True, exist_ok=True)
            Image.fromarray(arr).save(tmp_path / "data" / "DS" / kind / f"{stem}.png")
        (tmp_path / "res" / "Mine" / "DS").mkdir(parents=True, exist_ok=True)
        Image.fromarray((np.maximum(ir, vi) / 255).astype(np.float32)).save(tmp_path / "res" / "Mine" / "DS" / f"{stem}.tif")
    code, stdout, err = run(capfd, "bench", "-d", tmp_path / "data", "-o", tmp_path / "out", "-m", "none",
                            "-r", tmp_path / "res", "--metrics", "EN,SD", "-j", "1", "--no-progress", "--no-html")
    assert code == 0, err
    assert "WARN" not in err and "left out" not in err and "cannot decode" not in err, err
    assert "scored 2 new" in stdout


# `emma demo --threads 0` ------------------------------------------------------------------------


@pytest.mark.parametrize("threads", ["0", "-1"])
def test_demo_refuses_zero_threads_before_any_work(tmp_path, capsys, no_model, threads):
    code, stdout, err = run(capsys, "demo", "--out", tmp_path / "demo", "--threads", threads)
    assert code == 2 and stdout == ""
    assert_one_error_line(err, f"--threads must be at least 1 (got {threads})")
    assert not (tmp_path / "demo").exists()
