"""``emma metrics``: score a folder of fused images against their sources (CDDFuse-convention metrics)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

_METRICS_HELP = (
    "Comma-separated metric names or groups. Groups: cddfuse (default: EN,SD,SF,AG,MI,SCD,VIF,Qabf,"
    "SSIM,MSE,PSNR,CC), emma (EN,SD,SF,AG,SCD,VIF), primary (+Nabf,MS_SSIM,FMI_pixel,FMI_dct,"
    "FMI_gradient,FMI_w), variants (AG_vifb,MI_bits,PSNR_peak255,SSIM_L255,SSIM_vifb,MS_SSIM_x255,"
    "Nabf_wt0), all. See docs/METRICS.md."
)


def metrics_command(
    ir_dir: Path = typer.Option(..., "--ir", help="Folder of infrared (or CT/PET/SPECT) source images."),
    vi_dir: Path = typer.Option(..., "--vi", help="Folder of visible (or MRI) source images."),
    fused_dir: Path = typer.Option(..., "--fused", help="Folder of fused images, paired with the sources by file stem."),
    metrics: str = typer.Option("cddfuse", "--metrics", "-m", help=_METRICS_HELP),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write per-image values, means and exclusions as JSON."),
    csv_out: Optional[Path] = typer.Option(None, "--csv", help="Write per-image values as CSV."),
    workers: Optional[int] = typer.Option(None, "--workers", "-j", help="Worker processes (default: CPU count)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Score fused images with the fusion metrics, exactly as the CDDFuse evaluator computes them."""
    from rich.console import Console
    from rich.table import Table

    from ..metrics import HIGHER_IS_BETTER, score_folder
    from ..metrics.dataset import write_csv, write_json

    result = score_folder(ir_dir, vi_dir, fused_dir, names=metrics, workers=workers, progress=progress)
    if json_out:
        write_json(result, json_out)
    if csv_out:
        write_csv(result, csv_out)
    n = len(result["per_image"])
    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False,
                  title=f"{n} image(s) from {fused_dir}", title_justify="left")
    table.add_column("metric", no_wrap=True)
    table.add_column("mean", justify="right")
    table.add_column("better", justify="center")
    table.add_column("left out", justify="right")
    for name, mean in result["mean"].items():
        left_out = result["excluded"][name]
        table.add_row(name, f"{mean:.4f}", "higher" if HIGHER_IS_BETTER[name] else "lower",
                      f"{left_out}" if left_out else "")
    Console(width=120, soft_wrap=True).print(table)
    if any(result["excluded"].values()):
        typer.echo("left out: images whose value is NaN or infinite (e.g. CC of a constant image)", err=True)
    for path in (json_out, csv_out):
        if path:
            typer.echo(f"wrote {path}", err=True)


def register(app: typer.Typer) -> None:
    """Add ``metrics`` to the ``emma`` app."""
    app.command("metrics")(metrics_command)
