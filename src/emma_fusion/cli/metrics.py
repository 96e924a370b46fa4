"""``emma metrics``: score a folder of fused images against their sources (CDDFuse-convention metrics)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..errors import EmmaError, Interrupted
from .common import exit_on_interrupt

_LIST_AT_MOST = 10  # per kind of excluded image on stderr; the JSON lists them all

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
    sequence: bool = typer.Option(False, "--sequence", help="The folders hold the frames of one video (in file-name order): also report temporal stability TS."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing --json/--csv files (else: an error before scoring)."),
) -> None:
    """Score fused images with the fusion metrics, exactly as the CDDFuse evaluator computes them.

    Images that cannot be scored are listed (stderr and --json) and the rest are scored; the exit
    code is then 1 (the --json/--csv files are still written: they hold what was scored).
    """
    from ..metrics import score_folder
    from ..metrics.dataset import write_csv, write_json

    if workers is not None and workers < 1:
        raise EmmaError(f"--workers must be at least 1 (got {workers})")
    _check_outputs(ir_dir, vi_dir, fused_dir, overwrite, json_out, csv_out)
    with exit_on_interrupt("nothing scored; no files written"):
        try:
            result = score_folder(ir_dir, vi_dir, fused_dir, names=metrics, workers=workers,
                                  progress=progress, keep_going=True)
        except Interrupted as e:
            raise Interrupted(f"{e}; no files written") from None
    if sequence:
        from ..metrics.temporal import score_sequence

        result["sequence"] = score_sequence(ir_dir, vi_dir, fused_dir)
    if json_out:
        write_json(result, json_out, overwrite=overwrite)
    if csv_out:
        write_csv(result, csv_out, overwrite=overwrite)
    _print_table(result, fused_dir)
    for name, value in result.get("sequence", {}).items():
        typer.echo(f"{name} (frame sequence, lower is better; <= ~1: no change the sources lack): {value:.4f}")
    failed = _report_excluded(result["excluded_images"])
    for path in (json_out, csv_out):
        if path:
            typer.echo(f"wrote {path}", err=True)
    if failed:
        raise typer.Exit(1)


def _check_outputs(ir_dir: Path, vi_dir: Path, fused_dir: Path, overwrite: bool, *outs: Optional[Path]) -> None:
    """Before scoring: the --json/--csv files must not be input images, folders or (unless
    ``overwrite``) existing files, must differ, and their folders must be writable."""
    from ..io import check_not_input, check_output_file, list_images, same_file

    outs = [p for p in outs if p]
    if not outs:
        return
    if len(outs) == 2 and same_file(*outs):
        raise EmmaError(f"--json and --csv name the same file {outs[0]}; give two file names")
    inputs = [p for d in (ir_dir, vi_dir, fused_dir) if d.is_dir() for p in list_images(d).values()]
    for path in outs:
        check_not_input(path, inputs)  # the more telling error first, even with --overwrite
        check_output_file(path, overwrite=overwrite)


def _print_table(result: dict, fused_dir: Path) -> None:
    """The table of dataset means on stdout."""
    from rich.console import Console
    from rich.table import Table

    from ..metrics import HIGHER_IS_BETTER

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


def _report_excluded(skipped: dict) -> int:
    """List images not scored on stderr (a few of each kind); returns how many failed."""
    for kind, label in (("missing", "warning: not scored"), ("failed", "error: cannot score")):
        items = list(skipped[kind].items())
        for stem, why in items[:_LIST_AT_MOST]:
            typer.echo(f"{label} {stem}: {why}", err=True)
        if len(items) > _LIST_AT_MOST:
            typer.echo(f"{label}: {len(items) - _LIST_AT_MOST} more (all are listed in --json)", err=True)
    return len(skipped["failed"])


def register(app: typer.Typer) -> None:
    """Add ``metrics`` to the ``emma`` app."""
    app.command("metrics")(metrics_command)
