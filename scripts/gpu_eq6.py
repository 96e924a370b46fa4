"""Issue 24, item 4: on a lent CUDA GPU, A nets as the authors train them, then Eq. 6 with them.

    python scripts/gpu_eq6.py --data DATA_ROOT --out OUT [--sensing-seconds 140] [--fusion-seconds 150]

DATA_ROOT holds ``{MSRS,RoadScene,LLVIP}/train/{ir,vi}`` and, where present,
``results/{IFCNN,SeAFusion}/<set>_train`` (the deep pseudo ground truth of configs/sensing-authors.toml).
In one time-boxed run (each stage stops itself and saves; docs/EQ6.md records what it showed):

1. ``emma-default``'s fusions of the training pairs (pseudo ground truth, as configs/sensing-authors.toml).
2. Stage 1 as the authors: width-64 A nets, batch 64, 128 px grid patches, no input noise, Adam 1e-4
   halved every 10 epochs, bf16 autocast; the stage-1 gate at the end (``gate.json``).
3. Eq. 6's landscape with those A nets (scripts/eq6_landscape.py, 24 crops, seed 3): the fusion it
   ranks first, the warm start's rank (``landscape.md``).
4. Stage 2: Eq. 6 (whole transform stack, batch 8, 128 px grid patches, Adam 1e-4) from ``emma-default`` with those
   A nets, validation on the 18 pairs of configs/val_pairs.txt at step 0 (the warm start itself) and
   every ``--val-every`` steps (``fusion_log.jsonl``; the kept weights ``ufuser_best.safetensors``).

The step times of both stages are in the logs (``"type": "estimate"``). ``--device cpu --quick``
checks the whole chain in a few minutes on a CPU (tiny nets and budgets; numbers meaningless).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import shutil
import time
from pathlib import Path

import torch

from emma_fusion.api import fuse_folder
from emma_fusion.train import apply_overrides, load_config, train_fusion, train_sensing

SETS = {"MSRS": 14.0, "RoadScene": 1.0, "LLVIP": 4.0}
REPO = Path(__file__).resolve().parents[1]
log = logging.getLogger("gpu_eq6")


def pseudo_gt(data: Path, work: Path, device: str) -> dict[str, Path]:
    """emma-default's fusions of each set's training pairs (gray), one folder per set."""
    out = {}
    for name in SETS:
        out[name] = work / "gt" / name / "emma"
        t = time.perf_counter()
        rep = fuse_folder(data / name / "train" / "ir", data / name / "train" / "vi", out[name], "emma-default",
                          color="gray", progress=False, streams=1, device=device)
        log.info("pseudo ground truth %s: %d written, %d kept, %d failed in %.1f s", name, len(rep.written),
                 len(rep.skipped), len(rep.failed), time.perf_counter() - t)
    return out


def sensing_config(data: Path, gt: dict[str, Path], work: Path, args: argparse.Namespace):
    sets = []
    for name, weight in SETS.items():
        fused = [str(data / "results" / m / f"{name}_train") for m in ("IFCNN", "SeAFusion")
                 if (data / "results" / m / f"{name}_train").is_dir()]
        sets.append({"root": str(data / name / "train"), "weight": weight, "fused": [*fused, str(gt[name])]})
    cfg = load_config("sensing", REPO / "configs" / "sensing-authors.toml")
    return apply_overrides(cfg, {
        "out": str(work / "sensing"), "device": args.device, "amp": "bf16" if args.device != "cpu" else "none",
        "threads": args.threads, "width": 8 if args.quick else 64, "batch": 2 if args.quick else 64,
        "max_seconds": args.sensing_seconds, "checkpoint_every": 500, "log_every": 20,
        "gate_crops": 4 if args.quick else 64, "data.sets": sets})


def landscape(data: Path, a_dir: Path, args: argparse.Namespace) -> str:
    spec = importlib.util.spec_from_file_location("eq6_landscape", REPO / "scripts" / "eq6_landscape.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    argv = ["--data", str(data), "--crops", "2" if args.quick else "24", "--seed", "3", "--device", args.device,
            "--threads", str(args.threads), "--sensing", f"width-64 (GPU)={a_dir}"]
    if args.quick:
        argv += ["--crop", "64", "--transforms", "2"]
    return mod.markdown(*mod.landscape(mod.parse_args(argv)))


def fusion_config(data: Path, a_dir: Path, work: Path, args: argparse.Namespace):
    val = work / "val_pairs.txt"
    text = (REPO / "configs" / "val_pairs.txt").read_text()
    val.write_text(text.replace("../shared/data", str(data.resolve())))
    cfg = load_config("fusion", None, "paper")
    return apply_overrides(cfg, {
        "out": str(work / "fusion"), "device": args.device, "amp": "bf16" if args.device != "cpu" else "none",
        "threads": args.threads, "sensing": str(a_dir), "skip_gate": True, "init_weights": "emma-default",
        "ablation": "full", "batch": 2 if args.quick else 8, "steps": 100000, "max_seconds": args.fusion_seconds,
        "checkpoint_every": 500, "log_every": 10, "progress": False,
        "optim.lr": args.fusion_lr, "transforms.per_step": 0,
        "data.crop": 64 if args.quick else 128,
        "data.sets": [{"root": str(data / n / "train"), "weight": w} for n, w in SETS.items()],
        "monitor.stop": False, "monitor.val_list": str(val), "monitor.val_dir": "",
        "monitor.val_pairs": 1 if args.quick else 0, "monitor.val_every": args.val_every,
        "monitor.val_metrics": ["EN", "SD", "SF", "AG", "SCD", "VIF", "Qabf", "TCR", "SKY"],
        "monitor.select": "VIF+Qabf+TCR+SKY"})


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True, help="what to bring back (logs, gate, landscape, U-Fuser)")
    p.add_argument("--work", type=Path, default=Path("/tmp/gpu_eq6"))
    p.add_argument("--device", default="cuda")
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--sensing-seconds", type=float, default=140)
    p.add_argument("--fusion-seconds", type=float, default=150)
    p.add_argument("--val-every", type=int, default=200)
    p.add_argument("--fusion-lr", type=float, default=1e-4, help="stage 2's Adam learning rate (the authors': 1e-4)")
    p.add_argument("--no-landscape", action="store_true", help="skip step 3 (more time for stage 2)")
    p.add_argument("--quick", action="store_true", help="tiny nets and budgets: check the chain on a CPU")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    if args.device.startswith("cuda"):
        log.info("torch %s, %s, bf16 %s", torch.__version__, torch.cuda.get_device_name(0), torch.cuda.is_bf16_supported())
    args.out.mkdir(parents=True, exist_ok=True)
    gt = pseudo_gt(args.data, args.work, args.device)
    a_dir = train_sensing(sensing_config(args.data, gt, args.work, args))
    for name in ("gate.json", "log.jsonl"):
        shutil.copy(a_dir / name, args.out / f"sensing_{name}")
    log.info("gate: %s", json.loads((a_dir / "gate.json").read_text()).get("passed"))
    if not args.no_landscape:
        t = time.perf_counter()
        (args.out / "landscape.md").write_text(landscape(args.data, a_dir, args))
        log.info("landscape in %.1f s:\n%s", time.perf_counter() - t, (args.out / "landscape.md").read_text())
    weights = train_fusion(fusion_config(args.data, a_dir, args.work, args))
    shutil.copy(weights.parent / "log.jsonl", args.out / "fusion_log.jsonl")
    for name in ("ufuser.safetensors", "ufuser_best.safetensors"):
        if (weights.parent / name).exists():
            shutil.copy(weights.parent / name, args.out / name)


if __name__ == "__main__":
    main()
