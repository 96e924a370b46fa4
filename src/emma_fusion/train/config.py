"""Training configurations: dataclasses, the presets (``paper``, ``cpu``, ``warmstart``, ``finetune``), and TOML I/O.

A TOML file holds a ``[sensing]`` and/or a ``[fusion]`` table (one file can drive both stages)
and may name a base preset at the top level (``preset = "cpu"``); every key it sets overrides
the preset's value. Unknown keys are an error, so typos do not pass silently. Relative paths are
taken relative to the current working directory. The resolved configuration of a run is saved
as ``config.toml`` in its output folder and beside every checkpoint.

Epochs: with random crops an epoch is defined as
``ceil(len(data) * crops_per_image / (batch * world_size))`` steps, where ``len(data)`` is the
number of usable pairs (stage 2) or of (pair, fused image) inputs (stage 1) and
``crops_per_image`` defaults to 6, the number of 128 x 128 grid patches the authors cut from a
480 x 640 MSRS image. With the authors' grid patches (``data.grid_stride > 0``, the ``paper``
preset) an epoch is every kept patch (times its fused images in stage 1) once.
``steps > 0`` overrides ``epochs``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import EmmaError
from ..io import atomic_write
from .data import DatasetSpec

__all__ = [
    "PRESETS",
    "DataConfig",
    "OptimConfig",
    "TransformConfig",
    "MonitorConfig",
    "SensingConfig",
    "FusionConfig",
    "preset",
    "load_config",
    "save_config",
    "config_to_toml",
    "apply_overrides",
    "PHASE_KEYS",
    "phase_configs",
    "check_values",
    "phase_lr",
    "crop_stream",
    "validation_steps",
]


@dataclass
class DataConfig:
    """Where the crops come from and how they are drawn (see :class:`emma_fusion.train.data.PairedCrops`).

    ``grid_stride = 0``: random crops; ``> 0``: the authors' ``crop`` x ``crop`` patches on a grid
    of this stride (200: 6 per 480 x 640 MSRS image), low-contrast ones dropped, shuffled each epoch.
    """

    sets: list[DatasetSpec] = field(default_factory=list)
    crop: int = 128
    crops_per_image: int = 6
    min_contrast: float = 0.1
    max_tries: int = 20
    noise_std: float = 0.0
    cache_mb: float = 2048.0
    hflip: bool = False
    grid_stride: int = 0


@dataclass
class OptimConfig:
    """Adam. ``schedule = "step"``: lr x ``lr_gamma`` every ``lr_step_epochs`` epochs
    (``lr_step_epochs = 0``: constant learning rate); ``schedule = "cosine"``: cosine decay from
    ``lr`` to ``lr_min`` over the run's total steps."""

    lr: float = 1e-4
    weight_decay: float = 0.0
    schedule: str = "step"
    lr_step_epochs: float = 20.0
    lr_gamma: float = 0.5
    lr_min: float = 0.0
    grad_clip: float = 0.0


@dataclass
class TransformConfig:
    """The equivariance transform stack (:class:`emma_fusion.train.transforms.TransformSampler`).

    ``per_step = 0`` uses the whole stack every step (the authors); ``k > 0`` draws ``k`` of it.
    """

    n_shift: int = 3
    n_rot: int = 3
    n_flip: int = 3
    angles: list[float] = field(default_factory=lambda: [10.0, 130.0, 250.0])
    include_identity: bool = True
    per_step: int = 0


