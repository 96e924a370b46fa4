"""Score fixed, hand-made fusions of test pairs: what VIF, Qabf and TCR reward (docs/TRAINING_HISTORY.md).

    python scripts/composite_tradeoff.py --data ../shared/data --pairs 12
    python scripts/composite_tradeoff.py --datasets TNO --pairs 0 --model emma-default

For the first ``--pairs`` pairs (0: all) of each ``--datasets`` test split (default RoadScene and
TNO), prints the mean SD, SCD, VIF, Qabf, TCR and SKY (``emma_fusion.metrics``, each image min-max
scaled to 0..255 as saved fusions are; SKY over the pairs that have a sky) of:

- ``max``: the max composite ``max(i, v)``, the content loss's intensity target;
- ``max base + max detail``: its 31 x 31 box-mean base plus, per pixel, the larger (in magnitude)
  of the two sources' detail layers ``x - boxmean31(x)``;
- ``gff``: the guided-filter baseline;
- ``gff + warm detail``: gff with its detail layer replaced by the infrared one where that is larger;
- ``visible``: the visible image itself;
- ``visible + warm targets``: the visible image with the infrared image pasted in where TCR looks
  (its top 2% of ``ir - boxmean31(ir)``), the mask widened by 15 pixels and feathered (Gaussian,
  sigma 2): the best case of "keep the visible image, add the targets";
- ``max + warm contrast``: the max composite with the infrared image's local contrast
  ``ir - boxmean31(ir)`` put back on the targets (the same mask, widened by 7 pixels): the max
  composite's TCR (below 0.7 on TNO) restored.

With ``--model M`` (a packaged name or a weights file) also the model's own gray fusion, its
blends ``(1 - a) * model + a * max`` for a = 0.3, 0.5, 0.7, and two ways of giving it the visible
image's daytime sky (:func:`bright_flat_mask`: where the visible image is bright and flat, widened
by 5 px and feathered, sigma 3 and 8):

- ``model, visible sky``: the visible image pasted there (its brightness and its edges);
- ``model, sky lifted x k`` (k = 0.8, 0.9): only the brightness, ``model + k * mask * G(v - model)``
  with ``G`` a Gaussian of sigma 20: the model's own edges (the infrared's streaks) stay.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from emma_fusion.methods.classical import GuidedFilterFusion
from emma_fusion.methods.classical._filters import box_mean
from emma_fusion.metrics import bright_flat, compute, local_contrast, warm_target_mask

METRICS = ["SD", "SCD", "VIF", "Qabf", "TCR", "SKY"]


def _gray(path: Path) -> np.ndarray:
    """BT.601 luma in [0, 1], as the metrics read images."""
    return np.asarray(Image.open(path).convert("L"), dtype=np.float64) / 255.0


def _minmax255(x: np.ndarray) -> np.ndarray:
    return np.round((x - x.min()) / max(float(x.max() - x.min()), 1e-12) * 255)


def warm_mask(ir: np.ndarray, widen: int = 15, sigma: float = 2.0) -> np.ndarray:
    """Where TCR looks (:func:`emma_fusion.metrics.warm_target_mask`), widened by ``widen`` px and feathered: [0, 1]."""
    hard = warm_target_mask(ir).astype(np.float64)
    return cv2.GaussianBlur(cv2.dilate(hard, np.ones((widen, widen))), (0, 0), sigma)


def bright_flat_mask(vi: np.ndarray, widen: int = 5, sigma: float = 3.0) -> np.ndarray:
    """Where the visible image is bright and flat (:func:`emma_fusion.metrics.bright_flat`: a daytime
    sky, white walls), widened by ``widen`` px and feathered: [0, 1]. vi in [0, 1]."""
    hard = bright_flat(vi * 255.0).astype(np.float64)
    if widen:
        hard = cv2.dilate(hard, np.ones((2 * widen + 1, 2 * widen + 1)))
    return cv2.GaussianBlur(hard, (0, 0), sigma) if sigma else hard


def candidates(ir: np.ndarray, vi: np.ndarray, fused: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The hand-made fusions of one pair (float images in [0, 1]); ``fused``: a model's, for its blends."""
    gff = GuidedFilterFusion()
    b_ir, b_vi = box_mean(ir, 15, mode="edge"), box_mean(vi, 15, mode="edge")
    d_ir, d_vi = ir - b_ir, vi - b_vi
    top = np.maximum(ir, vi)
    p_ir = (gff._saliency(ir) >= gff._saliency(vi)).astype(np.float64)
    wb_ir, wb_vi = gff._weights(ir, vi, p_ir, gff.r1, gff.eps1)
    wd_ir, wd_vi = gff._weights(ir, vi, p_ir, gff.r2, gff.eps2)
    base, detail = wb_ir * b_ir + wb_vi * b_vi, wd_ir * d_ir + wd_vi * d_vi
    m = warm_mask(ir)
    out = {
        "max": top,
        "max base + max detail": box_mean(top, 15, mode="edge") + np.where(np.abs(d_ir) >= np.abs(d_vi), d_ir, d_vi),
        "gff": base + detail,
        "gff + warm detail": base + np.maximum(d_ir, detail),
        "visible": vi,
        "visible + warm targets": (1 - m) * vi + m * ir,
        "max + warm contrast": top + warm_mask(ir, 7) * (local_contrast(ir) - local_contrast(top)),
    }
    if fused is not None:
        out["model"] = fused
        for a in (0.3, 0.5, 0.7):
            out[f"model x {1 - a:.1f} + max x {a:.1f}"] = (1 - a) * fused + a * top
        sky = bright_flat_mask(vi)
        out["model, visible sky"] = (1 - sky) * fused + sky * vi
        lift = bright_flat_mask(vi, 5, 8.0) * cv2.GaussianBlur(vi - fused, (0, 0), 20.0)
        for k in (0.8, 0.9):
            out[f"model, sky lifted x {k}"] = np.clip(fused + k * lift, 0.0, 1.0)
    return out


def _model_fusion(model: str, ir: np.ndarray, vi: np.ndarray) -> np.ndarray:
    """The model's gray fusion as saved (min-max, 8 bit), in [0, 1]."""
    from emma_fusion import fuse

    return _minmax255(np.asarray(fuse(ir, vi, model=model, color="gray", threads=1), np.float64)) / 255.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--datasets", nargs="+", default=["RoadScene", "TNO"])
    ap.add_argument("--pairs", type=int, default=12, help="first N test pairs of each split; 0: all")
    ap.add_argument("--model", default="", help="also score this model and its blends with max(i, v)")
    args = ap.parse_args()
    print("| dataset | fusion | " + " | ".join(METRICS) + " |")
    print("|---|---|" + "---:|" * len(METRICS))
    for ds in args.datasets:
        names = sorted(p.name for p in (args.data / ds / "test" / "ir").iterdir())
        scores: dict[str, list[dict[str, float]]] = {}
        for name in names[: args.pairs or None]:
            ir = _gray(args.data / ds / "test" / "ir" / name)
            vi = _gray(args.data / ds / "test" / "vi" / name)
            fused = _model_fusion(args.model, ir, vi) if args.model else None
            for label, f in candidates(ir, vi, fused).items():
                scores.setdefault(label, []).append(compute(_minmax255(f), ir * 255, vi * 255, METRICS))
        for label, rows in scores.items():
            means = " | ".join(f"{np.nanmean([r[m] for r in rows]):.3f}" for m in METRICS)
            print(f"| {ds} | {label} | {means} |")


if __name__ == "__main__":
    main()
