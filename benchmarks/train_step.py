"""Seconds per training step at the ``cpu`` and ``paper`` presets (stage 2, and stage 1 for context).

    python benchmarks/train_step.py                      # this CPU, 1 thread
    python benchmarks/train_step.py --threads 2
    python benchmarks/train_step.py --device cuda --amp bf16

One step = forward, backward and Adam update of the real loss modules on random crops (data
loading excluded). The baseline is the ``cpu`` preset's stage-2 step, measured in the same run;
the ratio column is each row's time over it. Where the paper's batch does not fit or is too slow
(CPU: the authors' batch 8 needs more than 24 GB), a smaller batch is measured and the time is
scaled linearly to the paper's batch; such rows say "extrapolated".
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

import torch
import torch.nn.functional as F

from emma_fusion.train.losses import EmmaLoss
from emma_fusion.nets import SensingUNet, UFuser
from emma_fusion.train import preset
from emma_fusion.train.fusion import make_sampler


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(step, repeats: int, device: torch.device) -> float:
    step()  # warm-up
    _sync(device)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _autocast(device: torch.device, amp: str):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp == "bf16")


def fusion_step(preset_name: str, batch: int, device: torch.device, amp: str):
    """A closure running one stage-2 step of ``preset_name`` at ``batch``; and its stack size."""
    cfg = preset(preset_name, "fusion")
    width = preset(preset_name, "sensing").width
    fuser = UFuser().to(device)
    loss = EmmaLoss(fuser, SensingUNet(width).to(device), SensingUNet(width).to(device), a1=cfg.a1, a2=cfg.a2)
    sampler = make_sampler(cfg)
    opt = torch.optim.Adam(fuser.parameters(), lr=cfg.optim.lr)
    c = cfg.data.crop
    ir, vi = torch.rand(batch, 1, c, c, device=device), torch.rand(batch, 1, c, c, device=device)
    gen = torch.Generator().manual_seed(0)

    def step() -> None:
        with _autocast(device, amp):
            out = loss(ir, vi, sampler.sample(c, c, gen))
        opt.zero_grad(set_to_none=True)
        out.total.float().backward()
        opt.step()

    return step, sampler.per_step_size


def sensing_step(preset_name: str, batch: int, device: torch.device, amp: str):
    """A closure running one stage-1 step (both A nets) of ``preset_name`` at ``batch``."""
    cfg = preset(preset_name, "sensing")
    nets = [SensingUNet(cfg.width).to(device) for _ in range(2)]
    opt = torch.optim.Adam([p for n in nets for p in n.parameters()], lr=cfg.optim.lr)
    c = cfg.data.crop
    x = torch.rand(batch, 1, c, c, device=device)

    def step() -> None:
        with _autocast(device, amp):
            loss = sum(F.mse_loss(n(x).float(), x) for n in nets)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def _peak_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--amp", choices=["none", "bf16"], default="none")
    ap.add_argument("--paper-batch", type=int, default=None,
                    help="batch measured for the paper rows (default: 8 on CUDA, 1 on CPU, then extrapolated)")
    ap.add_argument("--skip-paper", action="store_true", help="only the cpu preset rows")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    paper_b = args.paper_batch or (8 if device.type == "cuda" else 1)
    rows = []

    cpu_f = preset("cpu", "fusion")
    step, k = fusion_step("cpu", cpu_f.batch, device, args.amp)
    base = _time(step, args.repeats, device)
    rows.append(("cpu: stage 2 (baseline)", cpu_f.batch, cpu_f.data.crop, k, preset("cpu", "sensing").width, base, "measured"))
    cpu_s = preset("cpu", "sensing")
    t = _time(sensing_step("cpu", cpu_s.batch, device, args.amp), args.repeats, device)
    rows.append(("cpu: stage 1", cpu_s.batch, cpu_s.data.crop, 0, cpu_s.width, t, "measured"))
    if not args.skip_paper:
        pf, ps = preset("paper", "fusion"), preset("paper", "sensing")
        step, k = fusion_step("paper", paper_b, device, args.amp)
        t = _time(step, max(1, args.repeats - 1), device) * pf.batch / paper_b
        how = "measured" if paper_b == pf.batch else f"batch {paper_b} x {pf.batch / paper_b:g} (extrapolated)"
        rows.append(("paper: stage 2", pf.batch, pf.data.crop, k, ps.width, t, how))
        sb = ps.batch if device.type == "cuda" else 4
        t = _time(sensing_step("paper", sb, device, args.amp), max(1, args.repeats - 1), device) * ps.batch / sb
        how = "measured" if sb == ps.batch else f"batch {sb} x {ps.batch / sb:g} (extrapolated)"
        rows.append(("paper: stage 1", ps.batch, ps.data.crop, 0, ps.width, t, how))

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {args.threads} thread(s)"
    print(f"\ntraining step time on {name}, amp={args.amp}; peak memory {_peak_mb(device):.0f} MiB\n")
    print("| step | batch | crop | transforms | A width | s/step | vs baseline | how |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for label, b, c, k, w, t, how in rows:
        print(f"| {label} | {b} | {c} | {k or '-'} | {w} | {t:.3f} | {t / base:.2f}x | {how} |")


if __name__ == "__main__":
    main()
