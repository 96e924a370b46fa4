"""Folder fusion at model speed: pairs/s of `fuse_folder` vs. the network alone on the same pairs.

Usage: python benchmarks/folder_throughput.py [--data ../shared/data/MSRS/test] [--threads 2]
       [--weights W] [--rounds 3]

(a) model alone: the network's forward on pre-loaded luma tensors (no decoding, colour or
    encoding), one pair at a time with all threads, as `emma fuse` runs one pair;
(b) fuse_folder with streams=1 (read, colour, fuse, encode, write strictly in sequence);
(c) fuse_folder as shipped (2 pairs in flight, each with half the threads: one stream's decoding
    and encoding run while the other computes);
(d) model alone in 2 streams, as (c) runs it but without any I/O: the most (c) could reach.
The four are interleaved round by round (order rotated each round) so that load from other
processes hits them alike; the table gives the median seconds over rounds and the median of the
per-round ratios model/folder (1.00x = folders at model speed). Random weights (seed 0) unless
--weights: speed does not depend on weight values.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from emma_fusion.api import fuse_folder, pair_folders
from emma_fusion.concurrency import thread_streams
from emma_fusion.io import read_image, to_gray
from emma_fusion.methods.network import EmmaNetwork
from emma_fusion.nets import UFuser
from emma_fusion.weights import load_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[1].parent / "shared/data/MSRS/test"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--weights", default=None)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = load_model(a.weights) if a.weights else UFuser().eval()
    method = EmmaNetwork(model=model)
    data = Path(a.data)
    pairs, _ = pair_folders(data / "ir", data / "vi")
    tensors = [(torch.from_numpy(to_gray(read_image(i)))[None, None], torch.from_numpy(to_gray(read_image(v)))[None, None]) for _, i, v in pairs]
    method(*tensors[0])  # warm-up

    def model_alone() -> None:
        for ir, vi in tensors:
            method(ir, vi)

    def model_streams() -> None:
        with thread_streams(2) as pool:
            list(pool.map(lambda t: method(*t), tensors))

    def folder(streams: int):
        def run() -> None:
            with tempfile.TemporaryDirectory() as out:
                rep = fuse_folder(data / "ir", data / "vi", out, method, progress=False, streams=streams)
                assert len(rep.written) == len(pairs), rep.failed
        return run

    paths = {"(a) model alone": model_alone, "(b) folder, 1 stream": folder(1),
             "(c) folder, 2 streams": folder(2), "(d) model alone, 2 streams": model_streams}
    times: dict[str, list[float]] = {k: [] for k in paths}
    names = list(paths)
    for r in range(a.rounds):
        for k in names[r % len(names):] + names[: r % len(names)]:
            t = time.perf_counter()
            paths[k]()
            times[k].append(time.perf_counter() - t)
    n = len(pairs)
    base = times[names[0]]
    print(f"{n} pairs from {data}, {a.threads} threads, {a.rounds} interleaved rounds")
    print(f"{'path':26s} {'seconds':>8s} {'pairs/s':>8s} {'vs model':>9s}  per-round ratios")
    for k, ts in times.items():
        s = statistics.median(ts)
        ratios = [b / t for b, t in zip(base, ts)]
        print(f"{k:26s} {s:8.2f} {n / s:8.2f} {statistics.median(ratios):8.2f}x  " + " ".join(f"{x:.2f}" for x in ratios))


if __name__ == "__main__":
    main()
