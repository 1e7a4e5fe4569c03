r"""Baselines (the start points of integrated gradients) and the completeness delta.

``as_baselines`` turns captum's ``baselines`` (None, a number, an array of the input's shape or
of shape ``(1, *input.shape[1:])``, or a tuple of them, one per input) into one array per
input. ``completeness_delta`` is captum's ``compute_convergence_delta``: for attributions
``a`` of the move from a start point :math:`x'` to an end point :math:`x`,

.. math::  \delta_b = \sum_{i} a_{b,i} - \big(s_b(x) - s_b(x')\big),

per example, summed over every input; zero for exact integrated gradients (completeness).
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from backends import namespace_and_device
from refimpl.attr.inputs import as_input_tuple
from refimpl.validation import check_fits, check_real, check_same_place, is_array

__all__ = ["as_baselines", "completeness_delta", "convergence_delta", "real_baseline"]


def real_baseline(b: Any, name: str) -> Any:
    """``b`` when it is a real number or an array of a real dtype (a complex one would lose
    its imaginary part when cast to the inputs' dtype); a numpy scalar or a 0-d array (of any
    library) is a number: ``float(b)``."""
    if isinstance(b, numbers.Complex) and not isinstance(b, numbers.Real):
        raise TypeError(f"{name} must be real, got {b!r} ({type(b).__name__})")
    if not is_array(b):
        return b
    xp, _ = namespace_and_device(b)
    if xp.isdtype(b.dtype, "complex floating"):
        raise TypeError(f"{name} must be real, got an array of dtype {b.dtype}")
    return float(b) if b.ndim == 0 else b


def as_baselines(
    baselines: Any, xs: tuple[Any, ...], *, name: str = "baselines"
) -> tuple[Any, ...]:
    """One baseline per input, broadcast to the input's shape, in its dtype."""
    xp, dev = namespace_and_device(*xs)
    is_tuple = isinstance(baselines, tuple)
    bs = baselines if is_tuple else (baselines,) * (1 if baselines is not None else len(xs))
    if len(bs) != len(xs):
        raise ValueError(
            f"{name} has {len(bs)} entries but there are {len(xs)} input array(s); give one "
            "baseline per input (a tuple for tuple inputs)"
        )
    out = []
    for i, (b, x) in enumerate(zip(bs, xs)):
        label = f"{name}[{i}]" if is_tuple else name
        b = 0.0 if b is None else real_baseline(b, label)
        if is_array(b):
            check_same_place(b, x, name=label, ref_name="the inputs")
            ok = tuple(b.shape) == tuple(x.shape) or (
                b.ndim == x.ndim and b.shape[0] == 1 and tuple(b.shape[1:]) == tuple(x.shape[1:])
            )
            if not ok:
                raise ValueError(
                    f"{label} has shape {tuple(b.shape)}; it must be a scalar, have the input's "
                    f"shape {tuple(x.shape)}, or shape (1, {', '.join(map(str, x.shape[1:]))})"
                )
            if b.dtype != x.dtype:
                b = xp.astype(b, x.dtype)
            out.append(xp.broadcast_to(b, x.shape))
        elif isinstance(b, numbers.Real) and not isinstance(b, bool):
            value = check_real(label, b)
            check_fits(label, value, x.dtype, xp)  # a baseline beyond the dtype is infinite
            out.append(xp.full(x.shape, value, dtype=x.dtype, device=dev))
        else:
            raise TypeError(f"{label} must be None, a number or an array, got {type(b).__name__}")
    return tuple(out)


def completeness_delta(
    method: Any, attrs: tuple, start: tuple, end: tuple, target: Any, args: tuple
) -> Any:
    r""":math:`\sum_i a_i - (s(end) - s(start))` per example, with the target scores of
    ``method.scores``; ``start`` and ``end`` are tuples of arrays of the same shapes."""
    xp, _ = namespace_and_device(*attrs)
    batch = end[0].shape[0]
    total = sum(xp.sum(xp.reshape(a, (batch, math.prod(a.shape[1:]))), axis=1) for a in attrs)
    gap = method.scores(end, target, args) - method.scores(start, target, args)
    return total - xp.astype(gap, total.dtype)


def convergence_delta(
    method: Any,
    attributions: Any,
    start_point: Any,
    end_point: Any,
    target: Any = None,
    additional_forward_args: Any = None,
) -> Any:
    """captum's ``compute_convergence_delta(attributions, start_point, end_point, target=None,
    additional_forward_args=None)`` for ``method``: the attributions (an array or a tuple, one
    per end-point input, each with the end point's batch size), the start point as
    ``baselines`` (None: zeros), the end point as ``inputs``."""
    is_tuple, ends = as_input_tuple(end_point, name="end_point")
    _, attrs = as_input_tuple(attributions, name="attributions")
    if len(attrs) != len(ends):
        raise ValueError(
            f"attributions has {len(attrs)} array(s) but end_point has {len(ends)}; give one "
            "attribution per input"
        )
    for i, (a, x) in enumerate(zip(attrs, ends)):
        if a.shape[0] != x.shape[0]:
            at = f"[{i}]" if is_tuple else ""
            raise ValueError(
                f"attributions{at} has {a.shape[0]} rows but end_point{at} has {x.shape[0]}; "
                "they must match on the first (batch) axis"
            )
    starts = as_baselines(start_point, ends, name="start_point")
    args = method.forward_args(additional_forward_args)
    return completeness_delta(method, attrs, starts, ends, target, args)
