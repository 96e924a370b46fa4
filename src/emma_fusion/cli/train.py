"""``emma train sensing`` and ``emma train fusion``: EMMA's two training stages."""

from __future__ import annotations

import json
import logging
import sys
import tomllib
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Iterator, Optional

import typer

from ..errors import EmmaError

_HELP_DATA = "Data set: a folder with ir/ and vi/ (repeatable); append @W for a per-pair sampling weight."

# Options shared by both stages.
PresetOpt = Annotated[Optional[str], typer.Option("--preset", "-p", help="Base preset: paper, cpu, warmstart, or finetune (the shipped model's last recipe, from emma-default) (default: the file's, else cpu without a CUDA GPU and paper with one).")]
DataOpt = Annotated[list[str], typer.Option("--data", help=_HELP_DATA)]
ResumeOpt = Annotated[bool, typer.Option("--resume", help="Continue the run in --out from its latest checkpoint.")]
DeviceOpt = Annotated[Optional[str], typer.Option("--device", help="auto, cpu, cuda or cuda:N.")]
AmpOpt = Annotated[Optional[str], typer.Option("--amp", help="Mixed precision: none, bf16, or auto (bf16 where the device computes it natively).")]
StepsOpt = Annotated[Optional[int], typer.Option("--steps", help="Total steps (overrides epochs).")]
EpochsOpt = Annotated[Optional[float], typer.Option("--epochs", help="Epochs (used when steps is 0).")]
BatchOpt = Annotated[Optional[int], typer.Option("--batch", help="Crops per step and process.")]
LrOpt = Annotated[Optional[float], typer.Option("--lr", help="Adam learning rate.")]
CropOpt = Annotated[Optional[int], typer.Option("--crop", help="Crop side (multiple of 16).")]
SeedOpt = Annotated[Optional[int], typer.Option("--seed")]
ThreadsOpt = Annotated[Optional[int], typer.Option("--threads", help="CPU threads (default: the idle cores; recorded in the run, and --resume reuses them).")]
CheckpointEveryOpt = Annotated[Optional[int], typer.Option("--checkpoint-every", help="Steps between checkpoints.")]
MaxSecondsOpt = Annotated[Optional[float], typer.Option("--max-seconds", help="Stop (and save) after this many seconds of training.")]
NoProgressOpt = Annotated[bool, typer.Option("--no-progress", help="No progress bar.")]


def _parse_sets(data: list[str], fused: list[str]) -> list[Any]:
    from ..train.data import DatasetSpec

    sets = []
    for item in data:
        root, _, weight = item.partition("@")
        try:
            w = float(weight) if weight else 1.0
        except ValueError:
            raise EmmaError(f"bad weight in --data {item!r}; use PATH or PATH@WEIGHT") from None
        sets.append(DatasetSpec(root=root, fused=list(fused), weight=w))
    return sets


def _file_preset(config: Path) -> Optional[str]:
    """The ``preset`` a TOML config file names (None when it names none or cannot be read)."""
    try:
        return tomllib.loads(config.read_text()).get("preset")
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None  # load_config reports the problem


def _default_preset(device: Optional[str], held: Optional[list[str]] = None) -> Optional[str]:
    """``cpu`` (said in one line) where training runs on the CPU: ``--device cpu``, or no CUDA device;
    None (the paper's GPU preset) otherwise. With ``held``, the line is appended there instead of
    printed (shown once the configuration is known to be valid)."""
    from ..hardware import hardware

    if device and device != "cpu" and device != "auto":
        return None
    if device != "cpu" and hardware().cuda:
        return None
    why = "--device cpu" if device == "cpu" else "no CUDA GPU here"
    line = f"{why}: using the cpu preset (--preset paper for the paper's GPU settings)"
    if held is None:
        typer.echo(line, err=True)
    else:
        held.append(line)
    return "cpu"


def _resolve_config(stage: str, config: Optional[Path], preset: Optional[str], out: Optional[Path],
                    resume: bool, overrides: dict[str, Any], data: list[str], fused: list[str]):
    """The run's configuration: the preset, the ``--config`` file, then the options; every value is
    checked (:func:`~emma_fusion.train.config.check_values`). Returns it and the notes to show once
    the run has started (the preset chosen)."""
    from ..train import apply_overrides, load_config

    held: list[str] = []
    if resume and config is None and out is not None and (out / "config.toml").is_file():
        config = out / "config.toml"  # a resumed run keeps its own configuration
    elif preset is None and (config is None or _file_preset(config) is None):
        preset = _default_preset(overrides.get("device"), held)
    cfg = load_config(stage, config, preset)
    if out is not None:
        overrides["out"] = str(out)
    cfg = apply_overrides(cfg, overrides)
    if data:
        cfg.data.sets = _parse_sets(data, fused)
    elif fused:
        raise EmmaError("--fused needs --data (or put fused folders in the config file)")
    if not cfg.data.sets:
        raise EmmaError("no training data: pass --data DIR (a folder with ir/ and vi/) or set data.sets in --config")
    return cfg, held


