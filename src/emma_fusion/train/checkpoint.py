"""Atomic training checkpoints: weights (safetensors) + optimizer/scheduler/RNG state + config.

Layout under a run folder ``OUT``::

    OUT/checkpoints/step_00001000/  <net>.safetensors ..., state.pt, config.toml
    OUT/checkpoints/latest.json     {"step": 1000, "dir": "step_00001000"}

A checkpoint is written into a hidden temporary folder and renamed into place, then
``latest.json`` is replaced atomically, so a crash at any moment leaves the previous checkpoint
intact and ``latest.json`` pointing to a complete one. ``state.pt`` holds only tensors, numbers,
strings and containers of them, so it loads with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import EmmaError
from ..io import atomic_write
from ..weights import load_state, load_weights_into, save_weights
from .config import StageConfig, save_config

__all__ = ["Checkpoint", "save_checkpoint", "latest_checkpoint", "load_checkpoint", "rng_state", "set_rng_state"]

log = logging.getLogger(__name__)

_STEP_DIR = re.compile(r"^step_(\d+)$")


@dataclass
class Checkpoint:
    """A loaded checkpoint: its folder, step and the ``state.pt`` dictionary."""

    path: Path
    step: int
    state: dict[str, Any]


def rng_state() -> dict[str, Any]:
    """The global torch RNG states (CPU and, when present, CUDA)."""
    out: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        try:
            torch.cuda.set_rng_state_all(state["cuda"])
        except (RuntimeError, IndexError):  # another machine with fewer GPUs
            log.warning("CUDA RNG state not restored (different GPU count)")


def save_checkpoint(
    out: Path,
    step: int,
    models: dict[str, nn.Module],
    state: dict[str, Any],
    config: StageConfig,
    keep: int = 2,
) -> Path:
    """Write checkpoint ``step`` under ``out/checkpoints`` atomically; keep the newest ``keep``."""
    root = Path(out) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    name = f"step_{step:08d}"
    tmp = root / f".tmp-{name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        for key, net in models.items():
            save_weights(tmp / f"{key}.safetensors", net, extra_metadata={"step": str(step)})
        torch.save({"step": step, **state}, tmp / "state.pt")
        save_config(config, tmp / "config.toml")
        final = root / name
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    atomic_write(root / "latest.json", lambda p: Path(p).write_text(json.dumps({"step": step, "dir": name})))
    _prune(root, keep, protect=name)
    log.info("checkpoint %s written", final)
    return final


def checkpoint_step(path: Path) -> int | None:
    """The step of checkpoint folder ``path`` (``step_00001000`` -> 1000), or None for another name."""
    m = _STEP_DIR.match(Path(path).name)
    return int(m.group(1)) if m else None


def _step_dirs(root: Path) -> list[tuple[int, Path]]:
    out = []
    if root.is_dir():
        for p in root.iterdir():
            step = checkpoint_step(p)
            if step is not None and p.is_dir() and (p / "state.pt").is_file():
                out.append((step, p))
    return sorted(out)


def _prune(root: Path, keep: int, protect: str) -> None:
    if keep <= 0:
        return
    dirs = _step_dirs(root)
    for _, p in dirs[:-keep]:
        if p.name != protect:
            shutil.rmtree(p, ignore_errors=True)


def latest_checkpoint(out: Path) -> Path | None:
    """The newest complete checkpoint folder under ``out/checkpoints``, or None."""
    root = Path(out) / "checkpoints"
    pointer = root / "latest.json"
    if pointer.is_file():
        try:
            d = root / json.loads(pointer.read_text())["dir"]
            if (d / "state.pt").is_file():
                return d
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring unreadable %s", pointer)
    dirs = _step_dirs(root)
    return dirs[-1][1] if dirs else None


def load_checkpoint(path: Path, models: dict[str, nn.Module]) -> Checkpoint:
    """Load the nets' weights from checkpoint folder ``path`` into ``models``; return its state."""
    for key, net in models.items():
        f = path / f"{key}.safetensors"
        if not f.is_file():
            raise EmmaError(f"checkpoint {path} has no {f.name}; was it written by the other stage?")
        state, _ = load_state(f)
        load_weights_into(net, state, source=str(f))
    try:
        state = torch.load(path / "state.pt", map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt or foreign file
        raise EmmaError(f"cannot read {path / 'state.pt'}: {str(e).splitlines()[0]}") from None
    return Checkpoint(path=path, step=int(state["step"]), state=state)
