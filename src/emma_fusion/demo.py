"""A procedural demo pair and a side-by-side panel, so ``emma demo`` needs no data and no network.

The scene is built so that the panel shows at a glance what fusion does: warm targets (two
people and a car engine) appear only in the infrared image; texture (brick wall, foliage)
and painted text appear only in the visible image. ``run_demo`` also takes a real pair
(``emma demo --ir IR --vi VI``): then only the fused image and the panel are written.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy.ndimage import gaussian_filter

from .io import atomic_write, to_array, write_image

__all__ = ["make_demo_pair", "side_by_side", "stack_rows", "save_jpeg", "run_demo"]

log = logging.getLogger(__name__)


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType
        return ImageFont.load_default()


def _person(mask: Image.Image, x: int, y: int, s: float) -> None:
    d = ImageDraw.Draw(mask)
    d.ellipse([x - 9 * s, y, x + 9 * s, y + 18 * s], fill=255)  # head
    d.rounded_rectangle([x - 14 * s, y + 20 * s, x + 14 * s, y + 75 * s], radius=int(8 * s), fill=255)  # torso
    d.rectangle([x - 12 * s, y + 72 * s, x - 2 * s, y + 120 * s], fill=255)  # legs
    d.rectangle([x + 2 * s, y + 72 * s, x + 12 * s, y + 120 * s], fill=255)


def make_demo_pair(height: int = 480, width: int = 640, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Return a synthetic (infrared (H, W), visible RGB (H, W, 3)) pair, float32 in [0, 1]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    horizon = int(height * 0.45)
    sky = yy < horizon

    # Visible: sky gradient, textured brick wall on the left, foliage on the right, road, painted text.
    vis = np.zeros((height, width, 3), np.float32)
    vis[sky] = np.stack([0.45 + 0.3 * yy / horizon, 0.6 + 0.25 * yy / horizon, 0.85 + 0 * yy], -1)[sky]
    ground = ~sky
    road = 0.35 + 0.05 * gaussian_filter(rng.standard_normal((height, width)), 2).astype(np.float32)
    vis[ground] = np.stack([road, road, road * 1.02], -1)[ground]
    wall = (xx < width * 0.45) & (yy > height * 0.15) & (yy < height * 0.8)
    brick_h, brick_w = 14, 36
    row = (yy // brick_h).astype(int)
    mortar = ((yy % brick_h) < 2) | (((xx + (row % 2) * brick_w / 2) % brick_w) < 2)
    brick = np.stack([0.62 + 0 * xx, 0.3 + 0 * xx, 0.22 + 0 * xx], -1) * (0.85 + 0.3 * rng.random((height, width, 1)).astype(np.float32))
    vis[wall] = np.where(mortar[..., None], 0.8, brick)[wall]
    trees = (xx > width * 0.62) & (yy > height * 0.1) & (yy < height * 0.7)
    leaves = gaussian_filter(rng.random((height, width)), 1.2).astype(np.float32)
    leaves = (leaves - leaves.min()) / (np.ptp(leaves) + 1e-6)
    vis[trees] = np.stack([0.15 + 0.3 * leaves, 0.35 + 0.45 * leaves, 0.12 + 0.15 * leaves], -1)[trees]
    canvas = Image.fromarray((vis * 255).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    draw.text((int(width * 0.05), int(height * 0.3)), "EMMA", font=_font(max(12, height // 8)), fill=(245, 240, 220))
    draw.text((int(width * 0.05), int(height * 0.86)), "NO PARKING  ZONE 7", font=_font(max(10, height // 20)), fill=(230, 210, 60))
    vis = np.asarray(canvas, np.float32) / 255

    # Infrared: cold sky, mildly warm ground, a warm car engine and two people, no texture or text.
    ir = np.where(sky, 0.12, 0.3 + 0.1 * (yy - horizon) / (height - horizon)).astype(np.float32)
    ir[wall] = 0.24  # the wall is a uniform temperature: its bricks do not show
    ir[trees] = 0.2
    warm = Image.new("L", (width, height), 0)
    s = height / 480
    _person(warm, int(width * 0.3), int(height * 0.48), s)   # in front of the wall
    _person(warm, int(width * 0.75), int(height * 0.42), s * 0.9)  # among the trees
    ImageDraw.Draw(warm).rounded_rectangle(
        [width * 0.45, height * 0.68, width * 0.6, height * 0.78], radius=int(10 * s), fill=190
    )  # engine block of a parked car
    warm_a = gaussian_filter(np.asarray(warm, np.float32) / 255, 1.5)
    ir = np.clip(ir + 0.6 * warm_a + 0.01 * rng.standard_normal((height, width)).astype(np.float32), 0, 1)
    # In the visible image the people wear clothes that match the background (camouflage):
    vis = np.clip(vis + 0.01 * rng.standard_normal(vis.shape).astype(np.float32), 0, 1)
    return ir.astype(np.float32), vis.astype(np.float32)


def side_by_side(images: list[np.ndarray], labels: list[str], gap: int = 8) -> np.ndarray:
    """Concatenate same-height images (gray or RGB, [0, 1]) left to right with captions; RGB out."""
    rgb = [np.repeat(a[..., None], 3, 2) if a.ndim == 2 else a for a in images]
    h = max(a.shape[0] for a in rgb)
    band = max(18, h // 16)
    w = sum(a.shape[1] for a in rgb) + gap * (len(rgb) - 1)
    panel = Image.new("RGB", (w, h + band), (255, 255, 255))
    draw = ImageDraw.Draw(panel)
    x = 0
    for a, label in zip(rgb, labels):
        panel.paste(Image.fromarray((np.clip(a, 0, 1) * 255 + 0.5).astype(np.uint8)), (x, band))
        draw.text((x + 4, 2), label, font=_font(band - 4), fill=(0, 0, 0))
        x += a.shape[1] + gap
    return np.asarray(panel, np.float32) / 255


def stack_rows(rows: list[np.ndarray], gap: int = 8) -> np.ndarray:
    """Stack RGB panels ((H_k, W_k, 3) in [0, 1]) top to bottom, padded white to the widest, ``gap`` px apart."""
    width = max(r.shape[1] for r in rows)
    return np.concatenate([np.pad(r, ((0, gap), (0, width - r.shape[1]), (0, 0)), constant_values=1.0) for r in rows])


def save_jpeg(panel: np.ndarray, path: str | Path, quality: int = 88) -> Image.Image:
    """Write an RGB panel in [0, 1] as a JPEG atomically (a failed write leaves ``path`` as it was)."""
    img = Image.fromarray((np.clip(panel, 0, 1) * 255 + 0.5).astype(np.uint8))
    atomic_write(path, lambda tmp: img.save(tmp, format="JPEG", quality=quality))
    return img


def run_demo(out_dir: str | Path, model=None, ir_path: str | Path | None = None, vi_path: str | Path | None = None,
             overwrite: bool = False, **fuse_options) -> dict[str, Path]:
    """Write a pair, its fusion with ``model`` (default: the shipped model) and a panel to ``out_dir``.

    Without ``ir_path``/``vi_path`` the pair is the synthetic scene (written as ``demo_ir.png`` and
    ``demo_vi.png``); with both, that real pair is fused (its files are not copied). Files already
    there are an error before any work unless ``overwrite`` (the rule of every ``emma`` output).
    """
    from .errors import EmmaError

    out = Path(out_dir)
    threads = fuse_options.get("threads")
    if threads is not None and threads < 1:
        raise EmmaError(f"--threads must be at least 1 (got {threads})")
    if (ir_path is None) != (vi_path is None):
        raise EmmaError("give both --ir and --vi (a real pair), or neither (the synthetic demo)")
    names = (["demo_ir.png", "demo_vi.png"] if ir_path is None else []) + ["demo_fused.png", "demo_panel.png"]
    there = [n for n in names if (out / n).exists()]
    if there and not overwrite:
        raise EmmaError(f"{out} already holds {', '.join(there)}; pass --overwrite to replace them, or another --out")
    from .io import ensure_writable_dir

    ensure_writable_dir(out)  # a file in the way, or no permission: one line before any work
    from .api import fuse
    from .io import read_image
    paths: dict[str, Path] = {}
    if ir_path is None:
        ir, vi = make_demo_pair()
        paths["ir"] = write_image(out / "demo_ir.png", ir)
        paths["vi"] = write_image(out / "demo_vi.png", vi)
    else:
        ir, vi = read_image(ir_path), read_image(vi_path)
    fused = fuse(ir, vi, model, **fuse_options)
    paths["fused"] = write_image(out / "demo_fused.png", fused)
    panel = side_by_side([to_array(ir), to_array(vi), to_array(fused)], ["infrared", "visible", "EMMA fused"])
    paths["panel"] = write_image(out / "demo_panel.png", panel)
    log.info("demo written to %s", out)
    return paths
