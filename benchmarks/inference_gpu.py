"""U-Fuser inference throughput on a CUDA GPU: fp32 / tf32 / bf16 / fp16, plain vs. folded.

Run: ``python benchmarks/inference_gpu.py`` on a machine with a CUDA GPU (about a minute).

Rows, each against the plain eager UFuser in float32 with TF32 off (the baseline, first row):
    plain fp32        UFuser as written, TF32 off
    plain tf32        UFuser as written, PyTorch's default (TF32 convolutions)
    folded fp32       optimize_for_inference(model) on the GPU (folded weights, channels-last), TF32 off
    folded bf16/fp16  the same under autocast (layer norms and softmax stay float32)
Timing: CUDA-synchronised wall time over ``--iters`` calls after ``--warmup`` calls; peak GPU
memory from ``torch.cuda.max_memory_allocated``. Weights: seeded random initialisation.
"""

from __future__ import annotations

import argparse
import time

import torch


def bench(fn, ir, vi, warmup: int, iters: int) -> tuple[float, torch.Tensor, float]:
    torch.cuda.reset_peak_memory_stats()
    for _ in range(warmup):
        out = fn(ir, vi)
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(iters):
        out = fn(ir, vi)
    torch.cuda.synchronize()
    return (time.perf_counter() - t) / iters, out.float(), torch.cuda.max_memory_allocated() / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="480x640,1024x1280")
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--iters", type=int, default=20)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA GPU")
    from emma_fusion.inference.fast import optimize_for_inference
    from emma_fusion.nets import UFuser

    torch.manual_seed(0)
    model = UFuser().eval().cuda()
    paths = {
        "folded fp32": optimize_for_inference(model),
        "folded bf16": optimize_for_inference(model, dtype=torch.bfloat16),
        "folded fp16": optimize_for_inference(model, dtype=torch.float16),
    }

    def plain(ir, vi):
        with torch.inference_mode():
            return model(ir, vi)

    print(f"{torch.cuda.get_device_name()}; torch {torch.__version__}; cuDNN {torch.backends.cudnn.version()}")
    print("| size | batch | path | ms / batch | pairs / s | vs plain fp32 | peak GPU MB | max abs diff |")
    print("|---|---:|---|---:|---:|---:|---:|---:|")
    for size in args.sizes.split(","):
        h, w = map(int, size.split("x"))
        for n in map(int, args.batches.split(",")):
            g = torch.Generator().manual_seed(1)
            ir, vi = (torch.rand(n, 1, h, w, generator=g).cuda() for _ in range(2))
            rows = []
            torch.backends.cudnn.allow_tf32 = False
            t0, ref, mem = bench(plain, ir, vi, args.warmup, args.iters)
            rows.append(("plain fp32", t0, ref, mem))
            torch.backends.cudnn.allow_tf32 = True
            rows.append(("plain tf32", *bench(plain, ir, vi, args.warmup, args.iters)))
            torch.backends.cudnn.allow_tf32 = False
            for name, fn in paths.items():
                rows.append((name, *bench(fn, ir, vi, args.warmup, args.iters)))
            torch.backends.cudnn.allow_tf32 = True
            for name, t, out, mem in rows:
                diff = (out - ref).abs().max().item()
                print(f"| {h} x {w} | {n} | {name} | {t * 1e3:.2f} | {n / t:.1f} | {t0 / t:.2f}x | {mem:.0f} | {diff:.1e} |")


if __name__ == "__main__":
    main()
