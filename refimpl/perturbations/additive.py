r"""Additive perturbations :math:`x \mapsto x + \delta`, with explicit derivatives.

``AdditivePerturbation`` holds one array ``delta``. Its shape is the data's shape, or, with
``delta_ndim``, only the data's trailing dimensions, in which case ``delta`` is added to every
datum of the batch by broadcasting (a "universal" perturbation).

Derivatives (the derivative protocol of docs/design.md). With
:math:`y = x + \delta` broadcast to the output shape:

* ``p.jvp(x, v)`` = :math:`J_x v`: ``v`` broadcast to the output shape;
* ``p.vjp(x, u)`` = :math:`J_x^\top u`: ``u`` summed over the dimensions that broadcasting
  added to or expanded in ``x``;
* ``p.jvp_delta(x, v)`` / ``p.vjp_delta(x, u)``: the same with respect to ``delta``.
  ``vjp_delta`` is what ``loss.backward()`` leaves in ``delta.grad`` in the documented
  library: for a broadcast perturbation the cotangent summed over the batch.

A leading tangent / cotangent batch dimension is allowed: ``v`` of shape ``(k, *x.shape)``,
``u`` of shape ``(k, *p(x).shape)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import backends
from refimpl.batching import row_ndim
from refimpl.perturbations.placement import (
    check_init_args,
    check_init_result,
    check_new_delta,
    delta_placement,
)
from refimpl.validation import check_array, leading_batch

__all__ = ["AdditivePerturbation", "broadcast_shapes", "delta_shape", "pullback", "sum_to_shape"]


# -- the perturbation model ----------------------------------------------------------------
class AdditivePerturbation:
    r"""Perturbs data additively: :math:`x \mapsto x + \delta` (broadcasting).

    Parameters
    ----------
    data_or_shape : array | tuple of int
        An array: ``delta`` mirrors its shape, namespace, device and dtype. A shape: ``delta``
        is created by the current backend (``backends.use`` / ``set_default`` /
        ``REFIMPL_BACKEND``, or ``backend=``) in its default floating dtype. Real and complex
        floating dtypes are accepted.
    init_fn : callable | None
        ``init_fn(zeros, **init_fn_kwargs) -> array`` returns the initial ``delta`` (refimpl
        functions are functional, e.g. :func:`uniform_like_l1_n_ball`). None: zeros.
    device, dtype :
        Override the device and dtype taken from ``data_or_shape`` (dtype must be real or
        complex floating).
    delta_ndim : int | None
        ``k >= 0``: ``delta`` has the last ``k`` dimensions of the data; ``k < 0``: all but
        the first ``-k`` (``-1`` on (N, C, H, W) gives (C, H, W): one perturbation
        broadcast over the batch). Out of range: ValueError.
    backend : str | None
        The backend of a shape-only call (ignored, but checked, with an array).
    rng :
        Passed to ``init_fn`` as ``rng=`` (None: not passed).
    **init_fn_kwargs :
        Passed to ``init_fn``.

    Examples
    --------
    >>> import backends
    >>> from refimpl.perturbations import AdditivePerturbation, uniform_like_l1_n_ball
    >>> data = backends.get("numpy").asarray([[1.0, 1.0], [1.0, 1.0]], dtype="float64")
    >>> p = AdditivePerturbation(data, uniform_like_l1_n_ball, delta_ndim=-1, rng=0)
    >>> p.delta.shape, p(data).shape
    ((2,), (2, 2))
    >>> grad = p.vjp_delta(data, 2 * p(data) / 4)   # gradient of mean((x + delta)**2)
    """

    def __init__(
        self,
        data_or_shape: Any,
        init_fn: Callable[..., Any] | None = None,
        *,
        device: Any = None,
        dtype: Any = None,
        delta_ndim: int | None = None,
        backend: str | None = None,
        rng: Any = None,
        **init_fn_kwargs: Any,
    ) -> None:
        check_init_args(init_fn, init_fn_kwargs, rng)
        adapter, dev, shape, dt = delta_placement(data_or_shape, device, dtype, backend)
        zeros = adapter.xp.zeros(delta_shape(shape, delta_ndim), dtype=dt, device=dev)
        self._delta = zeros
        if init_fn is not None:
            kwargs = {**init_fn_kwargs, **({"rng": rng} if rng is not None else {})}
            self.delta = check_init_result(init_fn(zeros, **kwargs), zeros)

    # -- state ---------------------------------------------------------------------------
    @property
    def delta(self) -> Any:
        """The perturbation (an array; replace it with ``p.delta = new``, same shape)."""
        return self._delta

    @delta.setter
    def delta(self, value: Any) -> None:
        self._delta = check_new_delta(value, self._delta)

    def parameters(self) -> list[Any]:
        """``[delta]``: the sole trainable parameter."""
        return [self._delta]

    # -- forward and derivatives -----------------------------------------------------------
    def _out_shape(self, x: Any) -> tuple[int, ...]:
        self._check_operand(x, "x")
        try:
            return broadcast_shapes(tuple(x.shape), tuple(self._delta.shape))
        except ValueError as exc:
            raise ValueError(f"x does not fit delta: {exc}") from None

    def _check_operand(self, a: Any, name: str) -> None:
        """``a`` is a floating array of ``delta``'s library and device."""
        check_array(a, name=name, complex_ok=True)
        _same_place_as_delta(a, self._delta, name)

    def __call__(self, x: Any) -> Any:
        """``x + delta`` with broadcasting (the dtype follows type promotion)."""
        self._out_shape(x)
        return x + self._delta

    def jvp(self, x: Any, v: Any) -> Any:
        """:math:`J_x v`: ``v`` (shaped like ``x``, optionally ``(k, *x.shape)``) broadcast to
        the output shape."""
        out = self._out_shape(x)
        return _broadcast_tangent(v, tuple(x.shape), out, x.dtype, like=self._delta, name="v")

    def vjp(self, x: Any, u: Any) -> Any:
        r""":math:`J_x^\top u`: ``u`` (shaped like ``p(x)``) summed down to ``x.shape``."""
        self._check_cotangent(x, u)
        return pullback(u, tuple(x.shape), tuple(self._delta.shape), tuple(x.shape), x.dtype)

    def jvp_delta(self, x: Any, v: Any) -> Any:
        r""":math:`J_\delta v`: ``v`` (shaped like ``delta``) broadcast to the output shape."""
        d = self._delta
        out = self._out_shape(x)
        return _broadcast_tangent(v, tuple(d.shape), out, d.dtype, like=d, name="v")

    def vjp_delta(self, x: Any, u: Any) -> Any:
        r""":math:`J_\delta^\top u`: the gradient with respect to ``delta`` of a loss whose
        gradient with respect to ``p(x)`` is ``u``; ``u`` summed over the broadcast
        dimensions, in ``delta``'s dtype (what autograd leaves in ``delta.grad``)."""
        self._check_cotangent(x, u)
        d = self._delta
        return pullback(u, tuple(x.shape), tuple(d.shape), tuple(d.shape), d.dtype)

    def _check_cotangent(self, x: Any, u: Any) -> None:
        """``x`` and ``u`` are floating arrays of ``delta``'s library and device (before
        their shapes are read); ``u`` is real when ``p(x)`` is."""
        self._out_shape(x)
        self._check_operand(u, "u")
        xp, _ = backends.namespace_and_device(x)
        _check_kind(u, "u", xp.result_type(x, self._delta), "p(x)")

    def __repr__(self) -> str:
        d = self._delta
        return f"AdditivePerturbation(delta: shape={tuple(d.shape)}, dtype={d.dtype})"


