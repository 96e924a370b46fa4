"""Peak RSS of fusing one large pair with the U-Fuser, tiled vs. untiled, each in a fresh process.

Usage: python benchmarks/large_image_memory.py [--size 4096] [--tiles 0,1024,768] [--threads 2]
Prints seconds and peak RSS (MiB) per configuration; untiled (tile 0) is the baseline.
Weights are random (seeded): memory and time do not depend on their values.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time
import numpy as np, torch
from emma_fusion.api import fuse
from emma_fusion.nets import UFuser
size, tile, threads = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)
torch.manual_seed(0)
net = UFuser().eval()
rng = np.random.default_rng(0)
ir = (rng.random((size, size)) * 255).astype(np.uint8)
vi = (rng.random((size, size, 3)) * 255).astype(np.uint8)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
t = time.perf_counter()
out = fuse(ir, vi, net, tile=tile)
dt = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"tile": tile, "seconds": dt, "peak_mib": peak, "before_mib": base, "shape": list(out.shape)}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--tiles", default="1024,768")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    print(f"{a.size}x{a.size} pair, {a.threads} threads")
    print(f"{'tile':>6} {'seconds':>9} {'peak RSS MiB':>13}")
    for tile in [int(t) for t in a.tiles.split(",")]:
        r = subprocess.run([sys.executable, "-c", CHILD, str(a.size), str(tile), str(a.threads)], capture_output=True, text=True)
        if r.returncode != 0:
            print(f"{tile:>6} failed: {r.stderr.strip().splitlines()[-1] if r.stderr.strip() else r.returncode}")
            continue
        d = json.loads(r.stdout.strip().splitlines()[-1])
        print(f"{tile:>6} {d['seconds']:9.1f} {d['peak_mib']:13.0f}")


if __name__ == "__main__":
    main()
