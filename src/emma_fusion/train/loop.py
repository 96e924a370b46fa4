"""The training loop both stages share: devices, torchrun/DDP, resume, checkpoints, logs, progress.

A stage hands :func:`run_stage` a :class:`Stage`: the nets it trains, an objective module whose
``forward(**batch, step=step)`` returns ``(loss, terms)``, and a function giving each rank's
batch for a step. Everything that decides the numbers (crops, transforms) is a function of the
step index, so a resumed run continues exactly where the checkpoint left off.

Data parallelism: launched by ``torchrun --nproc_per_node N``, the loop reads ``RANK``,
``LOCAL_RANK`` and ``WORLD_SIZE``, joins a process group (``nccl`` on CUDA, ``gloo`` on CPU) and
wraps the objective in ``DistributedDataParallel``; rank ``r`` takes crops ``r, r + W, ...`` of
the stream. Only rank 0 writes logs and checkpoints.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import signal
import threading
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed as dist
from torch import nn

from ..errors import EmmaError, Interrupted
from ..hardware import clamp_threads, resolve_amp
from .checkpoint import latest_checkpoint, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from .config import StageConfig, save_config

__all__ = ["Runtime", "Stage", "StopTraining", "TrainingInterrupted", "setup_runtime", "run_stage", "steps_per_epoch", "JsonlLog"]

log = logging.getLogger(__name__)

#: One-line notes a user should see without ``-v`` (threads, validation scores); ``emma train``
#: prints them on stderr, a library caller sees them as ordinary INFO records.
notes = logging.getLogger("emma_fusion.train.notes")


class StopTraining(EmmaError):
    """Raised by a monitor hook to end training early (with a one-line reason)."""


class TrainingInterrupted(Interrupted):
    """Ctrl-C or SIGTERM stopped a run; ``step`` is the step of the checkpoint saved on the way out."""

    def __init__(self, step: int, out: Path) -> None:
        super().__init__(f"checkpoint saved at step {step} in {out}; re-run with --resume to continue")
        self.step, self.out = step, out


class _StopRequest:
    """Set by the first Ctrl-C or SIGTERM; a second Ctrl-C interrupts at once."""

    def __init__(self) -> None:
        self.hit = False

    def __call__(self, signum, frame) -> None:
        if self.hit and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.hit = True
        log.warning("stopping after this step (signal %d); press Ctrl-C again to abort without saving", signum)


@contextlib.contextmanager
def _graceful_stop():
    """Within the block, Ctrl-C and SIGTERM only set the yielded flag (main thread; elsewhere a no-op)."""
    request = _StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return
    previous = {sig: signal.signal(sig, request) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield request
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@dataclass
class Runtime:
    """Where this process runs: device, rank, world size, mixed precision."""

    device: torch.device
    rank: int = 0
    local_rank: int = 0
    world: int = 1
    amp: str = "none"
    channels_last: bool = False
    threads: int = 1

    @property
    def memory_format(self) -> torch.memory_format:
        """Layout of the models' weights and of each batch (channels-last: faster CPU convolutions)."""
        return torch.channels_last if self.channels_last else torch.contiguous_format

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    def autocast(self) -> contextlib.AbstractContextManager:
        """bf16 autocast when ``amp == "bf16"``, else a no-op."""
        if self.amp == "bf16":
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()


def auto_threads(cores: int | None = None, load: float | None = None) -> int:
    """Torch threads for a training process: the cores that other processes leave idle, at least 1.

    ``cores`` defaults to this process's CPU affinity, ``load`` to the 1-minute load average. On a
    shared machine, more threads than idle cores make every step wait on the slowest thread
    (measured here: 2 threads beside 2 busy processes, 10-100x slower than 1 thread).
    """
    cores = cores if cores is not None else len(os.sched_getaffinity(0))
    load = load if load is not None else os.getloadavg()[0]
    return max(1, min(cores, cores - math.floor(load + 0.5)))


