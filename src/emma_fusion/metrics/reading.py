"""The metric reading convention (METRICS.md §1) and the quantisation of fused outputs.

Every metric sees 2-D float arrays of integer values in [0, 255]: BT.601 luma of the 8-bit image,
computed like OpenCV (``imread`` colour -> float32 -> ``cvtColor BGR2GRAY`` -> ``np.round``).
Files OpenCV cannot decode (float and 32-bit integer TIFFs) are read as ``emma fuse`` reads them.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from ..errors import EmmaError
from ..io import read_image

__all__ = ["read_metric_image", "quantize_fused", "as_metric_array"]


def read_metric_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file the way the CDDFuse evaluator does: (H, W) float32, integers in [0, 255].

    OpenCV decodes the file in colour mode (3-channel BGR uint8; gray files are replicated, 16-bit
    files reduced to 8 bits, alpha dropped), the data are cast to float32, converted with
    ``cvtColor(BGR2GRAY)`` (Y = 0.299 R + 0.587 G + 0.114 B, no rounding inside) and rounded half to
    even with ``np.round``. For gray 8-bit files this returns exactly the stored values.
    A file OpenCV cannot decode (a float or 32-bit TIFF) is read with
    :func:`emma_fusion.io.read_image`, as ``emma fuse`` reads it, and scored as the 8-bit image
    ``emma fuse`` would write from it (see :func:`_read_like_fuse`).
    Raises :class:`EmmaError` for a missing or undecodable file.
    """
    p = Path(path)
    if not p.is_file():
        raise EmmaError(f"{p} is a folder, not an image file" if p.is_dir() else f"no such image file: {p}")
    data = np.fromfile(p, dtype=np.uint8)  # imdecode also copes with non-ASCII paths
    with _opencv_quiet():  # its "can not handle images with 32-bit samples" warning on stderr
        bgr = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if bgr is None:
        return _read_like_fuse(p)
    gray = cv2.cvtColor(bgr.astype(np.float32), cv2.COLOR_BGR2GRAY)
    return np.round(gray)


@contextmanager
def _opencv_quiet() -> Iterator[None]:
    """Keep OpenCV's own log lines (warnings about files it cannot decode) off stderr inside the block."""
    logging = getattr(getattr(cv2, "utils", None), "logging", None)
    if logging is None:
        yield
        return
    old = logging.getLogLevel()
    logging.setLogLevel(logging.LOG_LEVEL_ERROR)
    try:
        yield
    finally:
        logging.setLogLevel(old)


def _read_like_fuse(p: Path) -> np.ndarray:
    """The metric array of a file OpenCV cannot decode, read with :func:`~emma_fusion.io.read_image`.

    Each channel is quantised to 8 bits as :func:`~emma_fusion.io.write_image` does, then the luma is
    taken and rounded as for an OpenCV-decoded file, so a float TIFF scores like its 8-bit PNG.
    """
    try:
        arr = read_image(p)
    except EmmaError as e:
        if str(e).startswith("cannot read image"):  # no decoder knows it: a damaged or foreign file
            raise EmmaError(f"cannot decode image {p}") from None
        raise
    levels = np.floor(np.clip(arr, 0, 1) * 255 + 0.5).astype(np.float32)
    if levels.ndim == 2:
        return levels
    return np.round(cv2.cvtColor(levels, cv2.COLOR_RGB2GRAY))


def quantize_fused(arr01: np.ndarray) -> np.ndarray:
    """Quantise a fused output in [0, 1] exactly as EMMA's test script saves it; returns (H, W) float32 in 0..255.

    EMMA (and CDDFuse) min-max normalise the network output to [0, 1] (the caller does that), multiply
    by 255 in float32 and save with ``skimage.io.imsave``, whose PNG writer (imageio ``image_as_uint``)
    sees a float array outside [0, 1] and maps it with its own min ``lo`` and max ``hi``:
    ``uint8(floor((x - lo) / (hi - lo) * 255 + 0.499999999))`` in float64 (a constant array is cast
    with a plain ``astype(uint8)``). The result equals what :func:`read_metric_image` returns for
    the saved PNG. Leading singleton axes (N=1, C=1) and a trailing channel of 1 are dropped; the rest must be 2-D.
    """
    x = np.asarray(arr01)
    while x.ndim > 2 and x.shape[0] == 1:  # (N=1, C=1, H, W) -> (H, W)
        x = x[0]
    if x.ndim == 3 and x.shape[-1] == 1:  # (H, W, 1)
        x = x[..., 0]
    if x.ndim != 2:
        raise EmmaError(f"quantize_fused expects one 2-D image, got shape {np.shape(arr01)}")
    x = x.astype(np.float32)
    if not np.all(np.isfinite(x)):
        raise EmmaError("fused image contains NaN or infinite values")
    if x.min() < 0 or x.max() > 1:
        raise EmmaError("quantize_fused expects values in [0, 1] (min-max normalise the output first)")
    x = x * np.float32(255.0)
    lo, hi = float(x.min()), float(x.max())
    if hi == lo:
        return x.astype(np.uint8).astype(np.float32)
    q = (x.astype(np.float64) - lo) / (hi - lo) * 255.0 + 0.499999999
    return q.astype(np.uint8).astype(np.float32)


def as_metric_array(x: np.ndarray, what: str = "image") -> np.ndarray:
    """Validate one image in the reading convention and return it as C-contiguous float64 (H, W).

    Accepts any real dtype (uint8 included); values must be finite integers in [0, 255].
    """
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise EmmaError(f"{what} must be a 2-D (H, W) array in the metric reading convention, got shape {arr.shape}")
    if arr.size == 0:
        raise EmmaError(f"{what} is empty")
    if arr.dtype == np.uint8:
        return arr.astype(np.float64)
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating) or arr.dtype == bool):
        raise EmmaError(f"{what} has unsupported dtype {arr.dtype}")
    lo, hi = arr.min(), arr.max()
    if not (lo >= 0 and hi <= 255):  # also catches NaN and infinities
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise EmmaError(f"{what} contains NaN or infinite values")
        raise EmmaError(f"{what} must hold values in [0, 255] (got {lo:g}..{hi:g}); "
                        "read it with read_metric_image or quantize_fused")
    if arr.dtype.kind == "f" and not np.array_equal(arr, arr.astype(np.uint8)):
        raise EmmaError(f"{what} must hold integer gray levels 0..255 (the metric reading convention); "
                        "use read_metric_image or quantize_fused")
    return np.ascontiguousarray(arr, dtype=np.float64)
