"""score_folder (pairing, process pool, means, JSON/CSV) and the ``emma metrics`` command."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

from emma_fusion.cli.metrics import register
from emma_fusion.errors import EmmaError
from emma_fusion.metrics import compute, read_metric_image, score_folder
from emma_fusion.metrics.dataset import write_csv, write_json

NAMES = ["EN", "SD", "MI", "CC", "PSNR", "Qabf", "VIF"]


@pytest.fixture
def folders(tmp_path):
    """ir/, vi/, fused/ with 3 paired 48x52 triplets (one fused image flat), plus unpaired extras."""
    rng = np.random.default_rng(0)
    dirs = {k: tmp_path / k for k in ("ir", "vi", "fused")}
    for d in dirs.values():
        d.mkdir()
    for i, stem in enumerate(["a1", "b2", "c3"]):
        ir = rng.integers(0, 256, (48, 52), dtype=np.uint8)
        vi = rng.integers(0, 256, (48, 52, 3), dtype=np.uint8)  # colour: read as rounded luma
        fused = np.full((48, 52), 90, np.uint8) if i == 1 else np.maximum(ir, vi[..., 1])
        Image.fromarray(ir).save(dirs["ir"] / f"{stem}.png")
        Image.fromarray(vi).save(dirs["vi"] / f"{stem}.jpg", quality=95)
        Image.fromarray(fused).save(dirs["fused"] / f"{stem}.png")
    Image.fromarray(np.zeros((48, 52), np.uint8)).save(dirs["fused"] / "orphan.png")
    Image.fromarray(np.zeros((48, 52), np.uint8)).save(dirs["ir"] / "lonely.png")
    return dirs


def test_score_folder_pairs_by_stem_and_matches_compute(folders):
    res = score_folder(folders["ir"], folders["vi"], folders["fused"], NAMES, workers=1)
    assert list(res) == ["per_image", "mean", "excluded", "excluded_images"]
    assert res["excluded_images"] == {"failed": {}, "missing": {"lonely": "no fused, no visible image", "orphan": "no infrared, no visible image"}}
    assert list(res["per_image"]) == ["a1", "b2", "c3"]
    f, a, b = (read_metric_image(p) for p in (folders["fused"] / "c3.png", folders["ir"] / "c3.png",
                                               folders["vi"] / "c3.jpg"))
    assert res["per_image"]["c3"] == compute(f, a, b, NAMES)
    assert math.isnan(res["per_image"]["b2"]["CC"])  # flat fused image
    assert res["excluded"] == {**dict.fromkeys(NAMES, 0), "CC": 1}
    cc = [res["per_image"][s]["CC"] for s in ("a1", "c3")]
    assert res["mean"]["CC"] == pytest.approx(np.mean(cc))
    assert res["mean"]["EN"] == pytest.approx(np.mean([v["EN"] for v in res["per_image"].values()]))


def test_process_pool_gives_the_same_result(folders):
    one = score_folder(folders["ir"], folders["vi"], folders["fused"], NAMES, workers=1)
    two = score_folder(folders["ir"], folders["vi"], folders["fused"], NAMES, workers=2)
    assert json.dumps(one, sort_keys=True) == json.dumps(two, sort_keys=True)


def test_score_folder_errors(folders, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(EmmaError, match="no image stem"):
        score_folder(folders["ir"], folders["vi"], empty)
    with pytest.raises(EmmaError, match="b2: VIF needs images of at least 41x41"):
        Image.fromarray(np.zeros((20, 20), np.uint8)).save(folders["fused"] / "b2.png")
        for k in ("ir", "vi"):
            for p in folders[k].glob("b2.*"):
                Image.open(p).resize((20, 20)).save(p)
        score_folder(folders["ir"], folders["vi"], folders["fused"], ["VIF"], workers=1)


def test_json_and_csv_files(folders, tmp_path):
    res = score_folder(folders["ir"], folders["vi"], folders["fused"], NAMES, workers=1)
    doc = json.loads(write_json(res, tmp_path / "out" / "m.json").read_text())
    assert doc["per_image"]["b2"]["CC"] is None  # NaN is not valid JSON
    assert doc["per_image"]["a1"] == res["per_image"]["a1"] and doc["excluded"]["CC"] == 1
    rows = list(csv.DictReader(write_csv(res, tmp_path / "m.csv").open()))
    assert [r["image"] for r in rows] == ["a1", "b2", "c3"]
    assert float(rows[2]["VIF"]) == res["per_image"]["c3"]["VIF"] and rows[1]["CC"] == "nan"


def test_cli_prints_means_and_writes_files(folders, tmp_path):
    app = typer.Typer()
    register(app)
    app.command("noop")(lambda: None)  # keep `metrics` a named sub-command
    out = tmp_path / "scores.json"
    r = CliRunner().invoke(app, ["metrics", "--ir", str(folders["ir"]), "--vi", str(folders["vi"]),
                                 "--fused", str(folders["fused"]), "--metrics", "en,cc,mse", "--json", str(out),
                                 "--workers", "1", "--no-progress"])
    assert r.exit_code == 0, r.output
    doc = json.loads(out.read_text())
    assert list(doc["mean"]) == ["EN", "CC", "MSE"]
    lines = {ln.split()[0]: ln.split() for ln in r.stdout.splitlines() if ln.strip()}
    assert float(lines["EN"][1]) == pytest.approx(doc["mean"]["EN"], abs=1e-4)
    assert lines["MSE"][2] == "lower" and lines["CC"][-1] == "1"