# -- broadcasting and its adjoint: the derivatives ------------------------------------------
def delta_shape(shape: Sequence[int], delta_ndim: int | None) -> tuple[int, ...]:
    """The shape of ``delta`` for data of ``shape``: its last ``delta_ndim`` dimensions.

    ``delta_ndim`` None: the whole shape; ``k >= 0``: the last ``k`` dimensions; ``k < 0``:
    all but the first ``-k``. For shape (N, C, H, W) and ``delta_ndim=-1``: (C, H, W).
    Values outside ``[-len(shape), len(shape)]`` raise ValueError (the documented library
    slices silently, e.g. 4 on a 3-d shape gives one dimension).
    """
    shape = tuple(shape)
    keep = row_ndim(delta_ndim, len(shape), name="delta_ndim")
    return shape[len(shape) - keep :]


def broadcast_shapes(a: Sequence[int], b: Sequence[int]) -> tuple[int, ...]:
    """The broadcast of two shapes (array API rules); ValueError naming both if incompatible."""
    a, b = tuple(a), tuple(b)
    n = max(len(a), len(b))
    pa, pb = (1,) * (n - len(a)) + a, (1,) * (n - len(b)) + b
    out = []
    for da, db in zip(pa, pb):
        if da != db and 1 not in (da, db):
            raise ValueError(f"shapes {a} and {b} cannot be broadcast together")
        out.append(db if da == 1 else da)
    return tuple(out)