def setup_runtime(cfg: StageConfig) -> Runtime:
    """Pick the device and threads, and join the torchrun process group when ``WORLD_SIZE > 1``.

    ``threads = 0`` reuses the thread count of the run in ``cfg.out`` when there is one (a resumed
    run then computes exactly what an uninterrupted one would: float sums depend on the thread
    count), else picks :func:`auto_threads` (divided among the ranks on one machine);
    ``amp = "auto"`` is resolved by :func:`resolve_amp`.
    """
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", os.environ.get("WORLD_SIZE", "1")))
    recorded = recorded_threads(Path(cfg.out), cfg.stage)
    if recorded and cfg.threads in (0, recorded):
        threads, how = recorded, "as the run being resumed"
    elif cfg.threads > 0:
        threads, how = clamp_threads(cfg.threads), "as set"
    else:
        threads, how = max(1, auto_threads() // max(1, local_world)), "auto: idle cores; --threads N to fix"
    torch.set_num_threads(threads)
    notes.info("%s: %d torch thread%s (%s)", cfg.stage, threads, "" if threads == 1 else "s", how)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    want = cfg.device
    if want == "auto":
        want = "cuda" if torch.cuda.is_available() else "cpu"
    if want.startswith("cuda"):
        if not torch.cuda.is_available():
            raise EmmaError("--device cuda requested but no CUDA device is available")
        device = torch.device("cuda", local_rank) if (want == "cuda" and world > 1) else torch.device(want)
        if device.index is not None:
            torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True  # fixed crop sizes: let cuDNN pick the fastest kernels
    elif want == "cpu":
        device = torch.device("cpu")
    else:
        raise EmmaError(f"unknown device {cfg.device!r}; use auto, cpu, cuda or cuda:N")
    amp = resolve_amp(cfg.amp, device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Runtime(device=device, rank=rank, local_rank=local_rank, world=world, amp=amp,
                   channels_last=cfg.channels_last, threads=threads)


def recorded_threads(out: Path, stage: str) -> int:
    """The torch threads of the run whose latest checkpoint is in ``out`` (0: no such run or record)."""
    ckpt = latest_checkpoint(out)
    if ckpt is None:
        return 0
    try:
        return int(tomllib.loads((ckpt / "config.toml").read_text()).get(stage, {}).get("threads", 0))
    except (OSError, ValueError, TypeError):
        return 0


def steps_per_epoch(n_inputs: int, crops_per_image: int, batch: int, world: int) -> int:
    """Steps in one epoch: ``ceil(n_inputs * crops_per_image / (batch * world))``, at least 1."""
    return max(1, math.ceil(n_inputs * crops_per_image / (batch * world)))


def total_steps(cfg: StageConfig, steps_per_epoch: int) -> int:
    """A run's length in steps: ``cfg.steps``, else ``ceil(cfg.epochs * steps_per_epoch)``."""
    return cfg.steps if cfg.steps > 0 else math.ceil(cfg.epochs * steps_per_epoch)


def rank_indices(step: int, batch: int, rank: int, world: int) -> list[int]:
    """Global crop indices of ``rank``'s batch at ``step`` (rank r takes r, r + W, ...)."""
    base = step * batch * world
    return [base + k * world + rank for k in range(batch)]


class JsonlLog:
    """JSON-lines log (rank 0). A fresh run (``resume_step`` None) starts an empty file; a resumed
    run keeps the records up to ``resume_step`` and appends. A ``restart`` record at
    ``resume_step`` itself is dropped: it was written after that step's checkpoint, and the resumed
    run makes the restart (and writes its record) again."""

    def __init__(self, path: Path, enabled: bool, resume_step: int | None) -> None:
        self.path, self.enabled = path, enabled
        if enabled and resume_step is not None and path.is_file():
            kept = []
            for line in path.read_text().splitlines():
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue  # a line cut by a crash
                step = rec.get("step", 0)
                if step < resume_step or (step == resume_step and rec.get("type") != "restart"):
                    kept.append(line)
            path.write_text("".join(k + "\n" for k in kept))
        self._fh = path.open("a" if resume_step is not None else "w") if enabled else None

    def write(self, record: dict[str, Any]) -> None:
        if self._fh is not None:
            self._fh.write(json.dumps(record) + "\n")
            self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()


@dataclass
class Stage:
    """What one stage trains and how (see :func:`run_stage`)."""

    name: str
    models: dict[str, nn.Module]
    objective: nn.Module
    batch_fn: Callable[[int], dict[str, torch.Tensor]]
    steps_per_epoch: int
    monitor: Callable[[int], dict[str, Any] | None] | None = None
    broadcast_buffers: bool = False
    extra_state: Callable[[], dict[str, Any]] = field(default=lambda: {})
    load_extra_state: Callable[[dict[str, Any]], None] = field(default=lambda s: None)
    lr_at: Callable[[int], float] | None = None  # a curriculum's learning rate at each step (else cfg.optim)
    #: called before each step with the optimiser; a record it returns is logged as a ``restart``
    before_step: Callable[[int, torch.optim.Optimizer], dict[str, Any] | None] | None = None


def _optimizer(cfg: StageConfig, models: dict[str, nn.Module], spe: int, total: int,
               lr_at: Callable[[int], float] | None = None):
    params = [p for m in models.values() for p in m.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=1.0 if lr_at else cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
    if lr_at is not None:  # base lr 1: the lambda gives the learning rate itself
        return opt, torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    if cfg.optim.schedule == "cosine":
        return opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, total), eta_min=cfg.optim.lr_min)
    if cfg.optim.schedule != "step":
        raise EmmaError(f"optim.schedule must be 'step' or 'cosine', not {cfg.optim.schedule!r}")
    decay = cfg.optim.lr_step_epochs > 0
    step_size = max(1, round(cfg.optim.lr_step_epochs * spe)) if decay else 1
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=step_size, gamma=cfg.optim.lr_gamma if decay else 1.0)
    return opt, sched


