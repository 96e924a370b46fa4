"""Training data: random crops or grid patches from paired ``ir/`` + ``vi/`` folders (and fused pseudo ground truth).

A data set is a folder holding ``ir/`` and ``vi/`` (or two explicit folders) whose files pair up
by stem; images of any size, gray or RGB (RGB -> BT.601 luma), 8 or 16 bit. Two download layouts
are read as they come: the official MSRS repository's root (``train/ir``, ``train/vi``: its
training split is used) and PIAFusion's ``msrs_train`` (``Inf/``, ``Vis/``). For the sensing stage
each set may list folders of fused images ``<stem>.png`` (other methods' results); the same crop
is taken from the fused image and both sources.

``grid_stride > 0`` replaces random crops with the authors' patches: every ``crop`` x ``crop``
patch at positions ``0, stride, 2 stride, ...`` (rows and columns, while the patch fits; 6 per
480 x 640 image at crop 128, stride 200), the low-contrast ones dropped once, each epoch a fresh
permutation of all of them (with fused images: of every (patch, fused image) input).

Sampling is a deterministic function of a global sample index: crop ``k`` is drawn with
``numpy.random.default_rng([seed, k])``. A run therefore resumes exactly from its step counter,
and data-parallel ranks shard the stream like a ``DistributedSampler`` (rank ``r`` of ``W`` takes
indices ``r, r + W, ...``) without any state to save.

A crop is rejected, and another (set, pair, position) drawn, when either source patch is low
contrast: ``(p90 - p10) / p90 < min_contrast`` (the authors' filter, 0.1). After ``max_tries``
rejections the last crop is kept (counted in :attr:`PairedCrops.forced`).
"""

from __future__ import annotations

import logging
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from ..errors import EmmaError
from ..io import list_images, read_image, to_gray

__all__ = ["DatasetSpec", "PairRecord", "PairedCrops", "low_contrast"]

log = logging.getLogger(__name__)


@dataclass
class DatasetSpec:
    """One data set: ``root`` with ``ir/`` and ``vi/`` (or explicit ``ir``/``vi`` folders).

    ``fused``: folders of pseudo-ground-truth fused images ``<stem>.<ext>`` (sensing stage).
    ``weight``: per-pair sampling weight: a set is drawn with probability proportional to
    ``weight * number of usable pairs`` (1 everywhere = uniform over all pairs).
    ``name``: label in reports; defaults to the last two parts of ``root``.
    """

    root: str = ""
    ir: str = ""
    vi: str = ""
    fused: list[str] = field(default_factory=list)
    weight: float = 1.0
    name: str = ""

    def folders(self) -> tuple[Path, Path]:
        """The (ir, vi) folders: explicit ones, else ``root``'s ``ir/`` and ``vi/``, its
        ``train/ir`` and ``train/vi`` (the official MSRS download's root) or its ``Inf/`` and
        ``Vis/`` (PIAFusion's ``msrs_train``)."""
        if not self.root and not (self.ir and self.vi):
            raise EmmaError("a data set needs 'root' (with ir/ and vi/) or both 'ir' and 'vi' folders")
        root = Path(self.root)
        if self.root and not (self.ir or self.vi):
            for ir, vi in _LAYOUTS:
                if (root / ir).is_dir() and (root / vi).is_dir():
                    return root / ir, root / vi
        ir = Path(self.ir) if self.ir else root / "ir"
        vi = Path(self.vi) if self.vi else root / "vi"
        return ir, vi

    def label(self) -> str:
        """A short name for reports."""
        if self.name:
            return self.name
        base = Path(self.root or self.ir)
        base = base if self.root else base.parent
        return "/".join(base.parts[-2:]) or str(base)


#: (ir, vi) sub-folders a data set's root may hold, in the order they are looked for.
_LAYOUTS = (("ir", "vi"), ("train/ir", "train/vi"), ("Inf", "Vis"))


