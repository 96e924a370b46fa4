"""The base class of the classical methods: batch handling, checks and tensor <-> numpy conversion."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np
import torch

from ...errors import EmmaError

__all__ = ["ClassicalMethod", "check_pair"]


def check_pair(ir: torch.Tensor, vi: torch.Tensor) -> None:
    """Raise :class:`EmmaError` unless ``ir`` and ``vi`` are both (N, 1, H, W) with the same shape."""
    for label, t in (("infrared", ir), ("visible", vi)):
        if not isinstance(t, torch.Tensor) or t.ndim != 4 or t.shape[1] != 1:
            shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise EmmaError(f"{label} input must be an (N, 1, H, W) tensor, got {shape}")
        if t.shape[0] == 0 or t.shape[2] == 0 or t.shape[3] == 0:
            raise EmmaError(f"{label} input is empty: shape {tuple(t.shape)}")
    if ir.shape != vi.shape:
        raise EmmaError(f"input shapes differ: infrared {tuple(ir.shape)}, visible {tuple(vi.shape)}")


@dataclass
class ClassicalMethod:
    """A fusion method computed per image pair on the CPU with numpy/OpenCV/PyWavelets.

    Subclasses set ``name`` and implement :meth:`fuse_pair` on float64 (H, W) arrays in [0, 1].
    Calling the object fuses (N, 1, H, W) float tensors in [0, 1] item by item and returns an
    (N, 1, H, W) float32 tensor clipped to [0, 1], on the input's device. ``device`` is accepted
    (so every method takes the same options) and ignored: these methods always run on the CPU.
    """

    name = "classical"
    device: str = field(default="cpu", kw_only=True, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check the parameters; raise :class:`EmmaError` with one clear line when one is invalid."""

    def fuse_pair(self, ir: np.ndarray, vi: np.ndarray) -> np.ndarray:
        """Fuse two float64 (H, W) arrays in [0, 1]; returns an (H, W) array (clipped later)."""
        raise NotImplementedError

    def __call__(self, ir: torch.Tensor, vi: torch.Tensor, key: str | None = None) -> torch.Tensor:
        check_pair(ir, vi)
        a = ir.detach().to("cpu", torch.float64).numpy()
        b = vi.detach().to("cpu", torch.float64).numpy()
        out = np.empty(a.shape, dtype=np.float32)
        for i in range(a.shape[0]):
            fused = self.fuse_pair(np.ascontiguousarray(a[i, 0]), np.ascontiguousarray(b[i, 0]))
            out[i, 0] = np.clip(fused, 0.0, 1.0)
        return torch.from_numpy(out).to(ir.device)

    def params(self) -> dict:
        """The method's parameters (for logs and docs)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "device"}


def require(cond: bool, message: str) -> None:
    """Raise :class:`EmmaError` (``message``) unless ``cond``."""
    if not cond:
        raise EmmaError(message)
