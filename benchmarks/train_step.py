"""Seconds per training step: the trainer's optimised step against the plain one, in one run.

    python benchmarks/train_step.py                      # this CPU, 1 thread
    python benchmarks/train_step.py --load 2             # also: thread counts beside 2 busy processes
    python benchmarks/train_step.py --device cuda        # a GPU, if there is one
    python benchmarks/train_step.py --profile            # also: where the optimised step's time goes

One step = forward, backward and Adam update of the real loss modules on random crops (data
loading excluded), at the ``cpu`` preset (and the ``paper`` preset with ``--paper``). Each
configuration is timed twice, interleaved:

- **plain**: what the trainer did before: contiguous (NCHW) tensors, fp32;
- **optimised**: what ``emma train`` does now by default: channels-last weights and batches, and
  bf16 autocast where the preset asks for ``amp = "auto"`` and the device computes bf16 natively.

The ratio column is plain / optimised (above 1: faster). The exactness table compares the
optimised step's loss and gradients with the plain step's on the same inputs and weights. FLOPs
are counted by ``torch.utils.flop_counter`` over one step.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import time
from contextlib import contextmanager
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from emma_fusion.nets import SensingUNet, UFuser
from emma_fusion.train import preset
from emma_fusion.train.fusion import make_sampler
from emma_fusion.train.losses import EmmaLoss
from emma_fusion.train.loop import auto_threads, resolve_amp

Step = Callable[[], torch.Tensor]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def fusion_setup(preset_name: str, batch: int, device: torch.device, fmt: torch.memory_format, amp: str):
    """(step, params) for one stage-2 step of ``preset_name``: ``step()`` returns the loss."""
    cfg = preset(preset_name, "fusion")
    width = preset(preset_name, "sensing").width
    torch.manual_seed(0)
    fuser = UFuser()
    loss = EmmaLoss(fuser, SensingUNet(width), SensingUNet(width), a1=cfg.a1, a2=cfg.a2)
    loss.to(device, memory_format=fmt)
    sampler = make_sampler(cfg)
    c = cfg.data.crop
    ir = torch.rand(batch, 1, c, c, generator=torch.Generator().manual_seed(1)).to(device, memory_format=fmt)
    vi = torch.rand(batch, 1, c, c, generator=torch.Generator().manual_seed(2)).to(device, memory_format=fmt)
    gen = torch.Generator().manual_seed(0)

    def forward() -> torch.Tensor:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp == "bf16"):
            return loss(ir, vi, sampler.sample(c, c, gen)).total.float()

    return forward, list(fuser.parameters())


def sensing_setup(preset_name: str, batch: int, device: torch.device, fmt: torch.memory_format, amp: str):
    """(step, params) for one stage-1 step (both A nets) of ``preset_name``."""
    cfg = preset(preset_name, "sensing")
    torch.manual_seed(0)
    nets = [SensingUNet(cfg.width).to(device, memory_format=fmt) for _ in range(2)]
    c = cfg.data.crop
    f = torch.rand(batch, 1, c, c, generator=torch.Generator().manual_seed(1)).to(device, memory_format=fmt)
    srcs = [torch.rand(batch, 1, c, c, generator=torch.Generator().manual_seed(s)).to(device) for s in (2, 3)]

    def forward() -> torch.Tensor:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp == "bf16"):
            return sum(F.mse_loss(n(f).float(), s) for n, s in zip(nets, srcs))

    return forward, [p for n in nets for p in n.parameters()]


def trainable(forward: Step, params: list[torch.Tensor], lr: float = 1e-4) -> Step:
    """A full training step (forward, backward, Adam) around ``forward``."""
    opt = torch.optim.Adam(params, lr=lr)

    def step() -> torch.Tensor:
        loss = forward()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    return step


def time_steps(steps: list[Step], repeats: int, device: torch.device) -> list[float]:
    """Median seconds of each step, timed round-robin (after one warm-up each)."""
    times: list[list[float]] = [[] for _ in steps]
    for s in steps:
        s()
    for _ in range(repeats):
        for s, acc in zip(steps, times):
            _sync(device)
            t = time.perf_counter()
            s()
            _sync(device)
            acc.append(time.perf_counter() - t)
    return [statistics.median(acc) for acc in times]


def gradients(forward: Step, params: list[torch.Tensor]) -> tuple[float, torch.Tensor]:
    """(loss, flattened gradient) of one forward/backward, no update."""
    for p in params:
        p.grad = None
    loss = forward()
    loss.backward()
    return float(loss.detach()), torch.cat([p.grad.float().flatten().cpu() for p in params if p.grad is not None])


def exactness(setup, preset_name: str, batch: int, device: torch.device, amp: str) -> tuple[float, float]:
    """Relative loss difference and relative gradient-norm difference, optimised vs plain."""
    l0, g0 = gradients(*setup(preset_name, batch, device, torch.contiguous_format, "none"))
    l1, g1 = gradients(*setup(preset_name, batch, device, torch.channels_last, amp))
    return abs(l1 - l0) / abs(l0), float((g1 - g0).norm() / g0.norm())


def flops(forward: Step, params: list[torch.Tensor]) -> int:
    """FLOPs of one forward + backward (the Adam update is not counted)."""
    return conv_flops(forward, params)[1]


def conv_flops(forward: Step, params: list[torch.Tensor]) -> tuple[int, int]:
    """(convolution FLOPs, all FLOPs) of one forward + backward."""
    with FlopCounterMode(display=False) as counter:
        forward().backward()
    for p in params:
        p.grad = None
    ops = counter.get_flop_counts().get("Global", {})
    return sum(n for op, n in ops.items() if "conv" in str(op)), counter.get_total_flops()


def profile_row(setup, preset_name: str, batch: int, device: torch.device, amp: str, repeats: int = 3) -> dict:
    """Where one optimised step's CPU time goes: convolutions (forward and backward) against the rest.

    Returns seconds per step (profiled), the convolutions' seconds and share, their GFLOP/s, and the
    speed-up bound ``step / convolutions``: what removing every other op would give at these kernels.
    """
    fwd, params = setup(preset_name, batch, device, torch.channels_last, amp)
    step = trainable(fwd, params)
    step()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for _ in range(repeats):
            step()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events) / 1e6 / repeats
    conv = sum(e.self_cpu_time_total for e in events if "conv" in e.key) / 1e6 / repeats
    cflops, _ = conv_flops(*setup(preset_name, batch, device, torch.channels_last, amp))
    return {"step": total, "conv": conv, "share": conv / total, "gflops": cflops / 1e9 / conv, "bound": total / conv}


def _busy(stop) -> None:
    while not stop.is_set():
        sum(i * i for i in range(10000))


@contextmanager
def under_load(n: int) -> Iterator[None]:
    """``n`` busy-looping processes (the "other users" of a shared machine) while the block runs."""
    ctx = mp.get_context("spawn")
    stop = ctx.Event()
    procs = [ctx.Process(target=_busy, args=(stop,), daemon=True) for _ in range(n)]
    for p in procs:
        p.start()
    time.sleep(2.0)
    try:
        yield
    finally:
        stop.set()
        for p in procs:
            p.join()


def thread_rows(batch: int, device: torch.device, load: int, repeats: int) -> list[tuple[str, float]]:
    """Stage-2 step time at 1, 2 and the trainer's automatic thread count, with ``load`` busy processes."""
    rows = []
    cores = len(os.sched_getaffinity(0))
    with under_load(load):
        auto = auto_threads()
        for label, n in (("1 thread", 1), (f"{cores} threads", cores), (f"auto ({auto})", auto)):
            torch.set_num_threads(n)
            step = trainable(*fusion_setup("cpu", batch, device, torch.channels_last, "none"))
            rows.append((label, time_steps([step], max(1, repeats // 2), device)[0]))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--paper", action="store_true", help="also the paper preset (batch 8 at 128 px; slow on a CPU)")
    ap.add_argument("--profile", action="store_true",
                    help="also profile the optimised cpu steps: convolution time and GFLOP/s against the rest")
    ap.add_argument("--load", type=int, default=-1,
                    help="also time thread counts beside this many extra busy processes (0: the machine as it is)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    presets = ["cpu"] + (["paper"] if args.paper else [])
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {args.threads} thread(s)"
    print(f"\ntraining step time on {name}; bf16 native: {resolve_amp('auto', device) == 'bf16'}\n")
    print("| step | batch | plain s | optimised s | plain / optimised | optimised | GFLOP/step | GFLOP/s |")
    print("|---|---:|---:|---:|---:|---|---:|---:|")
    checks = []
    for p in presets:
        for stage, setup in (("stage 2", fusion_setup), ("stage 1", sensing_setup)):
            cfg = preset(p, "fusion" if stage == "stage 2" else "sensing")
            amp = resolve_amp(cfg.amp, device)
            plain = trainable(*setup(p, cfg.batch, device, torch.contiguous_format, "none"))
            fast = trainable(*setup(p, cfg.batch, device, torch.channels_last, amp))
            t0, t1 = time_steps([plain, fast], args.repeats, device)
            gf = flops(*setup(p, cfg.batch, device, torch.contiguous_format, "none")) / 1e9
            how = "channels-last" + (" + bf16" if amp == "bf16" else "")
            print(f"| {p}: {stage} | {cfg.batch} | {t0:.3f} | {t1:.3f} | {t0 / t1:.2f}x | {how} | {gf:.1f} | {gf / t1:.0f} |")
            checks.append((f"{p}: {stage} ({how})", *exactness(setup, p, cfg.batch, device, amp)))
    print("\n| exactness, optimised vs plain | loss rel. diff | gradient rel. diff |")
    print("|---|---:|---:|")
    for label, dl, dg in checks:
        print(f"| {label} | {dl:.1e} | {dg:.1e} |")
    if args.profile and device.type == "cpu":
        print("\n| optimised step, profiled | s/step | convolutions s (share) | conv GFLOP/s | bound if only convolutions remained |")
        print("|---|---:|---:|---:|---:|")
        bf16 = resolve_amp("auto", device) == "bf16"
        rows = [("stage 2", fusion_setup, "fusion", None), ("stage 2", fusion_setup, "fusion", "bf16"),
                ("stage 1", sensing_setup, "sensing", None)]
        for stage, setup, kind, amp in rows:
            cfg = preset("cpu", kind)
            amp = amp or resolve_amp(cfg.amp, device)
            if amp == "bf16" and not bf16:
                continue
            r = profile_row(setup, "cpu", cfg.batch, device, amp)
            label = f"cpu: {stage}" + (" (bf16 autocast)" if amp == "bf16" else " (fp32)")
            print(f"| {label} | {r['step']:.3f} | {r['conv']:.3f} ({r['share']:.0%}) | {r['gflops']:.0f} | {r['bound']:.2f}x |")
    if args.load >= 0 and device.type == "cpu":
        cfg = preset("cpu", "fusion")
        print(f"\n| cpu stage 2, {args.load} extra busy processes, load average {os.getloadavg()[0]:.1f} | s/step |")
        print("|---|---:|")
        for label, t in thread_rows(cfg.batch, device, args.load, args.repeats):
            print(f"| {label} | {t:.3f} |")


if __name__ == "__main__":
    main()
