"""Pseudo ground truth (`emma pseudo-gt`) and the results-folder method, on real RoadScene pairs."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import shared_path
from PIL import Image

from emma_fusion.errors import EmmaError
from emma_fusion.io import read_image, to_gray, write_image
from emma_fusion.methods.base import get_method
from emma_fusion.methods.folder import ResultsFolder
from emma_fusion.train.pseudo_gt import make_pseudo_gt, parse_results_spec


@pytest.fixture
def pairs(tmp_path) -> tuple[Path, Path, Path]:
    """Three RoadScene training pairs (ir gray, vi RGB) in tmp folders + the IFCNN results folder."""
    root = shared_path("data", "RoadScene", "train")
    results = shared_path("data", "results", "IFCNN", "RoadScene_train")
    stems = sorted(p.stem for p in (root / "ir").iterdir())[:3]
    ir_dir, vi_dir = tmp_path / "ir", tmp_path / "vi"
    ir_dir.mkdir()
    vi_dir.mkdir()
    for s in stems:
        for side, d in (("ir", ir_dir), ("vi", vi_dir)):
            src = next(p for p in (root / side).iterdir() if p.stem == s)
            (d / src.name).symlink_to(src.resolve())
    return ir_dir, vi_dir, results


def _gray_u8(path: Path) -> np.ndarray:
    img = Image.open(path)
    assert img.mode == "L"
    return np.asarray(img)


def _expected(method: str, ir_path: Path, vi_path: Path) -> np.ndarray:
    t = lambda p: torch.from_numpy(np.ascontiguousarray(to_gray(read_image(p)), dtype=np.float32))[None, None]
    fused = get_method(method)(t(ir_path), t(vi_path))[0, 0].numpy()
    return (np.clip(fused, 0, 1) * 255 + 0.5).astype(np.uint8)


def test_writes_one_folder_per_source_with_the_methods_outputs(pairs, tmp_path):
    ir_dir, vi_dir, results = pairs
    out = tmp_path / "out"
    rep = make_pseudo_gt(ir_dir, vi_dir, out, ["lp", "tif"], [results])
    stems = sorted(p.stem for p in ir_dir.iterdir())
    assert rep.pairs == stems
    assert [f.name for f in rep.folders()] == ["lp", "tif", "IFCNN_RoadScene_train"]
    for method in ("lp", "tif"):
        for s in stems:
            got = _gray_u8(out / method / f"{s}.png")
            want = _expected(method, next(ir_dir.glob(f"{s}.*")), next(vi_dir.glob(f"{s}.*")))
            assert got.shape == want.shape
            assert np.abs(got.astype(int) - want.astype(int)).max() <= 1
    for s in stems:  # the external results are copied pixel for pixel (they are 8-bit gray)
        src = np.asarray(Image.open(next(results.glob(f"{s}.*"))).convert("L"))
        np.testing.assert_array_equal(_gray_u8(out / "IFCNN_RoadScene_train" / f"{s}.png"), src)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["sources"]["lp"]["images"] == 3 and manifest["sources"]["IFCNN_RoadScene_train"]["kind"] == "folder"


def test_keeps_existing_outputs_unless_overwrite(pairs, tmp_path):
    ir_dir, vi_dir, _ = pairs
    out = tmp_path / "out"
    make_pseudo_gt(ir_dir, vi_dir, out, ["average"])
    stem = sorted(p.stem for p in ir_dir.iterdir())[0]
    target = out / "average" / f"{stem}.png"
    good = _gray_u8(target).copy()
    write_image(target, np.zeros(good.shape, np.float32))
    rep = make_pseudo_gt(ir_dir, vi_dir, out, ["average"])
    assert stem in rep.sources["average"].skipped and not rep.sources["average"].written
    assert _gray_u8(target).max() == 0
    rep = make_pseudo_gt(ir_dir, vi_dir, out, ["avg"], overwrite=True)
    assert len(rep.sources["average"].written) == 3
    np.testing.assert_array_equal(_gray_u8(target), good)
    assert not list(out.rglob(".*.tmp*")), "temporary files left behind"


def test_missing_results_are_reported_not_written(pairs, tmp_path, caplog):
    ir_dir, vi_dir, results = pairs
    partial = tmp_path / "partial"
    partial.mkdir()
    first = sorted(p.stem for p in ir_dir.iterdir())[0]
    src = next(results.glob(f"{first}.*"))
    (partial / src.name).symlink_to(src.resolve())
    with caplog.at_level(logging.WARNING):
        rep = make_pseudo_gt(ir_dir, vi_dir, tmp_path / "out", [], [f"P={partial}"])
    s = rep.sources["P"]
    assert s.written == [first] and len(s.missing) == 2
    assert sorted(p.stem for p in (tmp_path / "out" / "P").iterdir()) == [first]
    assert "2 of 3 pairs have no fused image" in caplog.text


def test_a_results_folder_with_none_of_the_pairs_is_an_error(pairs, tmp_path):
    ir_dir, vi_dir, _ = pairs
    (tmp_path / "empty").mkdir()
    with pytest.raises(EmmaError, match="results source E .* has no image for any of the 3 pairs"):
        make_pseudo_gt(ir_dir, vi_dir, tmp_path / "out", ["average"], [f"E={tmp_path / 'empty'}"])
    assert not (tmp_path / "out").exists()


def test_results_of_another_size_are_an_error(pairs, tmp_path):
    ir_dir, vi_dir, _ = pairs
    bad = tmp_path / "bad"
    for s in (p.stem for p in ir_dir.iterdir()):
        write_image(bad / f"{s}.png", np.zeros((5, 7), np.float32))
    with pytest.raises(EmmaError, match="7x5"):
        make_pseudo_gt(ir_dir, vi_dir, tmp_path / "out", [], [bad])


@pytest.mark.parametrize(
    "methods,results,match",
    [
        (["nope"], [], "unknown method"),
        ([], [], "no sources"),
        (["lp", "laplacian"], [], "both named"),
    ],
)
def test_bad_sources_are_errors(pairs, tmp_path, methods, results, match):
    ir_dir, vi_dir, _ = pairs
    with pytest.raises(EmmaError, match=match):
        make_pseudo_gt(ir_dir, vi_dir, tmp_path / "out", methods, results)
    assert not (tmp_path / "out").exists()


def test_no_pairs_is_an_error(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with pytest.raises(EmmaError, match="no image pairs"):
        make_pseudo_gt(tmp_path / "a", tmp_path / "b", tmp_path / "out", ["lp"])


def test_parse_results_spec(tmp_path):
    d = tmp_path / "IFCNN" / "MSRS_train"
    assert parse_results_spec(str(d)) == ("IFCNN_MSRS_train", d)
    assert parse_results_spec(f"ifc={d}") == ("ifc", d)
    assert parse_results_spec(("x", d)) == ("x", d)
    with pytest.raises(EmmaError, match="bad source name"):
        parse_results_spec(("../up", d))
    for bad in ("=", f"={d}", f"../x={d}", "ifc="):
        with pytest.raises(EmmaError, match="bad results source .*: give NAME=DIR"):
            parse_results_spec(bad)


# --- the results-folder method ---------------------------------------------------------------


def test_results_folder_returns_luma_and_checks_keys_and_sizes(tmp_path):
    rgb = np.random.default_rng(0).random((6, 9, 3)).astype(np.float32)
    write_image(tmp_path / "a.png", rgb)
    m = get_method("folder", folder=tmp_path, device="cpu")
    assert isinstance(m, ResultsFolder) and m.name == tmp_path.name
    x = torch.zeros(1, 1, 6, 9)
    out = m(x, x, key="a")
    want = to_gray(read_image(tmp_path / "a.png"))
    assert out.shape == (1, 1, 6, 9) and out.dtype == torch.float32
    np.testing.assert_allclose(out[0, 0].numpy(), want, atol=1e-6)
    assert torch.equal(m(torch.zeros(2, 1, 6, 9), x, key=["a", "a"])[1], out[0])
    with pytest.raises(EmmaError, match="no fused image named 'b'"):
        m(x, x, key="b")
    with pytest.raises(EmmaError, match="no key"):
        m(x, x)
    with pytest.raises(EmmaError, match="9x6, the inputs are 8x6"):
        m(torch.zeros(1, 1, 6, 8), torch.zeros(1, 1, 6, 8), key="a")
    with pytest.raises(EmmaError, match="no such folder"):
        ResultsFolder(tmp_path / "missing")
    with pytest.raises(EmmaError, match="needs a folder"):
        get_method("folder")


# --- CLI ---------------------------------------------------------------------------------------


def test_cli_methods_lists_names_and_references(capsys):
    from emma_fusion.cli import main

    with pytest.raises(SystemExit) as e:
        main(["methods"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for name in ("average", "lp", "dwt", "gff", "tif", "cbf", "vsm_wls"):
        assert f"\n{name}" in text
    assert "Li, Kang & Hu" in text and "2013" in text


def test_cli_pseudo_gt(pairs, tmp_path, capsys):
    from emma_fusion.cli import main

    ir_dir, vi_dir, results = pairs
    out = tmp_path / "out"
    args = ["pseudo-gt", "--ir", str(ir_dir), "--vi", str(vi_dir), "--methods", "dwt", "--results", f"ifcnn={results}",
            "--out", str(out), "--no-progress"]
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 0
    assert "dwt: 3 written, 0 kept" in capsys.readouterr().out
    stem = sorted(p.stem for p in ir_dir.iterdir())[1]
    want = _expected("dwt", next(ir_dir.glob(f"{stem}.*")), next(vi_dir.glob(f"{stem}.*")))
    assert np.abs(_gray_u8(out / "dwt" / f"{stem}.png").astype(int) - want).max() <= 1
    with pytest.raises(SystemExit) as e:
        main(args)
    assert "dwt: 0 written, 3 kept" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        main(["pseudo-gt", "--ir", str(ir_dir), "--vi", str(vi_dir), "--methods", "bogus", "--out", str(out)])
    assert e.value.code == 2
    assert "error: unknown method 'bogus'" in capsys.readouterr().err
