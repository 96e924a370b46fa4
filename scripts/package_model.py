"""Ship trained weights inside the package: copy them to src/emma_fusion/models/ and record their sha256.

Usage:
  python scripts/package_model.py WEIGHTS [--name emma-default] [--note TEXT]
  python scripts/package_model.py RUN/A_ir.safetensors --name emma-sensing-ir --half --gate RUN/gate.json
The file must load as a U-Fuser or a sensing U-Net (its metadata says which). ``--half`` stores the
weight matrices and kernels as float16 (half the size; they load into float32 nets); 1-D tensors
(biases, batch-norm statistics, whose running variances can exceed float16's 65504) stay float32. ``--gate`` records a stage-1 quality
gate report, so `emma train fusion --sensing NAME` accepts the packaged pair NAME-ir / NAME-vi.
registry.json gains (or replaces) the entry NAME.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from safetensors.torch import save_file

from emma_fusion.io import atomic_write
from emma_fusion.weights import load_model, load_state, model_config, sha256_file

MODELS = Path(__file__).resolve().parents[1] / "src" / "emma_fusion" / "models"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("weights", type=Path)
    ap.add_argument("--name", default="emma-default")
    ap.add_argument("--note", default="")
    ap.add_argument("--half", action="store_true", help="store weight tensors (ndim > 1) as float16")
    ap.add_argument("--gate", type=Path, help="the stage-1 gate.json of sensing nets")
    a = ap.parse_args()
    arch, _ = model_config(load_model(a.weights, arch=None))  # refuses anything that is not a known net
    MODELS.mkdir(parents=True, exist_ok=True)
    target = MODELS / f"{a.name}.safetensors"
    if a.half:
        state, meta = load_state(a.weights)
        half = {k: (v.half() if v.is_floating_point() and v.ndim > 1 else v).contiguous() for k, v in state.items()}
        atomic_write(target, lambda tmp: save_file(half, str(tmp), metadata=meta))
    else:
        atomic_write(target, lambda tmp: shutil.copyfile(a.weights, tmp))
    reg_path = MODELS / "registry.json"
    reg = json.loads(reg_path.read_text()) if reg_path.is_file() else {}
    reg[a.name] = {"file": target.name, "sha256": sha256_file(target), "arch": arch,
                   "card": "docs/MODEL_CARD.md", "note": a.note}
    if a.gate:
        reg[a.name]["gate"] = json.loads(a.gate.read_text())
    atomic_write(reg_path, lambda tmp: tmp.write_text(json.dumps(reg, indent=2) + "\n"))
    print(f"{a.name}: {target} sha256={reg[a.name]['sha256']}")


if __name__ == "__main__":
    main()
