"""The one exception type the CLI turns into a one-line error and a non-zero exit."""

from __future__ import annotations

__all__ = ["EmmaError"]


class EmmaError(Exception):
    """A user-facing error: bad input, missing file, wrong checkpoint, ... (one-line message)."""
