"""Argument checks of the eigendistortion entry points (DESIGN.md, Bad input)."""

from __future__ import annotations

import math
import numbers
from typing import Any

from refimpl._checks import check_bool  # noqa: F401 (re-exported)
from refimpl.models.base import check_floating_array

METHODS = ("power", "exact", "randomized_svd", "eigsh")


def check_image(image: Any) -> tuple[Any, Any]:
    """``(xp, device)``; one image: 1-D of any length, or a leading batch axis of size 1."""
    xp, device = check_floating_array(image, name="image")
    if xp.finfo(image.dtype).bits < 32:
        raise TypeError(
            f"image must be float32 or float64, got {image.dtype}: eigensolvers (eigh, QR) "
            "need at least single precision; cast the image and the model"
        )
    shape = tuple(image.shape)
    if image.ndim == 0 or any(s == 0 for s in shape):
        raise ValueError(f"image must have at least one pixel, got shape {shape}")
    if image.ndim > 1 and shape[0] != 1:
        raise ValueError(
            f"image must be a single image: batch dimension must be 1, got shape {shape} "
            "(each image has its own Fisher matrix; loop over the batch)"
        )
    if not bool(xp.all(xp.isfinite(image))):
        raise ValueError("image has non-finite pixels (NaN or inf)")
    return xp, device


def check_output(xp: Any, y: Any) -> None:
    if not bool(xp.all(xp.isfinite(y))):
        raise ValueError("model(image) has non-finite values (NaN or inf)")


def check_method(method: Any) -> str:
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"method must be in {list(METHODS)}, got {method!r}")
    return method


def check_int(value: Any, name: str, *, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {value!r} ({type(value).__name__})")
    value = int(value)
    if value < low or (high is not None and value > high):
        upper = "" if high is None else f" and <= {high}"
        what = " (the number of pixels)" if name == "k" and high is not None else ""
        raise ValueError(f"{name} must be >= {low}{upper}{what}, got {value}")
    return value


def check_positive(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
    value = float(value)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return value
