"""The ``emma`` command: a thin layer over the Python API.

Each sub-command lives in its own module with a ``register(app)`` function.
Any :class:`~emma_fusion.errors.EmmaError` becomes one line on stderr and exit code 2; Ctrl-C becomes
one ``interrupted: ...`` line and exit code 130 (see ``cli/common.py``).
"""

from __future__ import annotations

import importlib
import logging
import sys
import warnings

import typer

from ..errors import EmmaError

__all__ = ["app", "main"]

# Sub-command modules, in the order their commands appear in --help.
COMMAND_MODULES = ["fuse", "demo", "methods", "train", "bench", "export", "metrics"]

app = typer.Typer(
    name="emma",
    help="EMMA multi-modality image fusion: fuse, train, score and compare.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(verbose: bool = typer.Option(False, "--verbose", "-v", help="Log progress details.")) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not verbose:  # Pillow's notes on damaged files ("Corrupt EXIF data"); the read error says what matters
        warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")


for _name in COMMAND_MODULES:
    importlib.import_module(f"{__name__}.{_name}").register(app)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``emma`` console script."""
    try:
        app(args=argv, standalone_mode=True)
    except EmmaError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:  # only outside a command (each command reports its own interrupts)
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except (OSError, RuntimeError, ValueError, MemoryError) as e:
        if logging.getLogger().isEnabledFor(logging.INFO):
            raise
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(f"error: {type(e).__name__}: {msg} (run with -v for details)", file=sys.stderr)
        sys.exit(1)
