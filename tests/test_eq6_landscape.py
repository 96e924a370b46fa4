"""scripts/eq6_landscape.py: Eq. 6 and its terms for fixed fusions and A pairs (docs/EQ6.md)."""


import pytest
import torch

from emma_fusion.train.losses import sobel_l1

from conftest import load_script


@pytest.fixture(scope="module")
def script():
    return load_script("scripts/eq6_landscape.py")


def test_oracle_recovers_an_affine_source_and_only_the_mean_from_a_flat_image(script):
    gen = torch.Generator().manual_seed(0)
    t = torch.rand(2, 1, 32, 32, generator=gen)
    sense = script.oracle(radius=3, eps=1e-6)
    assert sobel_l1(sense(0.5 * t + 0.2, t), t) < 1e-3  # all of t's structure is in f
    flat = sense(torch.full_like(t, 0.4), t)
    box = script._box(script._box(t, 3), 3)
    torch.testing.assert_close(flat, box, atol=1e-5, rtol=0)  # only t's local mean comes back
    assert sobel_l1(flat, t) > 0.1


def test_landscape_on_tiny_training_crops(script, shared):
    data = shared("data")
    rows, cos = script.landscape(script.parse_args(
        ["--data", str(data), "--crops", "2", "--crop", "64", "--transforms", "2", "--seed", "1"]))
    by = {(r["A"], r["f"]): r for r in rows}
    fusions = {r["f"] for r in rows}
    assert {"warm start (emma-default)", "(i+v)/2", "max(i,v)", "v", "i"} <= fusions
    oracle = next(a for a in {r["A"] for r in rows} if a.startswith("oracle"))
    for f in fusions:  # A = id turns the sensing terms into L(f, i) + L(f, v)
        r = by["identity", f]
        assert r["sense_ir"] + r["sense_vi"] == pytest.approx(r["plain"], rel=1e-5)
        assert r["eq6"] == pytest.approx(r["plain"] + 0.1 * r["equivariant"], rel=1e-5)
    assert by["identity", "i"]["sense_ir"] == 0 and by["identity", "v"]["sense_vi"] == 0
    assert by["identity", "i"]["equivariant"] == 0  # the rule F(a, b) = a re-fuses T f into itself
    # l1 and Sobel are linear, so every pixel-wise convex mix of the sources costs the plain loss the same
    assert by["identity", "(i+v)/2"]["plain"] == pytest.approx(by["identity", "i"]["plain"], rel=1e-5)
    assert by[oracle, "i"]["sense_ir"] < 0.5 * by[oracle, "v"]["sense_ir"]  # f = i holds all of i
    assert by["identity", "v"]["vif_v"] == pytest.approx(1.0, abs=1e-3)
    assert by["identity", "v"]["vif_i"] < 0.6
    c = {x["A"]: x for x in cos}
    assert c["identity"]["image"] == pytest.approx(1.0, abs=1e-5)
    assert c["identity"]["params"] == pytest.approx(1.0, abs=1e-5)
    assert c["emma-sensing"]["params"] < 0.99  # the packaged A nets are not the identity map
    text = script.markdown(rows, cos)
    assert text.count("\n| emma-sensing |") == len(fusions) + 1  # the rows plus the cosine row
    v = {x["A"]: x for x in script.verdicts(rows)}
    assert v["identity"]["prefers"] != "warm start (emma-default)"  # a tie of the rules at 0.1631 here
    assert f"identity: Eq. 6 prefers {v['identity']['prefers']}" in text


def test_verdict_passes_only_when_the_warm_start_ranks_first(script):
    rows = [{"A": "a", "f": "warm start (x)", "eq6": 0.18}, {"A": "a", "f": "i", "eq6": 0.17},
            {"A": "a", "f": "v", "eq6": 0.20}, {"A": "b", "f": "warm start (x)", "eq6": 0.01},
            {"A": "b", "f": "i", "eq6": 0.02}]
    a, b = script.verdicts(rows)
    assert (a["prefers"], a["warm_rank"], a["of"], a["passed"]) == ("i", 2, 3, False)
    assert (b["prefers"], b["warm_rank"], b["passed"]) == ("warm start (x)", 1, True)
    assert script.verdict_lines(rows)[0].endswith("stage 2 moves away from it")


def test_gpu_script_runs_the_authors_stage_1_and_eq6_from_the_warm_start(tmp_path):
    """scripts/gpu_eq6.py (issue 24, item 4): the configurations it trains, without training."""
    mod = load_script("scripts/gpu_eq6.py")
    args = mod.argparse.Namespace(device="cuda", threads=8, quick=False, sensing_seconds=140.0,
                                  fusion_seconds=150.0, val_every=200, fusion_lr=1e-4)
    data = tmp_path / "data"
    (data / "results" / "IFCNN" / "MSRS_train").mkdir(parents=True)
    gt = {name: tmp_path / "gt" / name for name in mod.SETS}
    s = mod.sensing_config(data, gt, tmp_path, args)
    assert (s.width, s.batch, s.data.crop, s.data.grid_stride, s.data.noise_std) == (64, 64, 128, 200, 0.0)
    assert (s.optim.lr, s.optim.lr_step_epochs, s.optim.lr_gamma, s.amp) == (1e-4, 10.0, 0.5, "bf16")
    msrs = next(x for x in s.data.sets if x.root.endswith("MSRS/train"))
    assert msrs.fused == [str(data / "results" / "IFCNN" / "MSRS_train"), str(gt["MSRS"])]  # only folders that exist
    f = mod.fusion_config(data, tmp_path / "sensing", tmp_path, args)
    assert (f.ablation, f.init_weights, f.transforms.per_step, f.a1, f.a2) == ("full", "emma-default", 0, 1.0, 0.1)
    assert (f.batch, f.data.crop, f.optim.lr, f.max_seconds) == (8, 128, 1e-4, 150.0)
    val = (tmp_path / "val_pairs.txt").read_text()
    assert "../shared/data" not in val and str(data.resolve()) in val
