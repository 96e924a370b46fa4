"""`emma demo`: runs with no data and no network, and the fused image carries both modalities."""

from __future__ import annotations

import numpy as np
import pytest

from emma_fusion.cli import main
from emma_fusion.demo import make_demo_pair
from emma_fusion.io import read_image, to_gray
from emma_fusion.weights import packaged_models


def _hf(x: np.ndarray) -> float:
    return float(np.abs(np.diff(x, axis=1)).mean() + np.abs(np.diff(x, axis=0)).mean())


def test_demo_pair_separates_the_modalities():
    ir, vi = make_demo_pair(240, 320)
    y = to_gray(vi)
    wall = (slice(60, 180), slice(10, 130))
    assert _hf(y[wall]) > 5 * _hf(ir[wall])  # bricks only in the visible image
    assert ir.max() > 0.7 and ir[:40].mean() < 0.2  # warm targets, cold sky


@pytest.mark.skipif(not packaged_models(), reason="no shipped model in this checkout")
def test_demo_command_fuses_both_modalities(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["demo", "--out", str(tmp_path)])
    assert e.value.code in (0, None), capsys.readouterr().err
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["demo_fused.png", "demo_ir.png", "demo_panel.png", "demo_vi.png"]
    ir, vi = read_image(tmp_path / "demo_ir.png"), to_gray(read_image(tmp_path / "demo_vi.png"))
    fused = to_gray(read_image(tmp_path / "demo_fused.png"))
    assert fused.shape == ir.shape and read_image(tmp_path / "demo_fused.png").ndim == 3  # colour kept
    warm = ir > 0.6
    # The infrared targets stand out in the fused image more than in the visible one ...
    contrast = lambda img: img[warm].mean() - img[~warm].mean()  # noqa: E731
    assert contrast(fused) > contrast(vi) + 0.05
    # ... and the visible texture (brick wall) survives, unlike in the flat infrared image.
    wall = (slice(100, 350), slice(20, 270))
    assert _hf(fused[wall]) > 3 * _hf(ir[wall])
    panel = read_image(tmp_path / "demo_panel.png")
    assert panel.shape[1] > 3 * ir.shape[1]


@pytest.mark.skipif(not packaged_models(), reason="no shipped model in this checkout")
def test_demo_on_a_real_pair_writes_fused_and_panel_only(tmp_path, capsys):
    from conftest import shared_path

    ir = shared_path("data", "MSRS", "test", "ir", "00004N.png")
    vi = shared_path("data", "MSRS", "test", "vi", "00004N.png")
    with pytest.raises(SystemExit) as e:
        main(["demo", "--out", str(tmp_path), "--ir", str(ir), "--vi", str(vi), "--threads", "1"])
    assert e.value.code in (0, None), capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo_fused.png", "demo_panel.png"]
    panel = read_image(tmp_path / "demo_panel.png")
    assert panel.shape[1] == 3 * 640 + 2 * 8 and panel.shape[0] > 480


def test_demo_needs_both_or_neither_source(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["demo", "--out", str(tmp_path), "--ir", str(tmp_path / "x.png")])
    assert e.value.code == 2 and "both --ir and --vi" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_stack_rows_pads_to_the_widest_and_save_jpeg_writes(tmp_path):
    from emma_fusion.demo import save_jpeg, stack_rows

    a, b = np.zeros((10, 20, 3)), np.zeros((5, 12, 3))
    out = stack_rows([a, b], gap=2)
    assert out.shape == (10 + 2 + 5 + 2, 20, 3)
    assert out[12:17, 12:].min() == 1.0 and out[12:17, :12].max() == 0.0  # white padding, row kept
    img = save_jpeg(out, tmp_path / "p.jpg")
    assert (tmp_path / "p.jpg").stat().st_size > 0 and img.size == (20, 19)