@dataclass
class MonitorConfig:
    """Stage-2 artefact monitor, evaluated every ``every`` steps on fixed crops.

    ``hf_ratio``: mean |Laplacian| of f over the larger of the sources'; above ``hf_max`` the
    fused image carries more high-frequency energy than either source (stripes, checkerboards).
    ``sense_ratio``: MSE(A(f), source) over MSE(A(avg), source), avg = (i + v) / 2 an ordinary
    fused image, for A_i and A_v; below ``sense_min`` f encodes a source in a form only A decodes.
    ``patience`` consecutive violations stop the run when ``stop`` is true (otherwise warn).
    Validation (``val_dir``, or ``val_list``: a text file of ``IR VI`` path pairs, one per line;
    every ``val_every`` steps, 0: once an epoch) scores the first
    ``val_pairs`` pairs (0: every pair) with ``val_metrics``; the U-Fuser with the best sum of the
    metrics named in ``select`` (e.g. ``"VIF+Qabf+TCR"``; empty: ``VIF+Qabf``) so far is kept as
    ``ufuser_best.safetensors``; TCR and SKY count up to 1 in that sum unless ``select_caps`` is false.
    The defaults are calibrated in docs/TRAINING.md (a striped run: hf_ratio 1.7-7.3, sense ratios
    down to 0.28; clean runs: hf_ratio 0.15-0.5, sense ratios 0.57-1.3).
    """

    every: int = 100
    crops: int = 8
    hf_max: float = 2.5
    sense_min: float = 0.45
    patience: int = 3
    stop: bool = True
    val_dir: str = ""
    val_list: str = ""
    val_pairs: int = 4
    val_every: int = 0
    val_metrics: list[str] = field(default_factory=lambda: ["EN", "SF", "VIF", "Qabf", "SSIM"])
    select: str = ""
    select_caps: bool = True


@dataclass
class _RunFields:
    out: str = "runs/emma"
    seed: int = 0
    device: str = "auto"
    amp: str = "none"
    channels_last: bool = True
    threads: int = 0
    batch: int = 8
    epochs: float = 100.0
    steps: int = 0
    checkpoint_every: int = 1000
    max_seconds: float = 0.0
    keep_checkpoints: int = 2
    log_every: int = 1
    progress: bool = True


@dataclass
class SensingConfig(_RunFields):
    """Stage 1: pseudo-sensing nets A_i (fused -> ir) and A_v (fused -> vi), MSE loss."""

    width: int = 64
    holdout: float = 0.1
    gate_ratio: float = 0.9
    gate_crops: int = 64
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr_step_epochs=10.0))
    data: DataConfig = field(default_factory=DataConfig)

    stage = "sensing"


@dataclass
class FusionConfig(_RunFields):
    """Stage 2: the U-Fuser with frozen A_i, A_v and the loss of Eq. 6 (or an ablation).

    ``phases`` (optional) makes one run a curriculum: a list of tables, each with ``steps`` and any
    of :data:`PHASE_KEYS` (the ``content_*`` loss settings, ``lr``, ``lr_min``), each applied on top
    of this table's values (not of the previous phase's). The run is the sum of the phases' steps; within each phase the
    learning rate decays from its ``lr`` to its ``lr_min`` on a cosine (:func:`phase_configs`). A
    phase with ``from_best = true`` starts from the best validated weights so far with a fresh
    optimiser, as chained runs each started from the previous run's best (:func:`restart_steps`).
    A phase's ``seed`` restarts the crop stream at its first step as a new run with that seed
    would; ``channels_last``, ``val_every`` (validations counted from the phase's first step) and
    ``select_caps`` change the layout, validation interval and selection sum for the phase
    (:func:`crop_stream`, :func:`validation_steps`).
    """

    sensing: str = ""
    sensing_ir: str = ""
    sensing_vi: str = ""
    skip_gate: bool = False
    init_weights: str = ""
    ablation: str = "full"
    a1: float = 1.0
    a2: float = 0.1
    plain_grad: bool = False
    content_weight: float = 0.0
    content_grad_weight: float = 10.0
    content_signed: bool = False
    content_grad_gain: float = 1.0
    content_ir_margin: float = 0.0
    content_base_weight: float = 0.0
    content_base_size: int = 16
    content_polarity: float = 0.0
    content_vif_weight: float = 0.0
    content_qabf_weight: float = 0.0
    content_vif_max_gain: float = 0.0
    content_vif_visible_share: float = 0.5
    content_sky_weight: float = 0.0
    content_target_weight: float = 0.0
    content_sky_band: int = 15
    content_sky_polarity: int = 0
    content_sky_smooth: int = 0
    content_sky_bright: float = 170.0
    content_sky_mean: int = 0
    content_floor_weight: float = 0.0
    content_floor_warm: float = 0.0
    content_scd_weight: float = 0.0
    phases: list[dict[str, Any]] = field(default_factory=list)
    optim: OptimConfig = field(default_factory=OptimConfig)
    transforms: TransformConfig = field(default_factory=TransformConfig)
    monitor: MonitorConfig = field(default_factory=MonitorConfig)
    data: DataConfig = field(default_factory=DataConfig)

    stage = "fusion"


