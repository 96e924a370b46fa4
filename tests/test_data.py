"""Paired-folder crops: pairing by stem, reports, contrast filter, reproducibility, sharding."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import shared_path
from emma_fusion.train.data import DatasetSpec, PairedCrops, low_contrast
from emma_fusion.errors import EmmaError


def _save(path, arr, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, mode).save(path)


def _texture(h, w, seed, lo=0, hi=255):
    rng = np.random.default_rng(seed)
    return rng.integers(lo, hi + 1, (h, w)).astype(np.uint8)


@pytest.fixture
def folders(tmp_path):
    """ir/ + vi/ with an 8-bit gray, an RGB and a 16-bit pair, an unpaired file and a tiny pair."""
    root = tmp_path / "set"
    _save(root / "ir" / "a.png", _texture(40, 48, 1))
    _save(root / "vi" / "a.png", np.stack([_texture(40, 48, 2)] * 3, -1))  # RGB
    _save(root / "ir" / "b.png", (_texture(36, 36, 3).astype(np.uint16) * 257))  # 16 bit
    _save(root / "vi" / "b.jpg", _texture(36, 36, 4))
    _save(root / "ir" / "lonely.png", _texture(40, 40, 5))
    _save(root / "ir" / "tiny.png", _texture(16, 16, 6))
    _save(root / "vi" / "tiny.png", _texture(16, 16, 7))
    fused = tmp_path / "fused"
    _save(fused / "a.png", _texture(40, 48, 8))
    _save(fused / "b.png", _texture(36, 36, 9))
    return root, fused


def test_pairs_by_stem_and_reports_problems(folders, caplog):
    root, _ = folders
    with caplog.at_level(logging.WARNING):
        ds = PairedCrops([DatasetSpec(root=str(root))], crop=32, min_contrast=0)
    assert sorted(r.stem for r in ds.pairs) == ["a", "b"]
    assert [u[1:] for u in ds.unpaired] == [("lonely", "vi")]
    assert [t[1] for t in ds.too_small] == ["tiny"]
    assert "without a partner" in caplog.text and "smaller than the crop" in caplog.text


def test_crops_are_gray_in_range_and_co_located(folders):
    root, fused = folders
    spec = DatasetSpec(root=str(root), fused=[str(fused)])
    ds = PairedCrops([spec], crop=32, with_fused=True, min_contrast=0, seed=3)
    b = ds.batch(range(6))
    assert set(b) == {"ir", "vi", "fused"}
    for v in b.values():
        assert v.shape == (6, 1, 32, 32) and v.dtype == torch.float32
        assert 0 <= float(v.min()) and float(v.max()) <= 1
    # the crop of 'a' is taken at the same place in ir and fused: locate it in the full images
    ir_full = np.asarray(Image.open(root / "ir" / "a.png"), np.float32) / 255
    fu_full = np.asarray(Image.open(fused / "a.png"), np.float32) / 255
    for k in range(20):
        s = ds.sample(k)
        crop = s["ir"][0].numpy()
        hits = [(y, x) for y in range(40 - 31) for x in range(48 - 31) if np.allclose(ir_full[y:y + 32, x:x + 32], crop)]
        if hits:
            y, x = hits[0]
            assert np.allclose(s["fused"][0].numpy(), fu_full[y:y + 32, x:x + 32])
            break
    else:
        pytest.fail("no crop of pair 'a' in 20 draws")


def test_sixteen_bit_and_rgb_inputs_are_read_as_luma(folders):
    root, _ = folders
    ds = PairedCrops([DatasetSpec(root=str(root))], crop=36, min_contrast=0)
    rec = {r.stem: r for r in ds.pairs}
    ir_b = ds._load(rec["b"].ir)
    assert ir_b.dtype == np.float32 and ir_b.shape == (36, 36)
    assert np.allclose(ir_b * 65535, np.round(ir_b * 65535), atol=1e-2)  # 16-bit precision kept
    vi_a = ds._load(rec["a"].vi)
    assert vi_a.shape == (40, 48)


def test_same_seed_same_stream_and_index_addressable(folders):
    root, _ = folders
    make = lambda seed: PairedCrops([DatasetSpec(root=str(root))], crop=24, seed=seed, min_contrast=0)
    a, b, c = make(1), make(1), make(2)
    assert torch.equal(a.batch(range(8))["ir"], b.batch(range(8))["ir"])
    assert not torch.equal(a.batch(range(8))["ir"], c.batch(range(8))["ir"])
    # crop k does not depend on which crops were drawn before (resume and rank sharding rely on it)
    assert torch.equal(a.sample(5)["vi"], b.batch([7, 5])["vi"][1])


def test_low_contrast_filter():
    flat = np.full((16, 16), 0.5, np.float32)
    assert low_contrast(flat, 0.1)
    assert low_contrast(np.zeros((16, 16), np.float32), 0.1)
    tex = np.linspace(0.1, 0.9, 256, dtype=np.float32).reshape(16, 16)
    assert not low_contrast(tex, 0.1)
    assert not low_contrast(flat, 0.0)  # disabled


def test_low_contrast_crops_are_rejected(tmp_path):
    # left half flat grey, right half textured: with the filter every crop must come from the right
    h, w = 32, 96
    img = np.full((h, w), 128, np.uint8)
    img[:, 64:] = _texture(h, 32, 1, 30, 220)
    root = tmp_path / "s"
    _save(root / "ir" / "x.png", img)
    _save(root / "vi" / "x.png", img)
    ds = PairedCrops([DatasetSpec(root=str(root))], crop=16, min_contrast=0.1, max_tries=50)
    for k in range(30):
        crop = ds.sample(k)["ir"][0].numpy()
        assert not low_contrast(crop, 0.1)
    assert ds.forced == 0
    unfiltered = PairedCrops([DatasetSpec(root=str(root))], crop=16, min_contrast=0)
    assert any(low_contrast(unfiltered.sample(k)["ir"][0].numpy(), 0.1) for k in range(30))


def test_dataset_weights(tmp_path):
    for j, name in enumerate(("p", "q")):
        for s in range(2):
            _save(tmp_path / name / "ir" / f"{name}{s}.png", _texture(32, 32, 10 * j + s))
            _save(tmp_path / name / "vi" / f"{name}{s}.png", _texture(32, 32, 10 * j + s + 5))
    sets = [DatasetSpec(root=str(tmp_path / "p"), weight=3.0), DatasetSpec(root=str(tmp_path / "q"))]
    ds = PairedCrops(sets, crop=32, min_contrast=0)
    assert ds.set_probs == pytest.approx([0.75, 0.25])
    p_crops = [ds.sample(k)["ir"] for k in range(400)]
    p_imgs = [torch.from_numpy(ds._load(r.ir))[None] for r in ds.pairs_by_set[0]]
    frac = np.mean([any(torch.equal(c, p) for p in p_imgs) for c in p_crops])
    assert 0.65 < frac < 0.85


def test_noise_is_added_to_fused_only(folders):
    root, fused = folders
    spec = DatasetSpec(root=str(root), fused=[str(fused)])
    clean = PairedCrops([spec], crop=32, with_fused=True, min_contrast=0, seed=1)
    noisy = PairedCrops([spec], crop=32, with_fused=True, min_contrast=0, seed=1, noise_std=0.2)
    a, b = clean.batch(range(8)), noisy.batch(range(8))
    assert torch.equal(a["ir"], b["ir"]) and torch.equal(a["vi"], b["vi"])
    assert not torch.equal(a["fused"], b["fused"])
    assert 0 <= float(b["fused"].min()) and float(b["fused"].max()) <= 1


def test_holdout_split_is_stable_and_disjoint(tmp_path):
    for s in range(20):
        _save(tmp_path / "ir" / f"s{s:02d}.png", _texture(16, 16, s))
        _save(tmp_path / "vi" / f"s{s:02d}.png", _texture(16, 16, s + 50))
    ds = PairedCrops([DatasetSpec(ir=str(tmp_path / "ir"), vi=str(tmp_path / "vi"))], crop=16, min_contrast=0)
    tr, ho = ds.split(0.25)
    tr2, ho2 = ds.split(0.25)
    names = lambda d: {r.stem for r in d.pairs}
    assert names(ho) == names(ho2) and names(ho) and not names(tr) & names(ho)
    assert names(tr) | names(ho) == names(ds)


def test_errors(tmp_path, folders):
    root, _ = folders
    with pytest.raises(EmmaError):
        PairedCrops([], crop=32)
    with pytest.raises(EmmaError):
        PairedCrops([DatasetSpec(root=str(root))], crop=32, with_fused=True)  # no fused folders
    with pytest.raises(EmmaError):
        PairedCrops([DatasetSpec(root=str(root))], crop=400)  # nothing is large enough
    with pytest.raises(EmmaError):
        PairedCrops([DatasetSpec(root=str(tmp_path / "missing"))], crop=32)


def test_real_pairs_from_shared():
    root = shared_path("data", "RoadScene", "train")
    fused = shared_path("data", "results", "IFCNN", "RoadScene_train")
    ds = PairedCrops([DatasetSpec(root=str(root), fused=[str(fused)])], crop=128, with_fused=True)
    assert len(ds.pairs) == 171 and len(ds) == 171
    b = ds.batch(range(4))
    for k in ("ir", "vi"):
        for crop in b[k]:
            assert not low_contrast(crop[0].numpy(), 0.1)


# -- the authors' grid patches and the MSRS download layouts --------------------------------
def _msrs_like(root, stems=("00001D", "00002N"), h=480, w=640, flat_corner=True):
    """480 x 640 pairs; with ``flat_corner`` the top-left 128 px patch of the first pair is flat."""
    for k, stem in enumerate(stems):
        ir, vi = _texture(h, w, 2 * k, 30, 220), _texture(h, w, 2 * k + 1, 30, 220)
        if flat_corner and k == 0:
            ir[:128, :128] = 90
        _save(root / "ir" / f"{stem}.png", ir)
        _save(root / "vi" / f"{stem}.png", vi)


def test_grid_patches_are_the_authors_six_per_msrs_image(tmp_path):
    _msrs_like(tmp_path / "train")
    ds = PairedCrops([DatasetSpec(root=str(tmp_path / "train"))], crop=128, grid_stride=200, seed=3)
    first = {(y, x) for r, y, x in ds.patches if r.stem == "00001D"}
    second = {(y, x) for r, y, x in ds.patches if r.stem == "00002N"}
    assert second == {(y, x) for y in (0, 200) for x in (0, 200, 400)}  # 2 x 3 positions, stride 200
    assert first == second - {(0, 0)}  # the flat patch is dropped once, not redrawn
    assert ds.epoch_size(crops_per_image=6) == 11
    img = {r.stem: ds._load(r.ir) for r in ds.pairs}

    def where(t):  # (stem, y, x) of a sampled ir patch
        a = t[0].numpy()
        return next((s, y, x) for s, y, x in ((r.stem, y, x) for r, y, x in ds.patches)
                    if np.array_equal(img[s][y:y + 128, x:x + 128], a))

    epoch0 = [where(ds.sample(k)["ir"]) for k in range(11)]
    epoch1 = [where(ds.sample(k)["ir"]) for k in range(11, 22)]
    assert sorted(epoch0) == sorted(epoch1) == sorted((r.stem, y, x) for r, y, x in ds.patches)  # each once
    assert epoch0 != epoch1  # a fresh shuffle each epoch
    again = PairedCrops([DatasetSpec(root=str(tmp_path / "train"))], crop=128, grid_stride=200, seed=3)
    assert torch.equal(again.batch([13, 2, 5])["vi"], ds.batch([13, 2, 5])["vi"])  # a function of the index
    assert torch.equal(ds.sample(4)["ir"], ds.sample(4)["ir"])


def test_grid_patches_with_fused_images_and_split(tmp_path):
    for s in range(10):
        for sub, seed in (("ir", s), ("vi", s + 50), ("f1", s + 100), ("f2", s + 150)):
            _save(tmp_path / sub / f"s{s}.png", _texture(40, 40, seed, 30, 220))
    spec = DatasetSpec(root=str(tmp_path), fused=[str(tmp_path / "f1"), str(tmp_path / "f2")])
    ds = PairedCrops([spec], crop=16, with_fused=True, grid_stride=12, min_contrast=0)
    assert len(ds.patches) == 10 * 9  # offsets 0, 12, 24 on both axes
    assert ds.epoch_size(6) == 10 * 9 * 2  # every (patch, fused image) input once an epoch
    tr, ho = ds.split(0.3)
    assert tr.grid_stride == ho.grid_stride == 12
    assert len(tr.patches) == 9 * len(tr.pairs) and len(ho.patches) == 9 * len(ho.pairs)
    held = {r.stem for r in ho.pairs}
    assert all(r.stem in held for r, _, _ in ho.patches)
    b = ho.batch(range(ho.epoch_size(1)))
    assert b["fused"].shape == (ho.epoch_size(1), 1, 16, 16)


def test_msrs_download_layouts_are_found(tmp_path):
    official = tmp_path / "MSRS"  # the official repository: train/{ir,vi}, test/{ir,vi}, labels beside
    _msrs_like(official / "train", h=136, w=136, flat_corner=False)
    _msrs_like(official / "test", stems=("09999N",), h=136, w=136, flat_corner=False)
    (official / "train" / "Segmentation_labels").mkdir()
    ds = PairedCrops([DatasetSpec(root=str(official))], crop=128)
    assert sorted(r.stem for r in ds.pairs) == ["00001D", "00002N"]  # the training split, never test/
    assert DatasetSpec(root=str(official)).folders() == (official / "train" / "ir", official / "train" / "vi")
    pia = tmp_path / "msrs_train"  # PIAFusion's layout
    for k, stem in enumerate(("00001D", "00002N", "00003N")):
        _save(pia / "Inf" / f"{stem}.png", _texture(130, 140, k))
        _save(pia / "Vis" / f"{stem}.png", np.stack([_texture(130, 140, k + 9)] * 3, -1))
    ds = PairedCrops([DatasetSpec(root=str(pia))], crop=128)
    assert len(ds.pairs) == 3 and ds.sample(0)["vi"].shape == (1, 128, 128)
    assert DatasetSpec(root=str(official / "train")).folders()[0] == official / "train" / "ir"
    with pytest.raises(EmmaError, match="no such folder"):
        PairedCrops([DatasetSpec(root=str(tmp_path / "elsewhere"))], crop=16)


def test_no_usable_pairs_says_why_in_one_line(tmp_path, folders):
    root, _ = folders
    (tmp_path / "empty" / "ir").mkdir(parents=True)
    (tmp_path / "empty" / "vi").mkdir()
    with pytest.raises(EmmaError, match="no image pairs with matching names found"):
        PairedCrops([DatasetSpec(root=str(tmp_path / "empty"))], crop=32)
    with pytest.raises(EmmaError, match=r"4 skipped \(see the warnings above\)"):  # lonely, tiny, a, b
        PairedCrops([DatasetSpec(root=str(root))], crop=400)
    with pytest.raises(EmmaError, match=r"1 skipped \(see the warnings above\); 3 held out for validation"):
        PairedCrops([DatasetSpec(root=str(root))], crop=32, stems={0: set()})
    with pytest.raises(EmmaError, match="every data set with pairs has weight 0"):
        PairedCrops([DatasetSpec(root=str(root), weight=0.0)], crop=32)
