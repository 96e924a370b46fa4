"""Weight files: safetensors with metadata, the authors' .pth, packaged models and sha256 checks.

A weight file records which network it holds (``arch``: ``"ufuser"`` or ``"sensing-unet"``),
that network's constructor arguments (``config``, JSON) and the package version.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import warnings
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from .errors import EmmaError
from .io import atomic_write
from .nets import SensingUNet, UFuser

__all__ = [
    "ARCHITECTURES",
    "DEFAULT_MODEL",
    "blend_models",
    "build_model",
    "save_weights",
    "load_state",
    "load_weights_into",
    "load_model",
    "packaged_models",
    "sha256_file",
]

log = logging.getLogger(__name__)

ARCHITECTURES: dict[str, type[nn.Module]] = {"ufuser": UFuser, "sensing-unet": SensingUNet}
DEFAULT_MODEL = "emma-default"


def _version() -> str:
    from . import __version__

    return __version__


def build_model(arch: str, config: dict[str, Any] | None = None) -> nn.Module:
    """Construct an untrained network of architecture ``arch`` with constructor arguments ``config``."""
    if arch not in ARCHITECTURES:
        raise EmmaError(f"unknown architecture {arch!r}; known: {', '.join(ARCHITECTURES)}")
    cfg = dict(config or {})
    if "channels" in cfg:
        cfg["channels"] = tuple(cfg["channels"])
    return ARCHITECTURES[arch](**cfg)


def model_config(model: nn.Module) -> tuple[str, dict[str, Any]]:
    """The (arch, config) pair that rebuilds ``model``'s architecture."""
    if isinstance(model, UFuser):
        return "ufuser", {"channels": list(model.channels)}
    if isinstance(model, SensingUNet):
        return "sensing-unet", {"width": model.width}
    raise EmmaError(f"cannot describe a {type(model).__name__}; expected UFuser or SensingUNet")


def save_weights(
    path: str | os.PathLike, model: nn.Module, extra_metadata: dict[str, str] | None = None
) -> Path:
    """Save ``model``'s state dict as safetensors with its architecture metadata, atomically."""
    arch, config = model_config(model)
    meta = {"arch": arch, "config": json.dumps(config), "emma_fusion_version": _version()}
    meta.update({k: str(v) for k, v in (extra_metadata or {}).items()})
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    return atomic_write(path, lambda tmp: save_file(state, str(tmp), metadata=meta))


