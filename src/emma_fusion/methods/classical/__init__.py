"""Classical (non-learned) fusion methods; importing this package registers them all.

Every method works on (N, 1, H, W) float tensors in [0, 1] of any size, is deterministic, and
returns its input when both images are the same. See docs/METHODS.md for references and timings.
"""

from __future__ import annotations

from ._common import ClassicalMethod
from .cbf import CrossBilateralFusion
from .gff import GuidedFilterFusion
from .multiscale import Average, LaplacianPyramid, WaveletDWT
from .tif import TwoScaleFusion
from .vsm_wls import VsmWlsFusion
from ..folder import ResultsFolder

__all__ = [
    "ClassicalMethod",
    "Average",
    "LaplacianPyramid",
    "WaveletDWT",
    "GuidedFilterFusion",
    "TwoScaleFusion",
    "CrossBilateralFusion",
    "VsmWlsFusion",
    "ResultsFolder",
    "CLASSICAL_METHODS",
]

#: Registered names of the fusion methods implemented here (not the results-folder wrapper).
CLASSICAL_METHODS = ("average", "lp", "dwt", "gff", "tif", "cbf", "vsm_wls")
