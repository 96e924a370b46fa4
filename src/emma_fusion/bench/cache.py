"""The benchmark's content-addressed cache: fused images and per-image metric values.

Keys are sha256 digests of the inputs' bytes plus what decides the result, so nothing is ever
recomputed for the same inputs and configuration, and nothing stale is ever reused:

* fused image: ``sha256(ir file) + sha256(vi file) + method config hash`` (method, options,
  weights sha256, output scaling, source code of the method);
* metric values: ``sha256(fused file) + sha256(ir file) + sha256(vi file) + metric code hash``;
  one JSON file per image holds every metric computed so far, so asking for a new metric computes
  only that one.

Every file is written atomically (temporary file, then rename): an interrupted run leaves only
complete entries, and a re-run resumes from them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from pathlib import Path

import numpy as np
from PIL import Image

from ..io import atomic_write

__all__ = ["BenchCache", "digest", "FileHasher"]

log = logging.getLogger(__name__)


def digest(*parts: str) -> str:
    """sha256 hex of the ``|``-joined parts."""
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


class FileHasher:
    """sha256 of files' bytes, remembered per (path, size, mtime) for the life of the object."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, int, int], str] = {}

    def __call__(self, path: str | os.PathLike) -> str:
        st = os.stat(path)
        k = (str(Path(path).resolve()), st.st_size, st.st_mtime_ns)
        if k not in self._seen:
            h = hashlib.sha256()
            with open(path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
            self._seen[k] = h.hexdigest()
        return self._seen[k]


def _finite_or_none(v: float) -> float | None:
    return float(v) if math.isfinite(v) else None


class BenchCache:
    """A cache folder: ``fused/<k2>/<key>.png`` (+ ``.json`` timing), ``metrics/<k2>/<key>.json``."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    def fused_png(self, key: str) -> Path:
        """Where the 8-bit fused image for ``key`` lives (it may not exist yet)."""
        return self.root / "fused" / key[:2] / f"{key}.png"

    def fused_info(self, key: str) -> Path:
        """The JSON record (timing, memory) written beside the fused image."""
        return self.root / "fused" / key[:2] / f"{key}.json"

    def has_fused(self, key: str) -> bool:
        return self.fused_png(key).is_file() and self.fused_info(key).is_file()

    def save_fused(self, key: str, gray_u8: np.ndarray, info: dict) -> Path:
        """Write an (H, W) uint8 fused image as PNG, then its record; both atomically."""
        png = self.fused_png(key)
        img = Image.fromarray(np.ascontiguousarray(gray_u8, dtype=np.uint8))
        atomic_write(png, lambda tmp: img.save(tmp, format="PNG"))
        self._write_json(self.fused_info(key), info)
        return png

    def load_fused_info(self, key: str) -> dict | None:
        return self._read_json(self.fused_info(key))

    def metrics_json(self, key: str) -> Path:
        return self.root / "metrics" / key[:2] / f"{key}.json"

    def load_metrics(self, key: str) -> dict[str, float]:
        """Cached metric values for ``key`` (NaN restored from null); empty when none."""
        doc = self._read_json(self.metrics_json(key)) or {}
        return {k: (float("nan") if v is None else float(v)) for k, v in doc.get("values", {}).items()}

    def save_metrics(self, key: str, values: dict[str, float]) -> None:
        """Merge ``values`` into the cached values for ``key`` (atomic rewrite)."""
        merged = {**self.load_metrics(key), **values}
        self._write_json(self.metrics_json(key), {"values": {k: _finite_or_none(v) for k, v in merged.items()}})

    @staticmethod
    def _write_json(path: Path, doc: dict) -> None:
        text = json.dumps(doc, sort_keys=True, allow_nan=False)
        atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))

    @staticmethod
    def _read_json(path: Path) -> dict | None:
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            log.warning("ignoring unreadable cache entry %s: %s", path, e)
            return None