StageConfig = typing.Union[SensingConfig, FusionConfig]

#: What a curriculum phase (``FusionConfig.phases``) may set besides ``steps``: the content loss,
#: the learning rate, ``from_best``, the crop stream's ``seed``, ``channels_last``, the validation
#: interval ``val_every`` and ``select_caps``. Everything else (data, batch, validation pairs) is the run's.
PHASE_KEYS = frozenset({"lr", "lr_min", "from_best", "seed", "channels_last", "val_every", "select_caps"}
                       | {f.name for f in dataclasses.fields(FusionConfig) if f.name.startswith("content_")})


def phase_configs(cfg: FusionConfig) -> list[tuple[int, FusionConfig]]:
    """The phases of a curriculum run as ``(first step, configuration of that phase)``, in order.

    Without ``cfg.phases`` the run is one phase: ``[(0, cfg)]``. A phase's ``lr``/``lr_min`` default to
    ``cfg.optim``'s; its other keys override ``cfg``'s. Raises :class:`EmmaError` on an unknown key, a
    phase without ``steps >= 1``, a negative loss weight, or ``cfg.steps`` set to something other
    than the phases' sum.
    """
    if not cfg.phases:
        _check_loss_weights(cfg, "fusion")
        return [(0, cfg)]
    out, start = [], 0
    for n, phase in enumerate(cfg.phases, 1):
        where = f"fusion.phases[{n}]"
        if not isinstance(phase, dict):
            raise EmmaError(f"config {where} must be a table")
        unknown = set(phase) - PHASE_KEYS - {"steps"}
        if unknown:
            raise EmmaError(f"config {where}: {', '.join(sorted(unknown))} cannot change between phases "
                            f"(a phase sets steps, lr, lr_min, from_best, seed, channels_last, val_every, select_caps "
                            f"and content_* keys)")
        if not isinstance(phase.get("from_best", False), bool) or (n == 1 and phase.get("from_best")):
            raise EmmaError(f"config {where}: from_best must be true or false, and the first phase has no "
                            "best weights to start from")
        steps = phase.get("steps")
        if not _is_int(steps) or steps < 1:
            raise EmmaError(f"config {where} needs steps = N (N >= 1), got {steps!r}")
        _check_phase_run_keys(phase, where)
        for key in ("lr", "lr_min"):
            if key in phase:
                _check_value(where, key, phase[key], _LIMITS[f"optim.{key}"])
        loss = {k: v for k, v in phase.items() if k.startswith("content_") or k in ("seed", "channels_last")}
        optim = {k: v for k, v in phase.items() if k in ("lr", "lr_min")}
        monitor = {k: phase[k] for k in ("val_every", "select_caps") if k in phase}
        merged = _merge(cfg, {**loss, "optim": {**optim, "schedule": "cosine"}, "monitor": monitor,
                              "steps": steps, "phases": []}, where)
        _check_loss_weights(merged, where)
        out.append((start, merged))
        start += steps
    if cfg.steps and cfg.steps != start:
        raise EmmaError(f"steps = {cfg.steps} but the phases add up to {start} steps; leave steps out "
                        "(the phases set the run's length)")
    return out


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_loss_weights(cfg: FusionConfig, where: str) -> None:
    """One-line error for a negative or non-finite loss weight (``a1``, ``a2``, ``content_*_weight``): a term the loss
    would otherwise skip without a word."""
    for f in dataclasses.fields(cfg):
        is_weight = f.name in ("a1", "a2") or (f.name.startswith("content_") and f.name.endswith("_weight"))
        if is_weight and not (math.isfinite(getattr(cfg, f.name)) and getattr(cfg, f.name) >= 0):
            raise EmmaError(f"config {where}: {f.name} must be a finite number >= 0, got {getattr(cfg, f.name)!r}")


