"""``emma methods`` (list the fusion methods) and ``emma pseudo-gt`` (fused images for sensing training)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ..errors import EmmaError


def methods_command() -> None:
    """List the fusion methods usable with `emma fuse --method NAME` and `emma pseudo-gt`."""
    from rich.console import Console
    from rich.table import Table

    from ..methods.base import list_methods

    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    table.add_column("name", no_wrap=True)
    table.add_column("description")
    table.add_column("reference")
    for info in list_methods():
        name = info.name + (f" ({', '.join(info.aliases)})" if info.aliases else "")
        table.add_row(name, info.description, info.reference)
    Console(width=200, soft_wrap=True).print(table)


def pseudo_gt_command(
    ir_dir: Path = typer.Option(..., "--ir", help="Folder of infrared (or CT/PET/SPECT) images."),
    vi_dir: Path = typer.Option(..., "--vi", help="Folder of visible (or MRI) images, paired by file stem."),
    out: Path = typer.Option(..., "--out", "-o", help="Output root: one folder per source, <source>/<stem>.png."),
    methods: str = typer.Option("", "--methods", "-m", help="Comma-separated method names, e.g. lp,dwt,gff (see `emma methods`)."),
    results: Optional[List[str]] = typer.Option(
        None, "--results", "-r", help="Folder of fused results made elsewhere, DIR or NAME=DIR (repeatable)."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Redo outputs that already exist."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Write fused images from several sources (pseudo ground truth for the sensing stage)."""
    from ..train.pseudo_gt import make_pseudo_gt

    names = [m.strip() for m in methods.split(",") if m.strip()]
    if not names and not results:
        raise EmmaError("give --methods a,b,c and/or --results DIR")
    rep = make_pseudo_gt(ir_dir, vi_dir, out, names, results or [], overwrite=overwrite, progress=progress)
    for name in rep.unpaired:
        typer.echo(f"warning: no partner for {name}", err=True)
    for s in rep.sources.values():
        line = f"{s.name}: {len(s.written)} written, {len(s.skipped)} kept"
        if s.missing:
            line += f", {len(s.missing)} missing in {s.description}"
        typer.echo(f"{line} -> {s.folder}")
    typer.echo(f"{len(rep.pairs)} pairs, {len(rep.sources)} sources -> {out}")


def register(app: typer.Typer) -> None:
    """Add ``methods`` and ``pseudo-gt`` to the ``emma`` app."""
    app.command("methods")(methods_command)
    app.command("pseudo-gt")(pseudo_gt_command)
