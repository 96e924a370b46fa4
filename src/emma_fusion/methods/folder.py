"""A "method" that looks fused images up in a folder of someone else's results, by file stem."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..errors import EmmaError
from ..io import list_images, read_image, to_gray
from .base import register_method

__all__ = ["ResultsFolder"]


@register_method(
    "folder",
    "Fused images produced elsewhere, read from a folder (folder=DIR) by the pair's file stem",
    "-",
    aliases=("results",),
)
class ResultsFolder:
    """Wrap a folder of fused images ``<stem>.<ext>`` as a fusion method.

    Calling it with ``key=<stem>`` (or one stem per batch item) returns that file as an
    (N, 1, H, W) float32 tensor in [0, 1]: colour files become BT.601 luma, 16-bit files keep
    their precision. ``ir`` and ``vi`` only give the expected size and device.

    Args:
        folder: the folder of fused images.
        name: label for messages and output folders (default: the folder's name).
        device: accepted for a uniform interface; the result goes to the inputs' device.

    Raises:
        EmmaError: the folder does not exist, a key is missing or not given, or a file's size
            differs from the inputs'.
    """

    def __init__(self, folder: str | os.PathLike | None = None, name: str | None = None, device: str = "cpu") -> None:
        if folder is None:
            raise EmmaError("the folder method needs a folder of fused images (folder=DIR)")
        self.folder = Path(folder)
        self._files = list_images(self.folder)
        self.name = name or self.folder.name

    def __repr__(self) -> str:
        return f"ResultsFolder({str(self.folder)!r}, name={self.name!r})"

    def __contains__(self, key: str) -> bool:
        return key in self._files

    def keys(self) -> list[str]:
        """The stems available in the folder, sorted."""
        return sorted(self._files)

    def path(self, key: str) -> Path:
        """The file for ``key``; raises :class:`EmmaError` when there is none."""
        try:
            return self._files[key]
        except KeyError:
            raise EmmaError(f"no fused image named {key!r} in {self.folder} ({self.name})") from None

    def read(self, key: str) -> np.ndarray:
        """The fused image for ``key`` as float32 (H, W) gray in [0, 1]."""
        return np.ascontiguousarray(to_gray(read_image(self.path(key))), dtype=np.float32)

    def __call__(self, ir: torch.Tensor, vi: torch.Tensor, key: str | Sequence[str] | None = None) -> torch.Tensor:
        if key is None:
            raise EmmaError(f"{self.name}: results are looked up by file stem, but no key was given")
        n, _, h, w = ir.shape
        keys = [key] if isinstance(key, str) else list(key)
        if len(keys) != n:
            raise EmmaError(f"{self.name}: {len(keys)} keys for a batch of {n}")
        out = []
        for k in keys:
            arr = self.read(k)
            if arr.shape != (h, w):
                raise EmmaError(
                    f"{self.name}: {self.path(k).name} is {arr.shape[1]}x{arr.shape[0]}, the inputs are {w}x{h}"
                )
            out.append(torch.from_numpy(arr))
        return torch.stack(out)[:, None].to(ir.device)
