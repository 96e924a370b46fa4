"""`emma bench` on a small real subset of ../shared/data: tables, ranks, cache, report, errors."""

from __future__ import annotations

import csv
import math
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

from conftest import shared_path
from emma_fusion.api import fuse
from emma_fusion.bench import BenchConfig, discover_datasets, hf_ratio, run_bench
from emma_fusion.bench.methods import build_method_specs, find_results_dir
from emma_fusion.cli import main
from emma_fusion.errors import EmmaError
from emma_fusion.metrics import HIGHER_IS_BETTER, compute, quantize_fused, read_metric_image

METRICS = ["EN", "SD", "SF", "AG", "MI", "SCD"]  # the fast ones; the pipeline is the same for all


def _link_files(src: Path, dst: Path, stems: list[str]) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for p in sorted(src.iterdir()):
        if p.stem in stems:
            (dst / p.name).symlink_to(p.resolve())


@pytest.fixture(scope="module")
def subset(tmp_path_factory):
    """2 TNO and 2 Harvard MRI-CT pairs, plus peer results: IFCNN (complete), DenseFuse (TNO, 1 of 2)."""
    data = shared_path("data")
    root = tmp_path_factory.mktemp("bench")
    tno, ct = ["01", "02"], ["11", "12"]
    for role in ("ir", "vi"):
        _link_files(data / "TNO" / "test" / role, root / "data" / "TNO" / "test" / role, tno)
    for role in ("mri", "other"):
        _link_files(data / "Harvard" / "MRI_CT" / role, root / "data" / "Harvard" / "MRI_CT" / role, ct)
    res = data / "results"
    _link_files(res / "IFCNN" / "TNO", root / "results" / "IFCNN" / "TNO", tno)
    _link_files(res / "IFCNN" / "Harvard" / "MRI_CT", root / "results" / "IFCNN" / "Harvard" / "MRI_CT", ct)
    _link_files(res / "DenseFuse" / "TNO", root / "results" / "DenseFuse" / "TNO", tno[:1])
    return root


def _config(root: Path, methods: list[str], **kw) -> BenchConfig:
    opts = dict(data=[root / "data"], out=root / "out", methods=methods, results=[str(root / "results")],
                metrics=METRICS, jobs=1, threads=1, isolate=False, grid_pairs=2, crop_pairs=1, crop_size=64,
                progress=False)
    opts.update(kw)
    return BenchConfig(**opts)


@pytest.fixture(scope="module")
def first(subset):
    return run_bench(_config(subset, ["average"]))


@pytest.fixture(scope="module")
def second(subset, first):
    """The same run with one more built-in method: only that one is fused and scored."""
    return run_bench(_config(subset, ["average", "lp"]))


def _rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_datasets_and_methods_found(first):
    assert [d.name for d in first.datasets] == ["Harvard/MRI_CT", "TNO"]
    assert {d.name: d.kind for d in first.datasets} == {"Harvard/MRI_CT": "medical", "TNO": "ivf"}
    assert [m.label for m in first.methods] == ["average", "DenseFuse", "IFCNN"]
    assert first.errors == []
    assert first.counts == {"fused_new": 4, "fused_cached": 0, "scored_new": 9, "scored_cached": 0}


def test_per_image_values_are_the_metrics_of_the_saved_file(first, subset):
    rows = _rows(first.files["per_image.csv"])
    assert len(rows) == 9  # average 4, IFCNN 4, DenseFuse 1
    ds = {d.name: d for d in first.datasets}
    for row in rows:
        pair = next(p for p in ds[row["dataset"]].pairs if p.stem == row["image"])
        fused = first.fused[(row["dataset"], row["image"], row["method"])]
        f, a, b = read_metric_image(fused), read_metric_image(pair.ir), read_metric_image(pair.vi)
        want = compute(f, a, b, METRICS)
        for m in METRICS:
            assert float(row[m]) == pytest.approx(want[m], rel=1e-12, abs=1e-12), (row["method"], m)
        assert float(row["HFR"]) == pytest.approx(hf_ratio(f, a, b), rel=1e-12)
    # the built-in method's scored file is the field's saved output: min-max, 8-bit, re-read
    pair = ds["TNO"].pairs[0]
    saved = read_metric_image(first.fused[("TNO", pair.stem, "average")])
    expect = quantize_fused(fuse(pair.ir, pair.vi, method="average", color="gray", normalize="minmax"))
    np.testing.assert_array_equal(saved, expect)


