"""``run_bench``: datasets x methods -> fused images (cached), metric values (cached), tables, report.

Each step takes what the steps before it returned and returns what it produced; :func:`run_bench`
puts the pieces into one :class:`~.result.BenchResult` for the report writers.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import time
from dataclasses import asdict, replace
from pathlib import Path

from PIL import Image

from .. import __version__
from ..errors import EmmaError
from ..io import atomic_write, ensure_writable_dir, list_images
from ..metrics import resolve_names
from .cache import BenchCache, FileHasher, digest
from .code import code_hash
from .datasets import Dataset, discover_datasets
from .fusion import FuseJob, describe_cpu, fuse_jobs
from .markdown import bench_markdown
from .methods import MethodSpec, build_method_specs, find_results_dir
from .report import write_html
from .result import BenchConfig, BenchResult
from .scoring import ARTEFACT, ScoreJob, score_jobs
from .tables import MethodRow, means_csv, per_image_csv, rank_dataset, speed_csv, speed_rows

__all__ = ["BENCH_METRICS", "run_bench"]

log = logging.getLogger(__name__)

#: Metrics of the default benchmark: EMMA's six (EN, SD, SF, AG, SCD, VIF) plus Qabf, SSIM, MI.
BENCH_METRICS = ("EN", "SD", "SF", "AG", "SCD", "VIF", "Qabf", "SSIM", "MI", "TCR", "SKY")

_FUSE_V = "bench-fuse-v1"
_SCORE_V = "bench-metrics-v1"

Item = tuple[str, str, str]  # (dataset, stem, method label)


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


def _fuse_builtins(cfg: BenchConfig, specs: list[MethodSpec], datasets: list[Dataset], cache: BenchCache,
                   sha: FileHasher) -> tuple[dict[Item, Path], dict[str, list[dict]], list[str], dict[str, int]]:
    """Fuse every pair with every built-in method, or find it in the cache.

    Returns ``(fused, records, errors, counts)``: item -> cached PNG; method label -> fuse records
    (timing, memory); one message per pair that failed; ``fused_new`` and ``fused_cached``.
    """
    fused: dict[Item, Path] = {}
    records: dict[str, list[dict]] = {}
    errors: list[str] = []
    counts = {"fused_new": 0, "fused_cached": 0}
    for spec in (s for s in specs if s.builtin):
        jobs: list[FuseJob] = []
        records[spec.label] = []
        keys: dict[str, list[tuple[str, str]]] = {}  # identical pairs share a key and are fused once
        for ds in datasets:
            for p in ds.pairs:
                key = digest(_FUSE_V, sha(p.ir), sha(p.vi), spec.config_hash)
                keys.setdefault(key, []).append((ds.name, p.stem))
                info = cache.load_fused_info(key) if cache.fused_png(key).is_file() else None
                if info is not None and "seconds" in info:
                    records[spec.label].append(info)
                    fused[(ds.name, p.stem, spec.label)] = cache.fused_png(key)
                    counts["fused_cached"] += 1
                elif len(keys[key]) == 1:
                    with Image.open(p.ir) as im:
                        pixels = im.width * im.height
                    jobs.append(FuseJob(key, ds.name, p.stem, str(p.ir), str(p.vi), pixels))
        if jobs:
            log.info("%s: fusing %d pair(s)", spec.label, len(jobs))
        done = fuse_jobs(spec, jobs, cache, cfg.normalize, cfg.threads, cfg.isolate, cfg.progress)
        for key, rec in done.items():
            if "error" in rec:
                errors.append(f"{spec.label}: {rec['error']}")
                continue
            records[spec.label].append(rec)
            for ds_name, stem in keys[key]:
                fused[(ds_name, stem, spec.label)] = cache.fused_png(key)
            counts["fused_new"] += 1
    return fused, records, errors, counts


def _collect_folders(cfg: BenchConfig, specs: list[MethodSpec], datasets: list[Dataset]) -> dict[Item, Path]:
    """item -> fused file, for the methods whose fused images are folders made elsewhere."""
    fused: dict[Item, Path] = {}
    for spec in (s for s in specs if not s.builtin):
        used: set[Path] = set()
        for ds in datasets:
            folder = find_results_dir(spec.folder, ds.name)
            if folder is None:
                continue
            used.add(folder)
            files = list_images(folder)
            hits = [p for p in ds.pairs if p.stem in files]
            if not hits and cfg.limit is None:
                log.warning("%s: %s has no image named like a pair of %s", spec.label, folder, ds.name)
            for p in hits:
                fused[(ds.name, p.stem, spec.label)] = files[p.stem]
        unused = _unused_result_folders(spec.folder, used)
        if unused:
            log.warning("%s: results folder(s) %s matched no dataset benchmarked (%s); a results folder is "
                        "<Method>/<Dataset>/ with the dataset's name", spec.label,
                        ", ".join(str(u.relative_to(spec.folder)) for u in unused), ", ".join(d.name for d in datasets))
    return fused


def _unused_result_folders(method_dir: Path, used: set[Path]) -> list[Path]:
    """The folders of images under ``method_dir`` that no dataset took (none inside a used one)."""
    unused = []
    for dirpath, dirnames, _ in os.walk(method_dir):
        here = Path(dirpath)
        if here in used:
            dirnames[:] = []
            continue
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        if here != method_dir and list_images(here):
            unused.append(here)
    return unused


def _score(cfg: BenchConfig, fused: dict[Item, Path], datasets: list[Dataset], names: list[str], cache: BenchCache,
           sha: FileHasher) -> tuple[dict[Item, dict[str, float]], list[str], dict[str, int]]:
    """Score every fused file for ``names``, or find the values in the cache.

    Returns ``(values, errors, counts)``: item -> {name: value} for the files that could be scored
    (NaN for a value not computed); one message per file that could not; ``scored_new`` and
    ``scored_cached``.
    """
    mcode = code_hash(("emma_fusion.bench.scoring",))
    pairs = {(ds.name, p.stem): p for ds in datasets for p in ds.pairs}
    key_of: dict[Item, str] = {}
    jobs: dict[str, ScoreJob] = {}
    cached = 0
    for item, path in fused.items():
        p = pairs[item[:2]]
        key = digest(_SCORE_V, sha(path), sha(p.ir), sha(p.vi), mcode)
        key_of[item] = key
        missing = tuple(n for n in names if n not in cache.load_metrics(key))
        if not missing or key in jobs:  # cached, or the same file content is scored once
            cached += 1
        else:
            jobs[key] = ScoreJob(key, f"{item[2]} on {item[0]}/{item[1]}", str(path), str(p.ir), str(p.vi), missing)

    def save(key: str, out) -> None:
        if isinstance(out, dict):
            cache.save_metrics(key, out)

    results = score_jobs(list(jobs.values()), _metric_workers(cfg), cfg.progress, on_result=save)
    failed = {k: v for k, v in results.items() if isinstance(v, str)}
    values = {}
    for item, key in key_of.items():
        if key not in failed:
            vals = cache.load_metrics(key)
            values[item] = {n: vals.get(n, float("nan")) for n in names}
    return values, list(failed.values()), {"scored_new": len(jobs), "scored_cached": cached}


def _metric_workers(cfg: BenchConfig) -> int:
    """Metric worker processes: ``--jobs`` or the CPU count."""
    return max(1, cfg.jobs or os.cpu_count() or 1)


def _tables(res: BenchResult) -> dict[str, list[MethodRow]]:
    """Dataset name -> one ranked row per method that has values on it."""
    kinds = {s.label: s.kind for s in res.methods}
    tables = {}
    for ds in res.datasets:
        per_method: dict[str, dict[str, dict[str, float]]] = {}
        for label in res.methods_on(ds.name):
            per_method[label] = {p.stem: res.values[(ds.name, p.stem, label)]
                                 for p in ds.pairs if (ds.name, p.stem, label) in res.values}
        tables[ds.name] = rank_dataset(len(ds.pairs), per_method, kinds, res.metrics, res.config.hfr_threshold)
    return tables


def _write_text(path: Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def _write_outputs(res: BenchResult) -> dict[str, Path]:
    """Write the tables, the summary and the reports into ``res.config.out``; name -> file written."""
    out = res.config.out
    files: dict[str, Path] = {}
    kinds = {s.label: s.kind for s in res.methods}
    recs = [(ds.name, p.stem, m, kinds[m], res.values[(ds.name, p.stem, m)])
            for ds in res.datasets for p in ds.pairs for m in res.methods_on(ds.name)
            if (ds.name, p.stem, m) in res.values]
    files["per_image.csv"] = _write_text(out / "per_image.csv", per_image_csv(recs, res.names))
    files["means.csv"] = _write_text(out / "means.csv", means_csv(res.tables, res.names))
    files["speed.csv"] = _write_text(out / "speed.csv", speed_csv(res.speed))
    files["report.md"] = _write_text(out / "report.md", bench_markdown(res, figures_dir=None))
    summary = {
        "emma_fusion_version": __version__, "machine": res.machine, "seconds": res.seconds,
        "datasets": {d.name: {"root": str(d.root), "kind": d.kind, "pairs": len(d.pairs)} for d in res.datasets},
        "methods": [{"label": s.label, "kind": s.kind, "method": s.method, "config_hash": s.config_hash,
                     "folder": str(s.folder) if s.folder else None} for s in res.methods],
        "skipped": res.skipped, "metrics": res.metrics, "counts": res.counts, "errors": res.errors,
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(res.config).items()
                   if k not in ("data",)} | {"data": [str(d) for d in res.config.data]},
    }
    files["summary.json"] = _write_text(out / "summary.json", json.dumps(summary, indent=1, default=str) + "\n")
    if res.config.html:
        files["report.html"] = write_html(res, out / "report.html")
    if res.config.report_md is not None:
        md = Path(res.config.report_md)
        files["report_md"] = _write_text(md, bench_markdown(res, figures_dir=md.parent / f"{md.stem}_files"))
    return files


def run_bench(cfg: BenchConfig) -> BenchResult:
    """Benchmark every method on every dataset found; write tables and the report to ``cfg.out``.

    Fused images and metric values come from the cache when their inputs and configuration are
    unchanged; only new work is done (``result.counts`` says how much). Pairs that fail (a results
    file of the wrong size, an unreadable image) are listed in ``result.errors`` and left out.
    """
    t0 = time.perf_counter()
    cfg = replace(cfg, out=Path(cfg.out))
    for folder in (cfg.out, cfg.cache):
        if folder is not None and Path(folder).exists() and not Path(folder).is_dir():
            raise EmmaError(f"{folder} is a file; bench needs a folder there (--out, --cache)")
    if cfg.report_md is not None:  # its folder (and figures beside it) must be writable before any work
        if Path(cfg.report_md).is_dir():
            raise EmmaError(f"--report-md {cfg.report_md} is a folder; give a .md file name")
        ensure_writable_dir(Path(cfg.report_md).parent)
    datasets = _datasets(cfg)
    network_options = {"device": cfg.device} if cfg.device != "cpu" else {}
    specs, skipped = build_method_specs(cfg.methods, cfg.weights, cfg.results, cfg.normalize, network_options)
    for label, why in skipped.items():
        log.info("%s %s", label, why)
    metrics = [m for m in resolve_names(cfg.metrics or list(BENCH_METRICS)) if m != ARTEFACT]
    cache = BenchCache(cfg.cache or cfg.out / "cache")
    sha = FileHasher()
    fused, records, errors, counts = _fuse_builtins(cfg, specs, datasets, cache, sha)
    fused |= _collect_folders(cfg, specs, datasets)
    if not fused:
        raise EmmaError("no fused image to score: " + ("; ".join(errors[:3]) or "no method covers these datasets"))
    values, score_errors, score_counts = _score(cfg, fused, datasets, [*metrics, ARTEFACT], cache, sha)
    res = BenchResult(cfg, datasets, specs, skipped, metrics, fused={k: v for k, v in fused.items() if k in values},
                      values=values, fuse_records=records, errors=errors + score_errors, counts=counts | score_counts,
                      machine=f"{describe_cpu()}; {platform.platform()}")
    res.tables = _tables(res)
    res.speed = speed_rows({k: v for k, v in records.items() if v})
    res.seconds = time.perf_counter() - t0
    res.files = _write_outputs(res)
    return res
