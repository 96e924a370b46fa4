"""Video fusion speed: the video pipeline against fusing the same frames one ``emma fuse`` pair at a time.

Run: ``python benchmarks/video_speed.py [--frames 16] [--size 640x480] [--rounds 2] [--threads 2]``.
The first ``--frames`` LLVIP frames 010001... (one night scene) are resized to ``--size`` and
stored twice: as JPEG pairs (quality 95, as the dataset ships them) and as two H.264 videos.
Paths, all with the shipped model and 8-bit output, interleaved round by round (median fps):

    cli-loop     a shell loop of ``emma fuse IR.jpg VI.jpg -o OUT.png``: a process, a model load and
                 one pair per call (what users do today); ``--cli-pairs`` pairs per round
    pair-loop    ``emma_fusion.fuse_files`` per pair in one process, model loaded once (what each
                 ``emma fuse`` call does after start-up): read, fuse, write, one after another
    video ...    ``fuse_video_files(ir.mp4, vi.mp4, out.mp4)``: decoding, batched fusion in
                 ``streams`` threads and H.264 encoding overlapped; fp32 (same arithmetic as the
                 loops) and bf16 (``--precision bf16``) when the CPU supports it, onnxruntime
Normalisation is ``minmax`` everywhere so that the paths do the same work (the video default,
``smooth``, costs the same). Model loading is outside the timing except for cli-loop.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def prepare(data: Path, n: int, size: tuple[int, int], tmp: Path) -> None:
    from emma_fusion.video import write_video

    for kind in ("ir", "vi"):
        (tmp / kind).mkdir()
        frames = []
        for i in range(n):
            img = Image.open(data / kind / f"{10001 + i:06d}.jpg").convert("RGB").resize(size, Image.BICUBIC)
            img.save(tmp / kind / f"{i:04d}.jpg", quality=95)
            frames.append(np.asarray(img, dtype=np.float32) / 255)
        write_video(tmp / f"{kind}.mp4", frames, Fraction(25))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "LLVIP" / "train")
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--size", default="640x480")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cli-pairs", type=int, default=3)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    import emma_fusion
    from emma_fusion.api import resolve_method
    from emma_fusion.video import fuse_video_files

    size = tuple(int(v) for v in args.size.split("x"))
    bf16 = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    tmp = Path(tempfile.mkdtemp(prefix="emma-video-bench-"))
    prepare(args.data, args.frames, size, tmp)
    pairs = [(tmp / "ir" / p.name, tmp / "vi" / p.name) for p in sorted((tmp / "ir").iterdir())]
    models = {"fp32": resolve_method(None, "emma")}
    if bf16:
        models["bf16"] = resolve_method(None, "emma", precision="bf16")
    try:
        models["onnx"] = resolve_method(None, "emma", backend="onnxruntime", threads=args.threads)
    except Exception as e:  # the optional extra may be missing
        print(f"onnxruntime left out: {e}", file=sys.stderr)
    warm = np.asarray(Image.open(pairs[0][0]).convert("L"), dtype=np.float32) / 255
    for m in models.values():
        for n in (1, 4):
            m(torch.from_numpy(warm)[None, None].repeat(n, 1, 1, 1), torch.from_numpy(warm)[None, None].repeat(n, 1, 1, 1))

    def cli_loop() -> int:
        k = min(args.cli_pairs, len(pairs))
        for i, (a, b) in enumerate(pairs[:k]):
            subprocess.run([sys.executable, "-m", "emma_fusion", "fuse", str(a), str(b), "-o", str(tmp / f"cli{i}.png"),
                            "--overwrite", "--threads", str(args.threads)], check=True, capture_output=True)
        return k

    def pair_loop() -> int:
        for i, (a, b) in enumerate(pairs):
            emma_fusion.fuse_files(a, b, tmp / f"pair{i}.png", model=models["fp32"], normalize="minmax", overwrite=True)
        return len(pairs)

    def video(model: str, batch: int, streams: int):
        def run() -> int:
            return fuse_video_files(tmp / "ir.mp4", tmp / "vi.mp4", tmp / "out.mp4", overwrite=True, model=models[model],
                                    normalize="minmax", batch=batch, streams=streams).frames
        return run

    streams = min(2, args.threads)  # the default: min(2, torch threads), each stream its share of the threads
    configs = [("fp32", 1, 1), ("fp32", 1, streams), ("fp32", 4, 1), ("fp32", 4, streams)]
    configs += [("bf16", 1, streams), ("bf16", 4, streams)] if "bf16" in models else []
    configs += [("onnx", 4, 1)] if "onnx" in models else []
    paths = {"cli-loop": cli_loop, "pair-loop": pair_loop}
    for model, batch, n in dict.fromkeys(configs):  # without repeats (streams = 1 with one thread)
        default = " (default)" if (model, batch, n) == ("fp32", 1, streams) else ""
        paths[f"video {model}, batch {batch}, {n} stream(s){default}"] = video(model, batch, n)
    fps: dict[str, list[float]] = {k: [] for k in paths}
    cpu: dict[str, list[float]] = {k: [] for k in paths}  # CPU seconds of this process per frame
    for r in range(args.rounds):
        for name, fn in paths.items():
            t, c = time.perf_counter(), time.process_time()
            n = fn()
            fps[name].append(n / (time.perf_counter() - t))
            cpu[name].append((time.process_time() - c) / n)
            print(f"round {r + 1}: {name}: {fps[name][-1]:.2f} fps, {cpu[name][-1]:.2f} CPU s/frame", file=sys.stderr)
    base = statistics.median(fps["pair-loop"])
    print(f"{args.frames} frames, {size[0]}x{size[1]}, {args.threads} threads, bf16 supported: {bf16}, "
          f"{args.rounds} rounds (median; range)\n")
    print("| path | frames/s (range) | vs pair-loop | vs cli-loop | CPU s / frame |\n|---|---:|---:|---:|---:|")
    cli = statistics.median(fps["cli-loop"])
    for name, v in fps.items():
        m = statistics.median(v)
        cpu_s = "(child processes)" if name == "cli-loop" else f"{statistics.median(cpu[name]):.2f}"
        print(f"| {name} | {m:.2f} ({min(v):.2f}-{max(v):.2f}) | {m / base:.2f}x | {m / cli:.1f}x | {cpu_s} |")
    if args.json:
        args.json.write_text(json.dumps({"fps": fps, "cpu_s_per_frame": cpu, "frames": args.frames, "size": size, "threads": args.threads}))


if __name__ == "__main__":
    main()
