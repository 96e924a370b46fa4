"""The HTML report: tables, bar charts, an image grid per pair and full-resolution crops.

Images are embedded as base64 PNG (one self-contained file) or, with ``embed=False``, written to
``<report>_files/`` beside it. A small inline script counts images that failed to decode and writes
the count to ``<body data-broken-images>`` (the rendering test reads it back from headless Chromium).
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import re
from pathlib import Path

from .. import __version__
from ..io import atomic_write
from ..metrics import HIGHER_IS_BETTER, read_metric_image
from .figures import choose_crop, crop, display_image, method_colors, metric_bars, png_bytes, thumbnail
from .result import BenchResult
from .scoring import ARTEFACT
from .tables import MethodRow, fmt

__all__ = ["write_html"]

THUMB_WIDTH = 150

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1.5em;color:#222;max-width:100%}
h1{margin-bottom:.2em} h2{margin-top:2em;border-bottom:1px solid #ccc} h3{margin-top:1.4em}
table{border-collapse:collapse;margin:.6em 0;font-size:13px}
th,td{border:1px solid #ddd;padding:3px 6px;text-align:right;white-space:nowrap}
th:first-child,td:first-child{text-align:left}
td.best{font-weight:bold;background:#e6f4e6} tr.unranked td{color:#888} td.flag{color:#b00;font-weight:bold}
.scroll{overflow-x:auto;max-width:100%}
.grid td,.grid th{text-align:center;padding:2px;font-size:11px;vertical-align:top}
.grid img{display:block}
.crops{display:flex;flex-wrap:wrap;gap:6px;margin:.5em 0 1.2em}
.crops figure{margin:0;text-align:center;font-size:11px}
.crops img{image-rendering:pixelated;border:1px solid #ccc}
.note{color:#555;font-size:13px} nav a{margin-right:1em}
"""

_CHECK = """<script>
window.addEventListener('load', function () {
  var imgs = document.images, broken = 0;
  for (var i = 0; i < imgs.length; i++) { if (!imgs[i].complete || imgs[i].naturalWidth === 0) broken++; }
  document.body.setAttribute('data-images', String(imgs.length));
  document.body.setAttribute('data-broken-images', String(broken));
});
</script>"""


class _Images:
    """Turns PNG bytes into an ``src``: a data URI, or a file beside the report."""

    def __init__(self, embed: bool, folder: Path) -> None:
        self.embed, self.folder, self.count = embed, folder, 0

    def src(self, name: str, data: bytes) -> str:
        self.count += 1
        if self.embed:
            return "data:image/png;base64," + base64.b64encode(data).decode("ascii")
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name)
        path = self.folder / f"{self.count:05d}_{safe}.png"
        atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))
        return f"{self.folder.name}/{path.name}"


def _e(s: object) -> str:
    return html.escape(str(s), quote=True)


def _slug(name: str) -> str:
    return "ds-" + re.sub(r"[^A-Za-z0-9_-]+", "-", name)


