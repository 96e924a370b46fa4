"""The fast inference path (emma_fusion.inference.fast) and the ONNX export (emma_fusion.inference.onnx).

Exactness is checked against the plain UFuser at sizes that are odd multiples of 8, with
batch > 1, and with weights scaled up so that the attention softmax is sharp.
"""

from __future__ import annotations

import math
import zlib

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from emma_fusion.errors import EmmaError
from emma_fusion.inference.fast import FastUFuser, fold_ffn_in, fold_qkv, fold_weights, optimize_for_inference
from emma_fusion.nets import UFuser
from conftest import shared_path

TOL = 1e-5


def _fill(net: UFuser, scale_attention: float = 1.0) -> UFuser:
    """Deterministic weights (the PARITY.md fill), attention temperatures times ``scale_attention``."""
    sd = {}
    for k, v in net.state_dict().items():
        r = torch.randn(v.shape, generator=torch.Generator().manual_seed(zlib.crc32(k.encode())), dtype=torch.float64)
        if v.dim() >= 2:
            val = r * math.sqrt(1.0 / v[0].numel())
        elif k.endswith(("weight", "scale")):
            val = 1 + 0.1 * r
        else:
            val = 0.1 * r
        if k.endswith("scale"):
            val = val * scale_attention
        sd[k] = val.float()
    net.load_state_dict(sd, strict=True)
    return net.eval()


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Small images gain nothing from threads, and OpenMP barriers stall on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def model() -> UFuser:
    return _fill(UFuser(), scale_attention=4.0)


def _pair(n: int, h: int, w: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, h, w, generator=g), torch.rand(n, 1, h, w, generator=g)


def _plain(model: UFuser, ir: torch.Tensor, vi: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return model(ir, vi)


@pytest.mark.parametrize("n,h,w", [(1, 16, 16), (1, 24, 40), (2, 56, 72), (1, 120, 88)])
def test_fast_matches_plain(model, n, h, w):
    ir, vi = _pair(n, h, w)
    fast = optimize_for_inference(model)
    out = fast(ir, vi)
    assert out.shape == (n, 1, h, w) and out.dtype == torch.float32
    assert (out - _plain(model, ir, vi)).abs().max().item() <= TOL


def test_fast_default_init_and_channels():
    torch.manual_seed(3)
    net = UFuser(channels=(8, 16, 16, 24)).eval()
    ir, vi = _pair(1, 40, 56, seed=1)
    assert (optimize_for_inference(net)(ir, vi) - _plain(net, ir, vi)).abs().max().item() <= TOL


def test_unfused_fallback_matches_plain(model):
    """The path taken where oneDNN's fused ops are missing (and used to count FLOPs)."""
    fast = FastUFuser(model)
    for m in fast.modules():
        if hasattr(m, "fused"):
            m.fused = False
    ir, vi = _pair(2, 32, 48, seed=2)
    assert (fast(ir, vi) - _plain(model, ir, vi)).abs().max().item() <= TOL


def test_fast_on_parity_vectors():
    """A real infrared/visible pair (256 x 320) against the stored reference output."""
    from safetensors.torch import load_file

    ref = load_file(str(shared_path("reference", "parity", "parity_vectors.safetensors")))
    out = optimize_for_inference(_fill(UFuser()))(ref["ir"], ref["vi"])
    assert (out - ref["ufuser_out"]).abs().max().item() <= TOL


def test_fast_does_not_alias_or_modify_inputs(model):
    ir, vi = _pair(1, 32, 32, seed=4)
    ir0, vi0 = ir.clone(), vi.clone()
    fast = optimize_for_inference(model)
    a = fast(ir, vi)
    b = fast(ir, vi)
    assert torch.equal(ir, ir0) and torch.equal(vi, vi0) and torch.equal(a, b)


def test_fast_is_a_snapshot(model):
    net = _fill(UFuser())
    fast = optimize_for_inference(net)
    ir, vi = _pair(1, 32, 32)
    before = fast(ir, vi)
    with torch.no_grad():
        net.last[0].bias.add_(1.0)
    assert torch.equal(fast(ir, vi), before)


def test_bf16_close(model, bf16_cpu):
    ir, vi = _pair(1, 64, 80, seed=5)
    out = optimize_for_inference(model, dtype=torch.bfloat16)(ir, vi)
    diff = (out - _plain(model, ir, vi)).abs()
    assert out.dtype == torch.float32
    assert diff.max().item() < 3e-2 and diff.mean().item() < 5e-3


def test_bf16_without_native_support_is_a_one_line_error(model, avx2_only):
    """On an AVX2-only CPU oneDNN's bf16 convolutions raise a RuntimeError; the fast path says so first."""
    with pytest.raises(EmmaError, match="bfloat16 needs a CPU with native bf16.*AVX2.*float32"):
        optimize_for_inference(model, dtype=torch.bfloat16)


def test_bad_arguments(model):
    with pytest.raises(EmmaError):
        optimize_for_inference(torch.nn.Conv2d(1, 1, 3))
    with pytest.raises(EmmaError):
        optimize_for_inference(model, dtype=torch.float16)
    with pytest.raises(EmmaError):
        optimize_for_inference(model)(torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 24))