def sum_to_shape(u: Any, target: Sequence[int], *, batch: int = 0) -> Any:
    """Sum ``u`` (shape ``(*lead, *out)``) down to ``(*lead, *target)``, ``len(lead) == batch``.

    The adjoint of broadcasting ``target`` to ``out``: sums over the dimensions that
    broadcasting prepended and over those where ``target`` has size 1. Always a new array.
    """
    xp, _ = backends.namespace_and_device(u)
    target = tuple(target)
    out = tuple(u.shape[batch:])
    extra = len(out) - len(target)
    axes = list(range(batch, batch + extra))
    axes += [batch + extra + i for i, t in enumerate(target) if t == 1 and out[extra + i] != 1]
    lead = tuple(u.shape[:batch])
    if not axes:
        return xp.reshape(xp.asarray(u, copy=True), (*lead, *target))
    return xp.reshape(xp.sum(u, axis=tuple(axes), keepdims=True), (*lead, *target))


def pullback(
    u: Any, x_shape: Sequence[int], delta_shape: Sequence[int], target: Sequence[int], dtype: Any
) -> Any:
    r""":math:`J^\top u` of :math:`y = x + \delta` with respect to the operand of shape
    ``target`` (``x_shape`` or ``delta_shape``): ``u`` must have the output's shape (the
    broadcast of both), optionally with one leading batch dimension (ValueError otherwise:
    a cotangent of another shape is never silently reshaped); it is summed over the
    dimensions that broadcasting added or expanded, in ``dtype``."""
    xp, _ = backends.namespace_and_device(u)
    out = broadcast_shapes(x_shape, delta_shape)
    batch = 0 if leading_batch(u, out, name="u", expected="p(x)") is None else 1
    summed = sum_to_shape(u, tuple(target), batch=batch)
    if xp.isdtype(summed.dtype, "complex floating") and not xp.isdtype(dtype, "complex floating"):
        summed = xp.real(summed)  # a real operand's cotangent is the real part (as in autograd)
    return xp.astype(summed, dtype)


def _same_place_as_delta(a: Any, delta: Any, name: str) -> None:
    """TypeError (another library) or ValueError (another device) naming ``name`` unless
    ``a`` lives where ``delta`` does."""
    try:
        backends.namespace_and_device(a, delta)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{name} and delta: {exc}") from None


def _check_kind(a: Any, name: str, dtype: Any, of: str) -> None:
    """TypeError when ``a`` is complex but the value it is a (co)tangent of has the real
    dtype ``dtype`` (its imaginary part would be dropped silently)."""
    xp, _ = backends.namespace_and_device(a)
    if xp.isdtype(a.dtype, "complex floating") and not xp.isdtype(dtype, "complex floating"):
        raise TypeError(
            f"{name} has the complex dtype {a.dtype} but {of} is real ({dtype}); pass a real {name}"
        )


def _broadcast_tangent(
    v: Any, shape: tuple[int, ...], out: tuple[int, ...], dtype: Any, *, like: Any, name: str
) -> Any:
    xp, dev = check_array(v, name=name, complex_ok=True)
    _same_place_as_delta(v, like, name)
    _check_kind(v, name, dtype, "its primal")
    batch = 0 if leading_batch(v, shape, name=name, expected="its primal") is None else 1
    lead = tuple(v.shape[:batch])
    v = xp.reshape(v, (*lead, *(1,) * (len(out) - len(shape)), *shape))
    result_dtype = xp.result_type(v.dtype, dtype)
    return v + xp.zeros((*lead, *out), dtype=result_dtype, device=dev)
