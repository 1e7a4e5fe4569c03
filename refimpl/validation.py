"""Argument checks for every public entry point of ``refimpl``: each check once, one wording.

The bad-input rules (docs/design.md): a wrong argument raises ``TypeError`` (wrong kind) or
``ValueError`` (wrong value) naming the argument, the value received and what is accepted;
nothing fails silently and no input is modified. Checks run when options are built or a call
starts, never inside a step or sample loop: methods with many options validate them once, in
a frozen dataclass (``PerturbedOptions``, ``FrankWolfeOptions``, ``NoiseTunnelOptions``,
``EigendistortionOptions``), and the algorithms then trust them.

Numbers: :func:`check_real`, :func:`check_int`, :func:`check_bool`, :func:`check_choice`,
:func:`check_callable`, :func:`check_rng`. Dtypes: :func:`check_dtype`. Arrays:
:func:`check_array`, :func:`check_finite`, :func:`check_same_place`, :func:`check_like`, :func:`check_fits`,
:func:`check_noise_scale`, :func:`leading_batch`,
:func:`check_shape`, :func:`check_param_ndim`.
"""

from __future__ import annotations

import math
import numbers
import operator
from collections.abc import Sequence
from typing import Any

from backends import namespace_and_device

__all__ = [
    "TINY",
    "check_array",
    "check_bool",
    "check_callable",
    "check_choice",
    "check_dtype",
    "check_finite",
    "check_fits",
    "check_int",
    "check_like",
    "check_noise_scale",
    "check_param_ndim",
    "check_real",
    "check_rng",
    "check_same_place",
    "check_shape",
    "is_array",
    "leading_batch",
]

#: ``float32``'s smallest normal number: the guard against division by zero that the
#: documented libraries use by default.
TINY = 1.1754943508222875e-38

_SCALARS = (bool, int, float, complex, str, bytes, list, tuple, dict)


