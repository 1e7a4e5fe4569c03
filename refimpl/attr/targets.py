r"""The target score of each example and its gradient, from the derivative protocol.

A model maps a batch ``x`` of shape ``(B, ...)`` to outputs ``y`` of shape ``(B, *out)``.
Attribution methods explain one scalar per example, the *target score*
:math:`s_b = y_{b, t_b}`, chosen by ``target`` (captum's rules):

=============================  =================================================
``None``                       ``y`` itself; each example's output must be a scalar
                               (``out`` is ``()`` or ``(1,)``)
``int`` or 0-d / 1-element     the same index ``t`` on the last axis for every
array                          example (``out`` must be one axis)
``tuple`` of ints              the same full index into ``out`` for every example
``list`` of length B           one int or tuple per example
array of B integers            one index on the (single) output axis per example
=============================  =================================================

Selecting :math:`s = \langle u, y\rangle` per example with the one-hot cotangent
:math:`u_b = e_{t_b}` makes the gradient one vector-Jacobian product,

.. math::  \nabla_x s_b = \big(J(x)^\top u\big)_b,

because the examples of a batch are independent (models act on trailing axes).
"""

from __future__ import annotations

import math
import numbers
import operator
from typing import Any

from backends import namespace_and_device
from refimpl.models.base import linearize
from refimpl.validation import check_array, check_same_place, is_array

__all__ = [
    "TargetError",
    "TargetTypeError",
    "check_target_entry",
    "target_cotangent",
    "target_gradients",
    "target_scores",
]


class TargetError(ValueError, AssertionError):
    """A ``target`` that does not fit the model output or the batch (out of range, a tuple of
    the wrong length, ``None`` for a vector output, a list of the wrong length). A ValueError,
    and an AssertionError too, because captum raises one (its checks are asserts) and code
    written for captum catches it; it is raised by a real check, so ``python -O`` keeps it."""


class TargetTypeError(TypeError, AssertionError):
    """A ``target`` of a type no rule accepts (a float, a bool, a float array...): a
    TypeError, and an AssertionError as captum's ``Target type ... is not valid``."""


def check_target_entry(t: Any, *, what: str) -> None:
    """One example's target in a list: an int (numpy integers too; not a bool) or a tuple of
    them (its range needs the model output: :func:`target_cotangent` checks it)."""
    parts = t if isinstance(t, tuple) else (t,)
    if not all(isinstance(i, numbers.Integral) and not isinstance(i, bool) for i in parts):
        raise TargetTypeError(
            f"{what} must be an int or a tuple of ints, got {t!r} ({type(t).__name__})"
        )


def entry_indices(target: list) -> Any:
    """The index, in the caller's list, of each item of ``target``: a per-row list expanded
    from a per-example one (``refimpl.attr.expand.RowTargets``) remembers them, so errors name
    the entry the caller gave."""
    return getattr(target, "entries", range(len(target)))


def _index(i: Any, n: int, *, what: str) -> int:
    if isinstance(i, bool) or not isinstance(i, numbers.Integral):
        raise TargetTypeError(f"{what} must be an int, got {i!r} ({type(i).__name__})")
    i = operator.index(i)
    if not -n <= i < n:
        raise TargetError(f"{what}={i} is out of range for an output axis of length {n}")
    return i % n


def _flat_index(t: Any, out: tuple[int, ...], *, what: str) -> int:
    """The C-order position in ``out`` that the int or tuple ``t`` selects."""
    if isinstance(t, tuple):
        if len(t) != len(out):
            raise TargetError(
                f"{what} is a tuple of {len(t)} indices but each example's output has shape "
                f"{out} ({len(out)} axes); give one index per output axis"
            )
        flat = 0
        for axis, (i, n) in enumerate(zip(t, out)):
            flat = flat * n + _index(i, n, what=f"{what}[{axis}]")
        return flat
    if len(out) != 1:
        raise TargetError(
            f"{what} is an int, so each example's output must have one axis; it has shape "
            f"{out} (use a tuple of indices)"
        )
    return _index(t, out[0], what=what)


