"""Start-up time of ``emma --help``: this checkout, and optionally another source tree, in one run.

    python benchmarks/startup.py                          # this checkout
    mkdir -p /tmp/emma-before && git archive 8351e63 src | tar -x -C /tmp/emma-before   # the tree before lazy imports
    python benchmarks/startup.py --before /tmp/emma-before/src

Each command runs ``--runs`` times in a fresh interpreter, alternating the trees so that both see
the same machine load; prints the median wall time of each and their ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
CODE = "import sys; from emma_fusion.cli import main; main(['--help'])"


def once(src: Path) -> float:
    """Seconds for one ``emma --help`` with ``src`` first on the import path."""
    env = {**os.environ, "PYTHONPATH": str(src), "COLUMNS": "100"}
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", CODE], env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", type=Path, help="another source tree (its src/ folder) to compare with")
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    trees = {"before": args.before, "now": SRC} if args.before else {"now": SRC}
    times: dict[str, list[float]] = {k: [] for k in trees}
    once(SRC)  # warm the file cache
    for _ in range(args.runs):
        for name, src in trees.items():
            times[name].append(once(src))
    med = {k: statistics.median(v) for k, v in times.items()}
    for k, v in med.items():
        print(f"{k:7s} emma --help: median {v:.2f} s over {args.runs} runs ({trees[k]})")
    if args.before:
        print(f"ratio before/now: {med['before'] / med['now']:.1f}x")


if __name__ == "__main__":
    main()