def _prepare_out(out: Path, resume: bool, rt: Runtime) -> Path | None:
    if out.exists() and not out.is_dir():
        raise EmmaError(f"--out {out} is a file; give a folder for the run")
    ckpt = latest_checkpoint(out)
    if resume and ckpt is None:
        raise EmmaError(f"nothing to resume: no checkpoint under {out / 'checkpoints'}")
    if not resume and ckpt is not None:
        raise EmmaError(f"{out} already holds a run (checkpoints/); pass --resume or choose another --out")
    if rt.main:
        out.mkdir(parents=True, exist_ok=True)
    return ckpt


def _mean_terms(terms: dict[str, torch.Tensor], total: torch.Tensor, rt: Runtime) -> dict[str, float]:
    vals = torch.stack([total.detach().float(), *[t.float() for t in terms.values()]])
    if rt.distributed:
        dist.all_reduce(vals)
        vals /= rt.world
    names = ["loss", *terms]
    return {k: float(v) for k, v in zip(names, vals.tolist())}


def run_stage(cfg: StageConfig, stage: Stage, rt: Runtime, resume: bool = False) -> tuple[int, Path]:
    """Train ``stage`` to ``total`` steps with checkpoints; return (final step, run folder)."""
    out = Path(cfg.out)
    ckpt_dir = _prepare_out(out, resume, rt)
    spe = stage.steps_per_epoch
    total = total_steps(cfg, spe)
    for m in stage.models.values():
        m.to(rt.device, memory_format=rt.memory_format)
    stage.objective.to(rt.device, memory_format=rt.memory_format)
    opt, sched = _optimizer(cfg, stage.models, spe, total, stage.lr_at)
    start = 0
    if ckpt_dir is not None:
        ck = load_checkpoint(ckpt_dir, stage.models)
        opt.load_state_dict(ck.state["optimizer"])
        sched.load_state_dict(ck.state["scheduler"])
        set_rng_state(ck.state["rng"])
        stage.load_extra_state(ck.state.get("extra", {}))
        start = ck.step
        log.info("resumed %s from %s (step %d of %d)", stage.name, ckpt_dir, start, total)
    cfg = dataclasses.replace(cfg, threads=rt.threads)  # the run's record: a resume reuses its threads
    if rt.main:
        save_config(cfg, out / "config.toml")
    objective = stage.objective
    if rt.distributed:
        objective = nn.parallel.DistributedDataParallel(
            objective,
            device_ids=[rt.device.index] if rt.device.type == "cuda" else None,
            broadcast_buffers=stage.broadcast_buffers,
        )
    jlog = JsonlLog(out / "log.jsonl", rt.main, start if ckpt_dir is not None else None)
    if rt.main and start == 0:
        jlog.write({"type": "start", "step": 0, "stage": stage.name, "total_steps": total,
                    "steps_per_epoch": spe, "world": rt.world, "device": str(rt.device), "threads": rt.threads})
    elif rt.main:
        jlog.write({"type": "resume", "step": start, "threads": rt.threads})
    notes.info("%s started", stage.name, extra={"emma_started": True})  # the inputs were accepted (cli: show held notes)

    def save(step: int) -> None:
        if rt.main:
            state = {"optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "rng": rng_state(),
                     "extra": stage.extra_state()}
            path = save_checkpoint(out, step, stage.models, state, cfg, keep=cfg.keep_checkpoints)
            jlog.write({"type": "checkpoint", "step": step, "path": str(path)})
        rt.barrier()

    bar = _progress(cfg, rt, total, start, stage.name)
    pool = ThreadPoolExecutor(max_workers=1)
    pending = pool.submit(stage.batch_fn, start) if start < total else None
    step = start
    t_start = time.monotonic()
    eta = _Estimate(stage.name, start, total, rt.device)
    stopper = contextlib.ExitStack()
    stop = stopper.enter_context(_graceful_stop())
    try:
        if stage.monitor is not None and start == 0:
            _run_monitor(stage, 0, jlog)
        objective.train()
        while step < total:
            if stage.before_step is not None and (rec := stage.before_step(step, opt)) is not None:
                jlog.write({"type": "restart", "step": step, **rec})
            t0 = time.perf_counter()
            batch = pending.result()
            pending = pool.submit(stage.batch_fn, step + 1) if step + 1 < total else None
            batch = {k: v.to(rt.device, non_blocking=True, memory_format=rt.memory_format) for k, v in batch.items()}
            with rt.autocast():
                loss, terms = objective(**batch, step=step)
            if not torch.isfinite(loss):
                raise EmmaError(f"{stage.name} loss became {float(loss)} at step {step}; lower the learning rate")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.optim.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(opt.param_groups[0]["params"], cfg.optim.grad_clip)
            opt.step()
            sched.step()
            step += 1
            if step % cfg.log_every == 0 or step == total:
                vals = _mean_terms(terms, loss, rt)
                rec = {"type": "step", "step": step, "epoch": round(step / spe, 4),
                       "lr": opt.param_groups[0]["lr"], **vals, "sec": round(time.perf_counter() - t0, 4)}
                jlog.write(rec)
                bar.set_postfix(loss=f"{vals['loss']:.4f}", refresh=False)
            bar.update(1)
            if rt.main:
                eta.after(step, jlog)
            if stage.monitor is not None:
                _run_monitor(stage, step, jlog)
            if step % cfg.checkpoint_every == 0 and step != total:
                save(step)
            if _stop_requested(stop, rt):
                save(step)
                jlog.write({"type": "interrupted", "step": step})
                raise TrainingInterrupted(step, out)
            if _out_of_time(cfg, rt, t_start):
                log.warning("%s stopped at step %d: max_seconds=%g reached", stage.name, step, cfg.max_seconds)
                jlog.write({"type": "time_limit", "step": step, "max_seconds": cfg.max_seconds})
                break
        save(step)
    finally:
        stopper.close()
        pool.shutdown(wait=True, cancel_futures=True)
        bar.close()
        jlog.close()
    return step, out


