"""The transform group of EMMA's equivariant loss: circular shifts, rotations, reflections.

Every transform is a small immutable object with explicit parameters that maps an
(N, C, H, W) tensor to a tensor of the same shape, has an :meth:`~Transform.inverse`, and
composes with ``@`` (``(a @ b)(x) == a(b(x))``). :class:`TransformSampler` draws the stack the
authors train with: the untransformed image, ``n_shift`` random circular shifts, ``n_rot``
rotations at fixed angles and ``n_flip`` reflections, concatenated along the batch axis.

Exactness: shifts, flips and rotations by multiples of 90 degrees are permutations of the pixels,
so ``t.inverse()(t(x)) == x`` bit for bit. Other angles are bilinear with zero padding about the
image centre (as ``kornia.geometry.transform.rotate``, which the authors call): corners are
lost, and their inverse only undoes the rotation approximately.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch

from ..errors import EmmaError

__all__ = [
    "Transform",
    "Identity",
    "Shift",
    "Rotate",
    "Flip",
    "Compose",
    "TransformSampler",
    "apply_stack",
]


class Transform:
    """Base class: ``t(x)`` maps (N, C, H, W) to (N, C, H, W); ``t.inverse()``; ``a @ b`` composes."""

    def __call__(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def inverse(self) -> "Transform":  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def exact(self) -> bool:
        """True when the transform permutes pixels, so its inverse undoes it exactly
        (rotations by quarter turns: on square images; half turns: always)."""
        return True

    def __matmul__(self, other: "Transform") -> "Compose":
        """``(a @ b)(x) == a(b(x))``: apply ``other`` first, then ``self``."""
        if not isinstance(other, Transform):
            return NotImplemented
        return Compose((*_parts(other), *_parts(self)))


def _parts(t: Transform) -> tuple[Transform, ...]:
    return t.transforms if isinstance(t, Compose) else (t,)


@dataclass(frozen=True)
class Identity(Transform):
    """The identity transform (the first entry of the authors' stack)."""

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def inverse(self) -> "Identity":
        return self


@dataclass(frozen=True)
class Shift(Transform):
    """Circular shift by ``dy`` rows and ``dx`` columns (``torch.roll``)."""

    dy: int
    dx: int

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.roll(x, shifts=(self.dy, self.dx), dims=(-2, -1))

    def inverse(self) -> "Shift":
        return Shift(-self.dy, -self.dx)


@dataclass(frozen=True)
class Flip(Transform):
    """Reflection: ``"h"`` mirrors left-right, ``"v"`` top-bottom, ``"hv"`` both (its own inverse)."""

    axes: str

    def __post_init__(self) -> None:
        if self.axes not in ("h", "v", "hv"):
            raise EmmaError(f"flip axes must be 'h', 'v' or 'hv', not {self.axes!r}")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        dims = {"h": (-1,), "v": (-2,), "hv": (-2, -1)}[self.axes]
        return torch.flip(x, dims=dims)

    def inverse(self) -> "Flip":
        return self


@dataclass(frozen=True)
class Rotate(Transform):
    """Counter-clockwise rotation by ``angle`` degrees about the image centre; shape is kept.

    Multiples of 90 degrees use ``torch.rot90`` (exact) when the result keeps the shape (square
    images, or half turns); every other case is bilinear with zero padding, as
    ``kornia.geometry.transform.rotate`` (which equals ``rot90`` at 90 degrees on square images).
    """

    angle: float

    def _quarter_turns(self, h: int, w: int) -> int | None:
        a = self.angle % 360.0
        k = round(a / 90.0)
        if not math.isclose(a, 90.0 * k, abs_tol=1e-9):
            return None
        k %= 4
        return k if (k % 2 == 0 or h == w) else None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        k = self._quarter_turns(x.shape[-2], x.shape[-1])
        if k is not None:
            return torch.rot90(x, k, dims=(-2, -1)) if k else x
        from kornia.geometry.transform import rotate

        angle = torch.full((x.shape[0],), float(self.angle), dtype=x.dtype, device=x.device)
        return rotate(x, angle, mode="bilinear", padding_mode="zeros", align_corners=True)

    def inverse(self) -> "Rotate":
        return Rotate(-self.angle)

    @property
    def exact(self) -> bool:
        a = self.angle % 360.0
        return math.isclose(a, 90.0 * round(a / 90.0), abs_tol=1e-9)


@dataclass(frozen=True)
class Compose(Transform):
    """Apply ``transforms`` in order (first entry first)."""

    transforms: tuple[Transform, ...]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        for t in self.transforms:
            x = t(x)
        return x

    def inverse(self) -> "Compose":
        return Compose(tuple(t.inverse() for t in reversed(self.transforms)))

    @property
    def exact(self) -> bool:
        return all(t.exact for t in self.transforms)


def apply_stack(x: torch.Tensor, transforms: Sequence[Transform]) -> torch.Tensor:
    """Concatenate ``[t(x) for t in transforms]`` along the batch axis: (N,C,H,W) -> (len*N,C,H,W)."""
    if not transforms:
        raise EmmaError("the transform stack is empty")
    return torch.cat([t(x) for t in transforms], dim=0)


def _draw_offsets(n: int, size: int, gen: torch.Generator) -> list[int]:
    """``n`` distinct offsets from +-[1, size-1], drawn without replacement."""
    pool = list(range(-(size - 1), 0)) + list(range(1, size))
    if n > len(pool):
        raise EmmaError(f"cannot draw {n} distinct shifts on a side of {size} pixels")
    idx = torch.randperm(len(pool), generator=gen)[:n].tolist()
    return [pool[i] for i in idx]


@dataclass(frozen=True)
class TransformSampler:
    """Draws the authors' transform stack, or ``per_step`` transforms of it, with a torch.Generator.

    The full stack is ``[Identity()] + n_shift Shifts + n_rot Rotates + n_flip Flips`` (shift
    offsets drawn without replacement from +-[1, H-1] and +-[1, W-1]; rotation angles
    ``angles[:n_rot]``; flips ``("h", "v", "hv")[:n_flip]``). With ``per_step = k`` a step uses
    ``k`` entries of that stack chosen uniformly without replacement, an unbiased estimate of
    the authors' loss (the mean over the stack) at ``k / len(stack)`` of its cost.
    """

    n_shift: int = 3
    n_rot: int = 3
    n_flip: int = 3
    angles: tuple[float, ...] = (10.0, 130.0, 250.0)
    include_identity: bool = True
    per_step: int | None = None

    def __post_init__(self) -> None:
        if self.n_rot > len(self.angles):
            raise EmmaError(f"n_rot={self.n_rot} but only {len(self.angles)} rotation angles are given")
        if not 0 <= self.n_flip <= 3:
            raise EmmaError(f"n_flip must lie in [0, 3], not {self.n_flip}")
        if min(self.n_shift, self.n_rot) < 0:
            raise EmmaError("transform counts must be >= 0")
        if self.stack_size == 0:
            raise EmmaError("the transform stack is empty: enable the identity or some transforms")
        if self.per_step is not None and not 1 <= self.per_step <= self.stack_size:
            raise EmmaError(f"per_step must lie in [1, {self.stack_size}], not {self.per_step}")

    @property
    def stack_size(self) -> int:
        """Length of the full stack."""
        return int(self.include_identity) + self.n_shift + self.n_rot + self.n_flip

    @property
    def per_step_size(self) -> int:
        """How many transforms one step uses."""
        return self.per_step or self.stack_size

    def full_stack(self, height: int, width: int, gen: torch.Generator) -> list[Transform]:
        """The authors' stack for (height, width) images, shifts drawn with ``gen``."""
        stack: list[Transform] = [Identity()] if self.include_identity else []
        if self.n_shift:
            dys = _draw_offsets(self.n_shift, height, gen)
            dxs = _draw_offsets(self.n_shift, width, gen)
            stack += [Shift(dy, dx) for dy, dx in zip(dys, dxs)]
        stack += [Rotate(float(a)) for a in self.angles[: self.n_rot]]
        stack += [Flip(a) for a in ("h", "v", "hv")[: self.n_flip]]
        return stack

    def sample(self, height: int, width: int, gen: torch.Generator) -> list[Transform]:
        """The transforms for one step: the full stack, or ``per_step`` entries of it."""
        stack = self.full_stack(height, width, gen)
        if self.per_step is None or self.per_step == len(stack):
            return stack
        idx = torch.randperm(len(stack), generator=gen)[: self.per_step].tolist()
        return [stack[i] for i in sorted(idx)]
