"""Plot a training run's loss and validation curves from its ``log.jsonl``.

    python scripts/plot_run.py runs/ws/fusion/log.jsonl docs/MODEL_CARD_curves.png \
        --metrics VIF Qabf TCR --title "emma-default: content warm start"

Left: the training loss (each logged step, and a running mean over 20 records); middle: the
validation metrics named by ``--metrics`` at every validation step (``monitor.val_dir``); right:
the selection sum (``monitor.select``) with each phase's kept step starred (a curriculum's
``from_best`` phases start from it; the last star is the run's best).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def read_log(path: Path) -> tuple[list[dict], list[dict]]:
    """The step records and the records that carry validation scores."""
    recs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in recs if r.get("type") == "step"], [r for r in recs if "validation" in r]


def read_restarts(path: Path) -> list[dict]:
    """The ``restart`` records of a curriculum run (a phase started from the best weights so far)."""
    recs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in recs if r.get("type") == "restart"]


def kept_steps(vals: list[dict], restarts: list[dict]) -> list[tuple[int, float]]:
    """``(step, select)`` of each phase's kept validation: the one whose sum a ``restart`` record names
    (searched before that restart), then the best after the last restart (or of the whole run)."""
    pts = [(r["step"], r["validation"]["select"]) for r in vals if "select" in r["validation"]]
    kept, start = [], 0
    for r in restarts:
        before = [p for p in pts if start < p[0] <= r["step"] or (start == 0 and p[0] == 0)]
        hit = [p for p in before if abs(p[1] - r["select"]) < 1e-9]
        if hit:
            kept.append(hit[-1])
        start = r["step"]
    tail = [p for p in pts if p[0] > start] if restarts else pts
    if tail:
        kept.append(max(tail, key=lambda p: p[1]))
    return kept


def _phase_starts(config: Path | None) -> list[int]:
    """The first step of every phase after the first, from a run's ``config.toml`` (none: [])."""
    if config is None:
        return []
    import tomllib

    phases = tomllib.loads(config.read_text()).get("fusion", {}).get("phases", [])
    return [int(s) for s in np.cumsum([p["steps"] for p in phases])[:-1]]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("log", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--metrics", nargs="+", default=["VIF", "Qabf", "TCR"])
    ap.add_argument("--title", default="")
    ap.add_argument("--phases", type=Path, default=None,
                    help="a run's config.toml: mark where each of its fusion.phases starts, loss on a log scale")
    args = ap.parse_args(argv)
    steps, vals = read_log(args.log)
    if not steps:
        print(f"error: no step records in {args.log}", file=sys.stderr)
        return 2
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(14, 3.6), dpi=110)
    x = np.array([r["step"] for r in steps])
    y = np.array([r["loss"] for r in steps])
    ax1.plot(x, y, color="0.75", linewidth=0.8, label="loss")
    k = min(20, len(y))
    ax1.plot(x[k - 1:], np.convolve(y, np.ones(k) / k, mode="valid"), color="C0", label=f"mean of {k}")
    ax1.set_xlabel("step")
    ax1.set_ylabel("training loss")
    ax1.legend(frameon=False)
    for m in args.metrics:
        pts = [(r["step"], r["validation"][m]) for r in vals if m in r["validation"]]
        if pts:
            ax2.plot(*zip(*pts), marker="o", markersize=3, label=m)
    ax2.set_xlabel("step")
    ax2.set_ylabel("validation (held-in pairs)")
    ax2.legend(frameon=False)
    sel = [(r["step"], r["validation"]["select"]) for r in vals if "select" in r["validation"]]
    if sel:
        ax3.plot(*zip(*sel), marker="o", markersize=3, color="0.4", label="selection sum")
        kept = kept_steps(vals, read_restarts(args.log))
        ax3.plot(*zip(*kept), linestyle="none", marker="*", markersize=11, color="C3", label="kept")
        ax3.legend(frameon=False)
    ax3.set_xlabel("step")
    ax3.set_ylabel("selection sum")
    for start in _phase_starts(args.phases):
        for ax in (ax1, ax2, ax3):
            ax.axvline(start, color="0.5", linestyle=":", linewidth=0.8)
    if args.phases:
        ax1.set_yscale("log")
    if args.title:
        fig.suptitle(args.title)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
