"""Weight-space blends of two U-Fusers (emma_fusion.weights.blend_models, scripts/blend_models.py)."""


import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from emma_fusion.errors import EmmaError
from emma_fusion.nets import SensingUNet, UFuser
from emma_fusion.weights import blend_models, load_model, load_state, save_weights

from conftest import load_script


def _pair(seed: int = 0) -> tuple[UFuser, UFuser]:
    torch.manual_seed(seed)
    return UFuser().eval(), UFuser().eval()


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_blend_endpoints_are_the_inputs(alpha):
    a, b = _pair()
    want = (a if alpha == 0.0 else b).state_dict()
    got = blend_models(a, b, alpha).state_dict()
    assert all(torch.equal(got[k], v) for k, v in want.items())


@settings(max_examples=10, deadline=None)
@given(st.floats(0.0, 1.0))
def test_blend_lies_between_the_inputs(alpha):
    a, b = _pair(1)
    got = blend_models(a, b, alpha).state_dict()
    for k, va in a.state_dict().items():
        vb = b.state_dict()[k]
        lo, hi = torch.minimum(va, vb), torch.maximum(va, vb)
        tol = 1e-6 * (1 + hi.abs())
        assert bool(((got[k] >= lo - tol) & (got[k] <= hi + tol)).all()), k


def test_blend_midpoint_fuses_between_and_keeps_range():
    a, b = _pair(2)
    mid = blend_models(a, b, 0.5)
    sa = a.state_dict()
    for k, v in mid.state_dict().items():
        assert torch.allclose(v, (sa[k] + b.state_dict()[k]) / 2, atol=1e-7)
    x = torch.rand(1, 1, 32, 32)
    with torch.no_grad():
        f = mid(x, x.flip(-1))
    assert f.shape == (1, 1, 32, 32) and float(f.min()) >= 0.0 and float(f.max()) <= 1.0


@pytest.mark.parametrize("alpha", [-0.1, 1.5, float("nan")])
def test_blend_rejects_alpha_outside_unit_interval(alpha):
    a, b = _pair()
    with pytest.raises(EmmaError, match="alpha"):
        blend_models(a, b, alpha)


def test_blend_rejects_different_networks():
    with pytest.raises(EmmaError, match="different networks"):
        blend_models(UFuser(), SensingUNet(8), 0.5)
    with pytest.raises(EmmaError, match="different networks"):
        blend_models(UFuser(), UFuser(channels=(8, 16, 32, 64)), 0.5)


@pytest.fixture()
def script():
    return load_script("scripts/blend_models.py")


def test_script_writes_the_blend_atomically(script, tmp_path, capsys):
    a, b = _pair(3)
    pa, pb = save_weights(tmp_path / "a.safetensors", a), save_weights(tmp_path / "b.safetensors", b)
    out = tmp_path / "mix.safetensors"
    assert script.main([str(pa), str(pb), "--alpha", "0.25", "-o", str(out)]) == 0
    got = load_model(out).state_dict()
    want = blend_models(a, b, 0.25).state_dict()
    assert all(torch.equal(got[k], v) for k, v in want.items())
    assert "0.25" in load_state(out)[1]["blend"]
    out.write_bytes(b"keep")  # an error leaves an existing output alone
    assert script.main([str(pa), str(tmp_path / "missing.safetensors"), "--alpha", "0.5", "-o", str(out)]) == 2
    assert out.read_bytes() == b"keep"
    assert "error:" in capsys.readouterr().err
