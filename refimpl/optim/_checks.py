"""Argument validation shared by ``refimpl.optim`` (DESIGN.md, Bad input).

Every message names the argument, the value received and the accepted range.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Real
from typing import Any

from backends import floating_dtype, namespace_and_device

#: ``float32``'s smallest normal number, the documented library's default guard.
TINY = 1.1754943508222875e-38


def check_real(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    finite: bool = True,
) -> float:
    """``float(value)`` after checking its type and range; NaN is always rejected."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
    v = float(value)
    if math.isnan(v) or (finite and math.isinf(v)):
        rng = _describe(name, low, high, low_open, high_open)
        kind = "a finite number" if finite else "a number (not NaN)"
        raise ValueError(f"{name} must be {kind}{rng}, got {value!r}")
    bad_low = low is not None and (v <= low if low_open else v < low)
    bad_high = high is not None and (v >= high if high_open else v > high)
    if bad_low or bad_high:
        rng = _describe(name, low, high, low_open, high_open)
        raise ValueError(f"{name} must satisfy{rng.removeprefix(',')}, got {value!r}")
    return v


def _describe(name: str, low, high, low_open, high_open) -> str:
    parts = []
    if low is not None:
        parts.append(f"{low:g} {'<' if low_open else '<='} ")
    parts.append(name)
    if high is not None:
        parts.append(f" {'<' if high_open else '<='} {high:g}")
    return ", " + "".join(parts) if (low is not None or high is not None) else ""


def check_epsilon(epsilon: Any, *, name: str = "epsilon") -> float:
    """A ball radius: a finite real number >= 0 (0 is the degenerate ball ``{0}``)."""
    return check_real(name, epsilon, low=0.0)


def check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {value!r} ({type(value).__name__})")
    return value


def check_param_ndim(param_ndim: Any) -> int | None:
    """Type check only; the range depends on each parameter (``refimpl.batching``)."""
    if param_ndim is None:
        return None
    if isinstance(param_ndim, bool) or not isinstance(param_ndim, int):
        raise TypeError(f"param_ndim must be an int or None, got {param_ndim!r}")
    return param_ndim


def as_list(arrays: Any, name: str) -> tuple[list, bool]:
    """``(list_of_arrays, was_single)``: a lone array or a sequence of arrays (or None)."""
    if isinstance(arrays, Sequence) and not isinstance(arrays, str):
        return list(arrays), False
    if arrays is None:
        raise TypeError(f"{name} must be an array or a sequence of arrays, got None")
    return [arrays], True


def real_array(x: Any, name: str = "the gradient") -> tuple[Any, Any]:
    """``(xp, device)`` of ``x``; TypeError unless it has a real floating dtype."""
    xp, dev = namespace_and_device(x)
    if not xp.isdtype(x.dtype, "real floating"):
        raise TypeError(f"{name} must have a real floating dtype, got {x.dtype}")
    return xp, dev


def check_pair(grad: Any, param: Any, index: int) -> tuple[Any, Any]:
    """``(xp, device)`` of a gradient and its parameter; raises on any mismatch."""
    where = f"parameter {index}"
    xp, dev = namespace_and_device(grad, param)
    floating_dtype(xp, param, name=f"{where}")
    floating_dtype(xp, grad, name=f"the gradient of {where}")
    if tuple(grad.shape) != tuple(param.shape):
        raise ValueError(
            f"the gradient of {where} has shape {tuple(grad.shape)}, "
            f"but the parameter has shape {tuple(param.shape)}"
        )
    if grad.dtype != param.dtype:
        raise TypeError(
            f"the gradient of {where} has dtype {grad.dtype}, but the parameter has {param.dtype}"
        )
    return xp, dev
