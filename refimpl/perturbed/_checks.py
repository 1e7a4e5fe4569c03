"""Argument checks of the perturbed optimizers (DESIGN.md, Bad input): each error names the
argument, the value given and what is accepted."""

from __future__ import annotations

import math
import numbers
import operator
from typing import Any

from backends import floating_dtype, namespace_and_device

from refimpl._checks import check_bool  # noqa: F401 (re-exported)

SAMPLINGS = ("mc", "antithetic", "qmc")


def check_positive_int(value: Any, *, name: str) -> int:
    """``value`` as an int >= 1 (bools and floats are refused, even 3.0)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int >= 1, got {value!r} ({type(value).__name__})")
    value = operator.index(value)
    if value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value}")
    return value


def check_sigma(sigma: Any) -> float:
    """``sigma`` as a Python float; a finite real number > 0."""
    if isinstance(sigma, bool) or not isinstance(sigma, numbers.Real):
        raise TypeError(f"sigma must be a real number > 0, got {sigma!r} ({type(sigma).__name__})")
    value = float(sigma)
    if not (math.isfinite(value) and value > 0.0):
        raise ValueError(f"sigma must be a finite number > 0, got {sigma!r}")
    return value


def check_sampling(sampling: Any) -> str:
    if sampling not in SAMPLINGS:
        raise ValueError(
            f"sampling must be one of {', '.join(map(repr, SAMPLINGS))}, got {sampling!r}"
        )
    return sampling


def check_func(func: Any) -> None:
    if not callable(func):
        raise TypeError(f"func must be callable, got {func!r} ({type(func).__name__})")


def check_theta(theta: Any, *, batched: bool, name: str = "theta") -> tuple[Any, Any]:
    """``(xp, device)`` of ``theta``: a real floating array, finite, of rank >= 2 if batched."""
    if theta is None or isinstance(theta, bool | int | float | complex | list | tuple | str):
        raise TypeError(f"{name} must be an array, got {type(theta).__name__}")
    try:
        xp, device = namespace_and_device(theta)
    except TypeError as exc:
        raise TypeError(f"{name} must be an array, got {type(theta).__name__} ({exc})") from None
    floating_dtype(xp, theta, name=name)
    if batched and theta.ndim < 2:
        raise ValueError(
            f"batched=True needs {name} of rank >= 2 (batch, ...), got shape {tuple(theta.shape)}; "
            "pass batched=False for a single example"
        )
    if not bool(xp.all(xp.isfinite(theta))):
        raise ValueError(f"{name} contains NaN or infinite values")
    return xp, device
