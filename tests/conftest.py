"""Shared fixtures: paths to ../shared (skipped with a reason when absent) and small helpers."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EMMA_SHARED", ROOT.parent / "shared"))

torch.set_num_threads(int(os.environ.get("EMMA_TEST_THREADS", "1")))


def load_script(relpath: str) -> ModuleType:
    """Import a file of the repository that is not in a package (``scripts/X.py``, ``benchmarks/X.py``)."""
    path = ROOT / relpath
    spec = importlib.util.spec_from_file_location(path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def shared_path(*parts: str) -> Path:
    """Return a path under ../shared, or skip the calling test when it is missing."""
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"needs {p} (the ../shared folder beside the checkout is absent)")
    return p


@pytest.fixture
def shared():
    return shared_path


@pytest.fixture
def avx2_only():
    """Simulate a CPU without native bf16 (AVX2 only, no AVX-512/AMX) and no bf16 GPU, for one test."""
    from emma_fusion import hardware as hw

    previous = hw.set_hardware(hw.without_bf16(hw.hardware()))
    yield hw.hardware()
    hw.set_hardware(previous)


@pytest.fixture
def bf16_cpu():
    """Skip the calling test where this CPU has no native bf16 convolutions (it would crash there)."""
    from emma_fusion.hardware import hardware

    hw = hardware()
    if not hw.cpu_bf16:
        pytest.skip(f"needs a CPU with native bf16 convolutions (AVX-512 or AVX-NE-CONVERT); this one: {hw.summary()}")
    return hw


@pytest.fixture
def pair(tmp_path):
    """One small pair of image files: ``tmp_path/in/ir/a.png`` (gray) and ``tmp_path/in/vi/a.png`` (RGB)."""
    import numpy as np

    from emma_fusion.io import write_image

    rng = np.random.default_rng(0)
    ir = write_image(tmp_path / "in" / "ir" / "a.png", rng.random((37, 53), dtype=np.float32))
    vi = write_image(tmp_path / "in" / "vi" / "a.png", rng.random((37, 53, 3), dtype=np.float32))
    return ir, vi