def _check_phase_run_keys(phase: dict[str, Any], where: str) -> None:
    """One-line errors for a phase's ``seed``, ``channels_last`` and ``val_every``."""
    if "seed" in phase and not (_is_int(phase["seed"]) and phase["seed"] >= 0):
        raise EmmaError(f"config {where}: seed must be a whole number >= 0, got {phase['seed']!r}")
    for key in ("channels_last", "select_caps"):
        if not isinstance(phase.get(key, False), bool):
            raise EmmaError(f"config {where}: {key} must be true or false")
    if "val_every" in phase and not (_is_int(phase["val_every"]) and phase["val_every"] >= 1):
        raise EmmaError(f"config {where}: val_every must be a whole number >= 1, got {phase['val_every']!r}")


#: The numbers a run reads, as ``key: (lowest value, whether the value must exceed it, what the
#: lowest value means)``; keys absent from a stage (``width`` in stage 2) are skipped. Floats must
#: also be finite. :func:`check_values` applies them to TOML files and command-line options alike.
_LIMITS: dict[str, tuple[float, bool, str]] = {
    "seed": (0, False, ""), "batch": (1, False, ""), "steps": (0, False, "0: run for epochs"),
    "epochs": (0, True, ""), "checkpoint_every": (1, False, ""), "log_every": (1, False, ""),
    "max_seconds": (0, False, "0: no limit"), "width": (1, False, ""), "gate_crops": (1, False, ""),
    "optim.lr": (0, True, ""), "optim.lr_min": (0, False, ""), "optim.weight_decay": (0, False, ""),
    "optim.lr_gamma": (0, True, ""), "optim.lr_step_epochs": (0, False, "0: constant"),
    "optim.grad_clip": (0, False, "0: no clipping"), "data.crop": (1, False, ""),
    "data.crops_per_image": (1, False, ""), "data.noise_std": (0, False, ""), "data.grid_stride": (0, False, "0: random crops"),
    "monitor.every": (0, False, "0: no monitor"), "monitor.crops": (1, False, ""), "monitor.patience": (1, False, ""),
    "monitor.val_every": (0, False, "0: once an epoch"), "monitor.val_pairs": (0, False, "0: every pair"),
    "transforms.per_step": (0, False, "0: the whole stack"), "threads": (0, False, "0: auto"),
}


def check_values(cfg: StageConfig) -> None:
    """One-line :class:`EmmaError` for a number out of its range (:data:`_LIMITS`), e.g. ``batch = 0``,
    ``optim.lr = nan`` or ``epochs = 0``; called on every configuration read or overridden and by the
    trainers, so bad input fails before any work is done."""
    for key, limit in _LIMITS.items():
        parent, _, name = key.rpartition(".")
        node = getattr(cfg, parent, None) if parent else cfg
        if hasattr(node, name):
            _check_value(cfg.stage, key, getattr(node, name), limit, typing.get_type_hints(type(node))[name] is int)


def _check_value(where: str, key: str, value: Any, limit: tuple[float, bool, str], whole: bool = False) -> None:
    """Raise ``config WHERE: KEY must be a finite number > LOW, got VALUE`` unless ``value`` is within ``limit``."""
    low, above, meaning = limit
    number = _is_int(value) if whole else isinstance(value, (int, float)) and not isinstance(value, bool)
    if number and math.isfinite(value) and (value > low if above else value >= low):
        return
    kind = "a whole number" if whole else "a finite number"
    note = f" ({meaning})" if meaning else ""
    raise EmmaError(f"config {where}: {key} must be {kind} {'>' if above else '>='} {low:g}{note}, got {value!r}")


