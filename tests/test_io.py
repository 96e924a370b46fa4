"""Image reading/writing, colour conversion and atomic writes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

from emma_fusion.errors import EmmaError
from emma_fusion.io import (
    atomic_write,
    is_pseudo_color,
    read_image,
    rgb_to_ycbcr,
    to_array,
    to_gray,
    write_image,
    ycbcr_to_rgb,
)


@settings(max_examples=50, deadline=None)
@given(arrays(np.float32, (4, 5, 3), elements=st.floats(0, 1, width=32)))
def test_ycbcr_roundtrip(rgb):
    np.testing.assert_allclose(ycbcr_to_rgb(rgb_to_ycbcr(rgb)), rgb, atol=1e-5)


def test_luma_matches_bt601():
    rgb = np.array([[[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]]], np.float32)
    np.testing.assert_allclose(to_gray(rgb)[0], [0.299, 0.587, 0.114], atol=1e-6)


@pytest.mark.parametrize("suffix", [".png", ".tif", ".bmp", ".jpg"])
def test_8bit_roundtrip(tmp_path, suffix):
    arr = np.tile(np.linspace(0, 1, 32, dtype=np.float32), (16, 1))
    p = write_image(tmp_path / f"a{suffix}", arr)
    back = read_image(p)
    assert back.shape == arr.shape
    tol = 0.03 if suffix == ".jpg" else 0.5 / 255 + 1e-6
    assert np.abs(back - arr).max() <= tol


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16bit_keeps_precision(tmp_path, suffix):
    arr = (np.arange(64 * 64, dtype=np.float32).reshape(64, 64) / (64 * 64 - 1))
    back = read_image(write_image(tmp_path / f"a{suffix}", arr, bits=16))
    assert np.abs(back - arr).max() < 1e-4  # far below an 8-bit step


def test_to_array_scales_integer_dtypes():
    assert to_array(np.full((2, 2), 65535, np.uint16)).max() == 1.0
    assert to_array(np.full((2, 2), 255, np.uint8)).max() == 1.0
    assert to_array(Image.new("L", (3, 2), 255)).shape == (2, 3)


def test_to_array_rejects_nan_and_bad_range():
    with pytest.raises(EmmaError, match="NaN"):
        to_array(np.full((2, 2), np.nan, np.float32))
    with pytest.raises(EmmaError, match=r"\[0, 1\]"):
        to_array(np.full((2, 2), 3.0, np.float32))
    with pytest.raises(EmmaError, match="empty"):
        to_array(np.zeros((0, 4), np.float32))


def test_read_errors(tmp_path):
    with pytest.raises(EmmaError, match="no such image"):
        read_image(tmp_path / "missing.png")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(EmmaError, match="cannot read"):
        read_image(bad)
    good = write_image(tmp_path / "good.png", np.random.default_rng(0).random((64, 64), dtype=np.float32))
    trunc = tmp_path / "trunc.png"
    trunc.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    with pytest.raises(EmmaError, match="cannot read"):
        read_image(trunc)


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.png"
    target.write_bytes(b"old")

    def boom(tmp):
        tmp.write_bytes(b"partial")
        raise RuntimeError("crash")

    with pytest.raises(RuntimeError):
        atomic_write(target, boom)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]


def test_pseudo_color_detection():
    gray3 = np.repeat(np.random.default_rng(0).random((8, 8, 1), dtype=np.float32), 3, axis=2)
    assert not is_pseudo_color(gray3)
    col = gray3.copy()
    col[..., 0] = 1.0
    assert is_pseudo_color(col)


def test_two_images_with_one_stem_are_refused_by_name(tmp_path):
    from emma_fusion.io import list_images

    for name in ("a.png", "a.jpg", "b.png"):
        Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / name)
    with pytest.raises(EmmaError, match=r"two images named a in .*: a\.jpg and a\.png; keep one"):
        list_images(tmp_path)
    (tmp_path / "a.jpg").unlink()
    assert sorted(list_images(tmp_path)) == ["a", "b"]


def test_a_folder_given_as_an_image_is_named_a_folder(tmp_path):
    from emma_fusion.metrics.reading import read_metric_image

    for read in (read_image, read_metric_image):
        with pytest.raises(EmmaError, match="is a folder, not an image file"):
            read(tmp_path)
