"""The ``emma`` command: a thin layer over the Python API.

Each sub-command lives in its own module with a ``register(app)`` function.
Any :class:`~emma_fusion.errors.EmmaError` becomes one line on stderr and exit code 2; Ctrl-C becomes
one ``interrupted: ...`` line and exit code 130 (see ``cli/common.py``).
"""

from __future__ import annotations

import importlib
import logging
import re
import sys
import warnings

import typer

from ..errors import EmmaError, describe_failure

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


class _Format(logging.Formatter):
    """``warning: message`` for a user; ``LEVEL logger: message`` with ``-v``."""

    def __init__(self, verbose: bool) -> None:
        super().__init__("%(levelname)s %(name)s: %(message)s" if verbose else "%(levelname)s: %(message)s")
        self.verbose = verbose

    def formatMessage(self, record: logging.LogRecord) -> str:
        if self.verbose:
            return super().formatMessage(record)
        return f"{record.levelname.lower()}: {record.message}"


def _show_flags_as_typed() -> None:
    """Help's type column as a user types an option: nothing after a flag (``--overwrite``, not
    ``--overwrite <bool>``), the item type of a repeatable one (``<str> (repeatable)``, not ``<list[str]>``)."""
    from typer.core import TyperOption

    shown = getattr(TyperOption, "display_type_rich", None)
    if shown is None or getattr(shown, "_emma", False):
        return

    def display_type_rich(self, ctx):
        if self.is_flag:
            return None
        text = shown(self, ctx)
        if self.multiple and text:
            text = re.sub(r"list\[(.*)\]", r"\1", text) + " (repeatable)"
        return text

    display_type_rich._emma = True
    TyperOption.display_type_rich = display_type_rich


_show_flags_as_typed()


@app.callback()
def _root(verbose: bool = typer.Option(False, "--verbose", "-v", help="Log progress details.")) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(_Format(verbose))
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, handlers=[handler])
    if not verbose:  # Pillow's notes on damaged files ("Corrupt EXIF data"); the read error says what matters
        warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")


for _name in COMMAND_MODULES:
    importlib.import_module(f"{__name__}.{_name}").register(app)


def _is_usage_error(e: BaseException) -> bool:
    """Whether ``e`` is click's error for a bad command line (typer vendors click, so by its shape)."""
    return hasattr(e, "format_message") and hasattr(e, "exit_code") and hasattr(e, "show")


def _usage_line(e: BaseException) -> str:
    """One ``error:`` line for a bad command line, naming the command's ``--help``."""
    text = " ".join(str(e.format_message()).split())
    ctx = getattr(e, "ctx", None)
    path = getattr(ctx, "command_path", "") or "emma"
    return f"error: {text} (see {path} --help)"


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``emma`` console script.

    Exit codes: 0 done; 1 finished with failures, or an unexpected error (one line); 2 bad input or
    options (one ``error:`` line, also for click's usage errors); 130 interrupted.
    """
    try:
        code = app(args=argv, standalone_mode=False)
    except EmmaError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:  # only outside a command (each command reports its own interrupts)
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as e:  # noqa: BLE001  (anything unforeseen: one line, not a traceback)
        if type(e).__name__ == "NoArgsIsHelpError":  # `emma`, `emma train`: their help, as click shows it
            print(e.ctx.get_help())
            sys.exit(2)
        if _is_usage_error(e):
            print(_usage_line(e), file=sys.stderr)
            sys.exit(getattr(e, "exit_code", 2) or 2)
        if type(e).__name__ == "Abort":
            print("interrupted", file=sys.stderr)
            sys.exit(130)
        if logging.getLogger().isEnabledFor(logging.INFO):
            raise
        print(f"error: {describe_failure(e)} (run emma -v <command> ... for details)", file=sys.stderr)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)

