"""Flicker of the video output scalings: per-frame ``minmax`` vs ``smooth`` (several time constants) vs ``clip``.

Run: ``python benchmarks/video_flicker.py [--data ../shared/data/LLVIP/train] [--size 640x512]``.
The 30 consecutive LLVIP frames 010001-010030 (one night scene, people walking) are fused once
with ``--method`` (default ``emma``: ``emma-default``; raw output, before scaling); each scaling is then applied to the same outputs and
scored: TS (temporal stability, lower is steadier; docs/METRICS.md), the mean absolute change of
the frame's mean brightness (gray levels), and VIF, Qabf, TCR (means over the frames). Two
sequences: the frames as they are, and the same with a synthetic hot object (a 250-level disc)
entering the infrared view from frame 10 on, the case that makes a per-frame stretch jump.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def load(data: Path, kind: str, size: tuple[int, int]) -> list[np.ndarray]:
    files = [data / kind / f"0100{i:02d}.jpg" for i in range(1, 31)]
    return [np.asarray(Image.open(f).convert("L").resize(size, Image.BICUBIC), dtype=np.float32) / 255 for f in files]


def hot_object(ir: list[np.ndarray]) -> list[np.ndarray]:
    """A bright disc entering from the left edge from frame 10 on, moving right."""
    out = []
    for t, f in enumerate(ir):
        f = f.copy()
        if t >= 10:
            h, w = f.shape
            yy, xx = np.mgrid[:h, :w]
            cx, r = -w // 10 + (t - 10) * w // 40, h // 8
            f[(yy - h // 2) ** 2 + (xx - cx) ** 2 < r * r] = 250 / 255
        out.append(f)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "LLVIP" / "train")
    ap.add_argument("--size", default="640x512")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--method", default="emma", help="a registered method (emma = emma-default)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from emma_fusion.core import normalize_output
    from emma_fusion.methods.base import get_method
    from emma_fusion.metrics import compute
    from emma_fusion.metrics.temporal import temporal_stability
    from emma_fusion.video import RangeSmoother

    size = tuple(int(v) for v in args.size.split("x"))
    if not (args.data / "ir").is_dir():
        sys.exit(f"needs {args.data}/ir and vi (LLVIP frames 010001-010030)")
    vi = load(args.data, "vi", size)
    fm = get_method(args.method)
    rows = {}
    for seq, ir in (("as is", load(args.data, "ir", size)), ("hot object enters", None)):
        ir = ir if ir is not None else hot_object(load(args.data, "ir", size))
        t0 = time.perf_counter()
        with torch.inference_mode():
            raw = [fm(torch.from_numpy(a)[None, None], torch.from_numpy(b)[None, None])[0, 0].numpy()
                   for a, b in zip(ir, vi)]
        print(f"{seq}: fused {len(raw)} frames in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        A = [np.round(a * 255) for a in ir]
        B = [np.round(b * 255) for b in vi]
        scalings = {"minmax": lambda f: normalize_output(f, "minmax"), "clip": lambda f: normalize_output(f, "clip")}
        for tau in (0.5, 1.0, 2.0):
            scalings[f"smooth {tau:g} s"] = RangeSmoother(25.0, tau)
        for name, scale in scalings.items():
            F = [np.floor(scale(r) * 255 + 0.5) for r in raw]  # 8 bits, as write_image and the encoder store it
            bright = float(np.mean(np.abs(np.diff([f.mean() for f in F]))))
            q = [compute(f, a, b, ["VIF", "Qabf", "TCR"]) for f, a, b in zip(F, A, B)]
            rows[f"{seq} | {name}"] = {"TS": temporal_stability(F, A, B), "brightness_jump": bright,
                                       **{m: float(np.mean([v[m] for v in q])) for m in ("VIF", "Qabf", "TCR")}}
        src = float(np.mean(np.abs(np.diff([a.mean() for a in A]))))
        rows[f"{seq} | (infrared source)"] = {"brightness_jump": src}
    print(f"method {args.method}, {size[0]}x{size[1]}\n")
    print("| sequence | scaling | TS | mean brightness jump | VIF | Qabf | TCR |\n|---|---|---|---|---|---|---|")
    for k, r in rows.items():
        seq, name = k.split(" | ")
        cells = [f"{r[m]:.3f}" if m in r else "" for m in ("TS", "brightness_jump", "VIF", "Qabf", "TCR")]
        print(f"| {seq} | {name} | " + " | ".join(cells) + " |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