# -- numbers ---------------------------------------------------------------------------------
def _bounds(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    if low is not None and high is not None:
        return f" in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    if low is not None:
        return f" {'>' if low_open else '>='} {low:g}"
    if high is not None:
        return f" {'<' if high_open else '<='} {high:g}"
    return ""


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
    """``float(value)`` for a real number (int, float or numpy scalar; not bool) in the range
    given; NaN is always refused, infinities unless ``finite=False``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
    v = float(value)
    bad = math.isnan(v) or (finite and math.isinf(v))
    bad = bad or (low is not None and (v <= low if low_open else v < low))
    bad = bad or (high is not None and (v >= high if high_open else v > high))
    if bad:
        kind = "a finite number" if finite else "a number (not NaN)"
        raise ValueError(
            f"{name} must be {kind}{_bounds(low, high, low_open, high_open)}, got {value!r}"
        )
    return v


def check_int(name: str, value: Any, *, low: int | None = None, high: int | None = None) -> int:
    """``value`` as a Python int (ints and numpy integers; bools and floats such as 3.0 are
    refused, never truncated) in ``[low, high]``."""
    what = f"an int{_bounds(low, high, False, False)}"
    if isinstance(value, bool):
        raise TypeError(f"{name} must be {what}, got the bool {value!r}")
    try:
        n = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be {what}, got {value!r} ({type(value).__name__})") from None
    if (low is not None and n < low) or (high is not None and n > high):
        raise ValueError(f"{name} must be {what}, got {n}")
    return n


def check_bool(name: str, value: Any, *, optional: bool = False) -> bool | None:
    """``value`` itself when it is True or False (or None, with ``optional``)."""
    if optional and value is None:
        return None
    if not isinstance(value, bool):
        accepted = "True, False or None" if optional else "True or False"
        raise TypeError(f"{name} must be {accepted}, got {value!r} ({type(value).__name__})")
    return value


def check_choice(name: str, value: Any, choices: Sequence[str]) -> str:
    """``value`` when it is one of the strings ``choices`` (case-sensitive)."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def check_callable(name: str, value: Any, *, optional: bool = False) -> Any:
    """``value`` when it is callable (or None, with ``optional``)."""
    if not (callable(value) or (optional and value is None)):
        accepted = "callable or None" if optional else "callable"
        raise TypeError(f"{name} must be {accepted}, got {value!r} ({type(value).__name__})")
    return value


def check_rng(rng: Any) -> Any:
    """The checks of an ``rng=`` argument that need no array (done where options are built;
    the rest, which needs the arrays' backend, happens in ``backends.as_rng``)."""
    if isinstance(rng, bool):
        raise TypeError("rng must be None, an int seed, a generator or a backends.Rng, got a bool")
    if isinstance(rng, numbers.Integral) and int(rng) < 0:
        raise ValueError(f"rng seed must be a non-negative integer, got {rng}")
    return rng


# -- arrays ----------------------------------------------------------------------------------
def is_array(a: Any) -> bool:
    """Duck test for an array object (numbers, strings and containers are not arrays)."""
    if a is None or isinstance(a, _SCALARS):
        return False
    return hasattr(a, "shape") and hasattr(a, "dtype") and hasattr(a, "ndim")


def check_array(x: Any, *, name: str, complex_ok: bool = False) -> tuple[Any, Any]:
    """``(xp, device)`` of ``x``; TypeError naming ``name`` unless ``x`` is an array with a real
    floating dtype (or, with ``complex_ok``, a complex floating one)."""
    if x is None or isinstance(x, _SCALARS):
        raise TypeError(f"{name} must be an array, got {type(x).__name__}")
    try:
        xp, device = namespace_and_device(x)
    except TypeError as exc:
        raise TypeError(f"{name} must be an array, got {type(x).__name__} ({exc})") from None
    kinds = ("real floating", "complex floating") if complex_ok else "real floating"
    if not xp.isdtype(x.dtype, kinds):
        kind = "a real or complex floating" if complex_ok else "a real floating"
        raise TypeError(f"{name} must have {kind} dtype, got {x.dtype}")
    return xp, device


def check_finite(x: Any, *, name: str) -> None:
    """ValueError when ``x`` holds NaN or an infinity (a host synchronisation)."""
    xp, _ = namespace_and_device(x)
    if not bool(xp.all(xp.isfinite(x))):
        raise ValueError(f"{name} contains NaN or infinite values")


def check_same_place(arr: Any, ref: Any, *, name: str, ref_name: str) -> None:
    """``arr`` must be an array of ``ref``'s library, on ``ref``'s device."""
    try:
        namespace_and_device(arr, ref)
    except TypeError:
        raise TypeError(
            f"{name} is a {type(arr).__module__}.{type(arr).__name__}, {ref_name} a "
            f"{type(ref).__module__}.{type(ref).__name__}; use arrays of one library"
        ) from None
    except ValueError as exc:
        raise ValueError(f"{name} and {ref_name} live on different devices ({exc})") from None


def check_like(arr: Any, ref: Any, *, name: str, ref_name: str) -> None:
    """``arr`` must be a real floating array of ``ref``'s library, device and dtype."""
    check_array(arr, name=name)
    check_same_place(arr, ref, name=name, ref_name=ref_name)
    if arr.dtype != ref.dtype:
        raise TypeError(
            f"{name} has dtype {arr.dtype} but {ref_name} has dtype {ref.dtype}; cast one of them"
        )


def check_dtype(name: str, dtype: Any, adapter: Any, *, complex_ok: bool = False) -> Any:
    """The dtype object of ``adapter``'s namespace that ``dtype`` stands for (a name such as
    ``"float32"`` or ``"bfloat16"``, a numpy dtype, or one of the namespace's dtypes);
    TypeError unless it is a real floating dtype that backend has (or a complex floating one,
    with ``complex_ok``). Names are looked up in the namespace first, so ``"bfloat16"`` works
    wherever the library has it, whether or not numpy knows the name."""
    xp = adapter.xp
    names = ("float16", "bfloat16", "float32", "float64")
    names += ("complex64", "complex128") if complex_ok else ()
    have = [getattr(xp, n) for n in names if getattr(xp, n, None) is not None]
    found = getattr(xp, dtype, None) if isinstance(dtype, str) and dtype in names else None
    if found is None:
        try:
            found = adapter.dtype(dtype)
        except (TypeError, ValueError, AttributeError):
            found = None
    for candidate in have:
        if found is not None and found == candidate:
            return candidate
    kind = "real or complex floating" if complex_ok else "real floating"
    accepted = ", ".join(adapter.dtype_name(d) for d in have)
    raise TypeError(
        f"{name} must be a {kind} dtype of backend {adapter.name!r} ({accepted}), got {dtype!r}"
    )


def check_fits(name: str, value: float, dtype: Any, xp: Any) -> None:
    """ValueError unless ``value`` is finite in ``dtype`` (a scale of noise or of a ball
    beyond the dtype's largest value would turn every draw into an infinity)."""
    top = float(xp.finfo(dtype).max)
    if abs(value) > top:
        raise ValueError(
            f"{name}={value!r} exceeds the largest finite value of the dtype {dtype} "
            f"({top:g}): draws scaled by it would overflow"
        )


def check_noise_scale(
    name: str, scale: float, x: Any, *, x_name: str = "x", z_max: float = 40.0
) -> None:
    """ValueError unless ``x + scale * z`` stays finite in ``x``'s dtype for every noise draw
    ``|z| <= z_max``: ``max|x| + z_max * |scale|`` must not exceed the dtype's largest finite
    value (a call-start check, one host synchronisation; non-finite entries of ``x`` are not
    counted, and an empty ``x`` counts as 0). ``z_max = 40`` bounds every standard draw of
    the samplers in every dtype (the normal's inverse CDF at float64's smallest normal
    number is -37.5, the Gumbel's largest draw ``-log(eps)`` 36.04 in float64)."""
    xp, _ = namespace_and_device(x)
    top = float(xp.finfo(x.dtype).max)
    peak = 0.0
    if math.prod(x.shape):
        size = xp.abs(x)
        peak = float(xp.max(xp.where(xp.isfinite(size), size, xp.zeros_like(size))))
    limit = (top - peak) / z_max
    if abs(scale) > limit:
        raise ValueError(
            f"{name}={scale!r} is too large for the dtype {x.dtype}: {x_name} + {name} * z "
            f"must stay finite for noise draws |z| <= {z_max:g}, so {name} must be <= "
            f"{limit:g} here (the dtype's largest value {top:g}, less max|{x_name}| = "
            f"{peak:g}, over {z_max:g})"
        )


def leading_batch(arr: Any, shape: tuple[int, ...], *, name: str, expected: str) -> int | None:
    """The optional leading batch axis of a tangent or cotangent: None when ``arr.shape ==
    shape``, ``k`` when ``arr.shape == (k, *shape)``; ValueError otherwise (an array of another
    shape is never silently reshaped)."""
    got = tuple(arr.shape)
    if got == tuple(shape):
        return None
    if len(got) == len(shape) + 1 and got[1:] == tuple(shape):
        return got[0]
    raise ValueError(
        f"{name} must have the shape of {expected} {tuple(shape)} (optionally with one leading "
        f"batch dimension), got {got}"
    )


def check_shape(name: str, shape: Any) -> tuple[int, ...]:
    """A tuple of non-negative ints from a sequence of ints."""
    if isinstance(shape, str) or not isinstance(shape, Sequence):
        raise TypeError(
            f"{name} must be an array or a sequence of ints (a shape), got {shape!r} "
            f"({type(shape).__name__})"
        )
    if any(isinstance(s, bool) for s in shape):
        raise ValueError(f"{name} must contain non-negative ints, got {shape!r}")
    try:
        dims = tuple(operator.index(s) for s in shape)
    except TypeError:
        raise TypeError(f"{name} must be a sequence of ints, got {shape!r}") from None
    if any(s < 0 for s in dims):
        raise ValueError(f"{name} must contain non-negative ints, got {shape!r}")
    return dims


def check_param_ndim(param_ndim: Any, *, name: str = "param_ndim") -> int | None:
    """An int (numpy integers too) or None; the range depends on each array
    (``refimpl.batching.row_ndim``)."""
    if param_ndim is None:
        return None
    if isinstance(param_ndim, bool):
        raise TypeError(f"{name} must be an int or None, got {param_ndim!r}")
    try:
        return operator.index(param_ndim)
    except TypeError:
        raise TypeError(f"{name} must be an int or None, got {param_ndim!r}") from None
