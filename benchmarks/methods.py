"""Time every classical fusion method on one 480 x 640 pair; ``average`` is the baseline.

Usage: python benchmarks/methods.py [--pair MSRS_STEM] [--repeat 5] [--threads 1] [--methods lp,gff]

Uses a real MSRS test pair from ../shared (or EMMA_SHARED) when present, else a seeded random
pair of the same size. Each method runs once to warm up, then ``--repeat`` times; the table shows
the median and the minimum wall time in ms, the ratio of medians to ``average``, and whether the
median is under the 1 s target. OpenCV's threads are limited by ``--threads``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from emma_fusion.io import list_images, read_image, to_gray
from emma_fusion.methods.base import get_method
from emma_fusion.methods.classical import CLASSICAL_METHODS

SHARED = Path(os.environ.get("EMMA_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))


def load_pair(stem: str | None) -> tuple[torch.Tensor, torch.Tensor, str]:
    """(ir, vi) as (1, 1, 480, 640) tensors and a label saying where they came from."""
    root = SHARED / "data" / "MSRS" / "test"
    if (root / "ir").is_dir():
        irs, vis = list_images(root / "ir"), list_images(root / "vi")
        stem = stem or sorted(irs.keys() & vis.keys())[0]
        ir, vi = to_gray(read_image(irs[stem])), to_gray(read_image(vis[stem]))
        label = f"MSRS test pair {stem}"
    else:
        rng = np.random.default_rng(0)
        ir, vi = rng.random((480, 640), dtype=np.float32), rng.random((480, 640), dtype=np.float32)
        label = "random pair (../shared absent)"
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))[None, None]
    return t(ir), t(vi), f"{label}, {ir.shape[1]}x{ir.shape[0]}"


def time_method(name: str, ir: torch.Tensor, vi: torch.Tensor, repeat: int) -> list[float]:
    """Wall times (s) of ``repeat`` calls after one warm-up call."""
    m = get_method(name)
    m(ir, vi)
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        m(ir, vi)
        times.append(time.perf_counter() - t)
    return times


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pair", default=None, help="MSRS test stem (default: the first)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="OpenCV and torch threads")
    ap.add_argument("--methods", default=",".join(CLASSICAL_METHODS))
    args = ap.parse_args(argv)
    cv2.setNumThreads(args.threads)
    torch.set_num_threads(args.threads)
    names = [n for n in args.methods.split(",") if n]
    if "average" in names:
        names.remove("average")
    ir, vi, label = load_pair(args.pair)
    print(f"{label}; {args.repeat} runs after 1 warm-up; {args.threads} thread(s)")
    base = statistics.median(time_method("average", ir, vi, args.repeat))
    rows = [("average", base, base)]
    for name in names:
        ts = time_method(name, ir, vi, args.repeat)
        rows.append((name, statistics.median(ts), min(ts)))
    print(f"{'method':<10} {'median ms':>10} {'min ms':>9} {'x average':>10} {'< 1 s':>6}")
    slow = 0
    for name, med, mn in rows:
        ok = med < 1.0
        slow += not ok
        print(f"{name:<10} {med * 1e3:>10.1f} {mn * 1e3:>9.1f} {med / base:>10.1f} {'yes' if ok else 'NO':>6}")
    return 1 if slow else 0


if __name__ == "__main__":
    sys.exit(main())