class _Estimate:
    """The run's expected time, from the s/step of its first steps: one note and one log record.

    Step ``start + 1`` is a warm-up (allocations, cuDNN's kernel search) and is not counted; the
    ``steps`` after it are timed. Monitor, validation and checkpoint time between them is included.
    """

    def __init__(self, name: str, start: int, total: int, device: torch.device, steps: int = 3) -> None:
        self.name, self.start, self.total, self.device, self.steps = name, start, total, device, steps
        self.t0: float | None = None

    def _now(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def after(self, step: int, jlog: JsonlLog) -> None:
        if step == self.start + 1:
            self.t0 = self._now()
        elif self.t0 is not None and step == self.start + 1 + self.steps:
            rate = (self._now() - self.t0) / self.steps
            hours = rate * (self.total - self.start) / 3600
            notes.info("%s: about %s for %d steps at %.3g s/step (steps %d-%d timed on %s)", self.name,
                       _hours(hours), self.total - self.start, rate, self.start + 2, step, self.device)
            jlog.write({"type": "estimate", "step": step, "sec_per_step": rate, "steps_left": self.total - self.start,
                        "hours": hours})


def _hours(h: float) -> str:
    """``'12 h'``, ``'1.5 h'`` or ``'0.2 h (12 min)'``."""
    if h >= 10:
        return f"{h:.0f} h"
    return f"{h:.1f} h" if h >= 1 else f"{h:.1f} h ({h * 60:.0f} min)"


def _any_rank(flag: bool, rt: Runtime) -> bool:
    """True when ``flag`` is true on any process (every process gets the same answer)."""
    if not rt.distributed:
        return flag
    t = torch.tensor([float(flag)], device=rt.device)
    torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
    return bool(t.item())


def _stop_requested(stop: _StopRequest, rt: Runtime) -> bool:
    """Whether any process was asked to stop (Ctrl-C / SIGTERM)."""
    return _any_rank(stop.hit, rt)


def _out_of_time(cfg: StageConfig, rt: Runtime, t_start: float) -> bool:
    """True once ``cfg.max_seconds`` (0: no limit) have passed on any process."""
    return cfg.max_seconds > 0 and _any_rank(time.monotonic() - t_start > cfg.max_seconds, rt)


def _run_monitor(stage: Stage, step: int, jlog: JsonlLog) -> None:
    rec = stage.monitor(step)
    if rec is not None:
        jlog.write({"type": "monitor", "step": step, **rec})


def _progress(cfg: StageConfig, rt: Runtime, total: int, start: int, name: str):
    """The step bar (rank 0, on a terminal only; log.jsonl has every step)."""
    from ..progress import progress_bar

    return progress_bar(total=total, initial=start, desc=name, unit="step", enabled=cfg.progress and rt.main,
                        mininterval=0.5, dynamic_ncols=True)