def crop_stream(cfg: FusionConfig) -> list[tuple[int, int]]:
    """Where each phase's crops come from: ``(seed, first step of the stream)`` per phase.

    A phase that sets ``seed`` restarts the stream at its first step (crop ``k`` of the phase is
    crop ``k`` of a new run with that seed); the others continue the previous phase's stream.
    """
    out, current = [], (cfg.seed, 0)
    for (start, _), phase in zip(phase_configs(cfg), cfg.phases or [{}]):
        if "seed" in phase:
            current = (int(phase["seed"]), start)
        out.append(current)
    return out


def validation_steps(cfg: FusionConfig, steps_per_epoch: int = 1000) -> set[int]:
    """The steps a curriculum validates at: every phase's ``val_every`` (0: once an epoch)
    counted from its first step, and its last step (where a chained run would have ended)."""
    steps: set[int] = set()
    for start, c in phase_configs(cfg):
        steps.update(range(start, start + c.steps, c.monitor.val_every or steps_per_epoch))
        steps.add(start + c.steps)
    return steps


def restart_steps(cfg: FusionConfig) -> list[int]:
    """The first steps of the phases that start from the best validated weights (``from_best = true``)."""
    starts = [s for s, _ in phase_configs(cfg)]
    return [start for start, phase in zip(starts, cfg.phases) if phase.get("from_best")]


def phase_lr(phases: list[tuple[int, FusionConfig]], step: int) -> float:
    """The learning rate at ``step`` of a curriculum: a cosine from the phase's ``lr`` to its
    ``lr_min`` over the phase's steps (the last phase's ``lr_min`` after the end), computed as
    ``torch.optim.lr_scheduler.CosineAnnealingLR`` computes it step by step, so that a phase
    updates the weights exactly as a separate run with that schedule would."""
    start, cfg = next((s, c) for s, c in reversed(phases) if s <= step)
    lrs = _cosine_steps(cfg.optim.lr, cfg.optim.lr_min, max(1, cfg.steps))
    return lrs[min(step - start, len(lrs) - 1)]


@functools.lru_cache(maxsize=64)
def _cosine_steps(hi: float, lo: float, steps: int) -> tuple[float, ...]:
    """CosineAnnealingLR's recursive form: each value from the previous one (it differs from the
    closed form in the last bits, which a few thousand Adam steps turn into different weights)."""
    lrs = [hi]
    for t in range(1, steps + 1):
        ratio = (1.0 + math.cos(math.pi * t / steps)) / (1.0 + math.cos(math.pi * (t - 1) / steps))
        lrs.append(ratio * (lrs[-1] - lo) + lo)
    return tuple(lrs)
_CLASSES: dict[str, type] = {"sensing": SensingConfig, "fusion": FusionConfig}


def _paper(stage: str) -> StageConfig:
    """The authors' released training code (EMMA-TRAINING.md), where it and the paper differ (stage 2:
    the paper states batch 8 and 100 epochs): 128 px patches on a stride-200 grid, low-contrast
    ones dropped; stage 1 A width 64, batch 64, Adam 1e-4 halved every 10 epochs, 40 epochs;
    stage 2 batch 4, Adam 1e-4 halved every 20 epochs, 120 epochs, the whole transform stack."""
    grid = DataConfig(crop=128, grid_stride=200)
    if stage == "sensing":
        return SensingConfig(width=64, batch=64, epochs=40.0, checkpoint_every=1000, data=grid,
                             optim=OptimConfig(lr=1e-4, lr_step_epochs=10.0, lr_gamma=0.5))
    return FusionConfig(batch=4, epochs=120.0, checkpoint_every=2000, data=grid,
                        optim=OptimConfig(lr=1e-4, lr_step_epochs=20.0, lr_gamma=0.5),
                        transforms=TransformConfig(per_step=0))


