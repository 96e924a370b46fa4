"""The EMMA network behind the :class:`~emma_fusion.methods.base.FusionMethod` interface."""

from __future__ import annotations

import logging
import os
import re
import tempfile
from pathlib import Path

import torch
from torch import nn

from ..errors import EmmaError
from ..hardware import clamp_threads, inference_precision
from ..inference import NetworkRunner, OnnxFuser, export_onnx, optimize_for_inference
from ..nets import UFuser
from ..weights import load_model
from .base import register_method

__all__ = ["EmmaNetwork"]

log = logging.getLogger(__name__)

_PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def _torch_net(model: nn.Module, precision: str, fast: bool, device: str) -> nn.Module:
    """The module that runs ``model``: the exact fast path for a U-Fuser, else ``model`` itself.

    A precision ``device`` cannot run (bf16 without native support) falls back to fp32 with one
    warning (:func:`~emma_fusion.hardware.inference_precision`).
    """
    precision, note = inference_precision(precision, device)
    if note:
        log.warning("%s", note)
    if isinstance(model, UFuser) and (fast or precision != "fp32"):
        return optimize_for_inference(model, dtype=_PRECISIONS[precision])
    return model


def _onnx_net(model: nn.Module, weights: str | os.PathLike | None, threads: int | None):
    if weights is not None and str(weights).endswith(".onnx"):
        return OnnxFuser(weights, threads=threads)
    tmp = tempfile.TemporaryDirectory(prefix="emma-onnx-")
    net = OnnxFuser(export_onnx(model, Path(tmp.name) / "ufuser.onnx"), threads=threads)
    net._tmpdir = tmp  # keep the exported file for the runner's lifetime
    return net


@register_method(
    "emma",
    "EMMA U-Fuser (equivariant multi-modality fusion network); the shipped model unless --weights is given",
    "Zhao et al., Equivariant Multi-Modality Image Fusion, CVPR 2024",
)
class EmmaNetwork:
    """Fuse with a U-Fuser: pads to a multiple of 8, tiles large images, crops back.

    Args:
        weights: packaged model name or weights file (``.safetensors``, ``.pth``, or ``.onnx`` with
            the onnxruntime backend); ``None`` for the shipped default. A built ``nn.Module`` may be
            passed as ``model`` instead.
        device: ``"cpu"`` or ``"cuda"``.
        tile, overlap: tiling of large images (see :class:`~emma_fusion.inference.runner.NetworkRunner`).
        threads: torch (or onnxruntime) intra-op threads; ``None`` leaves the default.
        precision: ``fp32`` (exact), ``bf16`` (faster on CPUs with AVX-512 BF16 or AMX; outputs differ
            by about 1e-3; where the device has no native bf16, fp32 with one warning), ``fp16`` (GPU only).
        backend: ``torch`` or ``onnxruntime`` (needs the ``onnx`` extra; CPU).
        fast: use the folded, fused-kernel inference path (same outputs to ~1e-7); ``False`` runs
            the layers as written.
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
        precision: str = "fp32",
        backend: str = "torch",
        fast: bool = True,
    ) -> None:
        if threads:
            torch.set_num_threads(clamp_threads(threads))
        if not re.fullmatch(r"cpu|cuda(:\d+)?", device):
            raise EmmaError(f"unknown device {device!r}; use cpu, cuda or cuda:N")
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise EmmaError("--device cuda requested but no CUDA device is available")
        onnx_file = weights is not None and str(weights).endswith(".onnx")
        if model is None and not onnx_file:
            model = load_model(weights)
        if backend == "torch":
            if onnx_file:
                raise EmmaError("an .onnx file needs --backend onnxruntime")
            net = _torch_net(model.eval().to(device), precision, fast, device)
        elif backend == "onnxruntime":
            if device != "cpu" or precision != "fp32":
                raise EmmaError("the onnxruntime backend runs fp32 on the CPU")
            net = _onnx_net(model, weights, threads)
        else:
            raise EmmaError(f"unknown backend {backend!r}; use torch or onnxruntime")
        self.model = model
        self.runner = NetworkRunner(net, multiple=8, minimum=16, tile=tile, overlap=overlap, device=device)

    def __call__(self, ir: torch.Tensor, vi: torch.Tensor, key: str | None = None) -> torch.Tensor:
        return self.runner(ir, vi)
