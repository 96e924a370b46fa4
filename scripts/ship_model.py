"""Ship trained weights inside the package: re-save them in src/emma_fusion/models/ and record their sha256.

    python scripts/ship_model.py runs/wsC/fusion/ufuser_best.safetensors \
        --note "content warm start, 3000 steps, gradient weight 2; docs/MODEL_CARD.md"
    python scripts/ship_model.py RUN/A_ir.safetensors --name emma-sensing-ir --half --gate RUN/gate.json \
        --recipe scripts/train_sensing.sh --note "..."

The file must load as a U-Fuser or a sensing U-Net (its metadata says which). It is re-saved as
``src/emma_fusion/models/NAME.safetensors`` with the source file's metadata plus ``recipe``, ``note``
and ``trained_as``, and ``models/registry.json`` gains (or replaces) the entry NAME. ``--half``
stores weight matrices and kernels as float16 (half the size; they load into float32 nets); 1-D
tensors (biases, batch-norm statistics, whose running variances can exceed float16's 65504) stay
float32. ``--gate`` records a stage-1 quality gate report, so ``emma train fusion --sensing NAME``
accepts the packaged pair NAME-ir / NAME-vi. Both files are written atomically.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from safetensors.torch import save_file

from emma_fusion.io import atomic_write
from emma_fusion.weights import load_model, load_state, model_config, sha256_file

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "src" / "emma_fusion" / "models"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("weights", type=Path, help="trained U-Fuser or sensing net (.safetensors)")
    ap.add_argument("--name", default="emma-default")
    ap.add_argument("--note", required=True, help="one line: how the model was trained")
    ap.add_argument("--recipe", default="scripts/train_warmstart.sh", help="the command file that trained it")
    ap.add_argument("--half", action="store_true", help="store weight tensors (ndim > 1) as float16")
    ap.add_argument("--gate", type=Path, help="the stage-1 gate.json of sensing nets")
    args = ap.parse_args(argv)
    arch, _ = model_config(load_model(args.weights, arch=None))  # refuses anything that is not a known net
    state, meta = load_state(args.weights)
    half = args.half  # weight matrices and kernels only; 1-D tensors keep float32
    state = {k: (v.half() if half and v.is_floating_point() and v.ndim > 1 else v).contiguous() for k, v in state.items()}
    meta = {**meta, "recipe": args.recipe, "note": args.note, "trained_as": args.weights.name}
    MODELS.mkdir(parents=True, exist_ok=True)
    target = MODELS / f"{args.name}.safetensors"
    atomic_write(target, lambda tmp: save_file(state, str(tmp), metadata=meta))
    reg_path = MODELS / "registry.json"
    registry = json.loads(reg_path.read_text()) if reg_path.is_file() else {}
    registry[args.name] = {"file": target.name, "sha256": sha256_file(str(target)), "arch": arch,
                           "card": "docs/MODEL_CARD.md", "note": args.note}
    if args.gate:
        registry[args.name]["gate"] = json.loads(args.gate.read_text())
    text = json.dumps(registry, indent=2) + "\n"
    atomic_write(reg_path, lambda tmp: Path(tmp).write_text(text))
    print(f"{target} ({target.stat().st_size / 2**20:.1f} MiB), sha256 {registry[args.name]['sha256']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
