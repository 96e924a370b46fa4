"""Stage 2: the U-Fuser, trained with frozen A_i, A_v and the loss of Eq. 6 (or an ablation).

The step's transform stack is drawn with a ``torch.Generator`` seeded from (seed, step, rank), so
a resumed run draws the same transforms (in a curriculum: the phase's crop stream, see
:func:`~emma_fusion.train.config.crop_stream`). An artefact monitor scores fixed crops every
``monitor.every`` steps (see :class:`~emma_fusion.train.config.MonitorConfig`) and warns, or stops
the run, when the U-Fuser starts to fool the sensing nets.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
from bisect import bisect_left, bisect_right
from functools import partial
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from kornia.filters import laplacian
from torch import nn

from ..errors import EmmaError
from ..nets import UFuser
from ..weights import load_model, load_weights_into, packaged_models, save_weights
from .config import (FusionConfig, MonitorConfig, check_values, crop_stream, phase_configs, phase_lr, restart_steps,
                     validation_steps)
from .data import PairedCrops
from .loop import (Runtime, Stage, StopTraining, notes, rank_indices, run_stage, setup_runtime, steps_per_epoch,
                   total_steps)
from .losses import EmmaLoss, check_content_options, content_loss
from .metric_losses import VIF_MIN_SIZE
from .sensing import GATE_FILE, SENSING_FILES
from .transforms import TransformSampler

__all__ = ["train_fusion", "FusionObjective", "ArtefactMonitor", "hf_energy", "make_sampler", "check_gate",
           "selection_score", "effective_select", "make_loss", "FUSER_FILE", "BEST_FILE"]

log = logging.getLogger(__name__)

FUSER_FILE = "ufuser.safetensors"
BEST_FILE = "ufuser_best.safetensors"


#: Metrics that count in a selection sum only up to a ceiling: TCR 1 keeps the targets' contrast
#: fully; more contrast than the infrared image has is not a better fusion. SKY 1 keeps a bright
#: sky as bright as the visible image; a brighter one is an overshoot, not a better fusion.
SELECT_CAPS = {"TCR": 1.0, "SKY": 1.0}


def selection_score(select: str, scores: dict[str, float], caps: bool = True) -> float:
    """The sum of the metrics named in ``select`` (``"VIF+Qabf+TCR"``), TCR and SKY capped at 1
    (unless ``caps`` is false); NaN counts as -inf."""
    total = 0.0
    for name in (n.strip() for n in select.split("+") if n.strip()):
        if name not in scores:
            raise EmmaError(f"monitor.select names {name!r}, which is not among monitor.val_metrics")
        v = min(scores[name], SELECT_CAPS.get(name, float("inf"))) if caps else scores[name]
        total += v if np.isfinite(v) else -float("inf")
    return total


#: What keeps ``ufuser_best.safetensors`` when ``monitor.select`` is empty: the sum of these
#: metrics (those of them among ``monitor.val_metrics``).
DEFAULT_SELECT = ("VIF", "Qabf")


def effective_select(monitor: MonitorConfig) -> str:
    """``monitor.select``, else the sum of :data:`DEFAULT_SELECT` among ``monitor.val_metrics``
    (else the first validation metric), so that ``--val`` always keeps a best checkpoint."""
    if monitor.select:
        return monitor.select
    names = [n for n in DEFAULT_SELECT if n in monitor.val_metrics] or list(monitor.val_metrics[:1])
    return "+".join(names)


def hf_energy(x: torch.Tensor) -> torch.Tensor:
    """High-frequency energy: mean |3x3 Laplacian| (reflect border) of (N, 1, H, W) -> scalar."""
    return laplacian(x.float(), 3, border_type="reflect", normalized=False).abs().mean()


class FusionObjective(nn.Module):
    """:class:`~emma_fusion.train.losses.EmmaLoss` plus the per-step transform draw; DDP wraps this.

    ``phases``: a curriculum's later losses as ``(first step, loss)``; from that step on, that loss
    is used instead of ``loss`` (all of them share the one U-Fuser). ``stream`` maps a step to the
    ``(seed, index)`` its transforms are drawn from (default ``(seed, step)``).
    """

    def __init__(self, loss: EmmaLoss, sampler: TransformSampler, seed: int, rank: int = 0,
                 phases: list[tuple[int, EmmaLoss]] | None = None,
                 stream: Callable[[int], tuple[int, int]] | None = None) -> None:
        super().__init__()
        self.base, self.sampler, self.seed, self.rank = loss, sampler, seed, rank
        self.stream = stream or (lambda step: (self.seed, step))
        self.starts = [s for s, _ in phases or []]
        self.later = nn.ModuleList([x for _, x in phases or []])
        self.current = 0  # index of the phase in use: 0 is ``base``

    def loss_at(self, step: int) -> EmmaLoss:
        """The loss of the phase that ``step`` belongs to."""
        return ([self.base, *self.later])[sum(step >= s for s in self.starts)]

    @property
    def loss(self) -> EmmaLoss:
        """The loss of the phase in use (the last step's)."""
        return ([self.base, *self.later])[self.current]

    def transforms(self, step: int, height: int, width: int):
        """The transform stack of ``step`` (empty when the ablation uses none)."""
        if not self.loss.uses_transforms:
            return []
        seed, index = self.stream(step)
        gen = torch.Generator().manual_seed((seed * 1_000_003 + index) * 131 + self.rank)
        return self.sampler.sample(height, width, gen)

    def forward(self, ir: torch.Tensor, vi: torch.Tensor, step: int = 0):
        self.current = sum(step >= s for s in self.starts)
        out = self.loss(ir, vi, self.transforms(step, ir.shape[-2], ir.shape[-1]))
        return out.total.float(), out.terms


class ArtefactMonitor:
    """Scores fixed crops: high-frequency ratio of f and the sensing nets' error ratio.

    ``hf_ratio = hf(f) / max(hf(i), hf(v))``; ``sense_ratio_ir = MSE(A_i(f), i) / ref_ir`` with
    ``ref_ir = min(MSE(A_i(avg), i), MSE(A_i(f0), i))``, ``avg = (i + v) / 2`` and ``f0`` the
    fusion of the U-Fuser the run started from (and the same for A_v): sensing nets trained on
    that model's own outputs (the packaged ``emma-sensing``) decode them well from the first step,
    which is no sign of a hidden code; only a fall below that start is. The reference is kept in
    checkpoints, so a resumed run judges by the same one. A violation is ``hf_ratio > hf_max`` or a
    sense ratio below ``sense_min``; ``patience`` violations in a row warn loudly and, with
    ``stop``, end the run. Runs on rank 0; the decision is broadcast to every rank.
    """

    def __init__(self, cfg: FusionConfig, fuser: nn.Module, sense: dict[str, nn.Module] | None,
                 batch: dict[str, torch.Tensor], rt: Runtime, steps_per_epoch: int = 1000,
                 last_step: int = 0, val_at: set[int] | None = None,
                 caps_at: Callable[[int], bool] | None = None) -> None:
        self.cfg, self.fuser, self.sense, self.rt = cfg.monitor, fuser, sense, rt
        self.last_step = last_step  # validated too, so a run's end state can be the one kept
        self.val_at = val_at  # a curriculum's validation steps (else every val_every steps)
        self.caps_at = caps_at or (lambda step: self.cfg.select_caps)  # a curriculum's select_caps at a step
        self.best_scores: dict[str, float] = {}  # the validation of the kept weights
        self.batch = {k: v.to(rt.device) for k, v in batch.items()}
        self.streak = 0
        self.val_pairs = _validation_pairs(self.cfg.val_dir, self.cfg.val_pairs, self.cfg.val_list)
        self.val_every = self.cfg.val_every or steps_per_epoch
        self.reference: dict[str, float] = {}
        self.best = -float("inf")
        self.best_path = Path(cfg.out) / BEST_FILE
        if sense:
            ir, vi = self.batch["ir"], self.batch["vi"]
            with torch.no_grad():
                f0 = fuser(ir, vi).float()
                self.reference = {m: min(float(F.mse_loss(a((ir + vi) / 2).float(), self.batch[m])),
                                         float(F.mse_loss(a(f0).float(), self.batch[m]))) for m, a in sense.items()}

    @torch.no_grad()
    def measure(self) -> dict[str, float]:
        """The monitor's numbers for the current U-Fuser."""
        ir, vi = self.batch["ir"], self.batch["vi"]
        with self.rt.autocast():
            f = self.fuser(ir, vi).float()
        rec = {"hf_ratio": float(hf_energy(f) / torch.maximum(hf_energy(ir), hf_energy(vi)).clamp_min(1e-8)),
               "l1_ir": float(F.l1_loss(f, ir)), "l1_vi": float(F.l1_loss(f, vi))}
        for m, a in (self.sense or {}).items():
            rec[f"sense_ratio_{m}"] = float(F.mse_loss(a(f).float(), self.batch[m])) / max(self.reference[m], 1e-12)
        return rec

    def _violations(self, rec: dict[str, float]) -> list[str]:
        bad = []
        if rec["hf_ratio"] > self.cfg.hf_max:
            bad.append(f"high-frequency ratio {rec['hf_ratio']:.2f} > {self.cfg.hf_max}")
        for m in ("ir", "vi"):
            r = rec.get(f"sense_ratio_{m}")
            if r is not None and r < self.cfg.sense_min:
                bad.append(f"A_{m}(f) error ratio {r:.3f} < {self.cfg.sense_min}")
        return bad

    def validate(self) -> dict[str, float]:
        """Mean metrics of the current U-Fuser on the validation pairs (empty without ``val_dir``)."""
        if not self.val_pairs:
            return {}
        from ..core import fuse_luma
        from ..inference import NetworkRunner
        from ..metrics import compute, quantize_fused

        runner = NetworkRunner(self.fuser, device=self.rt.device)
        method = lambda i, v, key=None: runner(i, v)  # noqa: E731  (the FusionMethod call)
        totals: dict[str, list[float]] = {}
        for ir, vi in self.val_pairs:
            with self.rt.autocast():
                f = fuse_luma(method, ir / 255.0, vi / 255.0, key="validation")
            scores = compute(quantize_fused(f), ir, vi, list(self.cfg.val_metrics))
            for k, v in scores.items():
                totals.setdefault(k, []).append(v)
        return {k: float(np.nanmean(v)) for k, v in totals.items()}

    def keep_best(self, step: int, val: dict[str, float]) -> bool:
        """Save the U-Fuser as ``ufuser_best.safetensors`` when ``val`` beats the best so far (by
        :func:`effective_select`); return whether it did."""
        select = effective_select(self.cfg)
        if not select:
            return False
        caps = self.caps_at(step)
        score = selection_score(select, val, caps)
        val["select"] = score
        if self.best_scores:  # the kept weights' score by this phase's sum (a phase may change select_caps)
            self.best = selection_score(select, self.best_scores, caps)
        if score <= self.best:
            return False
        self.best, self.best_scores = score, {k: v for k, v in val.items() if k != "select"}
        meta = {"stage": "fusion", "step": str(step), "select": select, "score": f"{score:.6f}"}
        save_weights(self.best_path, self.fuser, extra_metadata=meta)
        log.info("step %d: best validation %s = %.4f -> %s", step, select, score, self.best_path)
        return True

    def _validates(self, step: int) -> bool:
        if self.val_at is not None:
            return step in self.val_at
        return step % self.val_every == 0 or step == self.last_step

    def __call__(self, step: int) -> dict[str, Any] | None:
        val = None
        if self.val_pairs and self._validates(step) and self.rt.main:
            val = self.validate()
            best = self.keep_best(step, val)
            notes.info("step %d validation: %s%s", step, ", ".join(f"{k} {v:.4f}" for k, v in val.items()),
                       f" (best {effective_select(self.cfg)} so far -> {self.best_path.name})" if best else "")
        if self.cfg.every <= 0 or step % self.cfg.every:
            return {"validation": val} if val else None
        rec: dict[str, Any] | None = None
        stop = torch.zeros(1, device=self.rt.device)
        if self.rt.main:
            rec = self.measure()
            if val:
                rec["validation"] = val
            bad = self._violations(rec)
            self.streak = self.streak + 1 if bad else 0
            rec["violations"] = bad
            if bad:
                log.warning("step %d: artefact monitor: %s (%d in a row)", step, "; ".join(bad), self.streak)
            if self.streak >= self.cfg.patience and self.cfg.stop:
                stop += 1
        if self.rt.distributed:
            dist.broadcast(stop, 0)
        if float(stop):
            raise StopTraining(
                f"stage 2 stopped at step {step}: the U-Fuser is fooling the sensing nets "
                f"({'; '.join(rec['violations']) if rec else 'see rank 0'}); retrain A with noise_std > 0, "
                "lower the learning rate, warm-start from a plain-loss model, or set monitor.stop = false"
            )
        return rec


def _listed_pairs(path: str) -> list[tuple[str, Path, Path]]:
    """The pairs of a list file: one ``IR VI`` pair of paths per line (``#`` comments, blank lines
    skipped); relative paths are taken from the current working directory, as every config path."""
    p = Path(path)
    if not p.is_file():
        raise EmmaError(f"no such validation list: {p}")
    pairs = []
    for n, line in enumerate(p.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 2:
            raise EmmaError(f"{p}:{n}: expected 'IR VI' (two paths), got {line!r}")
        ir, vi = Path(parts[0]), Path(parts[1])
        for f in (ir, vi):
            if not f.is_file():
                raise EmmaError(f"{p}:{n}: no such image file: {f}")
        pairs.append((ir.stem, ir, vi))
    return pairs


def _validation_pairs(folder: str, n: int, listed: str = "") -> list[tuple[np.ndarray, np.ndarray]]:
    """The first ``n`` pairs (0: all) of ``folder/ir`` + ``folder/vi``, or of the list file
    ``listed`` (:func:`_listed_pairs`), read in the metrics' convention."""
    if not (folder or listed):
        return []
    if folder and listed:
        raise EmmaError("monitor.val_dir and monitor.val_list are alternatives; give one")
    if n < 0:
        raise EmmaError(f"monitor.val_pairs must be >= 0 (0: every pair), got {n}")
    from ..io import pair_by_stem
    from ..metrics import read_metric_image

    if listed:
        pairs, folder = _listed_pairs(listed), listed
    else:
        pairs, _ = pair_by_stem(Path(folder) / "ir", Path(folder) / "vi")
    if not pairs:
        raise EmmaError(f"no validation pairs in {folder}" + ("" if listed else f"/ir and {folder}/vi"))
    used = pairs[:n] if n else pairs
    log.info("validation: %d of the %d pairs in %s (monitor.val_pairs; 0: all)", len(used), len(pairs), folder)
    return [(read_metric_image(i), read_metric_image(v)) for _, i, v in used]


def _sensing_paths(cfg: FusionConfig) -> tuple[str, str, Path | dict[str, Any] | None]:
    """The two sensing nets (files or packaged names) and their gate report (a file, a dict or None).

    ``sensing`` names a stage-1 run folder or a packaged pair: ``NAME`` with packaged models
    ``NAME-ir`` and ``NAME-vi`` (e.g. ``emma-sensing``), whose gate report is in the registry.
    """
    models = packaged_models()
    if cfg.sensing and not Path(cfg.sensing).exists() and f"{cfg.sensing}-ir" in models and f"{cfg.sensing}-vi" in models:
        return f"{cfg.sensing}-ir", f"{cfg.sensing}-vi", models[f"{cfg.sensing}-ir"].get("gate")
    base = Path(cfg.sensing) if cfg.sensing else None
    if base is not None and not base.is_dir():
        pairs = sorted(n[:-3] for n in models if n.endswith("-ir") and f"{n[:-3]}-vi" in models)
        raise EmmaError(f"sensing {cfg.sensing}: no such stage-1 run folder or packaged pair "
                        f"(packaged: {', '.join(pairs) or 'none'})")
    ir = Path(cfg.sensing_ir) if cfg.sensing_ir else (base / SENSING_FILES["ir"] if base else None)
    vi = Path(cfg.sensing_vi) if cfg.sensing_vi else (base / SENSING_FILES["vi"] if base else None)
    if ir is None or vi is None:
        raise EmmaError(f"ablation {cfg.ablation!r} needs the pseudo-sensing nets: set 'sensing' to a stage-1 "
                        "run folder or a packaged pair such as 'emma-sensing' (or 'sensing_ir' and 'sensing_vi')")
    gate = (base or ir.parent) / GATE_FILE
    return str(ir), str(vi), gate if gate.is_file() else None


def check_gate(gate: Path | dict[str, Any] | None, skip: bool) -> dict[str, Any] | None:
    """Refuse sensing nets whose stage-1 quality gate failed or is missing, unless ``skip``.

    ``gate`` is a ``gate.json`` file, the report itself (packaged nets) or None (no report).
    """
    if gate is None:
        if skip:
            log.warning("no %s beside the sensing nets; gate skipped", GATE_FILE)
            return None
        raise EmmaError(f"no {GATE_FILE} beside the sensing nets, so their quality is unknown; "
                        "train them with `emma train sensing` or pass --skip-gate")
    report = gate if isinstance(gate, dict) else json.loads(gate.read_text())
    if not report.get("passed", False):
        if skip:
            log.warning("sensing nets FAILED their quality gate (%s); continuing because the gate is skipped", gate)
        else:
            raise EmmaError(f"the sensing nets failed their quality gate ({gate}); a U-Fuser trained on them "
                            "learns to fool them. Retrain stage 1 (longer, noise_std > 0) or pass --skip-gate")
    return report


def _load_sensing(cfg: FusionConfig) -> dict[str, nn.Module] | None:
    if not EmmaLoss.needs_sensing(cfg.ablation):
        return None
    ir, vi, gate = _sensing_paths(cfg)
    check_gate(gate, cfg.skip_gate)
    return {"ir": load_model(ir, arch="sensing-unet"), "vi": load_model(vi, arch="sensing-unet")}


def _build_data(cfg: FusionConfig, seed: int) -> PairedCrops:
    d = cfg.data
    if d.crop % UFuser.multiple or (EmmaLoss.needs_sensing(cfg.ablation) and d.crop % 16):
        raise EmmaError(f"the fusion crop must be a multiple of 16 (8 without sensing nets), not {d.crop}")
    if any(c.content_vif_weight > 0 for _, c in phase_configs(cfg)) and d.crop < VIF_MIN_SIZE:
        raise EmmaError(f"content_vif_weight needs a crop of at least {VIF_MIN_SIZE} pixels (VIF's four scales), "
                        f"e.g. 48; not {d.crop}")
    return PairedCrops(d.sets, d.crop, min_contrast=d.min_contrast, max_tries=d.max_tries,
                       seed=seed, cache_mb=d.cache_mb, hflip=d.hflip, grid_stride=d.grid_stride)


def make_sampler(cfg: FusionConfig) -> TransformSampler:
    """The transform sampler described by ``cfg.transforms``."""
    t = cfg.transforms
    return TransformSampler(n_shift=t.n_shift, n_rot=t.n_rot, n_flip=t.n_flip, angles=tuple(t.angles),
                            include_identity=t.include_identity, per_step=t.per_step or None)


def _stream_at(cfg: FusionConfig) -> Callable[[int], tuple[int, int]]:
    """``(seed, index)`` of each step's crops in its phase's stream (:func:`crop_stream`)."""
    starts, streams = [s for s, _ in phase_configs(cfg)], crop_stream(cfg)

    def at(step: int) -> tuple[int, int]:
        seed, first = streams[bisect_right(starts, step) - 1]
        return seed, step - first

    return at


def _phase_caps(cfg: FusionConfig) -> Callable[[int], bool]:
    """``select_caps`` of the phase a validation at ``step`` belongs to (a phase's last step is its own)."""
    phases = phase_configs(cfg)
    starts, caps = [s for s, _ in phases], [c.monitor.select_caps for _, c in phases]
    return lambda step: caps[max(0, bisect_left(starts, step) - 1)]


def _phase_layouts(cfg: FusionConfig, module: nn.Module, rt: Runtime):
    """A ``before_step`` hook that gives each step its phase's ``channels_last`` layout (None when
    every phase has the run's layout): the module's weights and, through ``rt``, the batches."""
    phases = phase_configs(cfg)
    starts, layouts = [s for s, _ in phases], [c.channels_last for _, c in phases]
    if all(wanted == rt.channels_last for wanted in layouts):
        return None

    def layout(step: int, opt: torch.optim.Optimizer) -> None:
        wanted = layouts[bisect_right(starts, step) - 1]
        if wanted != rt.channels_last:
            rt.channels_last = wanted
            module.to(memory_format=rt.memory_format)
            notes.info("step %d: channels_last = %s", step, str(wanted).lower())
        return None

    return layout


def _restarts_from_best(cfg: FusionConfig, fuser: nn.Module, monitor: ArtefactMonitor | None, rt: Runtime):
    """The ``before_step`` hook of a curriculum whose phases start ``from_best`` (None without any):
    at such a phase's first step, load ``ufuser_best.safetensors`` into ``fuser`` and clear the
    optimiser's moments, as a chained run started from the previous run's best; the weights the
    phase starts from are kept as ``ufuser_start_phaseNN.safetensors``."""
    starts = {s: n for n, (s, _) in enumerate(phase_configs(cfg), 1) if s in set(restart_steps(cfg))}
    if not starts:
        return None
    if monitor is None or not monitor.val_pairs:
        raise EmmaError("a phase with from_best = true needs validation pairs (monitor.val_dir or "
                        "monitor.val_list) to pick the best weights")

    def restart(step: int, opt: torch.optim.Optimizer) -> dict[str, Any] | None:
        if step not in starts:
            return None
        rt.barrier()  # rank 0 wrote the best weights
        best = load_model(str(monitor.best_path), arch="ufuser")
        load_weights_into(fuser, best.state_dict(), source=str(monitor.best_path))
        opt.state.clear()
        kept = monitor.best_path.with_name(f"ufuser_start_phase{starts[step]:02d}.safetensors")
        if rt.main:
            shutil.copyfile(monitor.best_path, kept.with_suffix(".tmp"))
            os.replace(kept.with_suffix(".tmp"), kept)
        notes.info("step %d: phase %d starts from the best validated weights (%s %.4f), fresh optimiser",
                   step, starts[step], effective_select(monitor.cfg), monitor.best)
        return {"from": monitor.best_path.name, "select": monitor.best, "kept": kept.name}

    return restart


def _chain(*hooks):
    """One ``before_step`` hook running ``hooks`` (None entries skipped) in order; the last record wins."""
    hooks = [h for h in hooks if h is not None]
    if not hooks:
        return None

    def run(step: int, opt: torch.optim.Optimizer) -> dict[str, Any] | None:
        recs = [h(step, opt) for h in hooks]
        return next((r for r in reversed(recs) if r is not None), None)

    return run


def _stream_batch(data: PairedCrops, where: tuple[int, int], batch: int, rt: Runtime) -> dict[str, torch.Tensor]:
    """This rank's crops of the step at ``where = (seed, index)`` of a crop stream."""
    seed, index = where
    return data.batch(rank_indices(index, batch, rt.rank, rt.world), seed=seed)


def _restore_monitor(monitor: ArtefactMonitor | None, state: dict[str, Any]) -> None:
    if monitor is not None:
        monitor.streak = int(state.get("monitor_streak", 0))
        monitor.best = float(state.get("monitor_best", -float("inf")))
        monitor.best_scores = {k: float(v) for k, v in state.get("monitor_best_scores", {}).items()}
        monitor.reference.update(state.get("monitor_reference", {}))


def make_loss(cfg: FusionConfig, fuser: nn.Module, sense: dict[str, nn.Module] | None) -> EmmaLoss:
    """The stage-2 loss that ``cfg`` describes (Eq. 6 or an ablation, with its content settings)."""
    return EmmaLoss(fuser, sense and sense["ir"], sense and sense["vi"], a1=cfg.a1, a2=cfg.a2,
                    ablation=cfg.ablation, plain_grad=cfg.plain_grad, content_weight=cfg.content_weight,
                    content=partial(content_loss, grad_weight=cfg.content_grad_weight, signed=cfg.content_signed,
                                    grad_gain=cfg.content_grad_gain, ir_margin=cfg.content_ir_margin,
                                    base_weight=cfg.content_base_weight, base_size=cfg.content_base_size,
                                    polarity=cfg.content_polarity, vif_weight=cfg.content_vif_weight,
                                    qabf_weight=cfg.content_qabf_weight, vif_max_gain=cfg.content_vif_max_gain,
                                    vif_visible_share=cfg.content_vif_visible_share,
                                    sky_weight=cfg.content_sky_weight,
                                    target_weight=cfg.content_target_weight, sky_band=cfg.content_sky_band,
                                    sky_polarity=cfg.content_sky_polarity, sky_smooth=cfg.content_sky_smooth,
                                    sky_bright=cfg.content_sky_bright, floor_weight=cfg.content_floor_weight,
                                    floor_warm=cfg.content_floor_warm, scd_weight=cfg.content_scd_weight,
                                    sky_mean=cfg.content_sky_mean))


def _loss_summary(cfg: FusionConfig) -> str:
    """One line naming a phase's content loss: ``texture 10 (signed, x1.15), VIF 6 (cap 1.3), Qabf 16, sky 2``."""
    texture = f"texture {cfg.content_grad_weight:g}"
    if cfg.content_signed or cfg.content_grad_gain != 1.0:
        texture += f" ({'signed' if cfg.content_signed else 'unsigned'}, x{cfg.content_grad_gain:g})"
    parts = [texture]
    if cfg.content_vif_weight:
        parts.append(f"VIF {cfg.content_vif_weight:g}" + (f" (cap {cfg.content_vif_max_gain:g})" if cfg.content_vif_max_gain else ""))
    if cfg.content_qabf_weight:
        parts.append(f"Qabf {cfg.content_qabf_weight:g}")
    if cfg.content_sky_weight:
        mask = [f"band {cfg.content_sky_band}"] if cfg.content_sky_band != 15 else []
        mask += [f"smooth {cfg.content_sky_smooth}"] if cfg.content_sky_smooth > 1 else []
        mask += [f"from {cfg.content_sky_bright:g}"] if cfg.content_sky_bright != 170.0 else []
        mask += [f"{cfg.content_sky_mean}x{cfg.content_sky_mean} means"] if cfg.content_sky_mean > 1 else []
        parts.append(f"sky {cfg.content_sky_weight:g}" + (f" ({', '.join(mask)})" if mask else ""))
    if cfg.content_sky_polarity:
        parts.append(f"sky polarity {cfg.content_sky_polarity} px")
    if cfg.content_target_weight:
        parts.append(f"target {cfg.content_target_weight:g}")
    if cfg.content_floor_weight:
        parts.append(f"floor {cfg.content_floor_weight:g}"
                     + (f" (infrared warmer than {cfg.content_floor_warm:g} left out)" if cfg.content_floor_warm else ""))
    if cfg.content_scd_weight:
        parts.append(f"SCD {cfg.content_scd_weight:g}")
    return ", ".join(parts)


def _check_initial_weights(name: str) -> None:
    """Read the U-Fuser weights a run starts from (``init_weights``: a file or a packaged model such
    as ``emma-default``) before any work: unreadable weights, or weights holding NaN or infinity, are
    one line here instead of a NaN loss at step 0. (They are loaded again after seeding, where a run
    always loaded them, so the random stream of a warm start is unchanged.)"""
    if name:
        load_model(name, arch="ufuser")  # load_state refuses non-finite tensors


def train_fusion(config: FusionConfig, resume: bool = False) -> Path:
    """Train the U-Fuser; return the final weights file ``OUT/ufuser.safetensors``."""
    cfg = config
    check_values(cfg)
    for _, c in phase_configs(cfg):  # bad loss settings fail here, not after data loading and validation
        check_content_options(c.content_signed, c.content_polarity, c.content_vif_visible_share, c.content_sky_band,
                             c.content_sky_polarity, c.content_sky_smooth, c.content_sky_bright, c.content_sky_mean)
    if not resume:
        _check_initial_weights(cfg.init_weights)
    rt = setup_runtime(cfg)
    sense = _load_sensing(cfg)
    data = _build_data(cfg, cfg.seed)
    torch.manual_seed(cfg.seed)
    fuser = UFuser()
    if cfg.init_weights and not resume:  # a weights file or a packaged model name (e.g. emma-default)
        init = load_model(cfg.init_weights, arch="ufuser")
        load_weights_into(fuser, init.state_dict(), source=cfg.init_weights)
        log.info("U-Fuser warm-started from %s", cfg.init_weights)
    if sense:
        for a in sense.values():
            a.to(rt.device)
    phases, restarts = phase_configs(cfg), set(restart_steps(cfg))
    if cfg.phases:
        cfg = dataclasses.replace(cfg, steps=sum(c.steps for _, c in phases))
        for n, (start, c) in enumerate(phases, 1):
            notes.info("phase %d of %d: steps %d-%d, lr %.3g -> %.3g, %s%s", n, len(phases), start + 1,
                       start + c.steps, c.optim.lr, c.optim.lr_min, _loss_summary(c),
                       "; from the best validated weights" if start in restarts else "")
    losses = [(start, make_loss(c, fuser, sense)) for start, c in phases]
    stream = _stream_at(cfg)
    objective = FusionObjective(losses[0][1], make_sampler(cfg), cfg.seed, rt.rank, phases=losses[1:], stream=stream)
    spe = steps_per_epoch(data.epoch_size(cfg.data.crops_per_image), 1, cfg.batch, rt.world)
    fuser.to(rt.device)
    monitor = None
    if cfg.monitor.every > 0:
        probe = _build_data(cfg, cfg.seed + 1)  # a different crop stream than training
        monitor = ArtefactMonitor(cfg, fuser, sense, probe.batch(range(cfg.monitor.crops)), rt, spe,
                                  last_step=total_steps(cfg, spe),
                                  val_at=validation_steps(cfg, spe) if cfg.phases else None,
                                  caps_at=_phase_caps(cfg) if cfg.phases else None)
    log.info("fusion (ablation %s): %d pairs, %d steps per epoch, %d transforms per step",
             cfg.ablation, len(data.pairs), spe, objective.sampler.per_step_size if objective.loss.uses_transforms else 0)
    stage = Stage(
        name="fusion",
        models={"ufuser": fuser},
        objective=objective,
        batch_fn=lambda step: _stream_batch(data, stream(step), cfg.batch, rt),
        steps_per_epoch=spe,
        monitor=monitor,
        extra_state=lambda: {"monitor_streak": monitor.streak if monitor else 0,
                             "monitor_best": monitor.best if monitor else -float("inf"),
                             "monitor_best_scores": dict(monitor.best_scores) if monitor else {},
                             "monitor_reference": dict(monitor.reference) if monitor else {}},
        load_extra_state=lambda s: _restore_monitor(monitor, s),
        lr_at=partial(phase_lr, phases) if cfg.phases else None,
        before_step=_chain(_phase_layouts(cfg, objective, rt), _restarts_from_best(cfg, fuser, monitor, rt)),
    )
    step, out = run_stage(cfg, stage, rt, resume=resume)
    final = out / FUSER_FILE
    if rt.main:
        meta = {"stage": "fusion", "step": str(step), "ablation": cfg.ablation}
        save_weights(final, fuser, extra_metadata=meta)
    rt.barrier()
    return final
