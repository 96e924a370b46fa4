"""``run_bench``: datasets x methods -> fused images (cached), metric values (cached), tables, report."""

from __future__ import annotations

import json
import logging
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from PIL import Image

from .. import __version__
from ..errors import EmmaError
from ..io import atomic_write, list_images
from ..metrics import resolve_names
from .cache import BenchCache, FileHasher, digest
from .datasets import Dataset, discover_datasets
from .fusion import FuseJob, describe_cpu, fuse_jobs
from .methods import MethodSpec, build_method_specs, code_hash, find_results_dir
from .scoring import ARTEFACT, ScoreJob, score_jobs
from .tables import (DEFAULT_HFR_THRESHOLD, MethodRow, SpeedRow, means_csv, per_image_csv, rank_dataset,
                     speed_csv, speed_rows)

__all__ = ["BENCH_METRICS", "BenchConfig", "BenchResult", "run_bench"]

log = logging.getLogger(__name__)

#: Metrics of the default benchmark: EMMA's six (EN, SD, SF, AG, SCD, VIF) plus Qabf, SSIM, MI.
BENCH_METRICS = ("EN", "SD", "SF", "AG", "SCD", "VIF", "Qabf", "SSIM", "MI", "TCR")

_FUSE_V = "bench-fuse-v1"
_SCORE_V = "bench-metrics-v1"


@dataclass
class BenchConfig:
    """Everything ``emma bench`` takes (see docs/BENCH.md)."""

    data: list[Path]
    out: Path
    methods: list[str] | None = None
    weights: list[str] = field(default_factory=list)
    results: list[str] = field(default_factory=list)
    metrics: list[str] | None = None
    split: str | None = None
    limit: int | None = None
    normalize: str = "minmax"
    jobs: int | None = None
    threads: int | None = None
    device: str = "cpu"
    cache: Path | None = None
    isolate: bool = True
    html: bool = True
    embed: bool = True
    grid_pairs: int = 8
    crop_pairs: int = 3
    crop_size: int = 128
    hfr_threshold: float = DEFAULT_HFR_THRESHOLD
    report_md: Path | None = None
    title: str = "Fusion benchmark"
    progress: bool = True


@dataclass
class BenchResult:
    """What a run produced. Keys of ``fused``/``values`` are (dataset, stem, method label)."""

    config: BenchConfig
    datasets: list[Dataset]
    methods: list[MethodSpec]
    skipped: dict[str, str]
    metrics: list[str]
    fused: dict[tuple[str, str, str], Path] = field(default_factory=dict)
    values: dict[tuple[str, str, str], dict[str, float]] = field(default_factory=dict)
    fuse_records: dict[str, list[dict]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    tables: dict[str, list[MethodRow]] = field(default_factory=dict)
    speed: list[SpeedRow] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)
    machine: str = ""
    seconds: float = 0.0

    @property
    def names(self) -> list[str]:
        """Metric names plus the artefact measure, in table order."""
        return [*self.metrics, ARTEFACT]

    def methods_on(self, dataset: str) -> list[str]:
        """Labels of the methods that have at least one fused image of ``dataset``, in run order."""
        have = {m for (d, _, m) in self.values if d == dataset}
        return [s.label for s in self.methods if s.label in have]


def _datasets(cfg: BenchConfig) -> list[Dataset]:
    found: list[Dataset] = []
    for d in cfg.data:
        found.extend(discover_datasets(d, cfg.split, exclude=(cfg.out,)))
    names = [d.name for d in found]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise EmmaError(f"dataset name(s) {', '.join(dupes)} found in more than one --data folder")
    if cfg.limit is not None and cfg.limit < 1:
        raise EmmaError("--limit must be at least 1")
    return [d.limited(cfg.limit) for d in found]


