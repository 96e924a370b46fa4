"""Architecture parity with the authors' U-Fuser and UNet5 (../shared/reference/parity)."""

from __future__ import annotations

import json
import math
import zlib

import pytest
import torch
from safetensors.torch import load_file

from emma_fusion.nets import SensingUNet, UFuser
from conftest import shared_path


def deterministic_fill(net: torch.nn.Module) -> None:
    """The weight fill of PARITY.md, applied in place."""
    sd = net.state_dict()
    out = {}
    for k, v in sd.items():
        if not v.is_floating_point():
            out[k] = torch.zeros_like(v)
        elif k.endswith("running_mean"):
            out[k] = torch.zeros_like(v)
        elif k.endswith("running_var"):
            out[k] = torch.ones_like(v)
        else:
            g = torch.Generator().manual_seed(zlib.crc32(k.encode()))
            r = torch.randn(v.shape, generator=g, dtype=torch.float64)
            if v.dim() >= 2:
                val = r * math.sqrt(1.0 / v[0].numel())
            elif k.endswith("weight") or k.endswith("scale"):
                val = 1 + 0.1 * r
            else:
                val = 0.1 * r
            out[k] = val.to(torch.float32)
    net.load_state_dict(out, strict=True)


@pytest.mark.parametrize("name,factory", [("ufuser", UFuser), ("unet5", SensingUNet)])
def test_state_dict_matches_manifest(name, factory):
    manifest = json.loads(shared_path("reference", "parity", "state_dict_manifest.json").read_text())
    ours = [(k, list(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in factory().state_dict().items()]
    assert ours == [(k, shape, dtype) for k, shape, dtype in manifest[name]]


def test_sensing_width_keeps_key_names():
    assert list(SensingUNet(8).state_dict()) == list(SensingUNet(64).state_dict())


def test_parity_vectors():
    ref = load_file(str(shared_path("reference", "parity", "parity_vectors.safetensors")))
    fuser, sensing = UFuser(), SensingUNet()
    deterministic_fill(fuser)
    deterministic_fill(sensing)
    with torch.no_grad():
        out = fuser.eval()(ref["ir"], ref["vi"])
        torch.testing.assert_close(out, ref["ufuser_out"], rtol=0, atol=1e-5)
        a = sensing.eval()(ref["ufuser_out"])
        torch.testing.assert_close(a, ref["unet5_out_of_ufuser_out"], rtol=0, atol=1e-5)
