"""Make a trained U-Fuser the shipped default: copy it into the package with its training metadata.

    python scripts/ship_model.py runs/wsC/fusion/ufuser_best.safetensors \
        --note "content warm start, 3000 steps, gradient weight 2; docs/MODEL_CARD.md"

Loads the weights (refusing anything that is not a U-Fuser), re-saves them as
``src/emma_fusion/models/emma-default.safetensors`` with the source file's metadata plus
``recipe`` and ``note``, and records the new sha256 and note in ``models/registry.json``.
Both files are written atomically.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from emma_fusion.io import atomic_write
from emma_fusion.weights import load_model, load_state, save_weights, sha256_file

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "src" / "emma_fusion" / "models"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("weights", type=Path, help="trained U-Fuser (.safetensors)")
    ap.add_argument("--name", default="emma-default")
    ap.add_argument("--note", required=True, help="one line: how the model was trained")
    ap.add_argument("--recipe", default="scripts/train_warmstart.sh", help="the command file that trained it")
    args = ap.parse_args(argv)
    net = load_model(args.weights, arch="ufuser")
    _, meta = load_state(args.weights)
    extra = {k: v for k, v in meta.items() if k not in ("arch", "config", "emma_fusion_version")}
    extra.update({"recipe": args.recipe, "note": args.note, "trained_as": args.weights.name})
    target = MODELS / f"{args.name}.safetensors"
    save_weights(target, net, extra_metadata=extra)
    registry = json.loads((MODELS / "registry.json").read_text()) if (MODELS / "registry.json").is_file() else {}
    registry[args.name] = {"file": target.name, "sha256": sha256_file(str(target)), "arch": "ufuser",
                           "card": "docs/MODEL_CARD.md", "note": args.note}
    text = json.dumps(registry, indent=2) + "\n"
    atomic_write(MODELS / "registry.json", lambda tmp: Path(tmp).write_text(text))
    print(f"{target} ({target.stat().st_size / 2**20:.1f} MiB), sha256 {registry[args.name]['sha256']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
