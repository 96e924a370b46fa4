"""``emma bench``: compare fusion methods on datasets; tables, an HTML report and speed."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import List, Optional

import typer

from ..errors import EmmaError
from .common import exit_on_interrupt


class NormalizeMode(str, Enum):
    minmax = "minmax"
    clip = "clip"


def _split_list(text: Optional[str]) -> Optional[list[str]]:
    if text is None:
        return None
    return [t.strip() for t in text.split(",") if t.strip()]


def bench_command(
    data: List[Path] = typer.Option(..., "--data", "-d", help="Dataset folder (ir/+vi/ or mri/+other/), or a parent searched recursively. Repeatable."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder: CSV/Markdown tables, report.html, cache/."),
    methods: Optional[str] = typer.Option(None, "--methods", "-m", help="Built-in methods, comma-separated (default: emma and every classical baseline; 'none': only --results)."),
    weights: Optional[List[str]] = typer.Option(None, "--weights", "-w", help="U-Fuser weights for the emma method; repeatable (one column each)."),
    results: Optional[List[Path]] = typer.Option(None, "--results", "-r", help="Folder of fused results: <DIR>/<Method>/<Dataset>/<stem>.png. Repeatable."),
    metrics: Optional[str] = typer.Option(None, "--metrics", help="Metrics, comma-separated, or a group (emma, cddfuse, all). Default: EN,SD,SF,AG,SCD,VIF,Qabf,SSIM,MI,TCR,SKY."),
    split: Optional[str] = typer.Option(None, "--split", help="Only datasets of this split, e.g. test (datasets in no split folder count as test)."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Only the first N pairs of each dataset."),
    jobs: Optional[int] = typer.Option(None, "--jobs", "-j", help="Processes for the metrics (default: CPU count)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads of the fusion worker (torch and OpenCV)."),
    device: str = typer.Option("cpu", "--device", help="Device for the network: cpu or cuda."),
    normalize: NormalizeMode = typer.Option(NormalizeMode.minmax, "--normalize", help="Output scaling of built-in methods before saving (minmax: the field's convention)."),
    cache: Optional[Path] = typer.Option(None, "--cache", help="Cache folder (default OUT/cache); share it between runs."),
    isolate: bool = typer.Option(True, "--isolate/--no-isolate", help="Fuse in a fresh worker process per method (memory figures, crash isolation)."),
    html: bool = typer.Option(True, "--html/--no-html", help="Write report.html."),
    embed: bool = typer.Option(True, "--embed/--no-embed", help="Embed images in report.html (else report_files/ beside it)."),
    grid_pairs: int = typer.Option(8, "--grid-pairs", help="Pairs per dataset in the image grid (0: all)."),
    crop_pairs: int = typer.Option(3, "--crop-pairs", help="Pairs per dataset with full-resolution crops."),
    crop_size: int = typer.Option(128, "--crop-size", help="Side of the crops in pixels."),
    hfr_threshold: float = typer.Option(1.5, "--hfr-threshold", help="Artefact measure above which a method is flagged and not ranked."),
    report_md: Optional[Path] = typer.Option(None, "--report-md", help="Also write the Markdown report here (crop panels beside it), e.g. docs/RESULTS.md."),
    title: str = typer.Option("Fusion benchmark", "--title", help="Report title."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
    sequence: bool = typer.Option(False, "--sequence", help="Each dataset is the frames of one video (in file-name order): also report temporal stability TS per method."),
) -> None:
    """Benchmark fusion methods on datasets: metrics, ranks, image grids, crops and speed."""
    from ..bench import BenchConfig, run_bench
    from ..bench.markdown import overview_markdown

    if limit is not None and limit < 1:
        raise EmmaError("--limit must be at least 1")
    if jobs is not None and jobs < 1:
        raise EmmaError("--jobs must be at least 1")
    if threads is not None and threads < 1:
        raise EmmaError("--threads must be at least 1")
    cfg = BenchConfig(
        data=list(data), out=out, methods=_split_list(methods), weights=list(weights or []),
        results=[str(r) for r in results or []], metrics=_split_list(metrics), split=split, limit=limit,
        normalize=normalize.value, jobs=jobs, threads=threads, device=device, cache=cache, isolate=isolate,
        html=html, embed=embed, grid_pairs=grid_pairs, crop_pairs=crop_pairs, crop_size=crop_size,
        hfr_threshold=hfr_threshold, report_md=report_md, title=title, progress=progress,
    )
    with exit_on_interrupt(f"finished images and scores are kept in {cache or out / 'cache'}; re-run to continue"):
        res = run_bench(cfg)
    for label, why in res.skipped.items():
        typer.echo(f"warning: {label} {why}", err=True)
    for e in res.errors:
        typer.echo(f"warning: left out: {e}", err=True)
    c = res.counts
    typer.echo(f"{len(res.datasets)} dataset(s), {len(res.methods)} method(s); fused {c['fused_new']} new, "
               f"{c['fused_cached']} cached; scored {c['scored_new']} new, {c['scored_cached']} cached; "
               f"{res.seconds:.0f} s")
    typer.echo("mean rank (first places):")
    typer.echo(overview_markdown(res).rstrip())
    if sequence:
        from ..metrics.temporal import bench_sequences

        typer.echo("temporal stability TS (frame sequences; lower is steadier, <= ~1: no change the sources lack):")
        for (dataset, label), value in bench_sequences(res).items():
            typer.echo(f"  {dataset} {label}: {value:.4f}")
    for name, path in res.files.items():
        typer.echo(f"{name}: {path}")


def register(app: typer.Typer) -> None:
    """Add ``bench`` to the ``emma`` app."""
    app.command("bench")(bench_command)
