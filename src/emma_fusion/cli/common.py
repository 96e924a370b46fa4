"""Helpers shared by the sub-commands: Ctrl-C handling."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import typer

from ..errors import Interrupted

__all__ = ["INTERRUPTED_EXIT", "exit_on_interrupt"]

INTERRUPTED_EXIT = 130  # 128 + SIGINT, as shells report it


@contextmanager
def exit_on_interrupt(default: str) -> Iterator[None]:
    """Turn Ctrl-C inside the block into one ``interrupted: ...`` line on stderr and exit code 130.

    An :class:`~emma_fusion.errors.Interrupted` carries what was finished; any other
    ``KeyboardInterrupt`` is described by ``default`` (e.g. ``"nothing written"``).
    """
    try:
        yield
    except KeyboardInterrupt as e:
        detail = str(e) if isinstance(e, Interrupted) and str(e) else default
        typer.echo(f"interrupted: {detail}", err=True)
        raise typer.Exit(INTERRUPTED_EXIT) from None
