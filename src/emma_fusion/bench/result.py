"""What a benchmark run takes (:class:`BenchConfig`) and what it produced (:class:`BenchResult`).

Kept apart from the runner so that the report writers (:mod:`.markdown`, :mod:`.report`) read a
result without importing the code that makes one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import EmmaError
from .datasets import Dataset
from .methods import MethodSpec
from .scoring import ARTEFACT
from .tables import DEFAULT_HFR_THRESHOLD, MethodRow, SpeedRow

__all__ = ["BenchConfig", "BenchResult"]


@dataclass
class BenchConfig:
    """Everything ``emma bench`` takes (see docs/BENCH.md)."""

    data: list[Path]
    out: Path
    methods: list[str] | None = None
    weights: list[str] = field(default_factory=list)
    results: list[str] = field(default_factory=list)
    metrics: list[str] | None = None
    split: str | None = None
    limit: int | None = None
    normalize: str = "minmax"
    jobs: int | None = None
    threads: int | None = None
    device: str = "cpu"
    cache: Path | None = None
    isolate: bool = True
    html: bool = True
    embed: bool = True
    grid_pairs: int = 8
    crop_pairs: int = 3
    crop_size: int = 128
    hfr_threshold: float = DEFAULT_HFR_THRESHOLD
    report_md: Path | None = None
    title: str = "Fusion benchmark"
    progress: bool = True

    def __post_init__(self) -> None:
        """Refuse values no run can use, before any work: one-line :class:`EmmaError`."""
        counts = {"grid_pairs": (self.grid_pairs, 0), "crop_pairs": (self.crop_pairs, 0), "crop_size": (self.crop_size, 8),
                  "limit": (self.limit, 1), "jobs": (self.jobs, 1), "threads": (self.threads, 1)}
        for name, (value, low) in counts.items():
            if value is not None and value < low:
                raise EmmaError(f"bench: {name} must be >= {low}, got {value}")
        if not (math.isfinite(self.hfr_threshold) and self.hfr_threshold > 0):
            raise EmmaError(f"bench: hfr_threshold must be a finite number > 0, got {self.hfr_threshold}")


@dataclass
class BenchResult:
    """What a run produced. Keys of ``fused``/``values`` are (dataset, stem, method label)."""

    config: BenchConfig
    datasets: list[Dataset]
    methods: list[MethodSpec]
    skipped: dict[str, str]
    metrics: list[str]
    fused: dict[tuple[str, str, str], Path] = field(default_factory=dict)
    values: dict[tuple[str, str, str], dict[str, float]] = field(default_factory=dict)
    fuse_records: dict[str, list[dict]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    tables: dict[str, list[MethodRow]] = field(default_factory=dict)
    speed: list[SpeedRow] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)
    machine: str = ""
    seconds: float = 0.0

    @property
    def names(self) -> list[str]:
        """Metric names plus the artefact measure, in table order."""
        return [*self.metrics, ARTEFACT]

    def methods_on(self, dataset: str) -> list[str]:
        """Labels of the methods that have at least one fused image of ``dataset``, in run order."""
        have = {m for (d, _, m) in self.values if d == dataset}
        return [s.label for s in self.methods if s.label in have]
