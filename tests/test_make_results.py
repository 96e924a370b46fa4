"""scripts/make_results.py: the targets section that docs/RESULTS.md opens with (issues 15 and 26)."""

from types import SimpleNamespace

import pytest

from conftest import load_script


@pytest.fixture(scope="module")
def script():
    return load_script("scripts/make_results.py")


def _res(paper_scale: float, sky: list[float]):
    """A bench result with one method ``emma`` and ``gff`` on MSRS, RoadScene and TNO: every paper
    metric at ``paper_scale`` times the paper's EMMA row, per-image SKY on RoadScene ``sky``."""
    paper = {"MSRS": (6.71, 44.13, 11.56, 3.76, 1.63, 0.97), "RoadScene": (7.52, 54.81, 15.21, 5.83, 1.69, 0.66)}
    six = ("EN", "SD", "SF", "AG", "SCD", "VIF")
    tables, values = {}, {}
    for ds in ("MSRS", "RoadScene", "TNO"):
        mine = dict(zip(six, [paper_scale * p for p in paper.get(ds, (1.0,) * 6)]), Qabf=0.6, HFR=0.9)
        tables[ds] = [SimpleNamespace(method="emma", values=mine),
                      SimpleNamespace(method="gff", values={"VIF": 0.5, "Qabf": 0.62, "HFR": 1.0})]
    for k, s in enumerate(sky):
        values[("RoadScene", f"p{k}", "emma")] = {"SKY": s, "TCR": 1.0}
    values[("TNO", "t0", "emma")] = {"SKY": float("nan"), "TCR": 0.9}
    return SimpleNamespace(methods=[SimpleNamespace(label="emma")], tables=tables, values=values,
                           datasets=[SimpleNamespace(name=d) for d in tables], skipped={})


def test_sky_target_counts_only_pairs_with_a_sky(script):
    text = script.targets_markdown(_res(1.0, [0.95, 0.93, float("nan")]), "emma")
    assert "- RoadScene: 0.94 ✓ (2 pairs with a sky)" in text
    assert "- TNO: -" in text  # no pair with a sky
    assert "- RoadScene: 0.45 ✗ (2 pairs with a sky)" in script.targets_markdown(_res(1.0, [0.5, 0.4]), "emma")


@pytest.mark.parametrize("scale, above, within", [(1.0, 6, 6), (0.96, 0, 6), (0.94, 0, 0)])
def test_paper_rows_count_at_or_above_and_within_five_percent(script, scale, above, within):
    text = script.targets_markdown(_res(scale, [1.0]), "emma")
    row = next(line for line in text.splitlines() if line.startswith("| RoadScene |"))
    assert row.endswith(f"| {above} of 6 | {within} of 6 |")


def test_classical_bar_is_strict(script):
    text = script.targets_markdown(_res(1.0, [1.0]), "emma")
    assert "| RoadScene | 0.90 ok | VIF ✓, Qabf ✗ |" in text  # VIF 0.66 > 0.5; Qabf 0.6 < 0.62
