"""Score fixed, hand-made fusions of test pairs: what VIF, Qabf and TCR reward (docs/TRAINING.md).

    python scripts/composite_tradeoff.py --data ../shared/data --pairs 12

For the first ``--pairs`` pairs of RoadScene/test and TNO/test, prints the mean SD, VIF, Qabf and
TCR (``emma_fusion.metrics``, each image min-max scaled to 0..255 as saved fusions are) of:

- ``max``: the max composite ``max(i, v)``, the content loss's intensity target;
- ``max base + max detail``: its 31 x 31 box-mean base plus, per pixel, the larger (in magnitude)
  of the two sources' detail layers ``x - boxmean31(x)``;
- ``gff``: the guided-filter baseline;
- ``gff + warm detail``: gff with its detail layer replaced by the infrared one where that is larger.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from emma_fusion.methods.classical import GuidedFilterFusion
from emma_fusion.methods.classical._filters import box_mean
from emma_fusion.metrics import compute

METRICS = ["SD", "VIF", "Qabf", "TCR"]


def _gray(path: Path) -> np.ndarray:
    """BT.601 luma in [0, 1], as the metrics read images."""
    return np.asarray(Image.open(path).convert("L"), dtype=np.float64) / 255.0


def _minmax255(x: np.ndarray) -> np.ndarray:
    return np.round((x - x.min()) / max(float(x.max() - x.min()), 1e-12) * 255)


def candidates(ir: np.ndarray, vi: np.ndarray) -> dict[str, np.ndarray]:
    """The hand-made fusions of one pair (float images in [0, 1])."""
    gff = GuidedFilterFusion()
    b_ir, b_vi = box_mean(ir, 15, mode="edge"), box_mean(vi, 15, mode="edge")
    d_ir, d_vi = ir - b_ir, vi - b_vi
    top = np.maximum(ir, vi)
    p_ir = (gff._saliency(ir) >= gff._saliency(vi)).astype(np.float64)
    wb_ir, wb_vi = gff._weights(ir, vi, p_ir, gff.r1, gff.eps1)
    wd_ir, wd_vi = gff._weights(ir, vi, p_ir, gff.r2, gff.eps2)
    base, detail = wb_ir * b_ir + wb_vi * b_vi, wd_ir * d_ir + wd_vi * d_vi
    return {
        "max": top,
        "max base + max detail": box_mean(top, 15, mode="edge") + np.where(np.abs(d_ir) >= np.abs(d_vi), d_ir, d_vi),
        "gff": base + detail,
        "gff + warm detail": base + np.maximum(d_ir, detail),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--pairs", type=int, default=12)
    args = ap.parse_args()
    print("| dataset | fusion | " + " | ".join(METRICS) + " |")
    print("|---|---|" + "---:|" * len(METRICS))
    for ds in ("RoadScene", "TNO"):
        names = sorted(p.name for p in (args.data / ds / "test" / "ir").iterdir())[: args.pairs]
        scores: dict[str, list[dict[str, float]]] = {}
        for name in names:
            ir = _gray(args.data / ds / "test" / "ir" / name)
            vi = _gray(args.data / ds / "test" / "vi" / name)
            for label, f in candidates(ir, vi).items():
                scores.setdefault(label, []).append(compute(_minmax255(f), ir * 255, vi * 255, METRICS))
        for label, rows in scores.items():
            means = " | ".join(f"{np.mean([r[m] for r in rows]):.3f}" for m in METRICS)
            print(f"| {ds} | {label} | {means} |")


if __name__ == "__main__":
    main()
