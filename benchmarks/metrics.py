"""Benchmark: fast metric implementation vs a straightforward one, on real MSRS triplets.

    python benchmarks/metrics.py [--n 5] [--threads 1] [--ir DIR --vi DIR --fused DIR]

Times the 12 CDDFuse metrics (EN SD SF AG MI SCD VIF Qabf SSIM MSE PSNR CC) of each triplet
with ``emma_fusion.metrics.compute`` and with the per-metric numpy/scipy baseline of
``benchmarks/metrics_reference.py`` in the same run, checks that both give the same numbers
(max relative difference, must be <= 1e-9) and prints seconds per triplet and the ratio.
Image reading is not timed. Exit code 1 if the two disagree.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parent))
from metrics_reference import CDDFUSE_NAMES, REFERENCE  # noqa: E402

from emma_fusion.metrics import compute, pair_folders, read_metric_image  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def _rel(x: float, y: float) -> float:
    if x == y:
        return 0.0
    return abs(x - y) / max(abs(x), abs(y), 1e-12)


def _time_reference(f, a, b) -> tuple[float, dict[str, float], dict[str, float]]:
    values, per_metric = {}, {}
    t0 = time.perf_counter()
    for name in CDDFUSE_NAMES:
        t1 = time.perf_counter()
        values[name] = REFERENCE[name](f, a, b)
        per_metric[name] = time.perf_counter() - t1
    return time.perf_counter() - t0, values, per_metric


def _time_fast(f, a, b, repeat: int) -> tuple[float, dict[str, float]]:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        values = compute(f, a, b, CDDFUSE_NAMES)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), values


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ir", type=Path, default=DATA / "MSRS" / "test" / "ir")
    ap.add_argument("--vi", type=Path, default=DATA / "MSRS" / "test" / "vi")
    ap.add_argument("--fused", type=Path, default=DATA / "results" / "SeAFusion" / "MSRS")
    ap.add_argument("--n", type=int, default=5, help="number of triplets (0 = all)")
    ap.add_argument("--repeat", type=int, default=3, help="fast-path runs per triplet (median)")
    ap.add_argument("--threads", type=int, default=1, help="OpenCV threads for the fast path")
    args = ap.parse_args(argv)
    cv2.setNumThreads(args.threads)
    jobs = list(pair_folders(args.ir, args.vi, args.fused).items())
    if args.n > 0:
        jobs = jobs[: args.n]

    print(f"metrics benchmark: {len(jobs)} triplet(s) from {args.fused}; OpenCV threads {args.threads}; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"metrics: {' '.join(CDDFUSE_NAMES)}; reference = benchmarks/metrics_reference.py (1 run), "
          f"fast = emma_fusion.metrics.compute (median of {args.repeat})\n")
    head = f"{'image':<12} {'size':>9} {'reference s':>12} {'fast s':>9} {'ratio':>8} {'max rel diff':>13}"
    print(head)
    print("-" * len(head))
    ref_total = fast_total = worst = 0.0
    per_metric_sum = dict.fromkeys(CDDFUSE_NAMES, 0.0)
    warm = read_metric_image(jobs[0][1][0])
    compute(warm, warm, warm, CDDFUSE_NAMES)  # warm-up (imports, first-call allocations)
    for stem, paths in jobs:
        f, a, b = (read_metric_image(p).astype("float64") for p in paths)
        t_ref, v_ref, per_metric = _time_reference(f, a, b)
        t_fast, v_fast = _time_fast(f, a, b, args.repeat)
        diff = max(_rel(v_ref[m], v_fast[m]) for m in CDDFUSE_NAMES)
        worst = max(worst, diff)
        ref_total += t_ref
        fast_total += t_fast
        for m, t in per_metric.items():
            per_metric_sum[m] += t
        size = f"{f.shape[0]}x{f.shape[1]}"
        print(f"{stem:<12} {size:>9} {t_ref:>12.3f} {t_fast:>9.4f} {t_ref / t_fast:>7.1f}x {diff:>13.1e}")
    n = len(jobs)
    print("-" * len(head))
    print(f"{'mean':<12} {'':>9} {ref_total / n:>12.3f} {fast_total / n:>9.4f} "
          f"{ref_total / fast_total:>7.1f}x {worst:>13.1e}")
    slowest = sorted(per_metric_sum.items(), key=lambda kv: -kv[1])[:4]
    print("\nreference time by metric (mean s/triplet): "
          + ", ".join(f"{m} {t / n:.3f}" for m, t in slowest) + ", ...")
    ok = worst <= 1e-9
    print(f"agreement: max relative difference {worst:.1e} -> {'OK' if ok else 'MISMATCH'} (limit 1e-9)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
