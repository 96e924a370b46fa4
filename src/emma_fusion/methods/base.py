"""The one interface behind which every fusion method sits, and the registry of named methods.

A method fuses two single-channel tensors into one:

    method(ir, vi, key=None) -> fused

``ir``, ``vi``: (N, 1, H, W) float32 in [0, 1]; ``fused``: (N, 1, H, W) float32 in [0, 1] (the
network's raw sigmoid output, or a classical method's result clipped to [0, 1]). ``key`` is the
pair's file stem; only methods that look results up (a folder of someone else's fused images)
use it. Colour, padding for networks and output scaling are handled outside, once, by
:mod:`emma_fusion.api`.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Callable, Protocol, runtime_checkable

import torch

from ..errors import EmmaError

__all__ = ["FusionMethod", "MethodInfo", "register_method", "get_method", "list_methods", "method_info"]


@runtime_checkable
class FusionMethod(Protocol):
    """Anything that fuses (N, 1, H, W) infrared and visible tensors in [0, 1] into one."""

    name: str

    def __call__(self, ir: torch.Tensor, vi: torch.Tensor, key: str | None = None) -> torch.Tensor: ...


@dataclass(frozen=True)
class MethodInfo:
    """A registered method: how to build it and what to say about it in ``emma methods``."""

    name: str
    factory: Callable[..., FusionMethod]
    description: str
    reference: str
    aliases: tuple[str, ...] = field(default_factory=tuple)

    @property
    def options(self) -> frozenset[str]:
        """The keyword options the method's factory takes (e.g. ``weights``, ``tile`` for the network)."""
        params = inspect.signature(self.factory).parameters.values()
        kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        return frozenset(p.name for p in params if p.kind in kinds)


_REGISTRY: dict[str, MethodInfo] = {}


def register_method(
    name: str, description: str, reference: str, aliases: tuple[str, ...] = ()
) -> Callable[[Callable[..., FusionMethod]], Callable[..., FusionMethod]]:
    """Class/function decorator adding a method factory to the registry under ``name``."""

    def deco(factory: Callable[..., FusionMethod]) -> Callable[..., FusionMethod]:
        info = MethodInfo(name, factory, description, reference, tuple(aliases))
        for n in (name, *aliases):
            _REGISTRY[n.lower()] = info
        return factory

    return deco


def _load_builtin() -> None:
    # Importing these modules registers their methods.
    from . import network  # noqa: F401
    from . import classical  # noqa: F401


def method_info(name: str) -> MethodInfo:
    """The registry entry of method ``name`` (case-insensitive); :class:`EmmaError` if unknown."""
    _load_builtin()
    info = _REGISTRY.get(name.lower())
    if info is None:
        raise EmmaError(f"unknown method {name!r}; known: {', '.join(m.name for m in list_methods())}")
    return info


def get_method(name: str, **options) -> FusionMethod:
    """Build the registered method ``name`` (case-insensitive) with ``options``."""
    info = method_info(name)
    try:
        return info.factory(**options)
    except TypeError as e:
        if "unexpected keyword argument" in str(e):
            raise EmmaError(f"method {info.name!r} does not take that option: {e}") from None
        raise


def list_methods() -> list[MethodInfo]:
    """Every registered method, once each, sorted by name."""
    _load_builtin()
    return sorted({id(i): i for i in _REGISTRY.values()}.values(), key=lambda i: i.name)
