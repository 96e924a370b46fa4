"""The one exception type the CLI turns into a one-line error and a non-zero exit."""

from __future__ import annotations

__all__ = ["EmmaError", "Interrupted"]


class EmmaError(Exception):
    """A user-facing error: bad input, missing file, wrong checkpoint, ... (one-line message)."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) during a batch run; the message says what was finished, e.g. ``2 of 10 written``."""
