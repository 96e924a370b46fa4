"""Pseudo ground truth for the pseudo-sensing stage: fused images from several sources, one folder each.

EMMA trains its pseudo-sensing modules on (fused image -> source image) pairs, with fused images
made by other methods. :func:`make_pseudo_gt` writes, for every pair in ``ir_dir``/``vi_dir``
(paired by file stem), ``out_dir/<source>/<stem>.png`` (8-bit gray) for each source:

* a registered fusion method (``lp``, ``gff``, ... see ``emma methods``), run on the luma of the
  two images;
* a folder of results produced elsewhere (e.g. ``../shared/data/results/IFCNN/MSRS_train``),
  whose files are converted to gray 8-bit PNG under the same stems.

That layout is the contract with the trainer: a list of folders, each holding ``<stem>.png``.
Existing outputs are kept (unless ``overwrite``), so an interrupted run resumes; each file is
written atomically. ``out_dir/manifest.json`` records what each folder holds.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core import fuse_luma
from ..errors import EmmaError
from ..io import atomic_write, ensure_writable_dir, pair_by_stem, read_image, to_gray, write_image
from ..methods.base import FusionMethod, get_method
from ..methods.folder import ResultsFolder
from ..progress import progress_bar

__all__ = ["SourceReport", "PseudoGTReport", "parse_results_spec", "make_pseudo_gt"]

log = logging.getLogger(__name__)

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


@dataclass
class SourceReport:
    """What one source contributed: its output folder and counts of files."""

    name: str
    kind: str  # "method" or "folder"
    folder: Path
    description: str
    written: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        """Fused images now present for this source (written + already there)."""
        return len(self.written) + len(self.skipped)


@dataclass
class PseudoGTReport:
    """What :func:`make_pseudo_gt` did."""

    out: Path
    pairs: list[str]
    unpaired: list[str]
    sources: dict[str, SourceReport]

    def folders(self) -> list[Path]:
        """The output folders, one per source, in the order given (what the trainer consumes)."""
        return [s.folder for s in self.sources.values()]


def parse_results_spec(spec: str | os.PathLike | tuple[str, str | os.PathLike]) -> tuple[str, Path]:
    """``"NAME=DIR"``, ``"DIR"`` or ``(NAME, DIR)`` -> (name, folder).

    Without a name, a folder ``.../<Method>/<Dataset>`` is named ``<Method>_<Dataset>`` (the
    layout of ``shared/data/results``), e.g. ``IFCNN_MSRS_train``.
    """
    if isinstance(spec, tuple):
        name, folder = spec[0], Path(spec[1])
    else:
        text = os.fspath(spec)
        name, sep, rest = text.partition("=")
        if sep and not Path(text).exists():  # NAME=DIR (a folder whose own name holds '=' is taken whole)
            if not (name and _SAFE_NAME.match(name) and rest):
                raise EmmaError(f"bad results source {text!r}: give NAME=DIR (NAME of letters, digits, '.', '_', '+', '-') or DIR")
            folder = Path(rest)
        else:
            folder, name = Path(text), ""
        if not name:
            resolved = folder.resolve()
            parent = resolved.parent.name
            name = f"{parent}_{resolved.name}" if parent else resolved.name
    if not _SAFE_NAME.match(name):
        raise EmmaError(f"bad source name {name!r}: use letters, digits, '.', '_', '+', '-' (NAME=DIR)")
    return name, folder


def _build_sources(
    out: Path, methods: Iterable[str], results: Iterable, method_options: dict[str, dict]
) -> tuple[dict[str, FusionMethod], dict[str, SourceReport]]:
    built: dict[str, FusionMethod] = {}
    reports: dict[str, SourceReport] = {}

    def add(name: str, fm: FusionMethod, kind: str, description: str) -> None:
        if name in reports:
            raise EmmaError(f"two sources are both named {name!r}; name folders with NAME=DIR")
        built[name] = fm
        reports[name] = SourceReport(name, kind, out / name, description)

    for m in methods:
        m = m.strip()
        if not m:
            continue
        fm = get_method(m, **method_options.get(m, {}))
        name = getattr(fm, "name", m)
        add(name, fm, "method", repr(fm))
    for spec in results:
        name, folder = parse_results_spec(spec)
        add(name, ResultsFolder(folder, name=name), "folder", str(folder))
    if not reports:
        raise EmmaError("no sources: give at least one method (--methods) or results folder (--results)")
    return built, reports


def _load_gray(path: Path) -> np.ndarray:
    return np.ascontiguousarray(to_gray(read_image(path)), dtype=np.float32)


def _write_manifest(report: PseudoGTReport, ir_dir: Path, vi_dir: Path) -> None:
    data = {
        "ir": str(ir_dir),
        "vi": str(vi_dir),
        "pairs": len(report.pairs),
        "format": "<source>/<stem>.png, 8-bit gray, fused luma clipped to [0, 1]",
        "sources": {
            s.name: {"kind": s.kind, "from": s.description, "images": s.count, "missing": s.missing}
            for s in report.sources.values()
        },
    }
    text = json.dumps(data, indent=2) + "\n"
    atomic_write(report.out / "manifest.json", lambda tmp: tmp.write_text(text, encoding="utf-8"))


def make_pseudo_gt(
    ir_dir: str | os.PathLike,
    vi_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    methods: Sequence[str] = (),
    results: Sequence = (),
    *,
    overwrite: bool = False,
    progress: bool = False,
    method_options: dict[str, dict] | None = None,
) -> PseudoGTReport:
    """Write ``out_dir/<source>/<stem>.png`` for every pair and every source.

    Args:
        ir_dir, vi_dir: folders of infrared (or CT/PET/SPECT) and visible (or MRI) images, paired
            by file stem; colour images are reduced to BT.601 luma.
        out_dir: output root.
        methods: registered method names (aliases allowed; the folder uses the canonical name).
        results: external result folders: ``"DIR"``, ``"NAME=DIR"`` or ``(NAME, DIR)``. A stem
            missing there is skipped with a warning and listed in the report.
        overwrite: redo outputs that already exist (default: keep them).
        progress: show a progress bar over pairs.
        method_options: per-method constructor options, e.g. ``{"gff": {"r1": 30}}``.

    Returns:
        A :class:`PseudoGTReport`; ``report.folders()`` lists the folders for the trainer.

    Raises:
        EmmaError: no pairs, no or duplicate sources, unknown method, a pair (or an external
            result) whose sizes differ, unreadable images.
    """
    pairs, unpaired = pair_by_stem(ir_dir, vi_dir)
    if not pairs:
        raise EmmaError(f"no image pairs with matching names in {ir_dir} and {vi_dir}")
    out = Path(out_dir)
    for name in unpaired:
        log.warning("no partner for %s", name)
    built, reports = _build_sources(out, methods, results, method_options or {})
    for name, fm in built.items():  # a results folder that covers none of the pairs is a wrong path, not a gap
        if isinstance(fm, ResultsFolder) and not any(p[0] in fm for p in pairs):
            raise EmmaError(f"results source {name} ({reports[name].description}) has no image for any of the "
                            f"{len(pairs)} pairs")
    ensure_writable_dir(out)  # a file in the way, or no permission: one line before any work
    report = PseudoGTReport(out, [p[0] for p in pairs], unpaired, reports)
    for stem, ir_path, vi_path in progress_bar(pairs, enabled=progress, desc="pseudo-gt", unit="pair"):
        _fuse_pair(stem, ir_path, vi_path, built, reports, overwrite)
    for s in reports.values():
        if s.missing:
            log.warning("%s: %d of %d pairs have no fused image in %s", s.name, len(s.missing), len(pairs), s.description)
    _write_manifest(report, Path(ir_dir), Path(vi_dir))
    return report


def _fuse_pair(
    stem: str, ir_path: Path, vi_path: Path, built: dict[str, FusionMethod], reports: dict[str, SourceReport], overwrite: bool
) -> None:
    todo = []
    for name, fm in built.items():
        rep, target = reports[name], reports[name].folder / f"{stem}.png"
        if isinstance(fm, ResultsFolder) and stem not in fm:
            rep.missing.append(stem)
        elif target.exists() and not overwrite:
            rep.skipped.append(stem)
        else:
            todo.append((name, fm, target))
    if not todo:
        return
    ir, vi = _load_gray(ir_path), _load_gray(vi_path)
    if ir.shape != vi.shape:
        raise EmmaError(f"pair {stem}: infrared is {ir.shape[1]}x{ir.shape[0]}, visible is {vi.shape[1]}x{vi.shape[0]}")
    for name, fm, target in todo:
        fused = fuse_luma(fm, ir, vi, normalize="clip", key=stem, label=name)
        write_image(target, fused, bits=8)
        reports[name].written.append(stem)
