"""Stage 1: the pseudo-sensing nets A_i (fused -> infrared) and A_v (fused -> visible).

Both nets see the same crop of a pseudo-ground-truth fused image (another method's result) and
learn, with the MSE loss, to return the infrared and the visible crop at the same place. They
train together in one run (disjoint parameters, one Adam: the same as two separate runs).

After training, a quality gate compares each net with the identity map on held-out pairs:
``ratio = MSE(A(f), src) / MSE(f, src)`` must be at most ``gate_ratio`` for both nets. The
report is written to ``OUT/gate.json``; stage 2 refuses nets whose gate failed unless told to
skip the gate.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import EmmaError
from ..io import atomic_write
from ..nets import SensingUNet
from ..weights import save_weights
from .config import SensingConfig, check_values
from .data import PairedCrops
from .loop import Runtime, Stage, rank_indices, run_stage, setup_runtime, steps_per_epoch

__all__ = ["train_sensing", "SensingObjective", "quality_gate", "SENSING_FILES", "GATE_FILE"]

log = logging.getLogger(__name__)

SENSING_FILES = {"ir": "A_ir.safetensors", "vi": "A_vi.safetensors"}
GATE_FILE = "gate.json"


class SensingObjective(nn.Module):
    """MSE(A_i(fused), ir) + MSE(A_v(fused), vi); inputs (N, 1, H, W), H, W multiples of 16."""

    def __init__(self, sense_ir: nn.Module, sense_vi: nn.Module) -> None:
        super().__init__()
        self.sense_ir, self.sense_vi = sense_ir, sense_vi

    def forward(self, fused: torch.Tensor, ir: torch.Tensor, vi: torch.Tensor, step: int = 0):
        li = F.mse_loss(self.sense_ir(fused).float(), ir)
        lv = F.mse_loss(self.sense_vi(fused).float(), vi)
        return li + lv, {"mse_ir": li.detach(), "mse_vi": lv.detach()}


def _build_data(cfg: SensingConfig) -> tuple[PairedCrops, PairedCrops | None]:
    d = cfg.data
    if d.crop % SensingUNet.multiple:
        raise EmmaError(f"the sensing crop must be a multiple of {SensingUNet.multiple}, not {d.crop}")
    ds = PairedCrops(
        d.sets, d.crop, with_fused=True, min_contrast=d.min_contrast, max_tries=d.max_tries,
        noise_std=d.noise_std, seed=cfg.seed, cache_mb=d.cache_mb, hflip=d.hflip, grid_stride=d.grid_stride,
    )
    if cfg.holdout <= 0:
        return ds, None
    train, held = ds.split(cfg.holdout)
    held.noise_std = 0.0  # the gate scores ordinary fused images
    return train, held


@torch.no_grad()
def quality_gate(
    sense: dict[str, nn.Module], held: PairedCrops, n_crops: int, ratio_max: float, device: torch.device,
    batch: int = 16,
) -> dict[str, Any]:
    """Score A_i and A_v against the identity map on ``n_crops`` fixed held-out crops.

    Returns ``{"passed", "ratio_max", "crops", "ir": {...}, "vi": {...}}`` where each modality has
    ``mse_identity`` = MSE(f, src), ``mse_sense`` = MSE(A(f), src) and their ``ratio``.
    """
    sums = {m: [0.0, 0.0] for m in sense}
    for net in sense.values():
        net.eval()
    for lo in range(0, n_crops, batch):
        b = held.batch(range(lo, min(n_crops, lo + batch)))
        f = b["fused"].to(device)
        for m, net in sense.items():
            src = b[m].to(device)
            n = src.shape[0]
            sums[m][0] += float(F.mse_loss(f, src)) * n
            sums[m][1] += float(F.mse_loss(net(f).float(), src)) * n
    report: dict[str, Any] = {"ratio_max": ratio_max, "crops": n_crops,
                              "heldout_pairs": sorted(f"{held.sets[r.set_index].label()}:{r.stem}" for r in held.pairs)}
    for m, (ident, sens) in sums.items():
        ident, sens = ident / n_crops, sens / n_crops
        report[m] = {"mse_identity": ident, "mse_sense": sens, "ratio": sens / max(ident, 1e-12)}
    report["passed"] = all(report[m]["ratio"] <= ratio_max for m in sense)
    return report


def train_sensing(config: SensingConfig, resume: bool = False) -> Path:
    """Train A_i and A_v; return the run folder, which holds ``A_ir.safetensors``,
    ``A_vi.safetensors`` and ``gate.json`` (give it to stage 2 as ``sensing``)."""
    cfg = config
    check_values(cfg)
    rt = setup_runtime(cfg)
    train, held = _build_data(cfg)
    torch.manual_seed(cfg.seed)
    nets = {"A_ir": SensingUNet(cfg.width), "A_vi": SensingUNet(cfg.width)}
    spe = steps_per_epoch(train.epoch_size(cfg.data.crops_per_image), 1, cfg.batch, rt.world)
    log.info("sensing: %d pairs (%d fused inputs) for training, %d held out; %d steps per epoch",
             len(train.pairs), len(train), len(held.pairs) if held else 0, spe)
    stage = Stage(
        name="sensing",
        models=nets,
        objective=SensingObjective(nets["A_ir"], nets["A_vi"]),
        batch_fn=lambda step: train.batch(rank_indices(step, cfg.batch, rt.rank, rt.world)),
        steps_per_epoch=spe,
        broadcast_buffers=True,  # BatchNorm running statistics follow rank 0
    )
    step, out = run_stage(cfg, stage, rt, resume=resume)
    if rt.main:
        for key, net in nets.items():
            save_weights(out / f"{key}.safetensors", net, extra_metadata={"stage": "sensing", "step": str(step)})
        _gate(cfg, nets, held, rt, out)
    rt.barrier()
    return out


def _gate(cfg: SensingConfig, nets: dict[str, nn.Module], held: PairedCrops | None, rt: Runtime, out: Path) -> None:
    if held is None:
        report: dict[str, Any] = {"passed": False, "reason": "no held-out pairs (holdout = 0): gate not evaluated"}
        log.warning("quality gate not evaluated: holdout is 0")
    else:
        report = quality_gate({"ir": nets["A_ir"], "vi": nets["A_vi"]}, held, cfg.gate_crops, cfg.gate_ratio, rt.device)
        for m in ("ir", "vi"):
            r = report[m]
            log.info("gate A_%s: MSE(A(f), %s) = %.5f vs identity %.5f (ratio %.3f, max %.2f)",
                     m, m, r["mse_sense"], r["mse_identity"], r["ratio"], cfg.gate_ratio)
        if not report["passed"]:
            log.warning("quality gate FAILED: an A net does not beat the identity map by the required margin "
                        "(ratio ir %.3f, vi %.3f > %.2f); train longer or with noise_std > 0",
                        report["ir"]["ratio"], report["vi"]["ratio"], cfg.gate_ratio)
    text = json.dumps(report, indent=2)
    atomic_write(out / GATE_FILE, lambda p: Path(p).write_text(text + "\n"))
