"""The package's layering: a module imports only from layers below its own (read from the sources),
and fusing an image never loads the training code."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
from PIL import Image

from conftest import ROOT
from emma_fusion.bench.code import imported_modules

#: Top-level modules and sub-packages of ``emma_fusion``, lowest layer first. Sub-packages of one
#: layer do not import each other (``train`` does not import ``api``).
LAYERS = (
    ("errors", "choices", "progress"),
    ("io", "concurrency", "hardware"),
    ("core", "nets"),
    ("weights", "metrics"),
    ("inference",),
    ("methods",),
    ("api", "train"),
    ("demo", "bench", "video"),
    ("cli",),
    ("__main__",),
)


def _modules() -> list[str]:
    src = ROOT / "src"
    names = []
    for path in sorted((src / "emma_fusion").rglob("*.py")):
        parts = path.relative_to(src).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def test_no_module_imports_a_layer_above_its_own():
    layer = {part: i for i, parts in enumerate(LAYERS) for part in parts}
    modules = _modules()
    tops = {m.split(".")[1] for m in modules if "." in m}
    assert tops == set(layer), "every top-level module and sub-package needs a layer"
    wrong = []
    for name in modules:
        if "." not in name:
            continue  # the package itself re-exports the public API
        own = name.split(".")[1]
        for target in imported_modules(name):
            other = target.split(".")[1] if "." in target else None  # None: the package, for __version__
            if other is not None and other != own and layer[other] >= layer[own]:
                wrong.append(f"{name} imports {target}")
    assert not wrong, "\n".join(wrong)


def test_fusing_does_not_load_the_training_code(tmp_path):
    rng = np.random.default_rng(0)
    for name in ("ir.png", "vi.png"):
        Image.fromarray(rng.integers(0, 256, (32, 40), dtype=np.uint8)).save(tmp_path / name)
    script = ("import sys\nfrom emma_fusion.cli import main\n"
              "try:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
              "print(sorted(m for m in sys.modules if m.startswith('emma_fusion.train')))")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}
    out = subprocess.run([sys.executable, "-c", script, "fuse", "ir.png", "vi.png", "-o", "f.png"], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
    assert (tmp_path / "f.png").is_file()
