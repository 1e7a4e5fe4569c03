"""Linear minimisation oracles (LMOs) of Lp balls, per row of the ``param_ndim`` view.

For a gradient row ``g`` and the ball ``B = {s : ||s||_p <= epsilon}``, the LMO is

    LMO(g) = argmin_{s in B} <g, s>,     min value = -epsilon * ||g||_p*   (dual norm)

(Frank & Wolfe 1956; Jaggi 2013, "Revisiting Frank-Wolfe", section 2):

* L1 ball (dual Linf):  ``s = -epsilon * sign(g_j) e_j`` with ``j = argmax_i |g_i|`` (first
  index among maxima, NaN counted as the maximum);
* L2 ball (dual L2):    ``s = -epsilon * g / ||g||_2``;
* Linf ball (dual L1):  ``s = -epsilon * sign(g)``;
* L1q (Roberts & Tsiligkaridis 2021): ``s = -epsilon * v`` with ``v`` the normalised signs of
  the top-q entries (``transforms.l1q_gradient``): an average of L1-ball vertices, not an
  exact LMO unless one entry is kept (then it is the L1-ball LMO, ties aside).

Each ``*_direction`` function returns ``v`` with ``LMO = -epsilon * v``; that is the quantity
the Frank-Wolfe update scales (``w = -(alpha * epsilon) * v``), so the update arithmetic
matches the documented library operation for operation. A zero gradient row gives ``v = 0``.

The ``*_rows`` kernels take arguments already validated (the optimizers check their options
once, when they are built, and their gradients once per update); the public functions check
theirs.
"""

from __future__ import annotations

from typing import Any

from backends import namespace_and_device
from refimpl.batching import to_rows
from refimpl.optim.robust import normalize_rows
from refimpl.optim.transforms import l1q_gradient, l1q_kernel, normalize_gradient, sign_gradient
from refimpl.validation import TINY, check_array, check_fits, check_real

__all__ = [
    "l1_direction",
    "l1_direction_rows",
    "l1q_direction",
    "l1q_rows",
    "l2_direction",
    "l2_rows",
    "linf_direction",
    "lmo_l1",
    "lmo_l1q",
    "lmo_l2",
    "lmo_linf",
]


def l1_direction_rows(rows: Any) -> tuple[Any, Any]:
    """``(j, sign)`` of each row of an ``(N, D)`` real array, ``D >= 1``: ``j`` (shape (N, 1),
    int) the first index of ``max |g_i|`` and ``sign = sign(g_j)`` (shape (N, 1)). The sparse
    form of the L1 direction ``v = sign(g_j) e_j``."""
    xp, _ = check_array(rows, name="rows")
    if rows.ndim != 2 or rows.shape[1] == 0:
        raise ValueError(
            f"rows must be an (N, D) array with D >= 1 (rows of length 0 have no vertex: "
            f"callers handle empty rows), got shape {tuple(rows.shape)}"
        )
    j = xp.argmax(xp.abs(rows), axis=1, keepdims=True)
    return j, xp.sign(xp.take_along_axis(rows, j, axis=1))


def l1_direction(g: Any, *, param_ndim: int | None = -1) -> Any:
    """``v = sign(g_j) e_j``, ``j = argmax |g_i|`` per row (rows of any dimension; empty rows
    give an empty result)."""
    xp, dev = check_array(g, name="the gradient")
    rows = to_rows(g, param_ndim)
    if rows.shape[1] == 0:
        return xp.zeros(g.shape, dtype=g.dtype, device=dev)
    j, sgn = l1_direction_rows(rows)
    cols = xp.expand_dims(xp.arange(rows.shape[1], dtype=j.dtype, device=dev), axis=0)
    zero = xp.zeros((), dtype=g.dtype, device=dev)
    return xp.reshape(xp.where(cols == j, sgn, zero), g.shape)


def l2_rows(g: Any, param_ndim: int | None, div_by_zero_eps: float) -> Any:
    """``v = g / max(||g||_2, div_by_zero_eps)`` per row (validated arguments)."""
    xp, _ = namespace_and_device(g)
    return xp.reshape(normalize_rows(xp, to_rows(g, param_ndim), 2, div_by_zero_eps), g.shape)


def l2_direction(g: Any, *, param_ndim: int | None = -1, div_by_zero_eps: float = TINY) -> Any:
    """``v = g / max(||g||_2, div_by_zero_eps)`` per row."""
    return normalize_gradient(g, 2, param_ndim=param_ndim, div_by_zero_eps=div_by_zero_eps)


def linf_direction(g: Any) -> Any:
    """``v = sign(g)``."""
    return sign_gradient(g)


def l1q_rows(g: Any, q: float, param_ndim: int | None, div_by_zero_eps: float) -> Any:
    """The L1q ``v`` (``transforms.l1q_gradient``) for validated arguments."""
    return l1q_kernel(g, q, param_ndim, div_by_zero_eps)


def l1q_direction(
    g: Any,
    q: float,
    *,
    param_ndim: int | None = -1,
    div_by_zero_eps: float = TINY,
) -> Any:
    """``v`` = normalised signs of the top-q entries (``transforms.l1q_gradient``)."""
    return l1q_gradient(g, q, param_ndim=param_ndim, div_by_zero_eps=div_by_zero_eps)


def _scale(v: Any, epsilon: float) -> Any:
    """``-epsilon * v``; ``epsilon`` must be finite in ``v``'s dtype (the vertices of a ball
    beyond the dtype's largest value would be infinite)."""
    xp, _ = namespace_and_device(v)
    eps = check_real("epsilon", epsilon, low=0.0)
    check_fits("epsilon", eps, v.dtype, xp)
    return v * (-eps)


def lmo_l1(g: Any, epsilon: float, *, param_ndim: int | None = -1) -> Any:
    """``argmin_{||s||_1 <= epsilon} <g, s>`` per row: ``-epsilon sign(g_j) e_j``."""
    return _scale(l1_direction(g, param_ndim=param_ndim), epsilon)


def lmo_l2(
    g: Any, epsilon: float, *, param_ndim: int | None = -1, div_by_zero_eps: float = TINY
) -> Any:
    """``argmin_{||s||_2 <= epsilon} <g, s>`` per row: ``-epsilon g / ||g||_2``."""
    return _scale(l2_direction(g, param_ndim=param_ndim, div_by_zero_eps=div_by_zero_eps), epsilon)


def lmo_linf(g: Any, epsilon: float, *, param_ndim: int | None = -1) -> Any:
    """``argmin_{||s||_inf <= epsilon} <g, s>``: ``-epsilon sign(g)`` (``param_ndim`` has no
    effect: the Linf ball is a product of intervals)."""
    v = linf_direction(g)  # checks g
    if param_ndim is not None:
        to_rows(g, param_ndim)  # validates the range
    return _scale(v, epsilon)


def lmo_l1q(
    g: Any,
    epsilon: float,
    q: float,
    *,
    param_ndim: int | None = -1,
    div_by_zero_eps: float = TINY,
) -> Any:
    """The L1q LMO ``-epsilon * v`` (Roberts & Tsiligkaridis 2021); in the L1 ball."""
    v = l1q_direction(g, q, param_ndim=param_ndim, div_by_zero_eps=div_by_zero_eps)
    return _scale(v, epsilon)
