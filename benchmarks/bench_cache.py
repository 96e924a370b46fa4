"""What the benchmark cache saves: a first ``emma bench`` run against re-runs that reuse it.

Usage: python benchmarks/bench_cache.py [--pairs 6] [--methods average,lp,gff] [--jobs 2]

Runs ``run_bench`` on the first ``--pairs`` TNO test pairs from ../shared (or EMMA_SHARED) with the
given built-in methods and the TNO peer folders, in a fresh temporary folder (the baseline: every
image fused and scored), then again with everything cached, then with one more method (only that
method is computed). Prints wall times and the ratio to the first run. No HTML is written.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from emma_fusion.bench import BenchConfig, run_bench

SHARED = Path(os.environ.get("EMMA_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))


def _timed(cfg: BenchConfig) -> tuple[float, dict]:
    t0 = time.perf_counter()
    res = run_bench(cfg)
    return time.perf_counter() - t0, res.counts


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=6)
    ap.add_argument("--methods", default="average,lp,gff")
    ap.add_argument("--extra", default="tif", help="the method added in the third run")
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    data = SHARED / "data"
    if not (data / "TNO" / "test").is_dir():
        print(f"needs {data / 'TNO' / 'test'} (../shared is absent)", file=sys.stderr)
        return 1
    methods = [m for m in args.methods.split(",") if m]
    with tempfile.TemporaryDirectory() as tmp:
        base = dict(data=[data / "TNO" / "test"], out=Path(tmp), results=[str(data / "results")], limit=args.pairs,
                    jobs=args.jobs, threads=1, html=False, progress=False)
        runs = [("first run (baseline)", _timed(BenchConfig(methods=methods, **base))),
                ("re-run, all cached", _timed(BenchConfig(methods=methods, **base))),
                (f"re-run + {args.extra}", _timed(BenchConfig(methods=[*methods, args.extra], **base)))]
    first = runs[0][1][0]
    print(f"TNO, {args.pairs} pairs, methods {','.join(methods)} + peer folders, jobs {args.jobs}")
    print(f"{'run':<24} {'wall s':>8} {'ratio':>7} {'fused new':>10} {'scored new':>11}")
    for name, (secs, counts) in runs:
        print(f"{name:<24} {secs:8.2f} {secs / first:7.3f} {counts['fused_new']:>10} {counts['scored_new']:>11}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
