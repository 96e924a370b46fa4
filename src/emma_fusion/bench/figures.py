"""Pictures for the benchmark report: thumbnails, full-resolution crops, crop panels, bar charts.

Everything returns PNG bytes; matplotlib runs on the Agg backend (no display needed).
"""

from __future__ import annotations

import io
import math
import os
from typing import Sequence

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..io import read_image

__all__ = ["display_image", "png_bytes", "thumbnail", "choose_crop", "crop", "crop_panel", "metric_bars",
           "method_colors"]


def display_image(path: str | os.PathLike) -> np.ndarray:
    """An image file as uint8 for display: (H, W) gray or (H, W, 3) RGB, as stored."""
    arr = read_image(path)
    return (np.clip(arr, 0, 1) * 255 + 0.5).astype(np.uint8)


def png_bytes(arr: np.ndarray) -> bytes:
    """Encode an (H, W) or (H, W, 3) uint8 array as PNG."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(arr)).save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def thumbnail(arr: np.ndarray, width: int) -> np.ndarray:
    """Resize to ``width`` pixels wide (area averaging; never enlarged), keeping the aspect ratio."""
    h, w = arr.shape[:2]
    if w <= width:
        return arr
    new = (width, max(1, round(h * width / w)))
    return cv2.resize(arr, new, interpolation=cv2.INTER_AREA)


def choose_crop(grays: Sequence[np.ndarray], size: int) -> tuple[int, int, int, int]:
    """(y, x, h, w) of the ``size`` x ``size`` window where the methods' detail differs most.

    ``grays``: same-shape (H, W) images (the fused results, 0..255). Each is high-pass filtered
    (minus a Gaussian blur, sigma 2) so that global brightness does not count; the per-pixel
    standard deviation across the images is averaged over every window, and the window with the
    largest average wins: it shows where detail, halos or noise differ. Falls back to the centre.
    """
    h, w = grays[0].shape[:2]
    ch, cw = min(size, h), min(size, w)
    if len(grays) < 2:
        return (h - ch) // 2, (w - cw) // 2, ch, cw
    high = []
    for g in grays:
        g = g.astype(np.float32)
        high.append(g - cv2.GaussianBlur(g, (0, 0), 2.0))
    spread = np.stack(high).std(axis=0)
    summed = cv2.integral(spread.astype(np.float64))  # (h+1, w+1)
    win = summed[ch:, cw:] - summed[:-ch, cw:] - summed[ch:, :-cw] + summed[:-ch, :-cw]  # top-left anchored
    if win.size == 0 or not np.isfinite(win).any():
        return (h - ch) // 2, (w - cw) // 2, ch, cw
    iy, ix = np.unravel_index(int(np.argmax(win)), win.shape)
    return int(iy), int(ix), ch, cw


def crop(arr: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """The (y, x, h, w) window of ``arr``."""
    y, x, h, w = box
    return arr[y:y + h, x:x + w]


def crop_panel(tiles: Sequence[tuple[str, np.ndarray]], scale: int = 1, per_row: int = 10) -> bytes:
    """Crops side by side at full resolution (x ``scale``, nearest neighbour) with a label above each."""
    font = ImageFont.load_default()
    pad, label_h = 4, 14
    th, tw = (n * scale for n in tiles[0][1].shape[:2])
    cols = min(per_row, len(tiles))
    rows = math.ceil(len(tiles) / cols)
    panel = Image.new("RGB", (cols * (tw + pad) + pad, rows * (th + label_h + pad) + pad), "white")
    draw = ImageDraw.Draw(panel)
    for i, (label, arr) in enumerate(tiles):
        img = Image.fromarray(np.ascontiguousarray(arr)).convert("RGB")
        if scale != 1:
            img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
        x = pad + (i % cols) * (tw + pad)
        y = pad + (i // cols) * (th + label_h + pad)
        draw.text((x, y), label[: max(4, tw // 6)], fill="black", font=font)
        panel.paste(img, (x, y + label_h))
    buf = io.BytesIO()
    panel.save(buf, format="PNG")
    return buf.getvalue()


def method_colors(labels: Sequence[str]) -> dict[str, tuple]:
    """A stable colour per method label (tab20, then tab20b)."""
    import matplotlib

    cmaps = [matplotlib.colormaps["tab20"], matplotlib.colormaps["tab20b"]]
    return {m: cmaps[(i // 20) % 2](i % 20) for i, m in enumerate(labels)}


def metric_bars(
    methods: Sequence[str],
    values: dict[str, dict[str, float]],
    metrics: Sequence[str],
    colors: dict[str, tuple],
    unranked: set[str] = frozenset(),
    reference_lines: dict[str, Sequence[float]] | None = None,
    title: str = "",
) -> bytes:
    """A grid of bar charts, one per metric, one bar per method (unranked methods hatched).

    ``values``: method -> metric -> mean. ``reference_lines``: metric -> y values drawn dashed
    (e.g. 1.0 and the threshold for the artefact measure).
    """
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure

    ncols = min(4, len(metrics))
    nrows = math.ceil(len(metrics) / ncols)
    width = max(3.2, 0.28 * len(methods) + 1.2)
    fig = Figure(figsize=(width * ncols, 2.9 * nrows), dpi=72, layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    x = np.arange(len(methods))
    for ax, m in zip(axes.ravel(), metrics):
        ys = [values.get(k, {}).get(m, float("nan")) for k in methods]
        bars = ax.bar(x, [y if math.isfinite(y) else 0 for y in ys], color=[colors[k] for k in methods],
                      edgecolor="black", linewidth=0.4)
        for bar, k in zip(bars, methods):
            if k in unranked:
                bar.set_hatch("//")
        for ref in (reference_lines or {}).get(m, ()):
            ax.axhline(ref, color="gray", linestyle="--", linewidth=0.8)
        ax.set_title(m, fontsize=10)
        ax.set_xticks(x, methods, rotation=70, fontsize=7, ha="right")
        ax.tick_params(axis="y", labelsize=7)
        finite = [y for y in ys if math.isfinite(y)] + list((reference_lines or {}).get(m, ()))
        if finite and min(finite) > 0:
            lo, hi = min(finite), max(finite)
            ax.set_ylim(max(0.0, lo - 0.15 * (hi - lo + 1e-9) - 0.02 * hi), hi + 0.08 * (hi - lo + 1e-9) + 0.01 * hi)
    for ax in axes.ravel()[len(metrics):]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title, fontsize=11)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
