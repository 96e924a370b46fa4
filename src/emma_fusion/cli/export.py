"""``emma export onnx OUT.onnx``: write the U-Fuser as an ONNX graph (dynamic batch, height, width)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

export_app = typer.Typer(help="Export the U-Fuser to other runtimes.", no_args_is_help=True)


@export_app.command("onnx")
def onnx_command(
    out: Path = typer.Argument(..., help="The .onnx file to write."),
    weights: Optional[str] = typer.Option(None, "--weights", "-w", help="U-Fuser weights (.safetensors/.pth) or packaged model name (default: the packaged default)."),
    opset: int = typer.Option(17, "--opset", help="ONNX opset version (17 up to what the installed torch writes)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing OUT."),
) -> None:
    """Export the U-Fuser to ONNX (inputs ir, vi: N x 1 x H x W in [0, 1]; output fused)."""
    from ..inference.onnx import check_export, export_onnx
    from ..weights import load_model

    check_export(out, opset, overwrite=overwrite)  # before loading the model
    path = export_onnx(load_model(weights), out, opset=opset, overwrite=overwrite)
    typer.echo(str(path))


def register(app: typer.Typer) -> None:
    app.add_typer(export_app, name="export")
