"""Plot the loss curves of training runs (their log.jsonl files) into one PNG.

Usage: python scripts/plot_training.py --out docs/model_card_loss.png LABEL=RUN_DIR [LABEL=RUN_DIR ...]
Each RUN_DIR is a stage's output folder (sensing or fusion) holding log.jsonl.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from emma_fusion.io import atomic_write  # noqa: E402


def read_log(run: Path) -> tuple[list[dict], list[dict]]:
    recs = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if line.strip()]
    return [r for r in recs if r.get("type") == "step"], [r for r in recs if r.get("type") == "monitor"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("runs", nargs="+", help="LABEL=RUN_DIR")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    fig, axes = plt.subplots(1, len(a.runs), figsize=(4.2 * len(a.runs), 3.4), squeeze=False)
    for ax, item in zip(axes[0], a.runs):
        label, _, run = item.partition("=")
        steps, monitor = read_log(Path(run))
        keys = [k for k in steps[0] if k not in ("type", "step", "epoch", "lr", "sec")]
        for k in keys:
            ax.plot([r["step"] for r in steps], [r[k] for r in steps], label=k, lw=1)
        if monitor and "hf_ratio" in monitor[0]:
            ax2 = ax.twinx()
            ax2.plot([m["step"] for m in monitor], [m["hf_ratio"] for m in monitor], "k--", lw=1, label="hf_ratio (monitor)")
            ax2.set_ylabel("hf_ratio")
            ax2.legend(loc="upper center", fontsize=7)
        ax.set_yscale("log")
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("step")
        ax.legend(fontsize=7)
    fig.tight_layout()
    atomic_write(a.out, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    print(a.out)


if __name__ == "__main__":
    main()
