"""Shared fixtures: paths to ../shared (skipped with a reason when absent) and small helpers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EMMA_SHARED", ROOT.parent / "shared"))

torch.set_num_threads(int(os.environ.get("EMMA_TEST_THREADS", "1")))


def shared_path(*parts: str) -> Path:
    """Return a path under ../shared, or skip the calling test when it is missing."""
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"needs {p} (the ../shared folder beside the checkout is absent)")
    return p


@pytest.fixture
def shared():
    return shared_path
