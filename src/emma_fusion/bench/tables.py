"""Benchmark tables: per-dataset means, ranks and the best value per metric; speed; CSV and Markdown.

Ranking rules (documented in docs/BENCH.md):

* a method is *ranked* on a dataset when it has a fused image for every pair (means over different
  subsets are not comparable) and its artefact measure ``HFR`` is at most the threshold (a method
  whose high-frequency energy is far above the sources' does not count as winning);
* per metric, rank 1 is the best mean among ranked methods (direction from
  :data:`emma_fusion.metrics.HIGHER_IS_BETTER`); ties share the better rank (1, 1, 3);
* ``mean rank`` averages a method's ranks over the metrics; ``wins`` counts its rank-1 metrics.
"""

from __future__ import annotations

import csv
import io
import math
import statistics
from dataclasses import dataclass, field
from typing import Iterable, Mapping

from ..metrics import HIGHER_IS_BETTER, dataset_mean
from .scoring import ARTEFACT

__all__ = ["MethodRow", "SpeedRow", "rank_dataset", "speed_rows", "fmt", "means_markdown", "speed_markdown",
           "per_image_csv", "means_csv", "speed_csv", "DEFAULT_HFR_THRESHOLD"]

#: Default HFR above which a method is flagged and not ranked.
DEFAULT_HFR_THRESHOLD = 1.5


@dataclass
class MethodRow:
    """One method's line in one dataset's table."""

    method: str
    kind: str
    n: int
    total: int
    values: dict[str, float]
    excluded: dict[str, int] = field(default_factory=dict)
    ranks: dict[str, int] = field(default_factory=dict)
    ranked: bool = False
    flagged: bool = False

    @property
    def complete(self) -> bool:
        return self.n == self.total

    @property
    def mean_rank(self) -> float:
        return statistics.fmean(self.ranks.values()) if self.ranks else float("nan")

    @property
    def wins(self) -> int:
        return sum(1 for r in self.ranks.values() if r == 1)

    def is_best(self, metric: str) -> bool:
        return self.ranks.get(metric) == 1


def rank_dataset(
    total: int,
    per_method: Mapping[str, Mapping[str, Mapping[str, float]]],
    kinds: Mapping[str, str],
    metrics: Iterable[str],
    hfr_threshold: float = DEFAULT_HFR_THRESHOLD,
) -> list[MethodRow]:
    """Rows of one dataset: means over each method's images, then ranks among eligible methods.

    Args:
        total: number of pairs in the dataset.
        per_method: method -> image stem -> {metric: value} (``HFR`` included when measured).
        kinds: method -> ``"builtin"`` or ``"folder"``.
        metrics: the ranked metrics, in table order (``HFR`` is never ranked).
        hfr_threshold: mean HFR above which a method is flagged and left unranked.
    """
    metrics = [m for m in metrics if m != ARTEFACT]
    rows = []
    for method, images in per_method.items():
        names = list(dict.fromkeys(k for v in images.values() for k in v))
        mean, excluded = dataset_mean(images, names) if images else ({}, {})
        row = MethodRow(method, kinds.get(method, ""), len(images), total, dict(mean), dict(excluded))
        row.flagged = mean.get(ARTEFACT, 0.0) > hfr_threshold
        row.ranked = row.complete and not row.flagged and row.n > 0
        rows.append(row)
    for m in metrics:
        higher = HIGHER_IS_BETTER.get(m, True)
        vals = [(r, r.values.get(m, math.nan)) for r in rows if r.ranked]
        vals = [(r, v) for r, v in vals if math.isfinite(v)]
        for r, v in vals:
            better = sum(1 for _, w in vals if (w > v if higher else w < v))
            r.ranks[m] = 1 + better
    return rows


@dataclass
class SpeedRow:
    """Speed of one built-in method over the images it fused (from the cache records)."""

    method: str
    images: int
    megapixels: float
    median_ms_per_mp: float
    mean_ms_per_mp: float
    peak_rss_mib: float
    threads: str
    device: str
    cuda_peak_mib: float | None = None


def speed_rows(records: Mapping[str, list[dict]]) -> list[SpeedRow]:
    """method -> list of fuse records (``seconds``, ``height``, ``width``, ``peak_rss_bytes``...)."""
    rows = []
    for method, recs in records.items():
        recs = [r for r in recs if "seconds" in r]
        if not recs:
            continue
        per_mp = [r["seconds"] * 1000.0 / (r["height"] * r["width"] / 1e6) for r in recs]
        cuda = [r["cuda_peak_bytes"] for r in recs if "cuda_peak_bytes" in r]
        rows.append(SpeedRow(
            method, len(recs), sum(r["height"] * r["width"] for r in recs) / 1e6,
            statistics.median(per_mp), statistics.fmean(per_mp),
            max(r.get("peak_rss_bytes", 0) for r in recs) / 2**20,
            ",".join(sorted({str(r.get("threads", "?")) for r in recs})),
            ",".join(sorted({str(r.get("device", "cpu")) for r in recs})),
            max(cuda) / 2**20 if cuda else None,
        ))
    return rows


