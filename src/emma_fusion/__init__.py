"""emma-fusion: EMMA, Equivariant Multi-Modality Image Fusion (Zhao et al., CVPR 2024).

Public API::

    import emma_fusion
    fused = emma_fusion.fuse("ir.png", "vi.png")          # default model
    fused = emma_fusion.fuse(ir_array, vi_array, method="gff")
    net = emma_fusion.load_model("my_run/ufuser.safetensors")
    report = emma_fusion.fuse_folder("ir/", "vi/", "fused/")   # pairs by file stem
    for frame in emma_fusion.fuse_video("ir.mp4", "vi.mp4"):    # or frame folders, or your own frames
        frame.image                                              # float32 [0, 1], in stream order
"""

from __future__ import annotations

__version__ = "0.1.0"

from typing import TYPE_CHECKING

from .errors import EmmaError

if TYPE_CHECKING:
    from .api import fuse, fuse_files, fuse_folder
    from .video import fuse_video
    from .weights import load_model

__all__ = ["__version__", "fuse", "fuse_files", "fuse_folder", "fuse_video", "load_model", "EmmaError"]

_LAZY = {"fuse": "api", "fuse_files": "api", "fuse_folder": "api", "fuse_video": "video", "load_model": "weights"}


def __getattr__(name: str):
    """Import torch and the API on first use, so that ``emma --help`` and light imports start fast."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
