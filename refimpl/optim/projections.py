"""Euclidean projections onto Lp balls, per row of the ``param_ndim`` view.

``P_B(x) = argmin_{y in B} ||y - x||_2`` for ``B = {y : ||y||_p <= epsilon}``; every row of
the batch view (``param_ndim``, default None: the whole array is one row) is projected
independently. Results have ``x``'s shape, namespace, device and dtype; ``x`` is not modified.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from refimpl.batching import to_rows
from refimpl.optim.robust import (
    check_finfo,
    check_norms,
    check_rows,
    extremes,
    narrow_toward_zero,
    row_norms,
    scaled_rows,
    underflow_threshold,
    widen,
)
from refimpl.validation import check_array, check_int, check_real

#: ``project_l1_ball`` methods
L1_METHODS = ("sort", "michelot")


def _prepare(x: Any, epsilon: float, param_ndim: int | None):
    xp, dev = check_array(x, name="x")
    eps = check_real("epsilon", epsilon, low=0.0)
    return xp, dev, eps, to_rows(x, param_ndim)


def project_linf_ball(x: Any, epsilon: float, param_ndim: int | None = None) -> Any:
    """``clip(x, -epsilon, epsilon)``: the Linf ball is a box, so ``param_ndim`` only gets
    validated. KKT: ``y_i = x_i`` where ``|x_i| <= epsilon``, else ``epsilon sign(x_i)``.

    An ``epsilon`` beyond the dtype's largest finite value clips at that value (every finite
    entry is inside the ball; an infinite one lands on the largest finite value)."""
    xp, _, eps, _ = _prepare(x, epsilon, param_ndim)
    e = min(eps, float(xp.finfo(x.dtype).max))
    return xp.clip(x, min=-e, max=e)


def project_l2_ball(
    x: Any, epsilon: float, param_ndim: int | None = None, *, margin: float = 0.0
) -> Any:
    """``x_i * epsilon / (||x_i||_2 + margin)`` for rows with ``||x_i||_2 > epsilon``, else
    ``x_i`` unchanged.

    ``margin = 0`` is the exact projection. ``margin = 1e-7`` reproduces ``torch.renorm``
    (and so the documented ``L2ProjectedOptim``) bit for bit: the row then ends slightly
    inside the ball. Rows whose norm overflows or underflows are rescaled first, and a row
    with infinite entries goes to its limit, ``epsilon`` times the normalised signs of those
    entries (``refimpl.optim.robust``); ``epsilon = 0`` projects onto ``{0}``.

    Cost: one fused norm and at most one product per entry (:func:`l2_ball_factor`); the
    scaled recomputation runs only when some row's norm is flagged.
    """
    xp, dev, eps, rows = _prepare(x, epsilon, param_ndim)
    margin = check_real("margin", margin, low=0.0)
    if rows.shape[0] == 0:
        return xp.asarray(x, copy=True)
    f, flag = ball_factor(xp, dev, rows, row_norms(rows, 2), eps, margin)
    fast = xp.asarray(rows, copy=True) if f is None else rows * f
    if flag is not None:
        fast = xp.where(flag, scaled_project_l2(xp, rows, eps, margin), fast)
    return xp.reshape(fast, x.shape)


def l2_ball_factor(
    rows: Any, epsilon: float, *, margin: float = 0.0, norms: Any = None
) -> tuple[Any | None, Any | None]:
    """``(f, flag)`` for an ``(N, D)`` array of rows: ``rows * f`` (``f`` of shape (N, 1)) is
    :func:`project_l2_ball` for every row that ``flag`` leaves out: ``f = epsilon / (norm +
    margin)`` outside the ball, exactly 1 inside, and None when no row is outside. ``flag``
    (None when it would mark no row) marks the rows that need the scaled computation (the
    function itself on those rows): a norm that is inf, or one that underflowed below a radius
    it could then exceed. Lets a caller that owns the rows scale them in place.

    ``norms``: the rows' L2 norms (``linalg.vector_norm`` along axis 1, keepdims) when the
    caller has them; else one fused pass computes them. The smallest and largest norm decide
    (:func:`l2_ball_rule`): usually no row is flagged, and when every row is inside the ball
    nothing is computed."""
    xp, dev = check_rows(rows)
    eps = check_real("epsilon", epsilon, low=0.0)
    margin = check_real("margin", margin, low=0.0)
    if rows.shape[0] == 0:
        return None, None
    n = row_norms(rows, 2) if norms is None else check_norms(norms, rows)
    return ball_factor(xp, dev, rows, n, eps, margin)


def l2_ball_rule(d: int, *, epsilon: float, finfo: Any) -> Callable[[float, float], str]:
    """The rule ``case(lo, hi)`` of :func:`project_l2_ball` for rows of length ``d`` in the dtype
    ``finfo`` (``xp.finfo(dtype)``): what the projection does to rows whose computed L2 norms
    lie in ``[lo, hi]`` (the smallest and largest, host floats; NaN fails every test), decided
    without a look at a row. Made once (validated, thresholds computed), applied to every
    batch of norms:

    * ``"inside"``: every norm is reliable and at most ``epsilon`` (it rounds to at least
      ``hi`` in the dtype): no row changes;
    * ``"scale"``: every norm is reliable (finite, and beyond underflow where an underflowed
      norm could exceed ``epsilon``): ``rows * f`` with ``f = e / (norm + margin)`` where the
      norm exceeds ``e = min(epsilon, max)`` rounded to the dtype, 1 elsewhere;
    * ``"rows"``: some norm is inf or NaN, or may have underflowed: rows are decided one by
      one (:func:`l2_ball_factor`)."""
    eps = check_real("epsilon", epsilon, low=0.0)
    return ball_rule(check_finfo(finfo), check_int("d", d, low=0), eps)


def ball_rule(finfo: Any, d: int, eps: float) -> Callable[[float, float], str]:
    """:func:`l2_ball_rule` for validated arguments."""
    top = float(finfo.max)
    cap = min(eps, top)
    thr = underflow_threshold(finfo, d)
    # a norm that underflowed may exceed a radius below the threshold
    floor = thr if eps < thr and finfo.bits >= 32 else 0.0

    def case(lo: float, hi: float) -> str:
        if not (hi <= top and lo >= floor):
            return "rows"
        return "inside" if hi <= cap else "scale"

    return case


def ball_factor(
    xp: Any, dev: Any, rows: Any, n: Any, eps: float, margin: float
) -> tuple[Any | None, Any | None]:
    """:func:`l2_ball_factor` for validated arguments: ``N >= 1`` rows on device ``dev`` with
    computed norms ``n``."""
    info = xp.finfo(n.dtype)
    lo, hi = extremes(xp, n)
    case = ball_rule(info, rows.shape[1], eps)(lo, hi)
    if case == "inside":
        return None, None
    e = xp.full((), min(eps, float(info.max)), dtype=n.dtype, device=dev)
    if case == "scale":
        return _factor(xp, n, e, n > e, margin, info), None
    flag = xp.isinf(n)
    # infinite and NaN norms get the factor 1 (inf or NaN factors otherwise); inf is flagged
    f = _factor(xp, n, e, xp.logical_and(n > e, xp.logical_not(flag)), margin, info)
    thr = underflow_threshold(info, rows.shape[1])
    if eps < thr and info.bits >= 32:  # a norm that underflowed may exceed eps
        flag = xp.logical_or(flag, n < thr)
    return f, flag if bool(xp.any(flag)) else None


def _factor(xp: Any, n: Any, e: Any, out: Any, margin: float, info: Any) -> Any:
    """``e / (n + margin)`` where ``out`` (finite norms beyond ``e``), 1 elsewhere: computed
    only where it is <= 1, so that neither it nor ``rows * f`` overflows."""
    top = float(info.max)
    if margin < top * float(info.eps) / 2:  # n + margin <= top: no overflow
        den = n + margin if margin else n
    else:  # halved: n / 2 + margin / 2 stays finite (a margin beyond the dtype is capped)
        e, den = e / 2, n / 2 + min(margin, top) / 2
    return xp.where(out, e / xp.where(out, den, 1.0), 1.0)


def scaled_project_l2(xp: Any, rows: Any, eps: float, margin: float) -> Any:
    """:func:`project_l2_ball` of (N, D) rows computed through ``||rows|| = m ||s||`` with
    ``s = rows / m`` (``robust.scaled_rows``) for every row: right where the plain norm
    overflows or underflows, and the limit for rows with infinite entries."""
    cap = min(eps, float(xp.finfo(rows.dtype).max))
    wide = widen(xp, rows)
    infinite_row, m, s, ns = scaled_rows(xp, wide, 2)
    top_w = float(xp.finfo(wide.dtype).max)
    outside = xp.logical_or(_outside(xp, ns, m, eps, top_w, rows.shape[1]), infinite_row)
    den = xp.where(outside, ns + _quotient(xp, min(margin, top_w), m, top_w), xp.ones_like(ns))
    slow = xp.where(outside, s * (cap / den), wide)  # den = 1: rows inside (zero rows too)
    return narrow_toward_zero(xp, slow, rows.dtype)


def _outside(xp: Any, ns: Any, m: Any, eps: float, top: float, d: int) -> Any:
    """``m * ns > eps`` (a row's norm beyond the radius) for ``m`` in ``(0, top]``, ``ns`` in
    ``[0, sqrt(d)]`` and the host radius ``eps``, which may exceed the dtype's largest value
    ``top``: with ``eps > top``, ``ns * (m / c) > eps / c`` for a power of two ``c`` that keeps
    both sides in range (exact scaling); else ``ns > eps / m`` (``_quotient``)."""
    if eps > top:
        c = 2.0 ** math.ceil(math.log2(eps / top * math.sqrt(max(d, 1))))
        return ns * (m / c) > eps / c
    return ns > _quotient(xp, eps, m, top)


def _quotient(xp: Any, a: float, m: Any, top: float) -> Any:
    """``a / m`` for a host ``0 <= a <= top`` and ``m`` in ``(0, top]``, without overflow: where
    the quotient would exceed ``top / 2`` (``m < 2 a / top``), ``m`` is floored at ``2 a / top``
    (the quotient is then about ``top / 2``, far beyond any scaled norm ``ns``)."""
    floor = 2 * a / top
    return a / (xp.maximum(m, xp.asarray(floor, dtype=m.dtype, device=m.device)) if floor else m)


def project_l1_ball(
    x: Any, epsilon: float, param_ndim: int | None = None, *, method: str = "sort"
) -> Any:
    """Exact Euclidean projection onto the L1 ball of radius ``epsilon``, per row.

    The solution is a soft threshold (Duchi et al. 2008, "Efficient projections onto the
    l1-ball for learning in high dimensions"; Condat 2016, "Fast projection onto the simplex
    and the l1 ball")::

        y_i = sign(x_i) max(|x_i| - theta, 0),   theta = (sum_{i in S} |x_i| - epsilon) / |S|

    with ``S = {i : |x_i| > theta}`` the support; rows already inside the ball are returned
    unchanged (theta = 0). Both methods find ``S`` in finite time and end with the same
    fixed-point step (``_fixed_point``: Michelot's update, in which the support only shrinks,
    the elimination that makes Condat's algorithm exact on ties):

    * ``method="sort"`` (default): Duchi's O(D log D) sort gives a start: with ``u`` the
      sorted magnitudes (descending) and ``c`` their cumulative sums,
      ``rho = #{j : u_j - (c_j - epsilon)/j > 0}``, ``S_0 = {i : |x_i| >= u_rho}``.
    * ``method="michelot"``: the threshold of a strided subsample as a start (O(D) expected
      on random data, no sort), then the same updates.

    A tie (an entry equal to ``theta``) projects to 0 whichever side of the support it lands on,
    so both methods agree to rounding; they agree bit for bit when they end on the same support.
    Inputs in float16/bfloat16 are computed in float32 and rounded toward 0, so the result
    stays in the ball; a row whose L1 norm overflows is rescaled, a row with infinite entries
    goes to its limit (``epsilon`` shared equally by the infinite entries, with their signs),
    and ``epsilon = 0`` projects onto ``{0}``.
    """
    if method not in L1_METHODS:
        raise ValueError(f"method must be one of {L1_METHODS}, got {method!r}")
    xp, dev, eps, rows = _prepare(x, epsilon, param_ndim)
    if rows.shape[0] == 0 or rows.shape[1] == 0:  # empty rows: the only point is inside
        return xp.asarray(x, copy=True)
    w = widen(xp, rows)
    a = xp.abs(w)
    top = float(xp.finfo(w.dtype).max)
    if float(xp.max(a)) * rows.shape[1] <= top / 2:
        # every ||x_i||_1 <= D max|x_i| <= top / 2: no sum can overflow (told without summing,
        # so no overflow is ever computed), and a radius beyond the dtype changes nothing
        y = _soft_threshold(xp, dev, w, a, min(eps, top), method)
    else:  # an infinite entry or a sum that may overflow (the same result where none does)
        y = _project_l1_extreme(xp, dev, w, eps, method)
    return xp.reshape(narrow_toward_zero(xp, y, x.dtype), x.shape)


def _soft_threshold(xp: Any, dev: Any, w: Any, a: Any, eps: Any, method: str) -> Any:
    find = _theta_sort if method == "sort" else _theta_michelot
    # theta <= 0 exactly for rows inside the ball (sum_S |x_i| <= ||x||_1 <= epsilon), and
    # theta = 0 returns such a row unchanged, so no separate inside test is needed.
    theta = xp.clip(find(xp, dev, a, eps), min=0.0)
    # the soft threshold sign(x) max(|x| - theta, 0), written as x - clip(x, -theta, theta):
    # the same rounding (x - theta for x > theta, x + theta for x < -theta), fewer passes
    return w - xp.clip(w, min=-theta, max=theta)


def _project_l1_extreme(xp: Any, dev: Any, w: Any, eps: float, method: str) -> Any:
    """Rows whose L1 norm is infinite. An infinite entry: the limit of the projection,
    ``epsilon`` shared equally by the infinite entries, with their signs. A finite sum that
    overflowed: the row and ``epsilon`` divided by a power of two ``k >= D`` (exact), projected,
    and multiplied back.

    ``epsilon`` is a Python float that may exceed the dtype's range (4e38 for float32 entries
    near 3e38): it is divided on the host, and a radius the scaled row cannot reach is capped
    at the dtype's largest value, so no radius rounds to inf (which would leave the row
    outside the ball)."""
    top = float(xp.finfo(w.dtype).max)
    isinf = xp.isinf(w)
    infinite_row = xp.any(isinf, axis=1, keepdims=True)
    zero = xp.zeros_like(w)
    pattern = xp.where(isinf, xp.sign(w), zero)
    count = xp.astype(xp.count_nonzero(pattern, axis=1, keepdims=True), w.dtype)
    limit = pattern * _share(xp, eps, xp.where(count == 0, xp.ones_like(count), count), top)
    finite = xp.where(infinite_row, zero, w)
    k = 2.0 ** math.ceil(math.log2(max(w.shape[1], 2)))
    # ||x||_1 overflows exactly when the sum of |x| / k (exact scaling: the same roundings,
    # never an overflow, as ||x / k||_1 <= D top / k <= top) exceeds top / k
    over = xp.sum(xp.abs(finite) / k, axis=1, keepdims=True) > top / k
    one = xp.ones_like(count)
    scale = xp.where(over, k * one, one)
    # the scaled rows' radii: a row that did not overflow has ||x||_1 <= top, one scaled by k
    # has ||x / k||_1 <= D top / k <= top, so a radius above top changes nothing when capped
    radius = xp.where(over, min(eps / k, top) * one, min(eps, top) * one)
    scaled = finite / scale
    y = _soft_threshold(xp, dev, scaled, xp.abs(scaled), radius, method) * scale
    return xp.where(infinite_row, limit, y)


def _share(xp: Any, eps: float, count: Any, top: float) -> Any:
    """``eps / count`` (an (N, 1) array of counts >= 1) rounded toward 0 into the dtype's range
    (``eps`` may exceed it)."""
    if eps <= top:
        return eps / count
    return xp.clip((eps / top) / count, max=1.0) * top


def _theta(xp: Any, a: Any, support: Any, eps: Any, count: Any = None) -> Any:
    """``(sum_{i in support} a_i - eps) / |support|`` per row, shape (N, 1)."""
    # a masked sum; vecdot with the 0/1 mask is 3-4x faster than sum(where(...)) on numpy
    s = xp.expand_dims(xp.vecdot(xp.astype(support, a.dtype), a, axis=-1), axis=1)
    if count is None:
        count = xp.count_nonzero(support, axis=1, keepdims=True)
    return (s - eps) / xp.astype(xp.clip(count, min=1), a.dtype)


def _theta_sort(xp: Any, dev: Any, a: Any, eps: Any) -> Any:
    d = a.shape[1]
    u = xp.sort(a, axis=1, descending=True, stable=False)  # values only: stability is moot
    css = xp.cumulative_sum(u, axis=1)
    j = xp.arange(1, d + 1, dtype=a.dtype, device=dev)
    rho = xp.count_nonzero(u - (css - eps) / j > 0, axis=1, keepdims=True)
    rho = xp.clip(rho, min=1)  # rows inside the ball may give any rho; theta <= 0 for them
    u_rho = xp.take_along_axis(u, rho - 1, axis=1)
    # The cumulative sums round (and drift in float32), and a tie u_j = theta makes the sign
    # of u_j - (c_j - eps)/j a matter of rounding, so rho is only a start: the fixed point
    # settles it, at the cost of one comparison when the start is already the solution.
    return _fixed_point(xp, a, a >= u_rho, eps)


def _theta_michelot(xp: Any, dev: Any, a: Any, eps: Any) -> Any:
    # Warm start near theta*: the threshold of a strided subsample (radius scaled by the
    # stride), found recursively.
    d = a.shape[1]
    if d >= 4 * _SUBSAMPLE:
        theta = _theta_michelot(xp, dev, a[:, ::_STRIDE], eps / _STRIDE)
    else:
        theta = (xp.sum(a, axis=1, keepdims=True) - eps) / d
    return _fixed_point(xp, a, a > theta, eps)


def _fixed_point(xp: Any, a: Any, support: Any, eps: Any) -> Any:
    """Michelot's update ``theta(S) = (sum_S a - eps) / |S|`` from ``support``; the theta.

    Every support here is a threshold set ``{a > t}`` (or ``{a >= t}``), and two threshold
    sets with the same count are the same set, so counts decide. The first update is a Newton
    step on the convex decreasing ``f(t) = sum max(a_i - t, 0) - eps`` and lands at or below
    ``theta*`` from any start: ``S_1 = {a > theta(S_0)}`` contains the solution's support.
    After it the support only shrinks, ``S_{k+1} = S_k & {a > theta(S_k)}`` (in exact
    arithmetic that is ``{a > theta(S_k)}`` anyway; with rounding, an entry tied with theta
    could otherwise go in and out forever), until it stops changing: at most D + 1 updates.
    A support that would become empty (every entry equal to theta, e.g. ``epsilon = 0``)
    is final.
    """
    count = xp.count_nonzero(support, axis=1, keepdims=True)
    theta = _theta(xp, a, support, eps, count)
    new, new_count = _update(xp, a, support, count, a > theta)
    while not bool(xp.all(new_count == count)):
        support, count = new, new_count
        theta = _theta(xp, a, support, eps, count)
        new, new_count = _update(xp, a, support, count, xp.logical_and(support, a > theta))
    return theta


def _update(xp: Any, a: Any, support: Any, count: Any, new: Any) -> tuple[Any, Any]:
    """``(new, its count)``, except that a row whose new support is empty keeps its support."""
    new_count = xp.count_nonzero(new, axis=1, keepdims=True)
    emptied = new_count == 0
    return xp.where(emptied, support, new), xp.where(emptied, count, new_count)


#: target subsample length of the Michelot warm start
_SUBSAMPLE = 1 << 12
#: stride of the subsample at each level of the warm start
_STRIDE = 8
