"""Blend two U-Fuser weight files in weight space: ``(1 - alpha) * A + alpha * B``.

    python scripts/blend_models.py emma-default emma-sky --alpha 0.5 -o runs/blend50.safetensors
    emma fuse IR VI -o fused.png --weights runs/blend50.safetensors

A and B are packaged model names or weights files of the same architecture; the two should share a
starting point (``emma-sky`` continues ``emma-default``), as interpolating unrelated networks gives
noise. The output is written atomically, with ``blend`` (the recipe) in its metadata. Measured
blends of ``emma-default`` and ``emma-sky``: docs/MODEL_CARD.md ("Between the two").
"""

from __future__ import annotations

import argparse
import sys

from emma_fusion.errors import EmmaError
from emma_fusion.weights import blend_models, load_model, save_weights


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("a", help="first model: packaged name or weights file (alpha 0)")
    ap.add_argument("b", help="second model: packaged name or weights file (alpha 1)")
    ap.add_argument("--alpha", type=float, required=True, help="weight of B, in [0, 1]")
    ap.add_argument("-o", "--out", required=True, help="output .safetensors file")
    args = ap.parse_args(argv)
    try:
        if not args.out.endswith(".safetensors"):
            raise EmmaError(f"output must be a .safetensors file: {args.out}")
        a, b = load_model(args.a, arch=None), load_model(args.b, arch=None)
        blended = blend_models(a, b, args.alpha)
        meta = {"blend": f"(1 - {args.alpha}) * {args.a} + {args.alpha} * {args.b}"}
        save_weights(args.out, blended, extra_metadata=meta)
    except EmmaError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}: {meta['blend']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
