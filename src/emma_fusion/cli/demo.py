"""``emma demo``: fuse a built-in synthetic pair with the shipped model; no data or network needed."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def demo_command(
    out: Path = typer.Option(Path("emma-demo"), "--out", "-o", help="Folder for the inputs, the fused image and the panel."),
    weights: Optional[str] = typer.Option(None, "--weights", "-w", help="U-Fuser weights instead of the shipped model."),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads."),
    ir: Optional[Path] = typer.Option(None, "--ir", help="A real infrared image instead of the synthetic scene (with --vi)."),
    vi: Optional[Path] = typer.Option(None, "--vi", help="The visible image paired with --ir."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the files of an earlier demo in OUT."),
) -> None:
    """Fuse a synthetic infrared/visible pair (or --ir/--vi) with EMMA; write the result and a panel to OUT."""
    from ..demo import run_demo

    paths = run_demo(out, weights, ir, vi, overwrite=overwrite, threads=threads)
    for name, p in paths.items():
        typer.echo(f"{name:6s} {p}")


def register(app: typer.Typer) -> None:
    app.command("demo")(demo_command)
