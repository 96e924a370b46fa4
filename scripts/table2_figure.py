"""Pictures of the Table 2 models (issue 24): each loss's U-Fuser on a night and a daytime test pair.

Usage: python scripts/table2_figure.py DATA_ROOT [--runs runs/table2] [--out docs/TABLE2_pictures.jpg]

Fuses a crop of MSRS/test 00004N (night, pedestrians) and of RoadScene/test FLIR_06325 (daytime
sky) with ``RUNS/<loss>/ufuser.safetensors`` for each loss that has one (the order of
docs/EQ6.md's table) and writes one JPEG: a row per pair, a tile per loss, each labelled with
the crop's TCR. Only fused outputs are drawn: the data sets' source images are not reproduced.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import emma_fusion
from emma_fusion.demo import save_jpeg, side_by_side, stack_rows
from emma_fusion.metrics import compute, quantize_fused, read_metric_image

LOSSES = ("content", "III", "IV", "II", "I", "full")
# (dataset split, file name, crop top, left, height, width)
PAIRS = [("MSRS/test", "00004N.png", 150, 200, 300, 440), ("RoadScene/test", "FLIR_06325.jpg", 0, 0, 300, 440)]


def _row(root: Path, split: str, name: str, box: tuple[int, int, int, int], runs: dict[str, Path]) -> np.ndarray:
    ir, vi = (read_metric_image(root / split / m / name) for m in ("ir", "vi"))
    top, left, h, w = box
    tiles, labels = [], []
    for loss, weights in runs.items():
        f = emma_fusion.fuse(ir / 255.0, vi / 255.0, str(weights), color="gray", threads=1)
        tcr = compute(quantize_fused(f), ir, vi, ["TCR"])["TCR"]
        tiles.append(f[top:top + h, left:left + w])
        labels.append(f"{loss}, {Path(name).stem}: TCR {tcr:.2f}")
    return side_by_side(tiles, labels)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path)
    ap.add_argument("--runs", type=Path, default=Path("runs/table2"))
    ap.add_argument("--out", type=Path, default=Path("docs/TABLE2_pictures.jpg"))
    a = ap.parse_args()
    runs = {loss: a.runs / loss / "ufuser.safetensors" for loss in LOSSES if (a.runs / loss / "ufuser.safetensors").is_file()}
    if not runs:
        raise SystemExit(f"error: no finished Table 2 run under {a.runs}")
    rows = [_row(a.data, split, name, box, runs) for split, name, *box in PAIRS]
    img = save_jpeg(stack_rows(rows), a.out, quality=85)
    print(f"wrote {a.out} ({img.width}x{img.height})")


if __name__ == "__main__":
    main()
