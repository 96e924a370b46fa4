"""The trainer's speed settings: thread choice, bf16 detection, channels-last exactness."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from emma_fusion.errors import EmmaError
from emma_fusion.nets import SensingUNet, UFuser
from emma_fusion.train import preset
from emma_fusion.train.fusion import make_sampler
from emma_fusion.train.losses import EmmaLoss
from emma_fusion.hardware import resolve_amp
from emma_fusion.train.loop import auto_threads

from conftest import load_script


@given(st.integers(1, 64), st.floats(0.0, 200.0))
def test_auto_threads_never_exceeds_the_idle_cores(cores, load):
    n = auto_threads(cores, load)
    assert 1 <= n <= cores
    assert n <= max(1, cores - round(load) + 1)  # never more threads than idle cores (+ rounding)


def test_auto_threads_examples():
    assert auto_threads(2, 0.1) == 2  # idle machine: use both cores
    assert auto_threads(2, 1.9) == 1  # two busy processes beside us: one thread, not the cliff
    assert auto_threads(16, 3.2) == 13


def test_resolve_amp():
    from emma_fusion.hardware import hardware

    cpu = torch.device("cpu")
    native = "bf16" if hardware().cpu_bf16 else "none"
    assert resolve_amp("none", cpu) == "none" and resolve_amp("bf16", cpu) == native
    assert resolve_amp("auto", cpu) == native
    with pytest.raises(EmmaError, match="amp must be"):
        resolve_amp("fp8", cpu)


def test_amp_bf16_without_native_bf16_trains_in_fp32_with_one_warning(avx2_only, caplog):
    cpu = torch.device("cpu")
    with caplog.at_level("WARNING", logger="emma_fusion.hardware"):
        assert resolve_amp("bf16", cpu) == "none" and resolve_amp("auto", cpu) == "none"
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "--amp bf16" in lines[0] and "fp32" in lines[0]


def _grads(fmt: torch.memory_format) -> tuple[float, torch.Tensor]:
    cfg = preset("cpu", "fusion")
    torch.manual_seed(0)
    fuser = UFuser()
    loss = EmmaLoss(fuser, SensingUNet(8), SensingUNet(8)).to(memory_format=fmt)
    g = torch.Generator().manual_seed(3)
    ir, vi = (torch.rand(2, 1, 32, 32, generator=g).to(memory_format=fmt) for _ in range(2))
    out = loss(ir, vi, make_sampler(cfg).sample(32, 32, torch.Generator().manual_seed(0)))
    out.total.backward()
    return float(out.total.detach()), torch.cat([p.grad.flatten() for p in fuser.parameters()])


def test_channels_last_step_matches_the_plain_step():
    """The trainer's default layout changes speed, not the math: same loss and gradients in fp32."""
    l0, g0 = _grads(torch.contiguous_format)
    l1, g1 = _grads(torch.channels_last)
    assert l1 == pytest.approx(l0, rel=1e-5)
    assert float((g1 - g0).norm() / g0.norm()) < 1e-3


def test_benchmark_counts_convolution_flops():
    """benchmarks/train_step.py --profile divides by these FLOPs: a known convolution's count."""
    bench = load_script("benchmarks/train_step.py")
    conv = torch.nn.Conv2d(4, 6, 3, padding=1, bias=False)
    x = torch.rand(2, 4, 10, 10)  # no input gradient: backward computes the weight gradient only
    forward = lambda: (conv(x) ** 2).mean()  # noqa: E731
    conv_flops, total = bench.conv_flops(forward, list(conv.parameters()))
    one_pass = 2 * 2 * 6 * 10 * 10 * 4 * 9  # 2 FLOP per multiply-add, N * Cout * H * W * Cin * k * k
    assert conv_flops == 2 * one_pass  # forward + weight gradient
    assert total == conv_flops  # the squares and the mean are not counted as FLOPs
    assert conv.weight.grad is None  # the helper leaves no gradients behind