def _fuse_builtins(res: BenchResult, cache: BenchCache, sha: FileHasher) -> None:
    cfg = res.config
    for spec in (s for s in res.methods if s.builtin):
        jobs: list[FuseJob] = []
        records: list[dict] = []
        keys: dict[str, list[tuple[str, str]]] = {}  # identical pairs share a key and are fused once
        for ds in res.datasets:
            for p in ds.pairs:
                key = digest(_FUSE_V, sha(p.ir), sha(p.vi), spec.config_hash)
                keys.setdefault(key, []).append((ds.name, p.stem))
                info = cache.load_fused_info(key) if cache.fused_png(key).is_file() else None
                if info is not None and "seconds" in info:
                    records.append(info)
                    res.fused[(ds.name, p.stem, spec.label)] = cache.fused_png(key)
                    res.counts["fused_cached"] += 1
                elif len(keys[key]) == 1:
                    with Image.open(p.ir) as im:
                        pixels = im.width * im.height
                    jobs.append(FuseJob(key, ds.name, p.stem, str(p.ir), str(p.vi), pixels))
        if jobs:
            log.info("%s: fusing %d pair(s)", spec.label, len(jobs))
        done = fuse_jobs(spec, jobs, cache, cfg.normalize, cfg.threads, cfg.isolate, cfg.progress)
        for key, rec in done.items():
            if "error" in rec:
                res.errors.append(f"{spec.label}: {rec['error']}")
                continue
            records.append(rec)
            for ds_name, stem in keys[key]:
                res.fused[(ds_name, stem, spec.label)] = cache.fused_png(key)
            res.counts["fused_new"] += 1
        res.fuse_records[spec.label] = records


def _collect_folders(res: BenchResult) -> None:
    cfg = res.config
    for spec in (s for s in res.methods if not s.builtin):
        for ds in res.datasets:
            folder = find_results_dir(spec.folder, ds.name)
            if folder is None:
                continue
            files = list_images(folder)
            hits = [p for p in ds.pairs if p.stem in files]
            if not hits and cfg.limit is None:
                log.warning("%s: %s has no image named like a pair of %s", spec.label, folder, ds.name)
            for p in hits:
                res.fused[(ds.name, p.stem, spec.label)] = files[p.stem]


def _score(res: BenchResult, cache: BenchCache, sha: FileHasher) -> None:
    names = res.names
    mcode = code_hash(("emma_fusion.metrics", "emma_fusion.bench.scoring"))
    pairs = {(ds.name, p.stem): p for ds in res.datasets for p in ds.pairs}
    key_of: dict[tuple[str, str, str], str] = {}
    jobs: dict[str, ScoreJob] = {}
    for item, fused in res.fused.items():
        p = pairs[item[:2]]
        key = digest(_SCORE_V, sha(fused), sha(p.ir), sha(p.vi), mcode)
        key_of[item] = key
        missing = tuple(n for n in names if n not in cache.load_metrics(key))
        if not missing:
            res.counts["scored_cached"] += 1
        elif key in jobs:
            res.counts["scored_cached"] += 1  # the same file content is scored once
        else:
            jobs[key] = ScoreJob(key, f"{item[2]} on {item[0]}/{item[1]}", str(fused), str(p.ir), str(p.vi), missing)
    res.counts["scored_new"] = len(jobs)

    def save(key: str, out) -> None:
        if isinstance(out, dict):
            cache.save_metrics(key, out)

    results = score_jobs(list(jobs.values()), _metric_workers(res.config), res.config.progress, on_result=save)
    failed = {k: v for k, v in results.items() if isinstance(v, str)}
    res.errors.extend(failed.values())
    for item, key in key_of.items():
        if key in failed:
            res.fused.pop(item, None)
            continue
        vals = cache.load_metrics(key)
        res.values[item] = {n: vals.get(n, float("nan")) for n in names}


def _metric_workers(cfg: BenchConfig) -> int:
    """Metric worker processes: ``--jobs`` or the CPU count."""
    return max(1, cfg.jobs or os.cpu_count() or 1)


