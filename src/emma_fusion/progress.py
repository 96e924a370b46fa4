"""Progress bars: on a terminal only, so that a log file never collects ``\\r`` redraws."""

from __future__ import annotations

import sys
from typing import Any

from tqdm import tqdm

__all__ = ["progress_bar", "shows_progress"]


def shows_progress(enabled: bool = True) -> bool:
    """Whether a bar is drawn: ``enabled`` and stderr is a terminal (not a file or a pipe)."""
    return enabled and sys.stderr.isatty()


def progress_bar(iterable: Any = None, *, enabled: bool = True, **kwargs: Any) -> tqdm:
    """A tqdm bar on stderr, shown when :func:`shows_progress` (else a silent counter of the same API)."""
    return tqdm(iterable, disable=not shows_progress(enabled), **kwargs)
