"""The EMMA network behind the :class:`~emma_fusion.methods.base.FusionMethod` interface."""

from __future__ import annotations

import os

import torch
from torch import nn

from ..inference import NetworkRunner
from ..weights import load_model
from .base import register_method

__all__ = ["EmmaNetwork"]


@register_method(
    "emma",
    "EMMA U-Fuser (equivariant multi-modality fusion network); the shipped model unless --weights is given",
    "Zhao et al., Equivariant Multi-Modality Image Fusion, CVPR 2024",
)
class EmmaNetwork:
    """Fuse with a U-Fuser: pads to a multiple of 8, tiles large images, crops back.

    Args:
        weights: packaged model name or weights file; ``None`` for the shipped default. A built
            ``nn.Module`` may be passed as ``model`` instead.
        device: ``"cpu"`` or ``"cuda"``.
        tile, overlap: tiling of large images (see :class:`~emma_fusion.inference.NetworkRunner`).
        threads: torch intra-op threads (``None`` leaves torch's default).
    """

    name = "emma"

    def __init__(
        self,
        weights: str | os.PathLike | None = None,
        model: nn.Module | None = None,
        device: str = "cpu",
        tile: int = 1024,
        overlap: int = 128,
        threads: int | None = None,
    ) -> None:
        if threads:
            torch.set_num_threads(threads)
        self.model = (model if model is not None else load_model(weights)).eval().to(device)
        self.runner = NetworkRunner(self.model, multiple=8, minimum=16, tile=tile, overlap=overlap, device=device)

    def __call__(self, ir: torch.Tensor, vi: torch.Tensor, key: str | None = None) -> torch.Tensor:
        return self.runner(ir, vi)