def fmt(v: float | None, digits: int = 2) -> str:
    """A table value: fixed decimals, ``–`` for missing/NaN."""
    if v is None or not math.isfinite(v):
        return "–"
    return f"{v:.{digits}f}"


def _arrow(m: str) -> str:
    return "↑" if HIGHER_IS_BETTER.get(m, True) else "↓"


def means_markdown(rows: list[MethodRow], metrics: list[str], hfr_threshold: float = DEFAULT_HFR_THRESHOLD) -> str:
    """A Markdown table of one dataset: value (rank) per metric, best in bold, HFR, mean rank, wins."""
    metrics = [m for m in metrics if m != ARTEFACT]
    head = ["Method", *(f"{m} {_arrow(m)}" for m in metrics), ARTEFACT, "mean rank", "wins"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join([":--"] + ["--:"] * (len(head) - 1)) + "|"]
    for r in rows:
        label = r.method if r.complete else f"{r.method} ({r.n}/{r.total})"
        cells = [label]
        for m in metrics:
            v = fmt(r.values.get(m))
            rank = r.ranks.get(m)
            cell = f"{v} ({rank})" if rank else v
            cells.append(f"**{cell}**" if r.is_best(m) else cell)
        h = fmt(r.values.get(ARTEFACT))
        cells.append(f"{h} ⚠" if r.flagged else h)
        cells.append(fmt(r.mean_rank, 1) if r.ranked else "–")
        cells.append(str(r.wins) if r.ranked else "–")
        lines.append("| " + " | ".join(cells) + " |")
    notes = []
    partial = [r.method for r in rows if not r.complete]
    flagged = [r.method for r in rows if r.flagged]
    if partial:
        notes.append(f"not ranked, fused images for only some pairs: {', '.join(partial)}")
    if flagged:
        notes.append(f"not ranked, {ARTEFACT} above {hfr_threshold:g} (artefacts): {', '.join(flagged)}")
    if notes:
        lines.append("")
        lines.extend(f"- {n}" for n in notes)
    return "\n".join(lines) + "\n"


def speed_markdown(rows: list[SpeedRow]) -> str:
    """A Markdown speed table (median ms per megapixel, peak extra RSS)."""
    lines = ["| Method | images | ms / MP (median) | ms / MP (mean) | peak RSS MiB | threads | device |",
             "|:--|--:|--:|--:|--:|--:|:--|"]
    for r in rows:
        dev = r.device + (f" (CUDA peak {r.cuda_peak_mib:.0f} MiB)" if r.cuda_peak_mib is not None else "")
        lines.append(f"| {r.method} | {r.images} | {r.median_ms_per_mp:.0f} | {r.mean_ms_per_mp:.0f} | "
                     f"{r.peak_rss_mib:.0f} | {r.threads} | {dev} |")
    return "\n".join(lines) + "\n"


def _csv(rows: list[list]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


def _num(v: float | None) -> str:
    return "" if v is None else repr(float(v))


def per_image_csv(records: Iterable[tuple[str, str, str, str, Mapping[str, float]]], names: list[str]) -> str:
    """CSV text: dataset, image, method, kind, then one column per name; records are (ds, image, method, kind, values)."""
    rows = [["dataset", "image", "method", "kind", *names]]
    rows.extend([ds, img, m, k, *(_num(v.get(n)) for n in names)] for ds, img, m, k, v in records)
    return _csv(rows)


def means_csv(tables: Mapping[str, list[MethodRow]], metrics: list[str]) -> str:
    """CSV text of every dataset's rows: means, HFR, ranks, mean rank, wins."""
    ranked = [m for m in metrics if m != ARTEFACT]
    head = ["dataset", "method", "kind", "n", "total", "ranked", "flagged", *ranked, ARTEFACT,
            *(f"rank_{m}" for m in ranked), "mean_rank", "wins"]
    rows = [head]
    for ds, trows in tables.items():
        for r in trows:
            rows.append([ds, r.method, r.kind, r.n, r.total, int(r.ranked), int(r.flagged),
                         *(_num(r.values.get(m)) for m in ranked), _num(r.values.get(ARTEFACT)),
                         *(r.ranks.get(m, "") for m in ranked),
                         "" if not r.ranked else repr(r.mean_rank), r.wins if r.ranked else ""])
    return _csv(rows)


def speed_csv(rows: list[SpeedRow]) -> str:
    """CSV text of the speed table."""
    out = [["method", "images", "megapixels", "median_ms_per_mp", "mean_ms_per_mp", "peak_rss_mib", "threads",
            "device", "cuda_peak_mib"]]
    out.extend([r.method, r.images, repr(r.megapixels), repr(r.median_ms_per_mp), repr(r.mean_ms_per_mp),
                repr(r.peak_rss_mib), r.threads, r.device, "" if r.cuda_peak_mib is None else repr(r.cuda_peak_mib)]
               for r in rows)
    return _csv(out)