def _strip_prefix(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    if state and all(k.startswith("module.") for k in state):
        return {k[len("module."):]: v for k, v in state.items()}
    return state


def load_state(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read a state dict and its metadata from ``.safetensors`` or a PyTorch ``.pth``/``.pt`` file.

    PyTorch files are read with ``weights_only=True`` (no code runs). A checkpoint holding
    ``{"model": state_dict}`` or a ``DataParallel`` ``module.`` prefix is unwrapped. A folder, a
    missing or unreadable file, or a float tensor holding NaN or infinity is one-line :class:`EmmaError`.
    """
    state, meta = _read_state(Path(path))
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise EmmaError(f"weights {path} hold NaN or infinite values ({len(bad)} tensors, first {bad[0]})")
    return state, meta


def _read_state(p: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """:func:`load_state` without the finiteness check."""
    if p.is_dir():
        raise EmmaError(f"weights {p} is a folder; give a .safetensors or .pth file")
    if not p.is_file():
        raise EmmaError(f"no such weights file: {p}")
    if p.suffix == ".safetensors":
        try:
            with safe_open(str(p), framework="pt") as f:
                meta = dict(f.metadata() or {})
                state = {k: f.get_tensor(k) for k in f.keys()}
        except (SafetensorError, OSError, ValueError) as e:
            raise EmmaError(f"cannot read weights {p}: {e}") from None
        return _strip_prefix(state), meta
    if p.suffix not in (".pth", ".pt", ".ckpt", ".bin"):
        raise EmmaError(f"cannot read weights {p}: expected a .safetensors or PyTorch .pth/.pt file")
    try:
        with warnings.catch_warnings():  # torch's notes on old pickle protocols: the error below says what matters
            warnings.simplefilter("ignore")
            obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception:  # torch raises many types for corrupt or unsafe files
        raise EmmaError(
            f"cannot read weights {p}: not a PyTorch tensor file, or one that needs code to load (refused)"
        ) from None
    for key in ("model", "state_dict", "net"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise EmmaError(f"{p} does not hold a state dict of tensors")
    return _strip_prefix(dict(obj)), {}


def load_weights_into(model: nn.Module, state: dict[str, torch.Tensor], source: str = "weights") -> nn.Module:
    """Load ``state`` into ``model`` strictly; mismatches raise one line naming the keys."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}" for k, v in own.items() if k in state and state[k].shape != v.shape]
    problems = []
    for label, items in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", shapes)):
        if items:
            more = f" (+{len(items) - 3} more)" if len(items) > 3 else ""
            problems.append(f"{label}: {', '.join(items[:3])}{more}")
    if problems:
        raise EmmaError(f"{source} does not fit {type(model).__name__}: {'; '.join(problems)}")
    model.load_state_dict(state, strict=True)
    return model


def blend_models(a: nn.Module, b: nn.Module, alpha: float) -> nn.Module:
    """A network of ``a``'s architecture whose float weights are ``(1 - alpha) * a + alpha * b``.

    Weight-space interpolation of two networks fine-tuned from a common start (for example
    ``emma-default`` and ``emma-sky``, which continues it) trades their behaviours off (measured
    for those two in docs/MODEL_CARD.md); ``alpha`` in [0, 1] (0 gives ``a``, 1 gives ``b``). Integer buffers are taken from ``a``.
    Networks of different architectures or widths are a one-line :class:`EmmaError`.
    """
    if not 0.0 <= alpha <= 1.0:
        raise EmmaError(f"blend weight alpha must lie in [0, 1], got {alpha}")
    if model_config(a) != model_config(b):
        raise EmmaError(f"cannot blend different networks: {model_config(a)} and {model_config(b)}")
    sa, sb = a.state_dict(), b.state_dict()
    mixed = {k: v * (1.0 - alpha) + sb[k] * alpha if v.is_floating_point() else v for k, v in sa.items()}
    out = build_model(*model_config(a))
    load_weights_into(out, mixed, source="blend")
    return out.eval()


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def packaged_models() -> dict[str, dict[str, Any]]:
    """The models shipped inside the package: name -> registry entry (file, sha256, card, ...)."""
    reg = resources.files("emma_fusion") / "models" / "registry.json"
    if not reg.is_file():
        return {}
    return json.loads(reg.read_text())


def _resolve(name_or_path: str | os.PathLike | None, arch: str | None = None) -> tuple[Path, str | None]:
    name = DEFAULT_MODEL if name_or_path is None else str(name_or_path)
    models = packaged_models()
    if name in models:
        entry = models[name]
        path = Path(str(resources.files("emma_fusion") / "models" / entry["file"]))
        if not path.is_file():
            raise EmmaError(f"packaged model {name!r} is registered but its file {entry['file']} is missing")
        return path, entry["sha256"]
    if name_or_path is None:
        raise EmmaError("no default model is shipped with this version yet; pass --weights PATH (a trained U-Fuser)")
    p = Path(name)
    if not p.exists():
        known = ", ".join(n for n, e in models.items() if arch is None or e.get("arch", "ufuser") == arch) or "none"
        raise EmmaError(f"no such weights file or packaged model: {name} (packaged models: {known})")
    return p, None


def load_model(name_or_path: str | os.PathLike | None = None, arch: str | None = "ufuser") -> nn.Module:
    """Load a network in eval mode from a packaged model name or a weights file.

    Args:
        name_or_path: a packaged model name (``None`` means the default), or a ``.safetensors`` /
            ``.pth`` file. Packaged files are checked against their recorded sha256.
        arch: the architecture expected (a file of another one is an error); ``None`` accepts
            whatever the file's metadata names. Files without metadata (the authors' ``.pth``)
            are taken to be of this architecture.
    """
    path, sha = _resolve(name_or_path, arch)
    if sha is not None and sha256_file(path) != sha:
        raise EmmaError(f"packaged model {path.name} is corrupt: sha256 does not match the registry")
    state, meta = load_state(path)
    found = meta.get("arch", arch or "ufuser")
    if arch is not None and found != arch:
        raise EmmaError(f"{path} does not fit {ARCHITECTURES[arch].__name__}: it holds a {found} network")
    arch = found
    config = json.loads(meta["config"]) if "config" in meta else {}
    if arch == "sensing-unet" and "config" not in meta and "down1.conv.0.weight" in state:
        config = {"width": int(state["down1.conv.0.weight"].shape[0])}
    model = build_model(arch, config)
    load_weights_into(model, state, source=str(path))
    log.info("loaded %s (%s) from %s", arch, config, path)
    return model.eval()
