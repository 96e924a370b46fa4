"""Running a trained fusion network: tiling, the exact fast path and ONNX export.

- :mod:`.runner`: :class:`NetworkRunner` pads (N, 1, H, W) inputs to the network's size multiple,
  tiles large images with blended overlaps and crops back; every network call goes through it.
- :mod:`.fast`: :func:`optimize_for_inference` folds the U-Fuser's 1x1 projections into the
  following convolutions and runs fused oneDNN kernels (same outputs to ~1e-7; bf16 optional).
- :mod:`.onnx`: :func:`export_onnx` and :class:`OnnxFuser` (the optional ``onnx`` extra).

Nothing here imports the training package.
"""

from __future__ import annotations

from .fast import FastUFuser, fold_weights, optimize_for_inference
from .onnx import DEFAULT_OPSET, OnnxFuser, export_onnx
from .runner import NetworkRunner, blend_window, pad_to_multiple, tile_starts

__all__ = ["NetworkRunner", "pad_to_multiple", "tile_starts", "blend_window", "FastUFuser", "fold_weights",
           "optimize_for_inference", "export_onnx", "OnnxFuser", "DEFAULT_OPSET"]