def _cpu(stage: str) -> StageConfig:
    """Measured on a 2-core CPU to fit both stages in about 2 hours (docs/TRAINING.md)."""
    if stage == "sensing":
        return SensingConfig(
            width=16, batch=8, steps=3000, checkpoint_every=250, gate_crops=64, amp="auto",
            optim=OptimConfig(lr=1e-3, lr_step_epochs=0.0),
            data=DataConfig(crop=96, noise_std=0.1),
        )
    return FusionConfig(
        batch=4, steps=3000, checkpoint_every=250,
        optim=OptimConfig(lr=2e-4, lr_step_epochs=0.0),
        transforms=TransformConfig(per_step=1),
        monitor=MonitorConfig(every=100, crops=8),
        data=DataConfig(crop=96),
    )


def _warmstart(stage: str) -> StageConfig:
    """The content-loss warm start of the shipped model (docs/TRAINING.md): no sensing nets.

    Gradient weight 2, not the 10 of SeAFusion-style losses: measured here, weights 10 and 5 led
    the U-Fuser into dark warm targets (validation TCR -0.5) and 2 kept them (TCR 0.9).
    """
    if stage == "sensing":
        return _cpu(stage)
    return FusionConfig(
        ablation="content", content_grad_weight=2.0, batch=8, steps=3000, checkpoint_every=250,
        optim=OptimConfig(lr=1e-3, schedule="cosine", lr_min=1e-5),
        monitor=MonitorConfig(every=250, crops=8, stop=False, val_every=500,
                              val_metrics=["EN", "SD", "SF", "AG", "SCD", "VIF", "Qabf", "TCR"],
                              select="VIF+Qabf+TCR"),
        data=DataConfig(crop=96, hflip=True),
    )


def _finetune(stage: str) -> StageConfig:
    """The shipped model's last recipe (phases 13-14, docs/MODEL_CARD.md) as a warm restart of
    ``emma-default``: the signed texture term at weight 10 with gain 1.15, plus the VIF (gain capped
    at 1.3) and Qabf terms, 600 steps at Adam 1e-4 with cosine decay, validation every 150 steps.
    For continuing the shipped U-Fuser on one's own pairs (give ``monitor.val_dir`` to keep the best)."""
    if stage == "sensing":
        return _cpu(stage)
    base = _warmstart(stage)
    return dataclasses.replace(
        base, init_weights="emma-default", steps=600, checkpoint_every=150,
        content_grad_weight=10.0, content_signed=True, content_grad_gain=1.15,
        content_vif_weight=6.0, content_vif_max_gain=1.3, content_qabf_weight=16.0,
        optim=OptimConfig(lr=1e-4, schedule="cosine", lr_min=1e-5),
        monitor=dataclasses.replace(base.monitor, val_every=150),
    )


PRESETS = {"paper": _paper, "cpu": _cpu, "warmstart": _warmstart, "finetune": _finetune}


def preset(name: str, stage: str) -> StageConfig:
    """The preset ``name`` (``paper``, ``cpu``, ``warmstart`` or ``finetune``) for ``stage`` (``sensing`` or ``fusion``)."""
    if stage not in _CLASSES:
        raise EmmaError(f"unknown stage {stage!r}; use 'sensing' or 'fusion'")
    if name not in PRESETS:
        raise EmmaError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
    return PRESETS[name](stage)


