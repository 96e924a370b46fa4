"""The fusion core: one pair of luma images through a method, the output scaled to [0, 1].

Every caller that fuses goes through :func:`fuse_luma`: the API (``emma fuse``, and through it
``emma bench``), pseudo ground truth (``emma pseudo-gt``) and the trainer's validation. The method
call, the check for non-finite output and the output scaling therefore exist once. Colour is not
handled here; :mod:`emma_fusion.api` wraps it around this core.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from .choices import Normalize
from .errors import EmmaError

__all__ = ["Normalize", "normalize_output", "fuse_luma", "keep_black"]



def normalize_output(fused: np.ndarray, mode: Normalize = "minmax") -> np.ndarray:
    """Scale a fused (H, W) array to [0, 1].

    ``minmax`` stretches each image to the full range as the authors' test script does before
    saving (published metric values are computed on such files); a flat image is only clipped.
    ``clip`` keeps the network's own intensities.
    """
    if mode not in ("minmax", "clip"):
        raise EmmaError(f"unknown normalisation {mode!r}; use minmax or clip")
    lo, hi = float(fused.min()), float(fused.max())
    if mode == "minmax" and hi - lo > 1e-12:
        return ((fused - lo) / (hi - lo)).astype(np.float32)
    return np.clip(fused, 0, 1).astype(np.float32)


# Share of the image that must be black in both sources before the method's black level there is
# taken as its offset (a real background, not a few stray pixels).
BLACK_MIN_SHARE = 0.01


def keep_black(fused: np.ndarray, ir: np.ndarray, vi: np.ndarray) -> np.ndarray:
    """Black where both sources are black: the fused (H, W) array with those pixels set to 0.

    A network's sigmoid output never reaches 0 (``emma-default`` gives about 0.011, 3 levels, on
    black inputs), so a black background would come out grey. When the common black covers at
    least ``BLACK_MIN_SHARE`` of the image, the method's median output there is its black level
    and is subtracted everywhere first ((f - b) / (1 - b), clipped at 0), so dark tissue next to
    the background keeps its distance to black. Images without common black are returned as is.
    """
    black = (ir <= 0) & (vi <= 0)
    if not black.any():
        return fused
    out = np.array(fused, dtype=np.float32)
    if black.mean() >= BLACK_MIN_SHARE:
        level = float(np.median(out[black]))
        if 0 < level < 1:
            out = np.clip((out - level) / (1 - level), 0, None)
    out[black] = 0
    return out


def _as_tensor(gray: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(gray, dtype=np.float32))[None, None]


def fuse_luma(method: Callable[..., torch.Tensor], ir: np.ndarray, vi: np.ndarray, *, normalize: Normalize = "minmax",
              key: str | None = None, label: str | None = None) -> np.ndarray:
    """Fuse two (H, W) float luma images in [0, 1] with ``method``; return (H, W) float32 in [0, 1].

    Pixels black in both sources stay black (:func:`keep_black`), then the output is scaled.

    ``method`` follows the :class:`~emma_fusion.methods.base.FusionMethod` call,
    ``method(ir, vi, key=key)`` on (1, 1, H, W) tensors. Raises :class:`EmmaError` when it returns
    NaN or infinite values (``label``, default the method's name, and ``key`` say where).
    """
    with torch.inference_mode():
        out = method(_as_tensor(ir), _as_tensor(vi), key=key)
    fused = out[0, 0].float().cpu().numpy()
    if not np.all(np.isfinite(fused)):
        where = f" on pair {key}" if key else ""
        raise EmmaError(f"{label or getattr(method, 'name', 'method')} produced NaN or infinite values{where}")
    return normalize_output(keep_black(fused, ir, vi), normalize)
