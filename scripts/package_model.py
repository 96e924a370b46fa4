"""Ship a trained U-Fuser inside the package: copy it to src/emma_fusion/models/ and record its sha256.

Usage: python scripts/package_model.py WEIGHTS [--name emma-default] [--note TEXT]
The file must load as a U-Fuser. registry.json gains (or replaces) the entry NAME.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from emma_fusion.io import atomic_write
from emma_fusion.weights import load_model, sha256_file

MODELS = Path(__file__).resolve().parents[1] / "src" / "emma_fusion" / "models"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("weights", type=Path)
    ap.add_argument("--name", default="emma-default")
    ap.add_argument("--note", default="")
    a = ap.parse_args()
    load_model(a.weights)  # refuses anything that is not a U-Fuser
    MODELS.mkdir(parents=True, exist_ok=True)
    target = MODELS / f"{a.name}.safetensors"
    atomic_write(target, lambda tmp: shutil.copyfile(a.weights, tmp))
    reg_path = MODELS / "registry.json"
    reg = json.loads(reg_path.read_text()) if reg_path.is_file() else {}
    reg[a.name] = {"file": target.name, "sha256": sha256_file(target), "arch": "ufuser",
                   "card": "docs/MODEL_CARD.md", "note": a.note}
    atomic_write(reg_path, lambda tmp: tmp.write_text(json.dumps(reg, indent=2) + "\n"))
    print(f"{a.name}: {target} sha256={reg[a.name]['sha256']}")


if __name__ == "__main__":
    main()
