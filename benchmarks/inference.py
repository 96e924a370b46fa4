"""Inference speed of the U-Fuser: the plain eager forward (baseline) vs. the project's fast path.

Run: ``python benchmarks/inference.py`` (about 5 minutes on 2 cores; ``--quick`` for one size
and fewer rounds). Each (size, path) configuration runs in a fresh subprocess so that its peak
RSS (``ru_maxrss``) is its own; configurations are interleaved round by round and the table
gives the median seconds per pair over all timed runs, so that load from other processes
affects baseline and fast paths alike.

Paths:
    baseline  ``UFuser`` as written in the paper (emma_fusion/nets/ufuser.py), eval mode,
              ``torch.inference_mode``: the straightforward eager forward.
    fast      ``emma_fusion.inference.fast.optimize_for_inference(model)``: the default fast path.
    fast-bf16 the same with ``dtype=torch.bfloat16``.
    folded    ``fold_weights(model)`` run eagerly (plain ops, NCHW): the folding alone.
    onnxrt    ``export_onnx`` + ``OnnxFuser`` (onnxruntime CPU), when onnxruntime is installed.

``--bf16-metrics DIR`` instead reports the effect of the bf16 path on EN/SD/SF/AG/SCD/VIF over
the pairs of DIR/ir and DIR/vi (e.g. ../shared/data/MSRS/test).

FLOPs are counted with ``torch.utils.flop_counter.FlopCounterMode`` on the operations each path
actually executes (oneDNN-fused ops counted through their unfused equivalents); GFLOP/s is that
count over the median time. Weights: ``--weights`` or a seeded random initialisation (speed and
exactness do not depend on the values).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

PATHS = ["baseline", "fast", "fast-bf16", "folded", "onnxrt"]


def build_model(weights: str | None) -> torch.nn.Module:
    from emma_fusion.nets import UFuser

    if weights:
        from emma_fusion.weights import load_model

        return load_model(weights)
    torch.manual_seed(0)
    return UFuser().eval()


def build_path(name: str, model: torch.nn.Module, tmp: Path):
    """Return a callable ``(ir, vi) -> fused`` for path ``name``."""
    from emma_fusion.inference.fast import fold_weights, optimize_for_inference

    if name == "baseline":
        def run(ir, vi):
            with torch.inference_mode():
                return model(ir, vi)
        return run
    if name == "fast":
        return optimize_for_inference(model)
    if name == "fast-bf16":
        return optimize_for_inference(model, dtype=torch.bfloat16)
    if name == "folded":
        folded = fold_weights(model)

        def run(ir, vi):
            with torch.inference_mode():
                return folded(ir, vi)
        return run
    if name == "onnxrt":
        from emma_fusion.inference.onnx import OnnxFuser, export_onnx

        path = tmp / "ufuser.onnx"
        if not path.exists():
            export_onnx(model, path)
        return OnnxFuser(path, threads=torch.get_num_threads())
    raise ValueError(name)


def inputs(h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.rand(1, 1, h, w, generator=g), torch.rand(1, 1, h, w, generator=g)


def child(args: argparse.Namespace) -> None:
    """Time one configuration in this (fresh) process and print a JSON line."""
    torch.set_num_threads(args.threads)
    h, w = map(int, args.size.split("x"))
    tmp = Path(args.tmp)
    fn = build_path(args.path, build_model(args.weights), tmp)
    ir, vi = inputs(h, w)
    out = fn(ir, vi)  # warm-up: oneDNN primitive creation, onnxruntime graph optimisation
    times = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        fn(ir, vi)
        times.append(time.perf_counter() - t)
    np.save(tmp / f"out_{args.path}_{args.size}.npy", out.float().numpy())
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"times": times, "rss_mb": rss_mb}))


def count_flops(name: str, model: torch.nn.Module, h: int, w: int) -> float | None:
    """FLOPs one pair costs on path ``name`` (None where the counter cannot see the work)."""
    from torch.utils.flop_counter import FlopCounterMode

    from emma_fusion.inference.fast import FastUFuser, fold_weights

    ir, vi = inputs(h, w)
    if name == "baseline":
        net = model
    elif name in ("folded", "onnxrt"):
        net = fold_weights(model)
    else:  # the fast paths, through their unfused equivalents
        net = FastUFuser(model)
        for m in net.modules():
            if hasattr(m, "fused"):
                m.fused = False
    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        net(ir, vi)
    return float(counter.get_total_flops())


def parent(args: argparse.Namespace) -> None:
    paths = [p for p in args.paths.split(",") if p]
    if "onnxrt" in paths:
        try:
            import onnx  # noqa: F401
            import onnxruntime  # noqa: F401
        except ImportError:
            print("onnxruntime not installed: skipping the onnxrt row", file=sys.stderr)
            paths.remove("onnxrt")
    sizes = args.sizes.split(",")
    results: dict[tuple[str, str], dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for size in sizes:
                for path in paths:
                    cmd = [sys.executable, __file__, "--child", "--path", path, "--size", size, "--tmp", tmp,
                           "--repeats", str(args.repeats), "--threads", str(args.threads)]
                    if args.weights:
                        cmd += ["--weights", args.weights]
                    res = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
                    if res.returncode != 0:
                        sys.exit(f"{path} {size} failed:\n{res.stderr[-3000:]}")
                    rec = json.loads(res.stdout.strip().splitlines()[-1])
                    acc = results.setdefault((size, path), {"times": [], "rss_mb": 0.0})
                    acc["times"] += rec["times"]
                    acc["rss_mb"] = max(acc["rss_mb"], rec["rss_mb"])
                    print(f"round {r + 1}/{args.rounds} {size} {path}: median {statistics.median(rec['times']):.3f} s",
                          file=sys.stderr)
        model = build_model(args.weights)
        for size in sizes:
            ref = np.load(Path(tmp) / f"out_baseline_{size}.npy") if "baseline" in paths else None
            h, w = map(int, size.split("x"))
            for path in paths:
                acc = results[(size, path)]
                out = np.load(Path(tmp) / f"out_{path}_{size}.npy")
                acc["diff"] = float(np.abs(out - ref).max()) if ref is not None else float("nan")
                acc["flops"] = count_flops(path, model, h, w)
    print_table(results, sizes, paths, args)


def print_table(results: dict, sizes: list[str], paths: list[str], args: argparse.Namespace) -> None:
    cpu = _cpu_name()
    print(f"\nU-Fuser inference, one pair per call; {cpu}; torch {torch.__version__}; {args.threads} threads;")
    print(f"median of {args.rounds} fresh processes x {args.repeats} timed runs, after one warm-up run each.\n")
    print("| size | path | s / pair | pairs / s | speed-up vs baseline | peak RSS (MB) | GFLOP | GFLOP/s | max abs diff vs baseline |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for size in sizes:
        base = statistics.median(results[(size, "baseline")]["times"]) if (size, "baseline") in results else None
        for path in paths:
            acc = results[(size, path)]
            t = statistics.median(acc["times"])
            ratio = f"{base / t:.2f}x" if base else "-"
            gf = acc["flops"] / 1e9 if acc["flops"] else None
            print(f"| {size.replace('x', ' x ')} | {path} | {t:.3f} | {1 / t:.2f} | {ratio} | {acc['rss_mb']:.0f} | "
                  f"{gf:.1f} | {gf / t:.0f} | {acc['diff']:.1e} |" if gf else
                  f"| {size} | {path} | {t:.3f} | {1 / t:.2f} | {ratio} | {acc['rss_mb']:.0f} | - | - | {acc['diff']:.1e} |")


def metrics_effect(args: argparse.Namespace) -> None:
    """EN/SD/SF/AG/SCD/VIF of fp32 vs bf16 fast-path outputs over a folder pair (ir/, vi/)."""
    from emma_fusion.inference.fast import optimize_for_inference
    from emma_fusion.io import list_images, read_image, to_gray
    from emma_fusion.metrics import compute, quantize_fused, read_metric_image

    torch.set_num_threads(args.threads)
    root = Path(args.bf16_metrics)
    irs, vis = list_images(root / "ir"), list_images(root / "vi")
    stems = sorted(set(irs) & set(vis))[: args.limit]
    model = build_model(args.weights)
    nets = {"fp32": optimize_for_inference(model), "bf16": optimize_for_inference(model, dtype=torch.bfloat16)}
    names = ["EN", "SD", "SF", "AG", "SCD", "VIF"]
    vals = {k: {n: [] for n in names} for k in nets}
    diffs, psnrs = [], []
    for stem in stems:
        ir, vi = (read_image(p) for p in (irs[stem], vis[stem]))
        ir, vi = (a if a.ndim == 2 else to_gray(a) for a in (ir, vi))
        h, w = (ir.shape[0] // 8) * 8, (ir.shape[1] // 8) * 8
        t = [torch.from_numpy(np.ascontiguousarray(a[:h, :w]))[None, None] for a in (ir, vi)]
        mir, mvi = (read_metric_image(p)[:h, :w] for p in (irs[stem], vis[stem]))
        outs = {}
        for k, net in nets.items():
            out = net(*t)[0, 0].numpy()
            outs[k] = out
            out = (out - out.min()) / max(float(out.max() - out.min()), 1e-12)
            for n, v in compute(quantize_fused(out), mir, mvi, names).items():
                vals[k][n].append(v)
        d = np.abs(outs["fp32"] - outs["bf16"])
        diffs.append(float(d.max()))
        psnrs.append(float(10 * np.log10(1.0 / max(float((d**2).mean()), 1e-20))))
    print(f"\nfp32 vs bf16 fast path on {len(stems)} pairs of {root} "
          f"({'weights ' + args.weights if args.weights else 'seeded random weights'})")
    print(f"output max abs diff: median {np.median(diffs):.1e}, max {max(diffs):.1e}; PSNR(fp32, bf16) median {np.median(psnrs):.1f} dB\n")
    print("| metric | fp32 | bf16 | bf16 - fp32 |")
    print("|---|---:|---:|---:|")
    for n in names:
        a, b = np.mean(vals["fp32"][n]), np.mean(vals["bf16"][n])
        print(f"| {n} | {a:.4f} | {b:.4f} | {b - a:+.4f} |")


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} x {os.cpu_count()}"
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="480x640,1024x1280", help="comma-separated HxW")
    ap.add_argument("--paths", default=",".join(PATHS), help=f"comma-separated, from {PATHS}")
    ap.add_argument("--rounds", type=int, default=3, help="fresh processes per configuration (interleaved)")
    ap.add_argument("--repeats", type=int, default=2, help="timed runs per process")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch intra-op threads")
    ap.add_argument("--weights", default=None, help="U-Fuser weights (default: seeded random initialisation)")
    ap.add_argument("--quick", action="store_true", help="480x640 only, 2 rounds x 2 runs")
    ap.add_argument("--bf16-metrics", metavar="DIR", help="instead: fusion metrics of fp32 vs bf16 over DIR/ir, DIR/vi")
    ap.add_argument("--limit", type=int, default=None, help="with --bf16-metrics: first N pairs")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--path", help=argparse.SUPPRESS)
    ap.add_argument("--size", help=argparse.SUPPRESS)
    ap.add_argument("--tmp", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return
    if args.bf16_metrics:
        metrics_effect(args)
        return
    if args.quick:
        args.sizes, args.rounds, args.repeats = "480x640", 2, 2
    parent(args)


if __name__ == "__main__":
    main()