def _means_table(rows: list[MethodRow], metrics: list[str], threshold: float) -> str:
    metrics = [m for m in metrics if m != ARTEFACT]
    head = "".join(f"<th>{_e(m)} {'↑' if HIGHER_IS_BETTER.get(m, True) else '↓'}</th>" for m in metrics)
    out = [f"<table class='means'><thead><tr><th>method</th><th>pairs</th>{head}<th>{ARTEFACT}</th>"
           "<th>mean rank</th><th>wins</th></tr></thead><tbody>"]
    for r in rows:
        cls = "" if r.ranked else " class='unranked'"
        cells = [f"<td>{_e(r.method)}</td><td>{r.n}/{r.total}</td>"]
        for m in metrics:
            rank = r.ranks.get(m)
            text = fmt(r.values.get(m)) + (f" ({rank})" if rank else "")
            cells.append(f"<td class='best'>{_e(text)}</td>" if r.is_best(m) else f"<td>{_e(text)}</td>")
        hfr = fmt(r.values.get(ARTEFACT))
        cells.append(f"<td class='flag' title='above {threshold:g}'>{hfr} ⚠</td>" if r.flagged else f"<td>{hfr}</td>")
        cells.append(f"<td>{fmt(r.mean_rank, 1) if r.ranked else '–'}</td><td>{r.wins if r.ranked else '–'}</td>")
        out.append(f"<tr{cls}>{''.join(cells)}</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _speed_table(res: BenchResult) -> str:
    if not res.speed:
        return "<p class='note'>No built-in method was timed.</p>"
    out = ["<table><thead><tr><th>method</th><th>images</th><th>megapixels</th><th>ms / MP (median)</th>"
           "<th>ms / MP (mean)</th><th>peak RSS MiB</th><th>threads</th><th>device</th></tr></thead><tbody>"]
    for r in res.speed:
        dev = r.device + (f" (CUDA peak {r.cuda_peak_mib:.0f} MiB)" if r.cuda_peak_mib is not None else "")
        out.append(f"<tr><td>{_e(r.method)}</td><td>{r.images}</td><td>{r.megapixels:.2f}</td>"
                   f"<td>{r.median_ms_per_mp:.0f}</td><td>{r.mean_ms_per_mp:.0f}</td><td>{r.peak_rss_mib:.0f}</td>"
                   f"<td>{_e(r.threads)}</td><td>{_e(dev)}</td></tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _grid(res: BenchResult, ds, methods: list[str], images: _Images) -> str:
    n = len(ds.pairs) if res.config.grid_pairs <= 0 else min(res.config.grid_pairs, len(ds.pairs))
    ir_role, vi_role = ds.roles
    head = "".join(f"<th>{_e(m)}</th>" for m in methods)
    out = [f"<div class='scroll'><table class='grid'><thead><tr><th>pair</th><th>{ir_role}</th><th>{vi_role}</th>{head}</tr></thead><tbody>"]
    for p in ds.pairs[:n]:
        cells = [f"<td>{_e(p.stem)}</td>"]
        for role, path in ((ir_role, p.ir), (vi_role, p.vi)):
            data = png_bytes(thumbnail(display_image(path), THUMB_WIDTH))
            cells.append(f"<td><img alt='{_e(role)} {_e(p.stem)}' src='{images.src(f'{ds.name}_{p.stem}_{role}', data)}'></td>")
        for m in methods:
            f = res.fused.get((ds.name, p.stem, m))
            if f is None:
                cells.append("<td>–</td>")
                continue
            data = png_bytes(thumbnail(display_image(f), THUMB_WIDTH))
            cells.append(f"<td><img alt='{_e(m)} {_e(p.stem)}' src='{images.src(f'{ds.name}_{p.stem}_{m}', data)}'></td>")
        out.append(f"<tr>{''.join(cells)}</tr>")
    out.append("</tbody></table></div>")
    if n < len(ds.pairs):
        out.append(f"<p class='note'>First {n} of {len(ds.pairs)} pairs (--grid-pairs).</p>")
    return "".join(out)


def _crops(res: BenchResult, ds, methods: list[str], images: _Images) -> str:
    out = []
    shown = 0
    for p in ds.pairs:
        if shown >= res.config.crop_pairs:
            break
        have = [m for m in methods if (ds.name, p.stem, m) in res.fused]
        if not have:
            continue
        shown += 1
        fused = {m: display_image(res.fused[(ds.name, p.stem, m)]) for m in have}
        box = choose_crop([read_metric_image(res.fused[(ds.name, p.stem, m)]) for m in have], res.config.crop_size)
        y, x, h, w = box
        out.append(f"<h4>{_e(p.stem)}: pixels ({x}, {y}) to ({x + w}, {y + h}), 1:1 shown at 2x</h4><div class='crops'>")
        tiles = [(ds.roles[0], display_image(p.ir)), (ds.roles[1], display_image(p.vi))] + list(fused.items())
        for label, arr in tiles:
            data = png_bytes(crop(arr, box))
            src = images.src(f"crop_{ds.name}_{p.stem}_{label}", data)
            out.append(f"<figure><img alt='{_e(label)} crop' width='{2 * w}' height='{2 * h}' src='{src}'>"
                       f"<figcaption>{_e(label)}</figcaption></figure>")
        out.append("</div>")
    return "".join(out)


def _dataset_section(res: BenchResult, ds, colors: dict, images: _Images) -> str:
    rows = res.tables[ds.name]
    methods = [r.method for r in rows]
    cfg = res.config
    parts = [f"<section id='{_slug(ds.name)}'><h2>{_e(ds.name)}</h2>",
             f"<p class='note'>{len(ds.pairs)} pairs, {'infrared-visible' if ds.kind == 'ivf' else 'medical (other = CT/PET/SPECT in the infrared role, MRI in the visible role)'}; "
             f"<code>{_e(ds.display_root)}</code></p>",
             _means_table(rows, res.metrics, cfg.hfr_threshold)]
    if methods:
        chart = metric_bars(methods, {r.method: r.values for r in rows}, [*res.metrics, ARTEFACT], colors,
                            unranked={r.method for r in rows if not r.ranked},
                            reference_lines={ARTEFACT: (1.0, cfg.hfr_threshold)}, title=ds.name)
        parts.append(f"<h3>Means per metric</h3><p class='note'>Hatched: not ranked. Axes do not start at zero. "
                     f"Dashed lines on {ARTEFACT}: 1 (the sources) and the threshold {cfg.hfr_threshold:g}.</p>"
                     f"<img alt='bar charts {_e(ds.name)}' src='{images.src(f'bars_{ds.name}', chart)}'>")
        parts.append("<h3>Images</h3><p class='note'>Every image of a row at the same scale.</p>")
        parts.append(_grid(res, ds, methods, images))
        if cfg.crop_pairs > 0:
            parts.append("<h3>Full-resolution crops</h3><p class='note'>The window where the methods differ most.</p>")
            parts.append(_crops(res, ds, methods, images))
    parts.append("</section>")
    return "".join(parts)


def write_html(res: BenchResult, path: str | Path) -> Path:
    """Write the report for ``res`` to ``path`` (atomically) and return the path."""
    path = Path(path)
    cfg = res.config
    images = _Images(cfg.embed, path.parent / f"{path.stem}_files")
    colors = method_colors([s.label for s in res.methods])
    date = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    nav = "".join(f"<a href='#{_slug(d.name)}'>{_e(d.name)}</a>" for d in res.datasets)
    skipped = "".join(f"<li><b>{_e(k)}</b> {_e(v)}</li>" for k, v in res.skipped.items())
    errors = "".join(f"<li>{_e(e)}</li>" for e in res.errors[:100])
    body = [f"<h1>{_e(cfg.title)}</h1>",
            f"<p class='note'>emma-fusion {__version__}, {date}, {res.seconds:.0f} s; {_e(res.machine)}</p>",
            f"<p>Methods: {', '.join(_e(s.label) for s in res.methods)}. Metrics: {', '.join(res.metrics)}, "
            f"and the artefact measure {ARTEFACT} (high-frequency share of the fused image, finest band over the next, "
            f"divided by the larger of the sources'; above {cfg.hfr_threshold:g}: ⚠, not ranked).</p>",
            f"<nav>{nav}<a href='#speed'>speed</a></nav>"]
    if skipped:
        body.append(f"<p>Not run:</p><ul>{skipped}</ul>")
    body.extend(_dataset_section(res, ds, colors, images) for ds in res.datasets)
    body.append(f"<section id='speed'><h2>Speed</h2><p class='note'>Fusion call per image (no file I/O), "
                f"median milliseconds per megapixel; peak RSS: largest rise in resident memory during one call, in a "
                f"fresh worker process per method.</p>{_speed_table(res)}</section>")
    if errors:
        body.append(f"<section id='errors'><h2>Pairs left out</h2><ul>{errors}</ul></section>")
    doc = (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{_e(cfg.title)}</title>"
           f"<style>{_CSS}</style></head><body>{''.join(body)}{_CHECK}</body></html>\n")
    return atomic_write(path, lambda tmp: Path(tmp).write_text(doc, encoding="utf-8"))