# -- dict <-> dataclass ---------------------------------------------------------------------
def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _convert(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise EmmaError(f"config: [{where}] must be a table, got {type(value).__name__}")
        return _merge(tp(), value, where)
    if origin is list:
        (item,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise EmmaError(f"config {where} must be a list")
        return [_convert(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp in (int, str, bool) and type(value) is not tp:
        raise EmmaError(f"config {where} must be {tp.__name__}, not {type(value).__name__} ({value!r})")
    return value


def _merge(obj: Any, values: dict[str, Any], where: str = "") -> Any:
    """Return a copy of dataclass ``obj`` with ``values`` (nested dicts) applied."""
    types = _field_types(type(obj))
    known = {f.name for f in dataclasses.fields(obj)}
    changes = {}
    for key, value in values.items():
        path = f"{where}.{key}" if where else key
        if key not in known:
            raise EmmaError(f"unknown config key {path!r}")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current) and isinstance(value, dict):
            changes[key] = _merge(current, value, path)
        else:
            changes[key] = _convert(value, types[key], path)
    return dataclasses.replace(obj, **changes)


def apply_overrides(cfg: StageConfig, overrides: dict[str, Any]) -> StageConfig:
    """Apply dotted-key overrides, e.g. ``{"optim.lr": 1e-3, "steps": 10}``; ``None`` values are skipped."""
    nested: dict[str, Any] = {}
    for key, value in overrides.items():
        if value is None:
            continue
        node = nested
        *parents, last = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    cfg = _merge(cfg, nested)
    check_values(cfg)
    return cfg


def load_config(stage: str, path: str | os.PathLike | None = None, preset_name: str | None = None) -> StageConfig:
    """The configuration of ``stage``: a preset (``preset_name``, else the file's ``preset``,
    else ``paper``) with the file's ``[stage]`` table applied."""
    table: dict[str, Any] = {}
    file_preset = None
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise EmmaError(f"{p} is a folder, not a config file" if p.is_dir() else f"no such config file: {p}")
        try:
            doc = tomllib.loads(p.read_text())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise EmmaError(f"cannot parse config {p}: {e}") from None
        unknown = set(doc) - {"preset", "sensing", "fusion"}
        if unknown:
            raise EmmaError(f"unknown top-level config keys in {p}: {', '.join(sorted(unknown))}")
        file_preset = doc.get("preset")
        if stage not in doc:
            raise EmmaError(f"config {p} has no [{stage}] table")
        table = doc[stage]
        if not isinstance(table, dict):
            raise EmmaError(f"config: [{stage}] must be a table, got {type(table).__name__}")
    base = preset(preset_name or file_preset or "paper", stage)
    if table.get("phases") and "steps" not in table:
        table = {**table, "steps": 0}  # the phases set the run's length, not the preset
    cfg = _merge(base, table, stage)
    check_values(cfg)
    if isinstance(cfg, FusionConfig):
        phase_configs(cfg)  # a mistake in the phases is reported now, not hours into the run
    return cfg


# -- TOML writing ----------------------------------------------------------------------------
def _toml_scalar(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        r = repr(v)
        return r if any(c in r for c in ".en") else r + ".0"
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_scalar(x) for x in v) + "]"
    raise EmmaError(f"cannot write {type(v).__name__} to TOML")


def _toml_table(d: dict[str, Any], prefix: str, lines: list[str]) -> None:
    scalars = {k: v for k, v in d.items() if not isinstance(v, dict) and not _is_table_list(v)}
    tables = {k: v for k, v in d.items() if isinstance(v, dict)}
    arrays = {k: v for k, v in d.items() if _is_table_list(v)}
    if prefix:
        lines.append(f"\n[{prefix}]")
    lines += [f"{k} = {_toml_scalar(v)}" for k, v in scalars.items()]
    for k, v in tables.items():
        _toml_table(v, f"{prefix}.{k}" if prefix else k, lines)
    for k, items in arrays.items():
        for item in items:
            lines.append(f"\n[[{prefix}.{k}]]" if prefix else f"\n[[{k}]]")
            sub: list[str] = []
            _toml_table(item, "", sub)
            lines += sub


def _is_table_list(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(x, dict) for x in v)


def config_to_toml(cfg: StageConfig) -> str:
    """TOML text of ``cfg`` under its ``[stage]`` table (readable by :func:`load_config`)."""
    lines = [f"# emma-fusion training configuration ({cfg.stage} stage)"]
    _toml_table({cfg.stage: dataclasses.asdict(cfg)}, "", lines)
    return "\n".join(lines).strip() + "\n"


def save_config(cfg: StageConfig, path: str | os.PathLike) -> Path:
    """Write ``cfg`` as TOML to ``path`` atomically."""
    text = config_to_toml(cfg)
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))
