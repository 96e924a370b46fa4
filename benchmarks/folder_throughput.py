"""Folder fusion at model speed: pairs/s of `fuse_folder` vs. the network alone on the same pairs.

Usage: python benchmarks/folder_throughput.py [--data ../shared/data/MSRS/test] [--threads 2] [--weights W]

(a) model alone: the network's forward on pre-loaded luma tensors (no decoding, colour or encoding);
(b) fuse_folder with prefetch=0 (everything in sequence);
(c) fuse_folder as shipped (decoding and PNG encoding overlap compute in worker threads).
The ratio (c)/(a) says how close folder runs come to model speed. Random weights (seed 0) unless
--weights: speed does not depend on weight values.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from emma_fusion.api import fuse_folder, pair_folders
from emma_fusion.io import read_image, to_gray
from emma_fusion.methods.network import EmmaNetwork
from emma_fusion.nets import UFuser
from emma_fusion.weights import load_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[1].parent / "shared/data/MSRS/test"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--weights", default=None)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = load_model(a.weights) if a.weights else UFuser().eval()
    method = EmmaNetwork(model=model)
    pairs, _ = pair_folders(Path(a.data) / "ir", Path(a.data) / "vi")
    tensors = [(torch.from_numpy(to_gray(read_image(i)))[None, None], torch.from_numpy(to_gray(read_image(v)))[None, None]) for _, i, v in pairs]
    method(*tensors[0])  # warm-up
    t = time.perf_counter()
    for ir, vi in tensors:
        method(ir, vi)
    model_s = time.perf_counter() - t
    rows = [("(a) model alone", model_s)]
    for label, prefetch in [("(b) folder, sequential", 0), ("(c) folder, overlapped", 2)]:
        with tempfile.TemporaryDirectory() as out:
            t = time.perf_counter()
            fuse_folder(Path(a.data) / "ir", Path(a.data) / "vi", out, method, progress=False, prefetch=prefetch)
            rows.append((label, time.perf_counter() - t))
    n = len(pairs)
    print(f"{n} pairs from {a.data}, {a.threads} threads")
    print(f"{'path':26s} {'seconds':>8s} {'pairs/s':>8s} {'vs model':>9s}")
    for label, s in rows:
        print(f"{label:26s} {s:8.2f} {n / s:8.2f} {model_s / s:8.2f}x")


if __name__ == "__main__":
    main()
