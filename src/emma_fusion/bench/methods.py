"""What the benchmark runs: built-in methods (the network, the classical baselines) and folders of
fused images made elsewhere, each with a configuration hash that keys the cache.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path

from ..errors import EmmaError
from ..io import list_images

__all__ = ["MethodSpec", "build_method_specs", "code_hash", "find_results_dir", "default_builtins"]

log = logging.getLogger(__name__)

#: Code whose source decides a built-in method's output (its hash is part of the cache key):
#: ``module`` (a package: every ``.py`` below it) or ``module:function``.
_SHARED_CODE = ("emma_fusion.api:fuse", "emma_fusion.core", "emma_fusion.io:to_array",
                "emma_fusion.io:_pil_to_array", "emma_fusion.io:read_image", "emma_fusion.io:to_gray",
                "emma_fusion.io:rgb_to_ycbcr", "emma_fusion.metrics.reading:quantize_fused")
_NETWORK_CODE = ("emma_fusion.nets", "emma_fusion.inference", "emma_fusion.methods.network")
_CLASSICAL_CODE = ("emma_fusion.methods.classical",)


def default_builtins() -> tuple[str, ...]:
    """The built-in methods benchmarked by default: the network, then every classical baseline."""
    from ..methods.classical import CLASSICAL_METHODS

    return ("emma", *CLASSICAL_METHODS)


def code_hash(parts: tuple[str, ...]) -> str:
    """sha256 over source code: ``"pkg.module"`` (a package: every ``.py`` below it) or ``"pkg.module:function"``."""
    h = hashlib.sha256()
    for part in parts:
        name, _, func = part.partition(":")
        mod = import_module(name)
        h.update(part.encode())
        if func:
            h.update(inspect.getsource(getattr(mod, func)).encode())
            continue
        path = Path(mod.__file__)
        for p in sorted(path.parent.rglob("*.py")) if path.name == "__init__.py" else [path]:
            h.update(p.name.encode())
            h.update(p.read_bytes())
    return h.hexdigest()


@dataclass(frozen=True)
class MethodSpec:
    """One column of the benchmark.

    Attributes:
        label: the name shown in tables and the report.
        kind: ``"builtin"`` (fused here) or ``"folder"`` (fused images read from ``folder``).
        method: registered method name (built-in only).
        options: constructor options for :func:`~emma_fusion.methods.base.get_method`.
        config_hash: sha256 of everything that decides the fused images (method, options, weights,
            output scaling, code); empty for folders, whose files are hashed one by one instead.
        folder: for ``kind="folder"``, the method's folder holding one sub-folder per dataset.
    """

    label: str
    kind: str
    method: str = ""
    options: dict = field(default_factory=dict, hash=False, compare=False)
    config_hash: str = ""
    folder: Path | None = None

    @property
    def builtin(self) -> bool:
        return self.kind == "builtin"


def _config_hash(doc: dict) -> str:
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


def _emma_specs(weights: list[str], options: dict, normalize: str) -> tuple[list[MethodSpec], dict[str, str]]:
    from .. import __version__
    from ..weights import DEFAULT_MODEL, load_model, packaged_models, sha256_file

    device = str(options.get("device", "cpu"))
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise EmmaError(f"--device {device}: this PyTorch build sees no CUDA device")
    code = code_hash(_SHARED_CODE + _NETWORK_CODE)
    specs: list[MethodSpec] = []
    if not weights:
        try:
            load_model(None)
        except EmmaError as e:
            return [], {"emma": f"skipped: {e}"}
        sha = packaged_models()[DEFAULT_MODEL]["sha256"]
        doc = {"method": "emma", "weights": sha, "options": options, "normalize": normalize, "code": code, "v": __version__}
        return [MethodSpec("emma", "builtin", "emma", dict(options), _config_hash(doc))], {}
    stems = [Path(w).stem for w in weights]
    for w, stem in zip(weights, stems):
        p = Path(w)
        sha = sha256_file(p) if p.is_file() else packaged_models().get(str(w), {}).get("sha256")
        if sha is None:
            raise EmmaError(f"no such weights file or packaged model: {w}")
        load_model(w)  # fail early, in one line, on a checkpoint of the wrong network
        label = "emma" if len(weights) == 1 else f"emma-{stem}"
        if stems.count(stem) > 1:
            label = f"emma-{stem}-{sha[:8]}"
        doc = {"method": "emma", "weights": sha, "options": options, "normalize": normalize, "code": code, "v": __version__}
        specs.append(MethodSpec(label, "builtin", "emma", {**options, "weights": str(w)}, _config_hash(doc)))
    return specs, {}


def _builtin_spec(name: str, normalize: str) -> MethodSpec:
    from .. import __version__
    from ..methods.base import get_method, list_methods

    known = {n.lower(): info for info in list_methods() for n in (info.name, *info.aliases)}
    info = known.get(name.lower())
    if info is None or info.name == "folder":
        names = ", ".join(i.name for i in list_methods() if i.name != "folder")
        raise EmmaError(f"unknown method {name!r}; known: {names} (external results: --results DIR)")
    get_method(info.name)  # fail early on a method that cannot be built
    doc = {"method": info.name, "options": {}, "normalize": normalize, "code": code_hash(_SHARED_CODE + _CLASSICAL_CODE),
           "v": __version__}
    return MethodSpec(info.name, "builtin", info.name, {}, _config_hash(doc))


def _folder_specs(results: list[str]) -> list[MethodSpec]:
    specs = []
    for r in results:
        root = Path(r)
        if not root.is_dir():
            raise EmmaError(f"no such results folder: {root}")
        subs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not subs:
            raise EmmaError(f"results folder {root} holds no method folders (expected {root}/<Method>/<Dataset>/)")
        specs.extend(MethodSpec(p.name, "folder", folder=p) for p in subs)
    return specs


def build_method_specs(
    methods: list[str] | None,
    weights: list[str] | None = None,
    results: list[str] | None = None,
    normalize: str = "minmax",
    emma_options: dict | None = None,
) -> tuple[list[MethodSpec], dict[str, str]]:
    """The methods to benchmark, and those skipped with the reason.

    Args:
        methods: built-in method names; ``None`` means the network plus every classical baseline;
            ``["none"]`` (or an empty list) runs no built-in method, only ``results``.
        weights: U-Fuser weight files or packaged model names; each is one ``emma`` column (they
            imply ``emma`` even when ``methods`` does not name it).
        results: folders holding ``<Method>/<Dataset>/`` fused images; each sub-folder is a method.
        normalize: output scaling of built-in methods (``minmax`` or ``clip``).
        emma_options: extra options for the network (``device``, ``tile``, ``threads``).

    Without ``weights`` and without a shipped default model, ``emma`` is skipped (reason given).
    """
    weights = list(weights or [])
    if methods is None:
        methods = list(default_builtins())
    names = [m.strip() for m in methods if m.strip() and m.strip().lower() != "none"]
    if weights and "emma" not in [n.lower() for n in names]:
        names.insert(0, "emma")
    specs: list[MethodSpec] = []
    skipped: dict[str, str] = {}
    for name in dict.fromkeys(names):
        if name.lower() == "emma":
            got, why = _emma_specs(weights, dict(emma_options or {}), normalize)
            specs.extend(got)
            skipped.update(why)
        else:
            specs.append(_builtin_spec(name, normalize))
    specs.extend(_folder_specs(list(results or [])))
    labels = [s.label for s in specs]
    dupes = sorted({n for n in labels if labels.count(n) > 1})
    if dupes:
        raise EmmaError(f"method name(s) {', '.join(dupes)} given twice (a results sub-folder named like a built-in?)")
    if not specs:
        raise EmmaError("nothing to benchmark: " + ("; ".join(f"{k} {v}" for k, v in skipped.items()) or "no methods"))
    return specs, skipped


def find_results_dir(method_dir: Path, dataset: str) -> Path | None:
    """The folder of ``method_dir`` holding the fused images of ``dataset`` (None when absent).

    ``<method_dir>/<dataset>`` when it exists; otherwise the one sub-folder whose path ends with
    the dataset name's parts (so a dataset found as ``MRI_CT`` matches ``Harvard/MRI_CT``).
    """
    exact = method_dir.joinpath(*dataset.split("/"))
    if exact.is_dir():
        return exact
    want = dataset.split("/")
    hits = []
    for dirpath, dirnames, _ in os.walk(method_dir):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        rel = Path(dirpath).relative_to(method_dir).parts
        if len(rel) >= len(want) and list(rel[-len(want):]) == want:
            hits.append(Path(dirpath))
    if len(hits) > 1:
        log.warning("%s: several folders match dataset %s (%s); none used", method_dir.name, dataset,
                    ", ".join(str(h) for h in hits))
        return None
    if hits and not list_images(hits[0]):
        return None
    return hits[0] if hits else None
