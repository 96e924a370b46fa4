"""``emma bench``: compare fusion methods on datasets, with tables, pictures and speed.

Example::

    from emma_fusion.bench import BenchConfig, run_bench
    res = run_bench(BenchConfig(data=["data/TNO/test"], out="bench", methods=["lp", "gff"],
                                results=["data/results"]))
    res.tables["TNO"]        # rows with means, ranks, the artefact measure
    res.files["report.html"]

See docs/BENCH.md for the dataset layout, the cache, the artefact measure and the ranking rules.
"""

from __future__ import annotations

from .datasets import Dataset, Pair, discover_datasets
from .methods import MethodSpec, build_method_specs
from .result import BenchConfig, BenchResult
from .runner import BENCH_METRICS, run_bench
from .scoring import ARTEFACT, hf_ratio, hf_share

__all__ = ["BENCH_METRICS", "ARTEFACT", "BenchConfig", "BenchResult", "run_bench", "Dataset", "Pair",
           "discover_datasets", "MethodSpec", "build_method_specs", "hf_ratio", "hf_share"]
