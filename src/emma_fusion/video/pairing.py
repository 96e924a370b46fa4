"""Pairing infrared and visible frames in time, with every dropped or repeated frame counted.

Streams with the same, known frame count and no offset pair frame by frame. Otherwise frames
pair by timestamp: the stream with the higher frame rate (the visible one on a tie) sets the
output's timeline, and each of its frames takes the other stream's frame nearest in time
(ties: the earlier one). Frames of the leading stream outside the other's time span (more than
half a frame period before its first frame or after its last) are dropped; frames of the other
stream that no output frame takes are dropped, and those taken more than once are repeated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Iterable, Iterator

from ..errors import EmmaError
from .io import Frame

__all__ = ["PairingReport", "parse_offset", "pair_by_index", "pair_by_time"]


@dataclass
class PairingReport:
    """What pairing did: frames dropped (used by no output frame) and repeated (used again), per stream."""

    dropped: dict[str, int] = field(default_factory=lambda: {"ir": 0, "vi": 0})
    repeated: dict[str, int] = field(default_factory=lambda: {"ir": 0, "vi": 0})
    mode: str = "index"

    def summary(self) -> str:
        """One line, e.g. ``paired by timestamp; infrared: 3 dropped, 0 repeated; visible: ...``."""
        parts = [f"{name}: {self.dropped[k]} dropped, {self.repeated[k]} repeated"
                 for k, name in (("ir", "infrared"), ("vi", "visible"))]
        return f"paired by {self.mode}; " + "; ".join(parts)


def parse_offset(text: str | float | None, ir_fps: Fraction | float) -> float:
    """Seconds by which the infrared stream starts after the visible one.

    ``text``: seconds (``0.5``, ``-1.2``, ``0.5s``) or infrared frames (``12f``). Raises
    :class:`EmmaError` for anything else.
    """
    if text is None or text == "":
        return 0.0
    if isinstance(text, (int, float)):
        return float(text)
    m = re.fullmatch(r"\s*([+-]?(?:\d+\.?\d*|\.\d+))\s*([sf]?)\s*", str(text))
    if not m:
        raise EmmaError(f"--offset takes seconds (0.5, 0.5s) or frames (12f), not {text!r}")
    value = float(m.group(1))
    return value / float(ir_fps) if m.group(2) == "f" else value


def pair_by_index(ir: Iterable[Frame], vi: Iterable[Frame], report: PairingReport) -> Iterator[tuple[Frame, Frame]]:
    """Pair frame i with frame i; the output takes the visible frames' times."""
    report.mode = "index"
    yield from zip(ir, vi)


def pair_by_time(ir: Iterable[Frame], vi: Iterable[Frame], ir_fps: Fraction, vi_fps: Fraction,
                 offset: float, report: PairingReport) -> Iterator[tuple[Frame, Frame]]:
    """Pair by timestamp (module docstring); infrared times are shifted by ``offset`` seconds.

    Yields ``(ir_frame, vi_frame)``; the pair's time is the leading stream's (shifted) time.
    """
    report.mode = "timestamp"
    shifted = (Frame(f.index, f.time + offset, f.image) for f in ir)
    ir_leads = ir_fps > vi_fps
    lead, foll = (shifted, iter(vi)) if ir_leads else (iter(vi), shifted)
    lk, fk = ("ir", "vi") if ir_leads else ("vi", "ir")
    tol = 0.5 / float(vi_fps if ir_leads else ir_fps) + 1e-6
    cur, nxt, uses = next(foll, None), None, 0
    if cur is None:
        raise EmmaError(f"the {'visible' if ir_leads else 'infrared'} stream has no frame")
    nxt = next(foll, None)
    for f in lead:
        t = f.time
        if t < cur.time - tol:
            report.dropped[lk] += 1  # before the other stream starts
            continue
        while nxt is not None and abs(nxt.time - t) < abs(cur.time - t):
            report.dropped[fk] += uses == 0
            report.repeated[fk] += max(uses - 1, 0)
            cur, nxt, uses = nxt, next(foll, None), 0
        if nxt is None and t > cur.time + tol:
            report.dropped[lk] += 1 + sum(1 for _ in lead)  # after the other stream ends
            break
        uses += 1
        yield (f, cur) if ir_leads else (cur, f)
    report.dropped[fk] += (uses == 0) + (nxt is not None) + sum(1 for _ in foll)
    report.repeated[fk] += max(uses - 1, 0)