def _announce_resume(cfg: Any, resume: bool) -> None:
    """Print the step a resumed run continues from."""
    if not resume:
        return
    from ..train.checkpoint import checkpoint_step, latest_checkpoint

    ckpt = latest_checkpoint(Path(cfg.out))
    if ckpt is not None:
        typer.echo(f"resuming {cfg.stage} from step {checkpoint_step(ckpt)} ({ckpt})", err=True)


class _Notes(logging.Handler):
    """The trainer's notes on stderr, held until the run has started: bad input then shows only its
    ``error:`` line, not the setup notes (threads, preset) before it."""

    def __init__(self, held: list[str]) -> None:
        super().__init__()
        self.held: list[str] | None = list(held)

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "emma_started", False):
            self.flush_held()
        elif self.held is not None:
            self.held.append(self.format(record))
        else:
            self._write(self.format(record))

    def flush_held(self) -> None:
        for line in self.held or []:
            self._write(line)
        self.held = None

    @staticmethod
    def _write(line: str) -> None:
        from tqdm import tqdm

        tqdm.write(line, file=sys.stderr)  # above a progress bar, not through it


@contextmanager
def _print_notes(held: list[str]) -> Iterator[None]:
    """Show the trainer's one-line notes (threads, each validation) on stderr, without ``-v`` too,
    from the moment the run starts (``held``: lines to show first); dropped when the input is refused."""
    from ..train.loop import notes

    handler = _Notes(held)
    saved = notes.level, notes.propagate
    notes.addHandler(handler)
    notes.setLevel(logging.INFO)
    notes.propagate = False  # once, also with -v
    try:
        yield
    except EmmaError:
        handler.held = None  # refused before the start: the error line alone
        raise
    finally:
        handler.flush_held()
        notes.removeHandler(handler)
        notes.setLevel(saved[0])
        notes.propagate = saved[1]


def _run(train: Any, cfg: Any, resume: bool, held: list[str]) -> Any:
    """Run a training function; Ctrl-C or SIGTERM saves a checkpoint and exits with code 130."""
    from .common import exit_on_interrupt

    _announce_resume(cfg, resume)
    with exit_on_interrupt("before training started; nothing new saved"), _print_notes(held):
        return train(cfg, resume=resume)


def sensing_command(
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Run folder (checkpoints, logs, A_ir/A_vi weights)."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="TOML file with a \\[sensing] table."),
    preset: PresetOpt = None,
    data: DataOpt = [],
    fused: list[str] = typer.Option([], "--fused", help="Folder of fused pseudo-ground-truth images <stem>.png (repeatable)."),
    resume: ResumeOpt = False,
    device: DeviceOpt = None,
    amp: AmpOpt = None,
    steps: StepsOpt = None,
    epochs: EpochsOpt = None,
    batch: BatchOpt = None,
    lr: LrOpt = None,
    crop: CropOpt = None,
    width: Optional[int] = typer.Option(None, "--width", help="A's first-level channels (paper: 64)."),
    noise_std: Optional[float] = typer.Option(None, "--noise-std", help="Noise-robust A: max std of noise added to the fused input."),
    seed: SeedOpt = None,
    threads: ThreadsOpt = None,
    checkpoint_every: CheckpointEveryOpt = None,
    max_seconds: MaxSecondsOpt = None,
    no_progress: NoProgressOpt = False,
) -> None:
    """Stage 1: train the pseudo-sensing nets A_i and A_v on fused pseudo ground truth."""
    from ..train import train_sensing

    overrides = {"device": device, "amp": amp, "steps": steps, "epochs": epochs, "batch": batch, "optim.lr": lr,
                 "data.crop": crop, "width": width, "data.noise_std": noise_std, "seed": seed, "threads": threads,
                 "checkpoint_every": checkpoint_every, "max_seconds": max_seconds,
                 "progress": False if no_progress else None}
    cfg, held = _resolve_config("sensing", config, preset, out, resume, overrides, data, fused)
    run = _run(train_sensing, cfg, resume, held)
    gate = json.loads((run / "gate.json").read_text())
    for m in ("ir", "vi"):
        if m in gate:
            g = gate[m]
            typer.echo(f"A_{m}: held-out MSE {g['mse_sense']:.5f} vs identity {g['mse_identity']:.5f} "
                       f"(ratio {g['ratio']:.3f}, gate {gate['ratio_max']})")
    typer.echo(f"quality gate: {'passed' if gate.get('passed') else 'FAILED'} -> {run}")
    if not gate.get("passed"):
        raise typer.Exit(1)  # the nets are saved, but stage 2 refuses them without --skip-gate


