"""``emma demo``: fuse a built-in synthetic pair with the shipped model; no data or network needed."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def demo_command(
    out: Path = typer.Option(Path("emma-demo"), "--out", "-o", help="Folder for the inputs, the fused image and the panel."),
    weights: Optional[str] = typer.Option(None, "--weights", "-w", help="U-Fuser weights instead of the shipped model."),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads."),
) -> None:
    """Write a synthetic infrared/visible pair, its EMMA fusion and a side-by-side panel to OUT."""
    from ..demo import run_demo

    paths = run_demo(out, weights, threads=threads)
    for name, p in paths.items():
        typer.echo(f"{name:6s} {p}")


def register(app: typer.Typer) -> None:
    app.command("demo")(demo_command)
