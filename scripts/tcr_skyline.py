"""TCR split by where the warm targets stand: in front of a bright background (a skyline) or elsewhere.

    python scripts/tcr_skyline.py -w emma-default -w emma-sky -d ../shared/data/RoadScene/test -d ../shared/data/TNO/test

TCR's pixels (the infrared image's top 2% of local contrast, :func:`emma_fusion.metrics.warm_target_mask`)
are split into *skyline* pixels (within 30 px of SKY's mask, or where the visible image's 31 x 31 mean
is at least 150 grey levels: warm trees, roofs or people against a bright daytime background) and the
rest. Each part gets TCR's ratio ``mean(cf) / mean(ci)`` on that part, averaged over the pairs where
it has more than 20 pixels. The skyline part is also scored by magnitude, ``mean(|cf|) / mean(ci)``:
a warm tree drawn dark against a white sky stays visible as a silhouette, which TCR's signed
contrast counts as lost. Fused in gray, min-max scaled to 8 bits, as the bench scores.
Prints one line per weights file and folder.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import torch

import emma_fusion
from emma_fusion.io import pair_by_stem, read_image, to_gray
from emma_fusion.metrics.core import local_contrast, sky_mask, warm_target_mask
from emma_fusion.weights import load_model

MIN_PIXELS = 20


def skyline(ir: np.ndarray, vi: np.ndarray) -> np.ndarray:
    """Pixels within 30 px of SKY's mask or on a bright visible background: (H, W) bool; ir, vi gray levels 0..255."""
    near = cv2.dilate(sky_mask(ir, vi).astype(np.uint8), np.ones((61, 61), np.uint8)) > 0
    return near | (cv2.blur(vi, (31, 31), borderType=cv2.BORDER_REFLECT) >= 150.0)


def split_tcr(fused: np.ndarray, ir: np.ndarray, vi: np.ndarray) -> tuple[float, float, float, float]:
    """(TCR, TCR on skyline target pixels, TCR on the others, |contrast| ratio on skyline target
    pixels); NaN for a part with too few pixels."""
    ci, cf, m = local_contrast(ir), local_contrast(fused), warm_target_mask(ir)
    near = skyline(ir, vi)

    def ratio(sel: np.ndarray, c: np.ndarray = cf) -> float:
        return float(c[sel].mean() / ci[sel].mean()) if sel.sum() > MIN_PIXELS and ci[sel].mean() > 0 else np.nan

    return ratio(m), ratio(m & near), ratio(m & ~near), ratio(m & near, np.abs(cf))


def _gray(path: Path) -> np.ndarray:
    """BT.601 luma of an image file in grey levels 0..255 (rounded), as the bench reads it."""
    return np.rint(to_gray(read_image(path)).astype(np.float64) * 255.0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("-w", "--weights", action="append", required=True, help="weights name or file (repeatable)")
    p.add_argument("-d", "--data", action="append", required=True, type=Path, help="folder with ir/ and vi/")
    args = p.parse_args()
    torch.set_num_threads(1)
    models = [(w, load_model(w)) for w in args.weights]
    for folder in args.data:
        pairs, _ = pair_by_stem(folder / "ir", folder / "vi")
        for name, model in models:
            rows, share = [], []
            for _, ir_path, vi_path in pairs:
                ir, vi = _gray(ir_path), _gray(vi_path)
                f = np.rint(emma_fusion.fuse(ir_path, vi_path, model, color="gray").astype(np.float64) * 255.0)
                rows.append(split_tcr(f, ir, vi))
                share.append(skyline(ir, vi)[warm_target_mask(ir)].mean())
            t = np.array(rows)
            n = (~np.isnan(t)).sum(0)
            print(f"{folder} {name}: TCR {np.nanmean(t[:, 0]):.3f}, skyline targets {np.nanmean(t[:, 1]):.3f} "
                  f"(|contrast| {np.nanmean(t[:, 3]):.3f}; {np.mean(share):.0%} of TCR's pixels; "
                  f"{n[1]} pairs), elsewhere {np.nanmean(t[:, 2]):.3f} ({n[2]} pairs)", flush=True)


if __name__ == "__main__":
    main()