@settings(max_examples=12, deadline=None)
@given(c=st.sampled_from([1, 2, 4, 8]), h=st.integers(3, 9), w=st.integers(3, 9), seed=st.integers(0, 2**16))
def test_fold_qkv_is_exact(c, h, w, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1, c, h, w, generator=g, dtype=torch.float64)
    w1, w2 = torch.randn(3 * c, c, 1, 1, generator=g, dtype=torch.float64), torch.randn(3 * c, 3 * c, 3, 3, generator=g, dtype=torch.float64)
    ref = F.conv2d(F.conv2d(x, w1), w2, padding=1)
    torch.testing.assert_close(F.conv2d(x, fold_qkv(w1, w2), padding=1), ref, rtol=1e-10, atol=1e-10)


@settings(max_examples=12, deadline=None)
@given(c=st.sampled_from([1, 2, 4, 8]), h=st.integers(3, 9), w=st.integers(3, 9), seed=st.integers(0, 2**16))
def test_fold_ffn_in_is_exact(c, h, w, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1, c, h, w, generator=g, dtype=torch.float64)
    w_in, w_dw = torch.randn(2 * c, c, 1, 1, generator=g, dtype=torch.float64), torch.randn(2 * c, 2, 3, 3, generator=g, dtype=torch.float64)
    ref = F.conv2d(F.pad(F.conv2d(x, w_in), (1, 1, 1, 1), mode="reflect"), w_dw, groups=c)
    got = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), fold_ffn_in(w_in, w_dw))
    torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-10)


def test_fold_weights_matches_and_leaves_model(model):
    keys = list(model.state_dict())
    folded = fold_weights(model)
    ir, vi = _pair(1, 40, 24, seed=6)
    assert (folded(ir, vi) - _plain(model, ir, vi)).abs().max().item() <= TOL
    assert list(model.state_dict()) == keys
    assert sum(p.numel() for p in folded.parameters()) < sum(p.numel() for p in model.parameters())


# --- ONNX ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def onnx_file(model, tmp_path_factory):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from emma_fusion.inference.onnx import export_onnx

    return export_onnx(model, tmp_path_factory.mktemp("onnx") / "ufuser.onnx")


@pytest.mark.parametrize("n,h,w", [(1, 24, 40), (2, 72, 56)])
def test_onnx_parity_dynamic_shapes(model, onnx_file, n, h, w):
    from emma_fusion.inference.onnx import OnnxFuser

    fuser = OnnxFuser(onnx_file, threads=1)
    ir, vi = _pair(n, h, w, seed=7)
    out = fuser(ir, vi)
    assert out.shape == (n, 1, h, w)
    assert (out - _plain(model, ir, vi)).abs().max().item() <= 1e-4


def test_onnx_graph_declares_dynamic_axes(onnx_file):
    import onnx

    graph = onnx.load(str(onnx_file)).graph
    for value in list(graph.input) + list(graph.output):
        dims = value.type.tensor_type.shape.dim
        assert [d.dim_param for d in dims] == ["batch", "", "height", "width"], value.name
    assert [i.name for i in graph.input] == ["ir", "vi"] and [o.name for o in graph.output] == ["fused"]


def test_onnx_module_does_not_shadow_the_onnx_package():
    """``emma_fusion.inference.onnx`` imports the real ``onnx`` package, not itself."""
    onnx = pytest.importorskip("onnx")
    from emma_fusion.inference import onnx as ours

    assert ours._require("onnx") is onnx and onnx is not ours and hasattr(onnx, "load")


def test_onnx_errors(tmp_path, model):
    from emma_fusion.inference.onnx import OnnxFuser, _require, export_onnx

    with pytest.raises(EmmaError, match="pip install"):
        _require("emma_fusion_no_such_module")
    with pytest.raises(EmmaError):
        OnnxFuser(tmp_path / "missing.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx file")
    pytest.importorskip("onnxruntime")
    with pytest.raises(EmmaError):
        OnnxFuser(bad)
    with pytest.raises(EmmaError):
        export_onnx(model, tmp_path / "old.onnx", opset=13)


def test_cli_export_onnx(tmp_path, model):
    pytest.importorskip("onnxruntime")
    from emma_fusion.cli import app
    from emma_fusion.inference.onnx import OnnxFuser
    from emma_fusion.weights import save_weights

    weights = save_weights(tmp_path / "w.safetensors", model)
    out = tmp_path / "sub" / "m.onnx"
    res = CliRunner().invoke(app, ["export", "onnx", str(out), "--weights", str(weights)])
    assert res.exit_code == 0, res.output
    ir, vi = _pair(1, 32, 40, seed=8)
    assert (OnnxFuser(out)(ir, vi) - _plain(model, ir, vi)).abs().max().item() <= 1e-4
