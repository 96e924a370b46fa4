"""The README's real night pair: the shipped model's fused output beside two classical methods'.

Usage: python scripts/readme_night_figure.py DATA_ROOT [--weights emma-default] [--out docs/night_pair.jpg]

Fuses MSRS/test 00004N and LLVIP/test 190002 (night, pedestrians) with the U-Fuser, ``gff`` and
``average``, and writes one JPEG of full-resolution crops (no downscaling; MSRS's enlarged 2x) with each crop's TCR
(the infrared targets' contrast kept, docs/METRICS.md). Only fused outputs are drawn: the source
images of the data sets are not reproduced in the repository.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import emma_fusion
from emma_fusion.demo import save_jpeg, side_by_side, stack_rows
from emma_fusion.metrics import compute, quantize_fused, read_metric_image

# (dataset split, stem, crop box top, left, height, width, enlargement): around the pedestrians;
# the 640 x 480 MSRS crop is enlarged 2x (nearest neighbour, every pixel kept) to the LLVIP crop's width
PAIRS = [("MSRS/test", "00004N.png", 150, 200, 300, 440, 2), ("LLVIP/test", "190002.jpg", 380, 40, 600, 880, 1)]


def _row(root: Path, split: str, name: str, box: tuple[int, int, int, int, int], weights: str) -> np.ndarray:
    ir, vi = (read_metric_image(root / split / m / name) for m in ("ir", "vi"))
    top, left, h, w, k = box
    tiles, labels = [], []
    for label, kw in ((f"EMMA ({weights})", {"model": weights}), ("gff", {"method": "gff"}), ("average", {"method": "average"})):
        f = emma_fusion.fuse(ir / 255.0, vi / 255.0, color="gray", **kw)
        tcr = compute(quantize_fused(f), ir, vi, ["TCR"])["TCR"]
        tiles.append(np.kron(f[top:top + h, left:left + w], np.ones((k, k))))
        labels.append(f"{label}, {split.split('/')[0]} {Path(name).stem}: TCR {tcr:.2f}")
    return side_by_side(tiles, labels)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path)
    ap.add_argument("--weights", default="emma-default")
    ap.add_argument("--out", type=Path, default=Path("docs/night_pair.jpg"))
    a = ap.parse_args()
    rows = [_row(a.data, split, name, box, a.weights) for split, name, *box in PAIRS]
    img = save_jpeg(stack_rows(rows), a.out, quality=88)
    print(f"wrote {a.out} ({img.width}x{img.height})")


if __name__ == "__main__":
    main()