def _tables(res: BenchResult) -> None:
    kinds = {s.label: s.kind for s in res.methods}
    for ds in res.datasets:
        per_method: dict[str, dict[str, dict[str, float]]] = {}
        for label in res.methods_on(ds.name):
            per_method[label] = {p.stem: res.values[(ds.name, p.stem, label)]
                                 for p in ds.pairs if (ds.name, p.stem, label) in res.values}
        res.tables[ds.name] = rank_dataset(len(ds.pairs), per_method, kinds, res.metrics, res.config.hfr_threshold)
    res.speed = speed_rows({k: v for k, v in res.fuse_records.items() if v})


def _write_text(path: Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def _write_outputs(res: BenchResult) -> None:
    from .markdown import bench_markdown

    out = res.config.out
    kinds = {s.label: s.kind for s in res.methods}
    recs = [(ds.name, p.stem, m, kinds[m], res.values[(ds.name, p.stem, m)])
            for ds in res.datasets for p in ds.pairs for m in res.methods_on(ds.name)
            if (ds.name, p.stem, m) in res.values]
    res.files["per_image.csv"] = _write_text(out / "per_image.csv", per_image_csv(recs, res.names))
    res.files["means.csv"] = _write_text(out / "means.csv", means_csv(res.tables, res.names))
    res.files["speed.csv"] = _write_text(out / "speed.csv", speed_csv(res.speed))
    res.files["report.md"] = _write_text(out / "report.md", bench_markdown(res, figures_dir=None))
    summary = {
        "emma_fusion_version": __version__, "machine": res.machine, "seconds": res.seconds,
        "datasets": {d.name: {"root": str(d.root), "kind": d.kind, "pairs": len(d.pairs)} for d in res.datasets},
        "methods": [{"label": s.label, "kind": s.kind, "method": s.method, "config_hash": s.config_hash,
                     "folder": str(s.folder) if s.folder else None} for s in res.methods],
        "skipped": res.skipped, "metrics": res.metrics, "counts": res.counts, "errors": res.errors,
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(res.config).items()
                   if k not in ("data",)} | {"data": [str(d) for d in res.config.data]},
    }
    res.files["summary.json"] = _write_text(out / "summary.json", json.dumps(summary, indent=1, default=str) + "\n")
    if res.config.html:
        from .report import write_html

        res.files["report.html"] = write_html(res, out / "report.html")
    if res.config.report_md is not None:
        md = Path(res.config.report_md)
        res.files["report_md"] = _write_text(md, bench_markdown(res, figures_dir=md.parent / f"{md.stem}_files"))


def run_bench(cfg: BenchConfig) -> BenchResult:
    """Benchmark every method on every dataset found; write tables and the report to ``cfg.out``.

    Fused images and metric values come from the cache when their inputs and configuration are
    unchanged; only new work is done (``result.counts`` says how much). Pairs that fail (a results
    file of the wrong size, an unreadable image) are listed in ``result.errors`` and left out.
    """
    t0 = time.perf_counter()
    cfg.out = Path(cfg.out)
    datasets = _datasets(cfg)
    emma_opts = {"device": cfg.device} if cfg.device != "cpu" else {}
    specs, skipped = build_method_specs(cfg.methods, cfg.weights, cfg.results, cfg.normalize, emma_opts)
    for label, why in skipped.items():
        log.info("%s %s", label, why)
    metrics = [m for m in resolve_names(cfg.metrics or list(BENCH_METRICS)) if m != ARTEFACT]
    res = BenchResult(cfg, datasets, specs, skipped, metrics, machine=f"{describe_cpu()}; {platform.platform()}")
    res.counts = {"fused_new": 0, "fused_cached": 0, "scored_new": 0, "scored_cached": 0}
    cache = BenchCache(cfg.cache or cfg.out / "cache")
    sha = FileHasher()
    _fuse_builtins(res, cache, sha)
    _collect_folders(res)
    if not res.fused:
        raise EmmaError("no fused image to score: " + ("; ".join(res.errors[:3]) or "no method covers these datasets"))
    _score(res, cache, sha)
    _tables(res)
    res.seconds = time.perf_counter() - t0
    _write_outputs(res)
    return res
