"""The source code a result depends on: the modules a module imports, and a hash over their sources.

Imports are read from the source text (``ast``), at module level and inside functions alike, so a
module imported lazily still counts; nothing is imported to find them. The benchmark's cache keys
include :func:`code_hash` of the modules that decide a fused image or a metric value, so a change
in any of them makes new keys.
"""

from __future__ import annotations

import ast
import hashlib
import sys
from functools import lru_cache
from importlib.util import resolve_name
from pathlib import Path
from typing import Iterable

__all__ = ["module_file", "imported_modules", "closure", "code_hash"]

_PACKAGE = __name__.partition(".")[0]
_ROOT = Path(__file__).resolve().parents[1]


def module_file(name: str) -> Path | None:
    """The source file of module ``name``: ``a/b.py`` or ``a/b/__init__.py`` in this package,
    otherwise the file of an imported module; None when there is none."""
    if name == _PACKAGE or name.startswith(_PACKAGE + "."):
        base = _ROOT.joinpath(*name.split(".")[1:])
        for path in (base / "__init__.py", base.parent / f"{base.name}.py"):
            if path.is_file():
                return path
        return None
    file = getattr(sys.modules.get(name), "__file__", None)
    return Path(file) if file else None


@lru_cache(maxsize=None)
def imported_modules(name: str) -> frozenset[str]:
    """The modules of this package that the source of module ``name`` imports, anywhere in it.

    ``from pkg import x`` counts ``pkg`` and, when it is a module, ``pkg.x``. Modules outside the
    package are left out.
    """
    path = module_file(name)
    if path is None or not (name == _PACKAGE or name.startswith(_PACKAGE + ".")):
        return frozenset()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_bytes(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = resolve_name("." * node.level + (node.module or ""), package) if node.level else node.module
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return frozenset(m for m in found if m.partition(".")[0] == _PACKAGE and module_file(m) is not None)


def closure(roots: Iterable[str], leaves: Iterable[str] = ()) -> list[str]:
    """``roots`` and every module of this package they import, directly or not, sorted.

    Modules in ``leaves`` are included but their imports are not followed (the method registry
    imports every method to register it; one method's output does not depend on the others).
    """
    leaves = set(leaves)
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(() if name in leaves else imported_modules(name))
    return sorted(seen)


def code_hash(roots: Iterable[str], leaves: Iterable[str] = ()) -> str:
    """sha256 over the names and source bytes of :func:`closure` ``(roots, leaves)``."""
    h = hashlib.sha256()
    for name in closure(roots, leaves):
        path = module_file(name)
        h.update(f"{name}\0".encode())
        h.update(path.read_bytes() if path is not None else b"")
    return h.hexdigest()
