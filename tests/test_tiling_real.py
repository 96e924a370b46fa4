"""Seams: on a real 512 x 512 pair, tiled and untiled fusion with the shipped model agree."""

from __future__ import annotations

import pytest
import torch

from conftest import shared_path
from emma_fusion.errors import EmmaError
from emma_fusion.inference.runner import NetworkRunner
from emma_fusion.io import read_image, to_gray
from emma_fusion.weights import load_model


def _model():
    try:
        return load_model(None)
    except EmmaError as e:
        pytest.skip(f"needs the shipped default model: {e}")


def test_tiled_matches_untiled_on_real_pair():
    root = shared_path("data", "TNO", "test")
    ir = torch.from_numpy(to_gray(read_image(root / "ir" / "01.png"))[:512, :512])[None, None]
    vi = torch.from_numpy(to_gray(read_image(root / "vi" / "01.png"))[:512, :512])[None, None]
    assert ir.shape[-2:] == (512, 512)
    net = _model()
    whole = NetworkRunner(net, tile=0)(ir, vi)
    tiled = NetworkRunner(net, tile=256, overlap=128)(ir, vi)  # 3 x 3 tiles
    assert (tiled - whole).abs().mean().item() < 1 / 255
