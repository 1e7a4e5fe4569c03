"""Argument checks shared by the perturbation models and the samplers (DESIGN.md, Bad input)."""

from __future__ import annotations

import math
import numbers
from typing import Any

from backends import floating_dtype, namespace_and_device


def check_epsilon(epsilon: Any, *, name: str = "epsilon") -> float:
    """``epsilon`` as a Python float; it must be a finite real number >= 0 (0: the degenerate
    ball ``{0}``)."""
    if isinstance(epsilon, bool) or not isinstance(epsilon, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {epsilon!r} ({type(epsilon).__name__})")
    value = float(epsilon)
    if not (math.isfinite(value) and value >= 0.0):
        raise ValueError(f"{name} must be a finite number >= 0, got {epsilon!r}")
    return value


def check_fits(xp: Any, value: float, dtype: Any, *, name: str = "epsilon") -> None:
    """ValueError unless ``value`` is finite in ``dtype`` (for complex: its real part's)."""
    top = float(xp.finfo(dtype).max)
    if value > top:
        raise ValueError(
            f"{name}={value!r} exceeds the largest finite value of the dtype {dtype} "
            f"({top:g}): draws scaled by it would overflow"
        )


def floating_array(x: Any, *, name: str = "x", complex_ok: bool = False) -> tuple[Any, Any]:
    """``(xp, device)`` of ``x``; TypeError unless ``x`` is an array with a real floating dtype
    (or, with ``complex_ok``, a complex floating one)."""
    if x is None or isinstance(x, bool | int | float | complex | list | tuple):
        raise TypeError(f"{name} must be an array, got {type(x).__name__}")
    try:
        xp, device = namespace_and_device(x)
    except TypeError as exc:
        raise TypeError(f"{name} must be an array, got {type(x).__name__} ({exc})") from None
    if complex_ok and xp.isdtype(x.dtype, "complex floating"):
        return xp, device
    floating_dtype(xp, x, name=name)
    return xp, device


def check_callable(fn: Any, *, name: str) -> None:
    if fn is not None and not callable(fn):
        raise TypeError(f"{name} must be callable or None, got {fn!r} ({type(fn).__name__})")
