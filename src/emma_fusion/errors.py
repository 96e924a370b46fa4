"""The one exception type the CLI turns into a one-line error and a non-zero exit."""

from __future__ import annotations

__all__ = ["EmmaError", "Interrupted", "describe_failure"]


class EmmaError(Exception):
    """A user-facing error: bad input, missing file, wrong checkpoint, ... (one-line message)."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) during a batch run; the message says what was finished, e.g. ``2 of 10 written``."""


def describe_failure(e: BaseException) -> str:
    """An unexpected exception in words for a one-line error: its message's first line, or the
    failure it stands for; never the exception's class name."""
    first = str(e).strip().splitlines()[0] if str(e).strip() else ""
    if isinstance(e, MemoryError):
        return f"out of memory{': ' + first if first else ''}; try a smaller --tile or fewer --threads/--streams"
    if isinstance(e, OSError) and e.strerror:
        return f"{e.strerror}{': ' + str(e.filename) if e.filename else ''}"
    return first or "unexpected failure without a message"