def test_means_ranks_and_best(first):
    means = {(r["dataset"], r["method"]): r for r in _rows(first.files["means.csv"])}
    per = _rows(first.files["per_image.csv"])
    for (ds, method), r in means.items():
        vals = [float(p["EN"]) for p in per if p["dataset"] == ds and p["method"] == method]
        assert float(r["EN"]) == pytest.approx(sum(vals) / len(vals), rel=1e-12)
        assert int(r["n"]) == len(vals) and int(r["total"]) == 2
    dense = means[("TNO", "DenseFuse")]
    assert (dense["n"], dense["ranked"], dense["rank_EN"], dense["mean_rank"]) == ("1", "0", "", "")
    for ds in ("TNO", "Harvard/MRI_CT"):
        ranked = [r for (d, _), r in means.items() if d == ds and r["ranked"] == "1"]
        assert {r["method"] for r in ranked} == {"average", "IFCNN"}
        for m in METRICS:
            sign = 1.0 if HIGHER_IS_BETTER[m] else -1.0
            best = max(ranked, key=lambda r, m=m, sign=sign: sign * float(r[m]))
            assert best[f"rank_{m}"] == "1"
            assert {r[f"rank_{m}"] for r in ranked} <= {"1", "2"}
    md = first.files["report.md"].read_text(encoding="utf-8")
    table = md[md.index("### TNO"):]
    ifcnn = next(line for line in table.splitlines() if line.startswith("| IFCNN"))
    sf_cell = ifcnn.split("|")[1 + 1 + METRICS.index("SF")].strip()
    rank = int(means[("TNO", "IFCNN")]["rank_SF"])
    assert sf_cell == (f"**{float(means[('TNO', 'IFCNN')]['SF']):.2f} (1)**" if rank == 1
                       else f"{float(means[('TNO', 'IFCNN')]['SF']):.2f} ({rank})")
    assert "| DenseFuse (1/2) |" in table and "not ranked, fused images for only some pairs: DenseFuse" in table


def test_rerun_computes_only_the_new_method(second, first):
    assert second.counts == {"fused_new": 4, "fused_cached": 4, "scored_new": 4, "scored_cached": 9}
    assert [m.label for m in second.methods] == ["average", "lp", "DenseFuse", "IFCNN"]
    for key, vals in first.values.items():
        assert second.values[key] == vals
    assert {s.method for s in second.speed} == {"average", "lp"}
    lp = next(s for s in second.speed if s.method == "lp")
    assert lp.images == 4 and lp.median_ms_per_mp > 0


def test_interrupted_run_resumes(subset, second, tmp_path):
    cache = tmp_path / "cache"
    shutil.copytree(subset / "out" / "cache", cache)
    victims = sorted((cache / "fused").rglob("*.png"))[:1] + sorted((cache / "metrics").rglob("*.json"))[:2]
    for v in victims:
        v.unlink()  # as if the run had stopped before these were written
    res = run_bench(_config(subset, ["average", "lp"], cache=cache, out=tmp_path / "out", html=False))
    assert res.counts["fused_new"] == 1 and res.counts["fused_cached"] == 7
    assert res.counts["scored_new"] == 2  # the re-fused file has the same bytes, so its scores are kept
    assert res.values == second.values