def fusion_command(
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Run folder (checkpoints, logs, ufuser weights)."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="TOML file with a \\[fusion] table."),
    preset: PresetOpt = None,
    data: DataOpt = [],
    sensing: Optional[Path] = typer.Option(None, "--sensing", help="Stage-1 run folder (A_ir/A_vi weights and gate.json), or a packaged pair: emma-sensing."),
    ablation: Optional[str] = typer.Option(None, "--ablation", help="full, I, II, III or IV (paper's Table 2), content (the warm-start content loss alone), or equivariant (Eq. 6's equivariant term alone; use with --content-weight)."),
    init_weights: Optional[str] = typer.Option(None, "--init-weights", help="Warm-start the U-Fuser from these weights (a file, or a packaged model such as emma-default)."),
    content_weight: Optional[float] = typer.Option(None, "--content-weight", help="Add the content loss as an anchor term with this weight."),
    skip_gate: bool = typer.Option(False, "--skip-gate", help="Use sensing nets that failed (or lack) the quality gate."),
    val: Optional[Path] = typer.Option(None, "--val", help="Held-in validation pairs (ir/, vi/), scored every monitor.val_every steps (else once an epoch); the best by monitor.select (default VIF+Qabf) is kept as ufuser_best.safetensors; one line per validation."),
    val_pairs: Optional[int] = typer.Option(None, "--val-pairs", min=0, help="How many of the --val pairs to score (monitor.val_pairs, default 4; 0: all of them). More pairs: a steadier choice of the best step, slower validation."),
    val_every: Optional[int] = typer.Option(None, "--val-every", min=0, help="Steps between validations (monitor.val_every; 0: once an epoch). Also when resuming, e.g. to validate less often on a fast GPU."),
    resume: ResumeOpt = False,
    device: DeviceOpt = None,
    amp: AmpOpt = None,
    steps: StepsOpt = None,
    epochs: EpochsOpt = None,
    batch: BatchOpt = None,
    lr: LrOpt = None,
    crop: CropOpt = None,
    per_step: Optional[int] = typer.Option(None, "--transforms-per-step", help="Transforms drawn per step (0: the whole stack)."),
    seed: SeedOpt = None,
    threads: ThreadsOpt = None,
    checkpoint_every: CheckpointEveryOpt = None,
    max_seconds: MaxSecondsOpt = None,
    no_progress: NoProgressOpt = False,
) -> None:
    """Stage 2: train the U-Fuser with frozen A_i, A_v and the equivariant loss (Eq. 6)."""
    from ..train import train_fusion
    from ..train.fusion import BEST_FILE, effective_select

    overrides = {"device": device, "amp": amp, "steps": steps, "epochs": epochs, "batch": batch, "optim.lr": lr,
                 "data.crop": crop, "transforms.per_step": per_step, "seed": seed, "threads": threads,
                 "checkpoint_every": checkpoint_every, "max_seconds": max_seconds, "ablation": ablation,
                 "content_weight": content_weight,
                 "sensing": str(sensing) if sensing else None,
                 "init_weights": str(init_weights) if init_weights else None,
                 "skip_gate": True if skip_gate else None, "progress": False if no_progress else None,
                 "monitor.val_dir": str(val) if val else None, "monitor.val_pairs": val_pairs,
                 "monitor.val_every": val_every}
    cfg, held = _resolve_config("fusion", config, preset, out, resume, overrides, data, [])
    weights = _run(train_fusion, cfg, resume, held)
    typer.echo(f"U-Fuser weights -> {weights}")
    best = Path(weights).parent / BEST_FILE
    if cfg.monitor.val_dir and best.is_file():
        typer.echo(f"best by validation ({effective_select(cfg.monitor)}) -> {best}")


def register(app: typer.Typer) -> None:
    """Add the ``train`` command group to the ``emma`` app."""
    group = typer.Typer(help="Train EMMA: stage 1 `sensing`, then stage 2 `fusion`.", no_args_is_help=True)
    group.command("sensing")(sensing_command)
    group.command("fusion")(fusion_command)
    app.add_typer(group, name="train")
