"""emma-fusion: EMMA, Equivariant Multi-Modality Image Fusion (Zhao et al., CVPR 2024).

Public API::

    import emma_fusion
    fused = emma_fusion.fuse("ir.png", "vi.png")          # default model
    fused = emma_fusion.fuse(ir_array, vi_array, method="gff")
    net = emma_fusion.load_model("my_run/ufuser.safetensors")
    report = emma_fusion.fuse_folder("ir/", "vi/", "fused/")   # pairs by file stem
"""

from __future__ import annotations

__version__ = "0.1.0"

from .api import fuse, fuse_files, fuse_folder
from .errors import EmmaError
from .weights import load_model

__all__ = ["__version__", "fuse", "fuse_files", "fuse_folder", "load_model", "EmmaError"]