def target_cotangent(y: Any, target: Any) -> Any:
    """The one-hot cotangent ``u`` (shaped like ``y``) with ``<u_b, y_b> = s_b``."""
    xp, dev = namespace_and_device(y)
    if y.ndim < 1:
        raise ValueError(f"the model output must have a batch axis, got shape {tuple(y.shape)}")
    batch, out = y.shape[0], tuple(y.shape[1:])
    m = math.prod(out)
    if target is None:
        if m != 1:
            raise TargetError(
                f"target=None needs one output value per example, but the output has shape "
                f"{tuple(y.shape)}; pass target= (an int, a tuple, or one per example)"
            )
        return xp.ones(y.shape, dtype=y.dtype, device=dev)
    if isinstance(target, numbers.Integral) and not isinstance(target, bool):
        target = operator.index(target)  # numpy integers too
    if is_array(target):
        check_same_place(target, y, name="target", ref_name="the model output")
        if not xp.isdtype(target.dtype, "integral"):
            raise TargetTypeError(f"a target array must have an integer dtype, got {target.dtype}")
        if target.ndim == 0 or math.prod(target.shape) == 1:
            flat = _flat_index(int(xp.reshape(target, (-1,))[0]), out, what="target")
            pos = xp.full((batch,), flat, dtype=xp.int64, device=dev)
        else:
            if target.ndim != 1 or target.shape[0] != batch:
                raise TargetError(
                    f"a target array must hold one index per example, shape ({batch},), got "
                    f"{tuple(target.shape)}"
                )
            if len(out) != 1:
                raise TargetError(
                    f"a target array indexes one output axis, but each example's output has "
                    f"shape {out}; use a list of tuples"
                )
            t = xp.astype(target, xp.int64)
            lo, hi = int(xp.min(t)), int(xp.max(t))
            if lo < -out[0] or hi >= out[0]:
                raise TargetError(
                    f"target holds indices in [{lo}, {hi}], out of range for an output axis "
                    f"of length {out[0]}"
                )
            pos = xp.where(t < 0, t + out[0], t)
    elif isinstance(target, list):
        if len(target) != batch:
            raise TargetError(
                f"target is a list of {len(target)} items but the batch has {batch} examples; "
                "give one target per example, or one int/tuple for all"
            )
        flat = []
        for t, entry in zip(target, entry_indices(target)):
            check_target_entry(t, what=f"target[{entry}]")
            flat.append(_flat_index(t, out, what=f"target[{entry}]"))
        pos = xp.asarray(flat, dtype=xp.int64, device=dev)
    elif isinstance(target, tuple | numbers.Integral) and not isinstance(target, bool):
        flat = _flat_index(target, out, what="target")
        pos = xp.full((batch,), flat, dtype=xp.int64, device=dev)
    else:
        raise TargetTypeError(
            "target must be None, an int, a tuple of ints, a list (one per example) or an "
            f"integer array; got {type(target).__name__}"
        )
    cols = xp.arange(m, dtype=xp.int64, device=dev)
    u = xp.astype(cols[None, :] == pos[:, None], y.dtype)
    return xp.reshape(u, y.shape)


def target_scores(y: Any, u: Any) -> Any:
    r""":math:`s_b = \langle u_b, y_b\rangle`, shape ``(B,)``."""
    xp, _ = namespace_and_device(y, u)
    return xp.sum(xp.reshape(y * u, (y.shape[0], math.prod(y.shape[1:]))), axis=1)


def _check_output(y: Any, x: Any, batch: int) -> None:
    check_array(y, name="the model output")
    check_same_place(y, x, name="the model output", ref_name="the inputs")
    if y.ndim < 1 or y.shape[0] != batch:
        raise ValueError(
            f"the model output must have the inputs' batch size {batch} on axis 0, got shape "
            f"{tuple(y.shape)}"
        )


def _call_args(xs: tuple[Any, ...]) -> Any:
    return xs[0] if len(xs) == 1 else xs


def target_gradients(
    model: Any, xs: tuple[Any, ...], target: Any, args: tuple[Any, ...] = ()
) -> tuple[tuple[Any, ...], Any, Any]:
    """``(grads, y, u)``: the gradient of each example's target score with respect to every
    input, the model output, and the target cotangent.

    One input and no extra arguments: any model of the protocol (``linearize`` is used, so the
    forward pass runs once). Several inputs, or ``additional_forward_args``: the model is
    called as ``model(x, *args)`` with ``x`` the tuple of inputs (the one array for a single
    input) and must offer ``model.vjp(x, u, *args)`` returning one cotangent per input (a
    tuple), or ``model.linearize(x, *args)``.
    """
    batch = xs[0].shape[0]
    if len(xs) == 1 and not args:
        lin = linearize(model, xs[0])
        _check_output(lin.y, xs[0], batch)
        u = target_cotangent(lin.y, target)
        return (lin.vjp_fn(u),), lin.y, u
    x = _call_args(xs)
    if callable(getattr(model, "linearize", None)):
        lin = model.linearize(x, *args)
        y = lin.y
        _check_output(y, xs[0], batch)
        u = target_cotangent(y, target)
        g = lin.vjp_fn(u)
    else:
        if not callable(model) or not callable(getattr(model, "vjp", None)):
            raise TypeError(
                "a model for several inputs (or with additional_forward_args) must implement "
                "model(x, *args) and model.vjp(x, u, *args), with x the tuple of inputs; "
                f"{type(model).__name__} does not"
            )
        y = model(x, *args)
        _check_output(y, xs[0], batch)
        u = target_cotangent(y, target)
        g = model.vjp(x, u, *args)
    grads = g if len(xs) > 1 else (g[0] if isinstance(g, tuple) else g,)
    if not isinstance(grads, tuple) or len(grads) != len(xs):
        raise TypeError(
            f"model.vjp must return one cotangent per input ({len(xs)}), got {type(g).__name__}"
        )
    for i, (gi, xi) in enumerate(zip(grads, xs)):
        if tuple(gi.shape) != tuple(xi.shape):
            raise ValueError(
                f"model.vjp returned a cotangent of shape {tuple(gi.shape)} for input {i} of "
                f"shape {tuple(xi.shape)}"
            )
    return grads, y, u


def forward_scores(model: Any, xs: tuple[Any, ...], target: Any, args: tuple[Any, ...]) -> Any:
    """The target score of every example, from one forward pass: shape ``(B,)``."""
    y = model(_call_args(xs), *args)
    _check_output(y, xs[0], xs[0].shape[0])
    return target_scores(y, target_cotangent(y, target))