def test_report_renders_in_headless_chromium(second, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (apt-get install chromium); .ci/run installs it")
    html = second.files["report.html"]
    cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--enable-logging=stderr", "--v=0", f"--user-data-dir={tmp_path / 'profile'}",
           "--dump-dom", html.resolve().as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = proc.stdout
    assert "Uncaught" not in proc.stderr and "Uncaught" not in dom
    images = int(re.search(r'data-images="(\d+)"', dom).group(1))
    broken = int(re.search(r'data-broken-images="(\d+)"', dom).group(1))
    # per dataset: bar chart, 2 pairs x (2 sources + methods), 1 crop pair x (2 + methods);
    # DenseFuse has no TNO 02 (a dash instead of an image)
    methods = {"TNO": 4, "Harvard/MRI_CT": 3}
    assert images == sum(1 + 2 * (2 + n) + (2 + n) for n in methods.values()) - 1
    assert broken == 0
    for label in ("average", "lp", "IFCNN", "DenseFuse", "TNO", "Harvard/MRI_CT"):
        assert f"<th>{label}</th>" in dom or f"<h2>{label}</h2>" in dom, label
    for label in ("average", "lp", "IFCNN", "DenseFuse"):
        assert f"<figcaption>{label}</figcaption>" in dom


def test_cli_rerun_is_all_cached(subset, second, capsys):
    args = ["bench", "--data", subset / "data", "--out", subset / "out", "--methods", "average,lp",
            "--results", subset / "results", "--metrics", ",".join(METRICS), "--jobs", "1", "--no-isolate",
            "--no-html", "--no-progress"]
    with pytest.raises(SystemExit) as e:
        main(list(map(str, args)))
    out = capsys.readouterr().out
    assert e.value.code == 0
    assert "fused 0 new, 8 cached; scored 0 new, 13 cached" in out
    assert re.search(r"\| IFCNN \| .*\| .* \|", out)


def test_cli_errors_are_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit) as e:
        main(["bench", "--data", str(tmp_path / "empty"), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith("error: no dataset in") and err.count("\n") == 1
    with pytest.raises(SystemExit) as e:
        main(["bench", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
    assert e.value.code == 2 and "no such data folder" in capsys.readouterr().err


def _write(path: Path, shape=(48, 64), seed=0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)).save(path)
    return path


def test_discovery_names_splits_and_bad_folders(tmp_path):
    _write(tmp_path / "A" / "test" / "ir" / "x.png")
    _write(tmp_path / "A" / "test" / "vi" / "x.png")
    _write(tmp_path / "A" / "train" / "ir" / "y.png")
    _write(tmp_path / "A" / "train" / "vi" / "y.png")
    _write(tmp_path / "A" / "train" / "vi" / "lonely.png")
    _write(tmp_path / "Med" / "MRI_PET" / "mri" / "1.png")
    _write(tmp_path / "Med" / "MRI_PET" / "other" / "1.png")
    found = {d.name: d for d in discover_datasets(tmp_path)}
    assert sorted(found) == ["A", "A_train", "Med/MRI_PET"]
    assert found["A_train"].unpaired == (str(tmp_path / "A" / "train" / "vi" / "lonely.png"),)
    assert found["Med/MRI_PET"].kind == "medical" and found["Med/MRI_PET"].roles == ("other", "mri")
    assert [d.name for d in discover_datasets(tmp_path, split="test")] == ["A", "Med/MRI_PET"]
    assert [d.name for d in discover_datasets(tmp_path, split="train")] == ["A_train"]
    assert [d.name for d in discover_datasets(tmp_path / "A" / "test")] == ["A"]
    with pytest.raises(EmmaError, match="split 'val'"):
        discover_datasets(tmp_path, split="val")
    _write(tmp_path / "B" / "ir" / "p.png")
    _write(tmp_path / "B" / "vi" / "q.png")
    with pytest.raises(EmmaError, match="B .*no image pairs"):
        discover_datasets(tmp_path)
    (tmp_path / "R" / "M" / "Med" / "MRI_PET").mkdir(parents=True)
    _write(tmp_path / "R" / "M" / "Med" / "MRI_PET" / "1.png")
    assert find_results_dir(tmp_path / "R" / "M", "MRI_PET") == tmp_path / "R" / "M" / "Med" / "MRI_PET"
    assert find_results_dir(tmp_path / "R" / "M", "Med/MRI_PET") == tmp_path / "R" / "M" / "Med" / "MRI_PET"
    assert find_results_dir(tmp_path / "R" / "M", "A") is None


def test_shared_test_splits_are_the_evaluation_sets():
    root = shared_path("data")
    names = [d.name for d in discover_datasets(root, split="test")]
    expected = ["Harvard/MRI_CT", "Harvard/MRI_PET", "Harvard/MRI_SPECT", "MSRS", "RoadScene", "TNO"]
    if (root / "LLVIP" / "test").is_dir():  # added in the second data round
        expected.insert(3, "LLVIP")
    assert names == expected
    assert all(not n.endswith("_train") for n in names)


def test_wrong_size_result_is_left_out_with_a_message(tmp_path):
    _write(tmp_path / "d" / "ir" / "a.png", seed=1)
    _write(tmp_path / "d" / "vi" / "a.png", seed=2)
    _write(tmp_path / "d" / "ir" / "b.png", seed=3)
    _write(tmp_path / "d" / "vi" / "b.png", seed=4)
    _write(tmp_path / "r" / "Peer" / "d" / "a.png", shape=(10, 10))
    _write(tmp_path / "r" / "Peer" / "d" / "b.png", seed=5)
    res = run_bench(BenchConfig(data=[tmp_path / "d"], out=tmp_path / "o", methods=["none"],
                                results=[str(tmp_path / "r")], metrics=["EN"], jobs=1, html=False, progress=False))
    assert len(res.errors) == 1 and "Peer on d/a" in res.errors[0] and "10x10" in res.errors[0]
    assert res.tables["d"][0].n == 1 and not res.tables["d"][0].ranked


def test_identical_pairs_are_fused_once_and_both_reported(tmp_path):
    for stem in ("a", "b"):
        _write(tmp_path / "d" / "ir" / f"{stem}.png", seed=1)
        _write(tmp_path / "d" / "vi" / f"{stem}.png", seed=2)
    res = run_bench(BenchConfig(data=[tmp_path / "d"], out=tmp_path / "o", methods=["average"], metrics=["EN"],
                                jobs=1, isolate=False, html=False, progress=False))
    assert res.counts == {"fused_new": 1, "fused_cached": 0, "scored_new": 1, "scored_cached": 1}
    assert res.tables["d"][0].n == 2 and res.tables["d"][0].ranked


def test_emma_is_skipped_without_a_shipped_model(monkeypatch):
    import emma_fusion.weights as weights

    def no_model(name=None, arch="ufuser"):
        if name is None:
            raise EmmaError("no default model is shipped with this version yet; pass --weights PATH")
        raise AssertionError("unexpected")

    monkeypatch.setattr(weights, "load_model", no_model)
    specs, skipped = build_method_specs(None)
    assert "emma" not in [s.label for s in specs] and "average" in [s.label for s in specs]
    assert skipped == {"emma": "skipped: no default model is shipped with this version yet; pass --weights PATH"}


def test_emma_weights_column_keyed_by_weights(tmp_path):
    from emma_fusion.nets import UFuser
    from emma_fusion.weights import save_weights

    torch.manual_seed(0)
    w1 = save_weights(tmp_path / "a.safetensors", UFuser())
    w2 = save_weights(tmp_path / "b.safetensors", UFuser())
    specs, _ = build_method_specs(["average"], weights=[str(w1), str(w2)])
    assert [s.label for s in specs] == ["emma-a", "emma-b", "average"]
    assert specs[0].config_hash != specs[1].config_hash
    one, _ = build_method_specs(["emma"], weights=[str(w1)])
    assert [s.label for s in one] == ["emma"] and one[0].config_hash == specs[0].config_hash
    # threads change the speed, not the image: same cache key; a tile size changes the image
    same, _ = build_method_specs(["emma"], weights=[str(w1)], network_options={"threads": 2})
    tiled, _ = build_method_specs(["emma"], weights=[str(w1)], network_options={"tile": 256})
    assert same[0].config_hash == one[0].config_hash and tiled[0].config_hash != one[0].config_hash
    w3 = save_weights(tmp_path / "emma-sharp.safetensors", UFuser())  # already named after the method
    named, _ = build_method_specs(["emma"], weights=[str(w1), str(w3)])
    assert [s.label for s in named] == ["emma-a", "emma-sharp"]
    with pytest.raises(EmmaError, match="unknown method 'nope'"):
        build_method_specs(["nope"])
    if not torch.cuda.is_available():
        with pytest.raises(EmmaError, match="--device cuda: this PyTorch build sees no CUDA device"):
            build_method_specs(["emma"], weights=[str(w1)], network_options={"device": "cuda"})

    _write(tmp_path / "d" / "ir" / "a.png", seed=1)
    _write(tmp_path / "d" / "vi" / "a.png", seed=2)
    res = run_bench(BenchConfig(data=[tmp_path / "d"], out=tmp_path / "o", methods=["none"], weights=[str(w1)],
                                metrics=["EN"], jobs=1, threads=1, isolate=False, html=False, progress=False))
    assert [r.method for r in res.tables["d"]] == ["emma"] and math.isfinite(res.tables["d"][0].values["EN"])


def test_cache_keys_follow_the_sources_a_method_imports(tmp_path, monkeypatch):
    """Editing a module the network imports (lazily or not) makes new emma keys and keeps gff's, and back."""
    from emma_fusion.bench import code

    copy = tmp_path / "emma_fusion"
    shutil.copytree(Path(code.__file__).resolve().parents[1], copy,
                    ignore=shutil.ignore_patterns("*.safetensors", "__pycache__"))
    monkeypatch.setattr(code, "_ROOT", copy)
    emma = code.closure(["emma_fusion.methods.network"], leaves=["emma_fusion.methods.base"])
    assert {"emma_fusion.inference.fast", "emma_fusion.nets.ufuser", "emma_fusion.weights"} <= set(emma)
    assert not any(m.startswith("emma_fusion.methods.classical") for m in emma)

    def keys() -> dict[str, str]:
        return {s.label: s.config_hash for s in build_method_specs(["emma", "gff"])[0]}

    before = keys()
    with open(copy / "inference" / "fast.py", "a") as f:
        f.write("# edited\n")
    after_fast = keys()
    assert after_fast["emma"] != before["emma"] and after_fast["gff"] == before["gff"]
    with open(copy / "methods" / "classical" / "_filters.py", "a") as f:
        f.write("# edited\n")
    after_filters = keys()
    assert after_filters["gff"] != before["gff"] and after_filters["emma"] == after_fast["emma"]


def test_isolated_worker_measures_speed_and_memory(tmp_path):
    _write(tmp_path / "d" / "ir" / "a.png", shape=(256, 320), seed=1)
    _write(tmp_path / "d" / "vi" / "a.png", shape=(256, 320), seed=2)
    res = run_bench(BenchConfig(data=[tmp_path / "d"], out=tmp_path / "o", methods=["lp"], metrics=["EN"],
                                jobs=1, threads=1, isolate=True, html=False, progress=False))
    rec = res.fuse_records["lp"][0]
    assert rec["seconds"] > 0 and rec["threads"] == 1
    if rec["peak_counter"] == "VmHWM":
        # the pyramid holds several float copies of the 256x320 image
        assert rec["peak_rss_bytes"] >= 256 * 320 * 4
    assert res.speed[0].method == "lp" and res.speed[0].peak_rss_mib == rec["peak_rss_bytes"] / 2**20


_img = arrays(np.float64, (20, 20), elements=st.integers(0, 255).map(float))


@settings(max_examples=30, deadline=None)
@given(_img, _img, st.floats(0.2, 5.0), st.floats(-50, 50))
def test_hfr_is_at_most_one_for_a_source_and_ignores_contrast(a, b, gain, offset):
    r = hf_ratio(a, a, b)
    assert math.isnan(r) or r <= 1 + 1e-12
    if math.isfinite(r):
        assert hf_ratio(gain * a + offset, a, b) == pytest.approx(r, rel=1e-6)


def test_hfr_flags_noise_and_stripes_not_contrast():
    y, x = np.mgrid[0:128, 0:160]
    ir = 128 + 60 * np.sin(x / 9.0) * np.cos(y / 11.0)
    vi = 100 + 50 * np.cos(x / 5.0 + y / 7.0)
    fused = (ir + vi) / 2
    noisy = fused + np.random.default_rng(0).normal(0, 4, fused.shape)
    stripes = fused + 4 * ((x % 2) - 0.5)
    assert hf_ratio(fused, ir, vi) < 1.5
    assert hf_ratio((fused - fused.min()) * 3, ir, vi) == pytest.approx(hf_ratio(fused, ir, vi))
    assert hf_ratio(noisy, ir, vi) > 1.5 and hf_ratio(stripes, ir, vi) > 1.5
    assert math.isnan(hf_ratio(np.zeros((8, 8)), np.zeros((8, 8)), np.zeros((8, 8))))


@pytest.mark.parametrize("opts, says", [
    ({"grid_pairs": -1}, "grid_pairs must be >= 0"),
    ({"crop_pairs": -2}, "crop_pairs must be >= 0"),
    ({"crop_size": 0}, "crop_size must be >= 8"),
    ({"hfr_threshold": float("nan")}, "hfr_threshold must be a finite number > 0"),
])
def test_unusable_bench_options_are_refused_before_any_work(tmp_path, opts, says):
    with pytest.raises(EmmaError, match=says):
        BenchConfig(data=[tmp_path], out=tmp_path / "o", **opts)
    assert not (tmp_path / "o").exists()