@dataclass(frozen=True)
class PairRecord:
    """One usable pair: its set, stem, source paths and the fused images available for it."""

    set_index: int
    stem: str
    ir: Path
    vi: Path
    size: tuple[int, int]
    fused: tuple[Path, ...] = ()


def low_contrast(patch: np.ndarray, threshold: float) -> bool:
    """The authors' filter: ``(p90 - p10) / p90 < threshold`` (a black patch counts as low)."""
    if threshold <= 0:
        return False
    p10, p90 = np.percentile(patch, (10, 90))
    return bool(p90 <= 0 or (p90 - p10) / p90 < threshold)


def _image_size(path: Path) -> tuple[int, int]:
    """(H, W) from the file header, without decoding."""
    try:
        with Image.open(path) as img:
            w, h = img.size
    except OSError as e:
        raise EmmaError(f"cannot read image {path}: {e}") from None
    return h, w


class PairedCrops:
    """Random co-located crops from paired folders, reproducible from (seed, sample index).

    Args:
        sets: the data sets.
        crop: crop side in pixels.
        with_fused: also return a crop of a fused image (sets without fused folders are an error).
        min_contrast: low-contrast threshold (0 disables the filter).
        max_tries: draws per crop before a low-contrast crop is accepted anyway.
        noise_std: noise-robust sensing training: Gaussian noise with a standard deviation drawn
            uniformly in [0, noise_std] per crop is added to the fused crop (clipped to [0, 1]).
        seed: seed of the crop stream.
        cache_mb: decoded images are kept in memory up to this many MiB.
        hflip: flip each crop left-right with probability 1/2 (same flip for every image of it).
        stems: optional per-set filter, ``{set_index: set of stems}`` to keep (used for splits).
        grid_stride: 0: random crops; ``> 0``: the authors' grid patches with this stride (set
            weights and ``max_tries`` are then unused: every kept patch is drawn once an epoch).

    Problems found while indexing are logged with ``logging.warning`` and kept in
    :attr:`unpaired`, :attr:`too_small`, :attr:`mismatched` and :attr:`no_fused`.
    """

    def __init__(
        self,
        sets: Sequence[DatasetSpec],
        crop: int = 128,
        *,
        with_fused: bool = False,
        min_contrast: float = 0.1,
        max_tries: int = 20,
        noise_std: float = 0.0,
        seed: int = 0,
        cache_mb: float = 1024,
        stems: dict[int, set[str]] | None = None,
        hflip: bool = False,
        grid_stride: int = 0,
    ) -> None:
        if not sets:
            raise EmmaError("no training data: give at least one data set (a folder with ir/ and vi/)")
        if crop < 8:
            raise EmmaError(f"crop size must be at least 8 pixels, not {crop}")
        self.sets = list(sets)
        self.crop = int(crop)
        self.with_fused = with_fused
        self.min_contrast = float(min_contrast)
        self.max_tries = max(1, int(max_tries))
        self.noise_std = float(noise_std)
        self.hflip = bool(hflip)
        self.grid_stride = int(grid_stride)
        if self.grid_stride < 0:
            raise EmmaError(f"grid stride must be >= 0 (0: random crops), not {grid_stride}")
        self.seed = int(seed)
        self.cache_bytes = int(cache_mb * 2**20)
        self.unpaired: list[tuple[str, str, str]] = []
        self.too_small: list[tuple[str, str, tuple[int, int]]] = []
        self.mismatched: list[tuple[str, str, str]] = []
        self.no_fused: list[tuple[str, str]] = []
        self.held_out = 0
        self.forced = 0
        self._cache: dict[Path, np.ndarray] = {}
        self._cached_bytes = 0
        self.pairs_by_set: list[list[PairRecord]] = [
            self._index(i, s, None if stems is None else stems.get(i, set())) for i, s in enumerate(self.sets)
        ]
        self._report()
        weights = np.array([s.weight * len(recs) for s, recs in zip(self.sets, self.pairs_by_set)], float)
        if np.any(np.array([s.weight for s in self.sets]) < 0):
            raise EmmaError("data set weights must be >= 0")
        if weights.sum() <= 0:
            raise EmmaError(self._why_no_pairs())
        self.set_probs = weights / weights.sum()
        self.patches: list[tuple[PairRecord, int, int]] = []
        self._inputs: list[tuple[int, int | None]] = []  # (patch, fused image) of each grid input
        self._perm: tuple[tuple[int, int], np.ndarray] | None = None
        if self.grid_stride:
            self._set_patches(self._grid_patches())

    # -- indexing -------------------------------------------------------------------------
    def _index(self, i: int, spec: DatasetSpec, keep: set[str] | None) -> list[PairRecord]:
        name = spec.label()
        ir_dir, vi_dir = spec.folders()
        irs, vis = list_images(ir_dir), list_images(vi_dir)
        for stem in sorted(set(irs) ^ set(vis)):
            missing = "vi" if stem in irs else "ir"
            self.unpaired.append((name, stem, missing))
        fused_maps = [list_images(f) for f in spec.fused]
        if self.with_fused and not spec.fused:
            raise EmmaError(f"data set {name} has no fused folders; the sensing stage needs pseudo ground truth")
        records = []
        for stem in sorted(set(irs) & set(vis)):
            if keep is not None and stem not in keep:
                self.held_out += 1
                continue
            rec = self._check_pair(i, name, stem, irs[stem], vis[stem], fused_maps)
            if rec is not None:
                records.append(rec)
        return records

    def _check_pair(self, i, name, stem, ir, vi, fused_maps) -> PairRecord | None:
        size = _image_size(ir)
        if _image_size(vi) != size:
            self.mismatched.append((name, stem, f"ir {size} vs vi {_image_size(vi)}"))
            return None
        if min(size) < self.crop:
            self.too_small.append((name, stem, size))
            return None
        fused = []
        for m in fused_maps:
            if stem in m:
                if _image_size(m[stem]) == size:
                    fused.append(m[stem])
                else:
                    self.mismatched.append((name, stem, f"fused {m[stem]} is not {size}"))
        if self.with_fused and not fused:
            self.no_fused.append((name, stem))
            return None
        return PairRecord(i, stem, ir, vi, size, tuple(fused))

    def _why_no_pairs(self) -> str:
        """The one-line reason no pair is usable: none found, all skipped, or all held out."""
        where = ", ".join(s.label() for s in self.sets)
        if any(self.pairs_by_set):
            return f"no usable training pairs in {where}: every data set with pairs has weight 0"
        skipped = len(self.unpaired) + len(self.too_small) + len(self.mismatched) + len(self.no_fused)
        parts = [f"{skipped} skipped (see the warnings above)"] if skipped else []
        parts += [f"{self.held_out} held out for validation"] if self.held_out else []
        return f"no usable training pairs in {where}: " + ("; ".join(parts) or "no image pairs with matching names found")

    def _report(self) -> None:
        for what, items in (
            ("pairs without a partner (missing side shown)", self.unpaired),
            ("pairs smaller than the crop", self.too_small),
            ("pairs whose image sizes differ", self.mismatched),
            ("pairs without a fused image", self.no_fused),
        ):
            if items:
                shown = ", ".join(":".join(str(v) for v in t) for t in items[:5])
                more = f" and {len(items) - 5} more" if len(items) > 5 else ""
                log.warning("skipped %d %s: %s%s", len(items), what, shown, more)

    def _set_patches(self, patches: list[tuple[PairRecord, int, int]]) -> None:
        if not patches:
            raise EmmaError("no usable grid patches: every patch is low contrast")
        self.patches = patches
        self._inputs = [(k, j) for k, (rec, _, _) in enumerate(patches)
                        for j in (range(len(rec.fused)) if self.with_fused else (None,))]
        self._perm = None

    def _grid_patches(self) -> list[tuple[PairRecord, int, int]]:
        """(pair, y, x) of every grid patch; a patch where either source is low contrast is dropped."""
        c, st = self.crop, self.grid_stride
        kept, dropped = [], 0
        for rec in self.pairs:
            h, w = rec.size
            ir, vi = self._load(rec.ir), self._load(rec.vi)
            for y in range(0, h - c + 1, st):
                for x in range(0, w - c + 1, st):
                    if low_contrast(ir[y:y + c, x:x + c], self.min_contrast) or \
                            low_contrast(vi[y:y + c, x:x + c], self.min_contrast):
                        dropped += 1
                    else:
                        kept.append((rec, y, x))
        log.info("grid patches (crop %d, stride %d): %d kept, %d low-contrast dropped", c, st, len(kept), dropped)
        return kept

    # -- sizes ----------------------------------------------------------------------------
    @property
    def pairs(self) -> list[PairRecord]:
        """All usable pairs."""
        return [r for recs in self.pairs_by_set for r in recs]

    def __len__(self) -> int:
        """Number of distinct (pair, fused image) inputs: pairs, times fused images when ``with_fused``."""
        if self.with_fused:
            return sum(len(r.fused) for r in self.pairs)
        return len(self.pairs)

    def epoch_size(self, crops_per_image: int) -> int:
        """Crops in one epoch: every (grid patch, fused image) input once with grid patches, else
        ``len(self) * crops_per_image`` random crops."""
        if self.grid_stride:
            return len(self._inputs)
        return len(self) * crops_per_image

    def split(self, fraction: float, salt: str = "holdout") -> tuple["PairedCrops", "PairedCrops"]:
        """Split the pairs into (train, held-out) by a stable hash of (set name, stem).

        At least one pair is held out when ``fraction > 0`` and there are two or more pairs.
        """
        if not 0 < fraction < 1:
            raise EmmaError(f"held-out fraction must lie in (0, 1), not {fraction}")
        scored = [
            (zlib.crc32(f"{salt}:{self.sets[r.set_index].label()}:{r.stem}".encode()) / 2**32, r)
            for r in self.pairs
        ]
        held = {id(r) for h, r in scored if h < fraction}
        if not held and len(scored) >= 2:
            held = {id(min(scored, key=lambda t: t[0])[1])}
        if len(held) == len(scored):
            raise EmmaError("the held-out split left no training pairs; lower the held-out fraction")
        keep_train: dict[int, set[str]] = {}
        keep_held: dict[int, set[str]] = {}
        for r in self.pairs:
            (keep_held if id(r) in held else keep_train).setdefault(r.set_index, set()).add(r.stem)
        return self._subset(keep_train), self._subset(keep_held)

    def _subset(self, stems: dict[int, set[str]]) -> "PairedCrops":
        logger = logging.getLogger(__name__)
        level = logger.level
        logger.setLevel(logging.ERROR)  # the problems were reported once already
        try:
            sub = PairedCrops(
                self.sets, self.crop, with_fused=self.with_fused, min_contrast=self.min_contrast,
                max_tries=self.max_tries, noise_std=self.noise_std, seed=self.seed,
                cache_mb=self.cache_bytes / 2**20, stems=stems, hflip=self.hflip,
            )
        finally:
            logger.setLevel(level)
        sub._cache, sub._cached_bytes = self._cache, self._cached_bytes  # share decoded images
        if self.grid_stride:  # this set's patches of the kept pairs: no second pass over the images
            sub.grid_stride = self.grid_stride
            sub._set_patches([p for p in self.patches if p[0].stem in stems.get(p[0].set_index, ())])
        return sub

    # -- sampling -------------------------------------------------------------------------
    def _load(self, path: Path) -> np.ndarray:
        arr = self._cache.get(path)
        if arr is None:
            arr = np.ascontiguousarray(to_gray(read_image(path)), dtype=np.float32)
            if self._cached_bytes + arr.nbytes <= self.cache_bytes:
                self._cache[path] = arr
                self._cached_bytes += arr.nbytes
        return arr

    def _draw(self, rng: np.random.Generator) -> tuple[PairRecord, Path | None, int, int]:
        s = int(rng.choice(len(self.set_probs), p=self.set_probs))
        recs = self.pairs_by_set[s]
        rec = recs[int(rng.integers(len(recs)))]
        fused = rec.fused[int(rng.integers(len(rec.fused)))] if self.with_fused else None
        h, w = rec.size
        y = int(rng.integers(h - self.crop + 1))
        x = int(rng.integers(w - self.crop + 1))
        return rec, fused, y, x

    def _grid_draw(self, index: int, seed: int) -> tuple[PairRecord, Path | None, int, int]:
        """Input ``index % n`` of epoch ``index // n``'s permutation (seeded by (seed, epoch))."""
        epoch, pos = divmod(int(index), len(self._inputs))
        perm = self._perm
        if perm is None or perm[0] != (seed, epoch):
            perm = self._perm = ((seed, epoch), np.random.default_rng([seed, epoch, 1]).permutation(len(self._inputs)))
        k, j = self._inputs[int(perm[1][pos])]
        rec, y, x = self.patches[k]
        return rec, (rec.fused[j] if j is not None else None), y, x

    def _random_crop(self, rng: np.random.Generator):
        """A random crop passing the low-contrast filter (or the last of ``max_tries`` draws)."""
        c = self.crop
        for _ in range(self.max_tries):
            rec, fused, y, x = self._draw(rng)
            ir = self._load(rec.ir)[y : y + c, x : x + c]
            vi = self._load(rec.vi)[y : y + c, x : x + c]
            if not (low_contrast(ir, self.min_contrast) or low_contrast(vi, self.min_contrast)):
                break
        else:
            self.forced += 1
            if self.forced in (1, 100, 10000):
                log.warning("%d crops kept after %d low-contrast rejections", self.forced, self.max_tries)
        return rec, fused, y, x, ir, vi

    def sample(self, index: int, seed: int | None = None) -> dict[str, torch.Tensor]:
        """Crop number ``index`` of the stream: ``{"ir", "vi"[, "fused"]}`` each (1, crop, crop).

        ``seed`` (default: the one given at construction) picks the stream."""
        seed = self.seed if seed is None else int(seed)
        rng = np.random.default_rng([seed, int(index)])
        c = self.crop
        if self.grid_stride:
            rec, fused, y, x = self._grid_draw(index, seed)
            ir = self._load(rec.ir)[y : y + c, x : x + c]
            vi = self._load(rec.vi)[y : y + c, x : x + c]
        else:
            rec, fused, y, x, ir, vi = self._random_crop(rng)
        flip = self.hflip and bool(rng.integers(2))
        if flip:
            ir, vi = ir[:, ::-1], vi[:, ::-1]
        out = {"ir": torch.from_numpy(ir.copy())[None], "vi": torch.from_numpy(vi.copy())[None]}
        if fused is not None:
            f = self._load(fused)[y : y + c, x : x + c]
            f = f[:, ::-1].copy() if flip else f.copy()
            if self.noise_std > 0:
                sigma = rng.uniform(0.0, self.noise_std)
                f = np.clip(f + rng.normal(0.0, sigma, f.shape).astype(np.float32), 0.0, 1.0)
            out["fused"] = torch.from_numpy(f)[None]
        return out

    def batch(self, indices: Sequence[int], seed: int | None = None) -> dict[str, torch.Tensor]:
        """Stack :meth:`sample` over ``indices`` (of stream ``seed``): each value (len(indices), 1, crop, crop)."""
        items = [self.sample(i, seed) for i in indices]
        return {k: torch.stack([it[k] for it in items]) for k in items[0]}

