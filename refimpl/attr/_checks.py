"""Argument checks shared by the attribution methods and the noise tunnel.

Every check raises ``ValueError``/``TypeError`` naming the argument, the value and the
accepted range (captum uses ``assert``, which vanishes under ``python -O``).
"""

from __future__ import annotations

import math
import numbers
import operator
from typing import Any

from backends import namespace_and_device

from refimpl._checks import check_bool  # noqa: F401 (re-exported)
from refimpl.models.base import check_floating_array

NT_TYPES = ("smoothgrad", "smoothgrad_sq", "vargrad")


def check_nt_type(nt_type: Any) -> str:
    if not isinstance(nt_type, str) or nt_type not in NT_TYPES:
        raise ValueError(
            f"nt_type must be one of 'smoothgrad', 'smoothgrad_sq' or 'vargrad' (case-sensitive), "
            f"got {nt_type!r}"
        )
    return nt_type


def check_count(value: Any, *, name: str, low: int = 1) -> int:
    """An int (Python or numpy) >= ``low``; bool and floats are rejected."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int >= {low}, got the bool {value!r}")
    try:
        n = operator.index(value)
    except TypeError:
        raise TypeError(
            f"{name} must be an int >= {low}, got {value!r} ({type(value).__name__})"
        ) from None
    if n < low:
        raise ValueError(f"{name} must be an int >= {low}, got {n}")
    return n


def _one_stdev(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"{name} must be a real number (int, float or numpy scalar), got {value!r} "
            f"({type(value).__name__})"
        )
    s = float(value)
    if not math.isfinite(s) or s < 0:
        raise ValueError(f"{name} must be finite and >= 0, got {s}")
    return s


def check_stdevs(stdevs: Any, n_inputs: int, *, name: str = "stdevs") -> tuple[float, ...]:
    """One standard deviation per input: a number for all, or a tuple/list of one per input."""
    if isinstance(stdevs, tuple | list):
        if len(stdevs) != n_inputs:
            raise ValueError(
                f"{name} has {len(stdevs)} values but there are {n_inputs} input array(s); give "
                "one number for all inputs or one per input"
            )
        return tuple(_one_stdev(s, f"{name}[{i}]") for i, s in enumerate(stdevs))
    return (_one_stdev(stdevs, name),) * n_inputs


def as_input_tuple(inputs: Any, *, name: str = "inputs") -> tuple[bool, tuple[Any, ...]]:
    """``(is_tuple, arrays)``: one floating array or a non-empty tuple of them, of one
    namespace and device, with the same leading (batch) size."""
    is_tuple = isinstance(inputs, tuple)
    if isinstance(inputs, list):
        raise TypeError(f"{name} must be an array or a tuple of arrays, got a list (use a tuple)")
    xs = inputs if is_tuple else (inputs,)
    if not xs:
        raise ValueError(f"{name} is an empty tuple; give at least one array")
    for i, x in enumerate(xs):
        check_floating_array(x, name=f"{name}[{i}]" if is_tuple else name)
        if x.ndim < 1:
            raise ValueError(
                f"{name} must have a leading batch axis (shape (B, ...)), got a 0-d array"
            )
    try:
        namespace_and_device(*xs)
    except TypeError as exc:
        raise TypeError(f"{name}: {exc}") from None
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None
    batch = xs[0].shape[0]
    for i, x in enumerate(xs[1:], 1):
        if x.shape[0] != batch:
            raise ValueError(
                f"every input must have the same batch size (axis 0); {name}[0] has {batch} "
                f"rows but {name}[{i}] has {x.shape[0]}"
            )
    return is_tuple, tuple(xs)


def same_place(x: Any, ref: Any, *, name: str) -> None:
    """``x`` (an array passed alongside the inputs) must share their namespace and device."""
    try:
        namespace_and_device(ref, x)
    except TypeError:
        raise TypeError(
            f"{name} is a {type(x).__module__}.{type(x).__name__} but the inputs are "
            f"{type(ref).__module__}.{type(ref).__name__}; use arrays of one library"
        ) from None
    except ValueError as exc:
        raise ValueError(f"{name} and the inputs live on different devices ({exc})") from None


def is_array(a: Any) -> bool:
    """Duck test for an array object (numbers, strings and containers are not arrays)."""
    if a is None or isinstance(a, bool | int | float | complex | str | bytes | list | tuple | dict):
        return False
    return hasattr(a, "shape") and hasattr(a, "dtype") and hasattr(a, "ndim")


def as_args_tuple(args: Any) -> tuple[Any, ...]:
    """``additional_forward_args`` as a tuple: None -> (), a tuple as is, anything else -> (a,)."""
    if args is None:
        return ()
    return args if isinstance(args, tuple) else (args,)
