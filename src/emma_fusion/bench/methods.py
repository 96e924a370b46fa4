"""What the benchmark runs: built-in methods (the method registry's) and folders of fused images
made elsewhere, each with a configuration hash that keys the cache.

Nothing here names a method: what a method takes comes from the registry
(:attr:`~emma_fusion.methods.base.MethodInfo.options`). A method that takes ``weights`` is a
network: it gets one column per weights file (the packaged default without one) and the run's
network options (``device``). The classical methods accept ``device`` only for a uniform interface
and run on the CPU, so they get none.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import EmmaError
from ..io import list_images
from ..methods.base import MethodInfo, get_method, list_methods
from .code import code_hash

__all__ = ["MethodSpec", "build_method_specs", "find_results_dir", "default_builtins"]

log = logging.getLogger(__name__)

#: Modules that every built-in method's output passes through besides the method's own code (the
#: API: colour, the fusion core, output scaling; reading images; quantising the saved file). Their
#: sources, and those of every module they or the method import, are part of the cache key.
_FUSION_PATH = ("emma_fusion.api", "emma_fusion.io", "emma_fusion.metrics.reading")


def _takes_weights(info: MethodInfo) -> bool:
    return "weights" in info.options


def default_builtins() -> tuple[str, ...]:
    """The built-in methods benchmarked by default: the networks, then every classical baseline."""
    from ..methods.classical import CLASSICAL_METHODS

    return (*(i.name for i in list_methods() if _takes_weights(i)), *CLASSICAL_METHODS)


def _method_code(info: MethodInfo) -> str:
    """Hash of the source code that decides ``info``'s fused images (the registry is not followed)."""
    return code_hash((*_FUSION_PATH, info.factory.__module__), leaves=(MethodInfo.__module__,))


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


def _config_hash(info: MethodInfo, options: dict, normalize: str, weights_sha: str | None = None) -> str:
    """sha256 of everything that decides a built-in method's fused images (options without weights paths).

    ``threads`` is left out: it changes how fast an image is fused, not the image, so a bench re-run
    with another thread count reuses the cache."""
    from .. import __version__

    options = {k: v for k, v in options.items() if k != "threads"}
    doc = {"method": info.name, "options": options, "normalize": normalize, "code": _method_code(info),
           "v": __version__}
    if weights_sha is not None:
        doc["weights"] = weights_sha
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


def _check_device(options: dict) -> None:
    device = str(options.get("device", "cpu"))
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise EmmaError(f"--device {device}: this PyTorch build sees no CUDA device")


def _network_specs(info: MethodInfo, weights: list[str], options: dict,
                   normalize: str) -> tuple[list[MethodSpec], dict[str, str]]:
    """One column per weights file or packaged model; without any, the packaged default (or skipped)."""
    from ..weights import DEFAULT_MODEL, load_model, packaged_models, sha256_file

    _check_device(options)
    if not weights:
        try:
            load_model(None)
        except EmmaError as e:
            return [], {info.name: f"skipped: {e}"}
        config = _config_hash(info, options, normalize, packaged_models()[DEFAULT_MODEL]["sha256"])
        return [MethodSpec(info.name, "builtin", info.name, dict(options), config)], {}
    specs: list[MethodSpec] = []
    stems = [Path(w).stem for w in weights]
    for w, stem in zip(weights, stems):
        p = Path(w)
        sha = sha256_file(p) if p.is_file() else packaged_models().get(str(w), {}).get("sha256")
        if sha is None:
            raise EmmaError(f"no such weights file or packaged model: {w}")
        load_model(w)  # fail early, in one line, on a checkpoint of the wrong network
        # several weights: one column each, named after the file (emma-default stays emma-default)
        named = stem if stem.startswith(f"{info.name}-") else f"{info.name}-{stem}"
        label = info.name if len(weights) == 1 else named
        if stems.count(stem) > 1:
            label = f"{info.name}-{stem}-{sha[:8]}"
        config = _config_hash(info, options, normalize, sha)
        specs.append(MethodSpec(label, "builtin", info.name, {**options, "weights": str(w)}, config))
    return specs, {}


def _builtin_spec(info: MethodInfo, normalize: str) -> MethodSpec:
    get_method(info.name)  # fail early on a method that cannot be built
    return MethodSpec(info.name, "builtin", info.name, {}, _config_hash(info, {}, normalize))


def _method_info(name: str) -> MethodInfo:
    """The registered built-in method ``name`` (case-insensitive).

    Not a method that reads someone else's results (it takes a ``folder``): those are ``--results``.
    """
    known = {n.lower(): info for info in list_methods() for n in (info.name, *info.aliases)}
    info = known.get(name.lower())
    if info is None or "folder" in info.options:
        names = ", ".join(i.name for i in list_methods() if "folder" not in i.options)
        raise EmmaError(f"unknown method {name!r}; known: {names} (external results: --results DIR)")
    return info


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
    network_options: dict | None = None,
) -> tuple[list[MethodSpec], dict[str, str]]:
    """The methods to benchmark, and those skipped with the reason.

    Args:
        methods: built-in method names; ``None`` means the networks plus every classical baseline;
            ``["none"]`` (or an empty list) runs no built-in method, only ``results``.
        weights: weight files or packaged model names for the networks (the methods that take
            ``weights``); each is one column, and they imply the networks when ``methods`` names none.
        results: folders holding ``<Method>/<Dataset>/`` fused images; each sub-folder is a method.
        normalize: output scaling of built-in methods (``minmax`` or ``clip``).
        network_options: options for the networks (``device``, ``tile``, ``threads``).

    A network without ``weights`` uses the packaged default model; without one it is skipped
    (reason given).
    """
    weights = list(weights or [])
    if methods is None:
        methods = list(default_builtins())
    infos = [_method_info(m.strip()) for m in methods if m.strip() and m.strip().lower() != "none"]
    if weights and not any(_takes_weights(i) for i in infos):
        infos[:0] = [i for i in list_methods() if _takes_weights(i)]
    specs: list[MethodSpec] = []
    skipped: dict[str, str] = {}
    for info in dict.fromkeys(infos):
        if _takes_weights(info):
            got, why = _network_specs(info, weights, dict(network_options or {}), normalize)
            specs.extend(got)
            skipped.update(why)
        else:
            specs.append(_builtin_spec(info, normalize))
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
