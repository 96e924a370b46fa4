"""Where one fusion keeps Qabf and another loses it: the bright flat background, the band around it, the rest.

    python scripts/qabf_regions.py emma-default blend.safetensors --data ../shared/data/RoadScene/test

For every pair of ``--data`` (``ir/`` and ``vi/``), fuses it with both models (packaged names or
weights files, gray, quantised as EMMA saves it), takes Qabf pixel by pixel
(:func:`emma_fusion.metrics.qabf_map`) and prints the second model's Qabf change split into three
regions that add up to it:

- ``flat``: where the visible image is bright and flat (:func:`emma_fusion.metrics.bright_flat`: a
  daytime sky, a white wall);
- ``band``: within ``--band`` px of that region (skylines: trees, roofs, poles and cloud edges);
- ``else``: everything else.

The last line is the mean over the pairs, which is the change of the bench's Qabf mean.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from emma_fusion.metrics import bright_flat, qabf_map, quantize_fused, read_metric_image


def region_split(f0: np.ndarray, f1: np.ndarray, ir: np.ndarray, vi: np.ndarray, band: int = 15) -> dict[str, float]:
    """Qabf(f1) - Qabf(f0) as the sum of its parts in ``flat``, ``band`` and ``else``.

    f0, f1, ir, vi: (H, W) gray levels 0..255. Returns the three parts and their ``total``.
    """
    n0, den = qabf_map(f0, ir, vi)
    n1, _ = qabf_map(f1, ir, vi)
    diff = (n1 - n0) / max(float(den.sum()), 1e-12)
    flat = bright_flat(np.asarray(vi, np.float64))
    near = cv2.dilate(flat.astype(np.uint8), np.ones((2 * band + 1, 2 * band + 1), np.uint8)).astype(bool) & ~flat
    parts = {"flat": float(diff[flat].sum()), "band": float(diff[near].sum()), "else": float(diff[~flat & ~near].sum())}
    return parts | {"total": float(diff.sum())}


def _fused(model: str, ir: np.ndarray, vi: np.ndarray) -> np.ndarray:
    """A model's gray fusion as saved (:func:`emma_fusion.metrics.quantize_fused`), gray levels 0..255."""
    from emma_fusion import fuse

    return quantize_fused(np.asarray(fuse(ir / 255.0, vi / 255.0, model=model, color="gray", threads=1))).astype(np.float64)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model0", help="the reference model (a packaged name or a weights file)")
    ap.add_argument("model1", help="the model compared with it")
    ap.add_argument("--data", type=Path, default=Path("../shared/data/RoadScene/test"))
    ap.add_argument("--band", type=int, default=15, help="width (px) of the band around the bright flat region")
    args = ap.parse_args()
    rows = []
    for irp in sorted((args.data / "ir").iterdir()):
        vip = next((args.data / "vi").glob(irp.stem + ".*"))
        ir, vi = read_metric_image(irp), read_metric_image(vip)
        r = region_split(_fused(args.model0, ir, vi), _fused(args.model1, ir, vi), ir, vi, args.band)
        rows.append(r)
        print(f"{irp.stem}: {r['total']:+.4f} = flat {r['flat']:+.4f}, band {r['band']:+.4f}, else {r['else']:+.4f}")
    mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
    print(f"mean of {len(rows)}: {mean['total']:+.4f} = flat {mean['flat']:+.4f}, band {mean['band']:+.4f}, "
          f"else {mean['else']:+.4f}")


if __name__ == "__main__":
    main()
