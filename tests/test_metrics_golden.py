"""Every value in ../shared/reference/vectors/expected.json, variants included (FMI: test_metrics_fmi.py)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from conftest import SHARED, shared_path
from PIL import Image

from emma_fusion.metrics import compute, read_metric_image

VECTORS = SHARED / "reference" / "vectors"

# expected.json variant key -> our metric name (docs/METRICS.md lists the same mapping)
VARIANT_NAMES = {
    "AG_sum_over_(H-1)(W-1)": "AG_vifb",
    "MI_bits_256bins": "MI_bits",
    "PSNR_peak255": "PSNR_peak255",
    "SSIM_skimage_datarange255_sum": "SSIM_L255",
    "SSIM_vifb_gauss11_L255_sum": "SSIM_vifb",
    "MS_SSIM_x255_port_quirk": "MS_SSIM_x255",
    "Nabf_pyport_wt0": "Nabf_wt0",
}
F64_SUFFIX = "_cdd_code_float64_input"
FMI = ("FMI_pixel", "FMI_dct", "FMI_gradient", "FMI_w")
CDDFUSE = ("EN", "SD", "SF", "AG", "MI", "SCD", "VIF", "Qabf", "SSIM", "MSE", "PSNR", "CC")


def _cases() -> dict:
    path = VECTORS / "expected.json"
    return json.loads(path.read_text()) if path.is_file() else {}


CASES = _cases()


def _close(got: float, want: float, rel: float, abs_: float = 1e-6) -> bool:
    return math.isclose(got, want, rel_tol=rel, abs_tol=abs_)


@pytest.fixture(scope="module")
def computed() -> dict[str, dict[str, float]]:
    """All non-FMI metrics and variants of every golden case, computed once."""
    shared_path("reference", "vectors", "expected.json")
    names = [n for n in (*CASES[next(iter(CASES))]["metrics"], *VARIANT_NAMES.values()) if n not in FMI]
    out = {}
    for case, c in CASES.items():
        f, a, b = (read_metric_image(VECTORS / c[k]) for k in ("fused", "ir", "vi"))
        assert list(f.shape) == c["shape"]
        out[case] = compute(f, a, b, names)
    return out


@pytest.mark.parametrize("case", sorted(CASES) or ["<no vectors>"])
def test_primary_metrics(computed, case):
    """METRICS.md §5 tolerances: CDDFuse metrics rel 1e-5 (SSIM 2e-5), abs 1e-6; Nabf/MS_SSIM 1e-6."""
    got = computed[case]
    bad = []
    for name, want in CASES[case]["metrics"].items():
        if name in FMI:
            continue
        rel = 2e-5 if name == "SSIM" else 1e-5 if name in CDDFUSE else 1e-6
        if not _close(got[name], want, rel):
            bad.append(f"{name}: got {got[name]!r}, expected {want!r}")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("case", sorted(CASES) or ["<no vectors>"])
def test_variants(computed, case):
    """Alternative conventions under their own names, and the float64-input reference run (tighter)."""
    got = computed[case]
    bad = []
    variants = CASES[case]["variants"]
    for key, want in variants.items():
        if key.endswith(F64_SUFFIX):
            name, rel = key[: -len(F64_SUFFIX)], 1e-9  # same code on float64 input: our float64 path
        else:
            name, rel = VARIANT_NAMES[key], 1e-6
        if not _close(got[name], want, rel, abs_=1e-12):
            bad.append(f"{key} ({name}): got {got[name]!r}, expected {want!r}")
    assert not bad, "\n".join(bad)
    assert set(variants) - {k for k in variants if k.endswith(F64_SUFFIX)} <= set(VARIANT_NAMES)


def test_every_expected_name_is_covered():
    """No value in expected.json is left untested (primary names, variant keys)."""
    shared_path("reference", "vectors", "expected.json")
    for c in CASES.values():
        assert set(c["metrics"]) - set(FMI) <= set(CDDFUSE) | {"Nabf", "MS_SSIM"}
        assert set(c["metrics"]) & set(FMI) == set(FMI)  # checked in test_metrics_fmi.py
        for key in c["variants"]:
            assert key in VARIANT_NAMES or (key.endswith(F64_SUFFIX) and key[: -len(F64_SUFFIX)] in CDDFUSE)


def test_reader_returns_stored_gray_values():
    """METRICS.md §5: gray PNG -> BGR -> BT.601 -> round is the identity for the golden files."""
    shared_path("reference", "vectors", "expected.json")
    for name in ("FLIR_03952_ir.png", "synth_s7_vi.png"):
        stored = np.asarray(Image.open(VECTORS / name), dtype=np.float32)
        got = read_metric_image(VECTORS / name)
        assert got.dtype == np.float32 and got.shape == stored.shape
        np.testing.assert_array_equal(got, stored)
