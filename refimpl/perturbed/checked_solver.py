"""Calls of the user's solver, with what they return checked (a perturbed optimizer calls
``func`` on samples x batch rows at once, so a wrong output shape is easy to produce and
would otherwise mix samples silently)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from backends import namespace_and_device

__all__ = ["CheckedSolver"]


class CheckedSolver:
    """Calls ``func`` and checks what it returns: an array of the input's namespace and
    device, ``rows`` long, with the same trailing shape every call; cast to ``dtype``."""

    def __init__(self, func: Callable, args: tuple, kwargs: dict, xp: Any, dtype: Any) -> None:
        self.func, self.args, self.kwargs, self.xp, self.dtype = func, args, kwargs, xp, dtype
        self.out_shape: tuple[int, ...] | None = None

    def __call__(self, x: Any, rows: int) -> Any:
        y = self.func(x, *self.args, **self.kwargs)
        # exact Python scalars only: numpy scalars (np.float64 subclasses float) are arrays
        if y is None or type(y) in (bool, int, float, complex) or isinstance(y, list | tuple | str):
            raise TypeError(f"func must return an array, got {type(y).__name__}")
        try:
            namespace_and_device(y, x)
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"func must return an array of its input's library and device ({exc})"
            ) from None
        shape = tuple(y.shape)
        if len(shape) == 0 or shape[0] != rows:
            raise ValueError(
                f"func must return one result per row of its input (leading dimension {rows}), "
                f"got shape {shape}; it is called on samples x batch rows at once"
            )
        if self.out_shape is None:
            self.out_shape = shape[1:]
        elif shape[1:] != self.out_shape:
            raise ValueError(
                f"func returned results of shape {self.out_shape} per row, then {shape[1:]}: "
                "the output shape must not change between calls (chunks)"
            )
        xp = self.xp
        if xp.isdtype(y.dtype, "complex floating"):
            raise TypeError(f"func must return real values, got dtype {y.dtype}")
        if y.dtype != self.dtype:  # bool and integer outputs are cast, as are other floats
            y = xp.astype(y, self.dtype)
        return y
