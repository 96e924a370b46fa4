"""ONNX export of the U-Fuser and an onnxruntime runner with the torch model's call signature.

The exported graph has inputs ``ir`` and ``vi`` (N, 1, H, W) float32 in [0, 1] and output
``fused`` (N, 1, H, W), with N, H and W dynamic (H and W multiples of 8, at least 16). The weights
are folded first (:func:`emma_fusion.inference.fast.fold_weights`), which the graph keeps.

``onnx`` and ``onnxruntime`` are an optional extra: ``pip install emma-fusion[onnx]``.

Example:
    >>> export_onnx(load_model(), "emma.onnx")                       # doctest: +SKIP
    >>> fuser = OnnxFuser("emma.onnx")                                # doctest: +SKIP
    >>> fused = fuser(ir, vi)        # (N, 1, H, W) tensors -> tensor  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from ..errors import EmmaError
from ..hardware import hardware
from ..io import check_output_file, write_output
from ..nets import UFuser
from .fast import fold_weights

__all__ = ["export_onnx", "check_export", "max_opset", "OnnxFuser", "DEFAULT_OPSET", "MIN_OPSET"]

log = logging.getLogger(__name__)

DEFAULT_OPSET = 17  # LayerNormalization is an ONNX op from opset 17
MIN_OPSET = 17


def _require(module: str):
    try:
        return __import__(module)
    except ImportError as e:
        raise EmmaError(f"{module} is not installed; install the optional extra: pip install 'emma-fusion[onnx]'") from e


def max_opset() -> int:
    """The highest opset the installed torch's TorchScript exporter (the one used here) writes."""
    try:
        from torch.onnx import _constants
    except ImportError:  # a torch without the private constants: claim no more than we know works
        return DEFAULT_OPSET
    return int(getattr(_constants, "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET",
                       getattr(_constants, "ONNX_MAX_OPSET", DEFAULT_OPSET)))


def check_export(path: str | os.PathLike, opset: int = DEFAULT_OPSET, *, overwrite: bool = False) -> Path:
    """Check an export's target and opset before any work; raises :class:`EmmaError`, returns ``path``.

    ``path`` must end in ``.onnx``, not be a folder, not exist unless ``overwrite``, and be writable;
    ``opset`` must lie between :data:`MIN_OPSET` and :func:`max_opset`.
    """
    path = check_output_file(path, overwrite=overwrite, suffix=".onnx")
    top = max_opset()
    if opset < MIN_OPSET:
        raise EmmaError(f"opset {opset} is too old: the network's layer norm needs opset {MIN_OPSET} or later "
                        f"(this torch writes {MIN_OPSET}..{top})")
    if opset > top:
        raise EmmaError(f"opset {opset} is not supported: this torch writes opsets {MIN_OPSET}..{top}")
    return path


def export_onnx(model: UFuser, path: str | os.PathLike, opset: int = DEFAULT_OPSET, *, fold: bool = True,
                overwrite: bool = False) -> Path:
    """Write ``model`` as an ONNX graph with dynamic batch, height and width; return the path.

    Args:
        model: a :class:`UFuser` (its weights are copied; the model is not changed).
        path: the ``.onnx`` file to write (atomically).
        opset: ONNX opset version (17 up to :func:`max_opset`).
        fold: fold the 1x1 convolutions into the 3x3 ones first (same function, fewer FLOPs).
        overwrite: replace an existing ``path`` (else: an error before any work).
    """
    if not isinstance(model, UFuser):
        raise EmmaError(f"export_onnx expects a UFuser, got {type(model).__name__}")
    path = check_export(path, opset, overwrite=overwrite)
    _require("onnx")
    net = fold_weights(model) if fold else model.eval()
    example = (torch.rand(1, 1, 64, 64), torch.rand(1, 1, 64, 64))
    dynamic = {"ir": {0: "batch", 2: "height", 3: "width"}, "vi": {0: "batch", 2: "height", 3: "width"},
               "fused": {0: "batch", 2: "height", 3: "width"}}

    def write(tmp: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
            torch.onnx.export(
                net, example, str(tmp), input_names=["ir", "vi"], output_names=["fused"],
                opset_version=opset, dynamic_axes=dynamic, dynamo=False, do_constant_folding=True,
            )

    write_output(path, write)  # atomic; the file gets ordinary (umask) permissions
    log.info("wrote %s (opset %d)", path, opset)
    return path


class OnnxFuser:
    """Run an exported U-Fuser with onnxruntime: ``OnnxFuser(path)(ir, vi) -> fused``.

    Args:
        path: an ``.onnx`` file written by :func:`export_onnx`.
        threads: intra-op threads (``None``: onnxruntime's default, all cores).

    Call with (N, 1, H, W) tensors (or arrays) in [0, 1], H and W multiples of 8 and at least 16;
    returns a (N, 1, H, W) float32 tensor.
    """

    multiple = UFuser.multiple

    def __init__(self, path: str | os.PathLike, threads: int | None = None) -> None:
        ort = _require("onnxruntime")
        path = Path(path)
        if not path.is_file():
            raise EmmaError(f"no ONNX model at {path}")
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads is not None:
            opts.intra_op_num_threads = threads
        providers = hardware().onnx_providers
        if "CPUExecutionProvider" not in providers:
            raise EmmaError(f"this onnxruntime has no CPU provider (only {', '.join(providers) or 'none'}); use --backend torch")
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types for bad files
            raise EmmaError(f"cannot load ONNX model {path}: {str(e).splitlines()[0]}") from e
        names = [i.name for i in self.session.get_inputs()]
        if names != ["ir", "vi"]:
            raise EmmaError(f"{path} is not an emma-fusion export: inputs {names}, expected ['ir', 'vi']")

    def __call__(self, ir: torch.Tensor | np.ndarray, vi: torch.Tensor | np.ndarray) -> torch.Tensor:
        a, b = (np.ascontiguousarray(torch.as_tensor(t).detach().cpu().float().numpy()) for t in (ir, vi))
        if a.shape != b.shape or a.ndim != 4 or a.shape[1] != 1:
            raise EmmaError(f"expected two (N, 1, H, W) inputs of one shape, got {a.shape} and {b.shape}")
        (out,) = self.session.run(["fused"], {"ir": a, "vi": b})
        return torch.from_numpy(out)
