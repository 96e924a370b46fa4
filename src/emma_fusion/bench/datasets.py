"""Finding benchmark datasets: folders of registered image pairs, alone or under a parent folder.

A dataset is a folder holding two sub-folders of images paired by file stem:

* ``ir/`` + ``vi/``: infrared-visible fusion (``kind="ivf"``);
* ``other/`` + ``mri/``: medical fusion (``kind="medical"``); ``other`` (CT, PET or SPECT) plays the
  infrared role and the MRI the visible role, as in the field's MIF evaluations.

A parent folder is searched recursively (hidden folders skipped, dataset folders not entered), so
``shared/data`` yields ``MSRS/test``, ``MSRS/train``, ``TNO/test``, ``Harvard/MRI_CT``, ...

Dataset names follow the layout of published result folders (``results/<Method>/<Dataset>``):
the path below the searched folder, with a trailing ``test`` split dropped and any other split
appended as a suffix (``MSRS/test`` -> ``MSRS``, ``MSRS/train`` -> ``MSRS_train``,
``Harvard/MRI_CT`` -> ``Harvard/MRI_CT``). A split folder directly below the searched folder is
named after the searched folder (``--data .../MSRS`` holding ``test/`` and ``train/`` gives
``MSRS`` and ``MSRS_train``, as ``--data .../MSRS/test`` gives ``MSRS``).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import EmmaError
from ..io import pair_by_stem

__all__ = ["Pair", "Dataset", "SPLIT_NAMES", "ROLE_FOLDERS", "detect_dataset", "discover_datasets", "dataset_name"]

log = logging.getLogger(__name__)

#: Folder names recognised as a split level.
SPLIT_NAMES = ("train", "test", "val", "valid", "validation", "eval")

#: (infrared-role folder, visible-role folder, kind), in detection order.
ROLE_FOLDERS = (("ir", "vi", "ivf"), ("other", "mri", "medical"))


@dataclass(frozen=True)
class Pair:
    """One registered pair: its file stem and the two source files (infrared role, visible role)."""

    stem: str
    ir: Path
    vi: Path


@dataclass(frozen=True)
class Dataset:
    """A folder of pairs.

    Attributes:
        name: results-layout name, e.g. ``"TNO"``, ``"MSRS_train"``, ``"Harvard/MRI_CT"``.
        root: the dataset folder.
        kind: ``"ivf"`` (ir/vi) or ``"medical"`` (other/mri).
        split: the split folder it sits in (``"test"``, ``"train"``, ...) or ``None``.
        pairs: the pairs, sorted by stem.
        unpaired: files without a partner in the other folder.
    """

    name: str
    root: Path
    kind: str
    split: str | None
    pairs: tuple[Pair, ...]
    unpaired: tuple[str, ...] = ()

    @property
    def display_root(self) -> str:
        """The folder relative to the working directory (as given when that is not possible)."""
        try:
            return os.path.relpath(self.root)
        except ValueError:
            return str(self.root)

    @property
    def roles(self) -> tuple[str, str]:
        """Display names of the two inputs: ``("ir", "vi")`` or ``("other", "mri")``."""
        return ("ir", "vi") if self.kind == "ivf" else ("other", "mri")

    def limited(self, limit: int | None) -> "Dataset":
        """The same dataset with only its first ``limit`` pairs (all when ``limit`` is None)."""
        if limit is None or limit >= len(self.pairs):
            return self
        return Dataset(self.name, self.root, self.kind, self.split, self.pairs[:limit], self.unpaired)


def _child_dirs(folder: Path) -> dict[str, Path]:
    try:
        return {p.name.lower(): p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")}
    except OSError:
        return {}


def _roles(folder: Path) -> tuple[Path, Path, str] | None:
    children = _child_dirs(folder)
    for ir_name, vi_name, kind in ROLE_FOLDERS:
        if ir_name in children and vi_name in children:
            return children[ir_name], children[vi_name], kind
    return None


def dataset_name(parts: list[str]) -> tuple[str, str | None]:
    """(name, split) from the path parts of a dataset folder (see the module docstring)."""
    parts = [p for p in parts if p]
    split = None
    for p in reversed(parts):
        if p.lower() in SPLIT_NAMES:
            split = p.lower()
            break
    if parts and parts[-1].lower() in SPLIT_NAMES and len(parts) > 1:
        last = parts.pop().lower()
        if last != "test":
            parts[-1] = f"{parts[-1]}_{last}"
    return "/".join(parts), split


def detect_dataset(folder: str | os.PathLike, parts: list[str] | None = None) -> Dataset | None:
    """The dataset in ``folder`` (None when it has no ir/vi or other/mri pair of sub-folders).

    ``parts``: the path parts that name it (default: its last two path components when the last
    is a split name, else its own name).
    """
    folder = Path(folder)
    roles = _roles(folder)
    if roles is None:
        return None
    ir_dir, vi_dir, kind = roles
    if parts is None:
        parts = [folder.parent.name, folder.name] if folder.name.lower() in SPLIT_NAMES else [folder.name]
    name, split = dataset_name(parts)
    stem_pairs, unpaired = pair_by_stem(ir_dir, vi_dir)
    return Dataset(name, folder, kind, split, tuple(Pair(*p) for p in stem_pairs), tuple(unpaired))


def discover_datasets(
    data: str | os.PathLike, split: str | None = None, exclude: tuple[Path, ...] = ()
) -> list[Dataset]:
    """Every dataset at or below ``data``, sorted by name.

    Args:
        data: a dataset folder, or a parent searched recursively.
        split: keep only datasets of this split (e.g. ``"test"``). Datasets that sit in no split
            folder (e.g. ``Harvard/MRI_CT``) are whole evaluation sets and count as ``test``.
        exclude: folders not to search (e.g. the benchmark's own output folder).

    Raises:
        EmmaError: ``data`` is missing, holds no dataset (of that split), or a dataset has no pairs.
    """
    root = Path(data)
    if not root.is_dir():
        raise EmmaError(f"no such data folder: {root}")
    skip = {p.resolve() for p in exclude}
    found: list[Dataset] = []
    top = detect_dataset(root)
    if top is not None:
        found.append(top)
    else:
        for dirpath, dirnames, _ in os.walk(root):
            here = Path(dirpath)
            dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and (here / d).resolve() not in skip)
            if here == root:
                continue
            parts = list(here.relative_to(root).parts)
            if parts[0].lower() in SPLIT_NAMES:  # --data MSRS holding test/ and train/: named MSRS, MSRS_train
                parts.insert(0, root.resolve().name)
            ds = detect_dataset(here, parts)
            if ds is not None:
                found.append(ds)
                dirnames[:] = []  # do not look inside a dataset
    if not found:
        raise EmmaError(f"no dataset in {root}: expected ir/ + vi/ (or mri/ + other/) folders of images")
    if split is not None:
        want = split.lower()
        kept = [d for d in found if (d.split or "test") == want]
        if not kept:
            have = sorted({d.split or "test" for d in found})
            raise EmmaError(f"no dataset of split {split!r} in {root} (splits found: {', '.join(have)})")
        found = kept
    for d in found:
        if not d.pairs:
            raise EmmaError(f"dataset {d.name} ({d.root}) has no image pairs with matching file names")
        if d.unpaired:
            log.warning("%s: %d file(s) without a partner, e.g. %s", d.name, len(d.unpaired), d.unpaired[0])
    names = [d.name for d in found]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise EmmaError(f"several datasets are named {', '.join(dupes)}; benchmark them separately")
    return sorted(found, key=lambda d: d.name)
