r"""Norms that neither overflow nor underflow, and the arithmetic of 16-bit floats.

A norm squares (L2) or adds up (L1) every entry of a row, so it leaves the dtype's range long
before the entries do: :math:`\|(3\cdot 10^{38}, \dots)\|_2` is inf in float32, a float16 row
of ten 300s has a sum of squares beyond float16's 65504, and float32 entries of
:math:`10^{-30}` have squares that underflow to 0. Dividing by such a norm returns zeros.

The remedy is the classical one (LAPACK's ``nrm2``): scale each row by its largest magnitude
:math:`m` first, :math:`\|g\|_p = m \, \|g / m\|_p`, and divide by :math:`\|g / m\|_p` instead
of :math:`\|g\|_p`. It costs a few passes, so it runs only for the rows whose plain norm is
unreliable (inf, or small enough for squares to have underflowed); every other row keeps the
plain computation, operation for operation as the documented torch library does it.

Infinite entries have a well-defined limit: :math:`g/\|g\|_p` tends to the signs of the
infinite entries, normalised (``[inf, 1] -> [1, 0]``), so such rows are replaced by that
pattern of :math:`\pm 1`. NaN entries propagate.

16-bit floats (float16, bfloat16) accumulate in float32 (``backends.ops.vector_norm``, as
torch does); algorithms that need more than a norm run in float32 and round the result once.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from backends import ops
from refimpl.validation import check_array, check_fits, check_like


def check_rows(rows: Any) -> tuple[Any, Any]:
    """``(xp, device)`` of ``rows``, which must be a real floating ``(N, D)`` array."""
    xp, dev = check_array(rows, name="rows")
    if rows.ndim != 2:
        raise ValueError(
            f"rows must be an (N, D) array (refimpl.batching.to_rows makes the rows of any "
            f"array), got shape {tuple(rows.shape)}"
        )
    return xp, dev


def check_norms(norms: Any, rows: Any) -> Any:
    """``norms`` itself: an (N, 1) array of ``rows``' library, device and dtype."""
    check_like(norms, rows, name="norms", ref_name="rows")
    if tuple(norms.shape) != (rows.shape[0], 1):
        raise ValueError(
            f"norms must have shape ({rows.shape[0]}, 1) (one norm per row of rows), got "
            f"{tuple(norms.shape)}"
        )
    return norms


def compute_dtype(xp: Any, dtype: Any) -> Any:
    """float32 for 16-bit floats, else ``dtype`` itself."""
    return xp.float32 if xp.finfo(dtype).bits < 32 else dtype


def widen(xp: Any, a: Any) -> Any:
    """``a`` in its compute dtype (no copy when it already is)."""
    wide = compute_dtype(xp, a.dtype)
    return a if wide == a.dtype else xp.astype(a, wide)


def narrow_toward_zero(xp: Any, y: Any, dtype: Any) -> Any:
    """``y`` rounded to ``dtype`` with ``|result| <= |y|``: a point of a ball computed in a wider
    dtype stays in the ball after rounding (nearest rounding could step out by half an ulp)."""
    if y.dtype == dtype:
        return y
    r = xp.astype(y, dtype)
    out = xp.abs(xp.astype(r, y.dtype)) > xp.abs(y)
    return xp.where(out, xp.nextafter(r, xp.zeros_like(r)), r)


def unreliable(xp: Any, n: Any, d: int, ord: float) -> Any:
    """Rows (N, 1) whose computed ``ord``-norm ``n`` may be wrong: inf (an infinite entry, or
    overflow), or, for L2 in float32/float64, so small that squares may have underflowed."""
    over = xp.isinf(n)
    floor = reliable_floor(xp.finfo(n.dtype), d, ord)
    return xp.logical_or(over, n < floor) if floor else over


def reliable_floor(info: Any, d: int, ord: float) -> float:
    """The smallest computed ``ord``-norm that cannot have lost entries to underflow: 0 for L1
    and for 16-bit floats (their squares never underflow in float32), else
    :func:`underflow_threshold`."""
    if ord == 1 or info.bits < 32:
        return 0.0
    return underflow_threshold(info, d)


def underflow_threshold(info: Any, d: int) -> float:
    """Below this L2 norm, squares of entries under sqrt(smallest normal) may have been lost
    beyond rounding: ``d * tiny <= eps * n**2``."""
    return math.sqrt(max(d, 1) * float(info.smallest_normal) / float(info.eps))


def extremes(xp: Any, n: Any) -> tuple[float, float]:
    """``(min, max)`` of the norms ``n`` on the host (NaN when any norm is NaN): the per-row
    decisions below are taken on these two numbers whenever they settle every row."""
    return float(xp.min(n)), float(xp.max(n))


def scaled_rows(xp: Any, rows: Any, ord: float) -> tuple[Any, Any, Any, Any]:
    """``(infinite_row, m, s, ns)`` for rows (N, D): rows with an infinite entry replaced by the
    signs of those entries (their limit direction), ``m`` the largest magnitude (1 for zero or
    NaN rows), ``s = rows / m`` and ``ns = ||s||_ord`` (so ``||rows||_ord = m * ns``)."""
    isinf = xp.isinf(rows)
    infinite_row = xp.any(isinf, axis=1, keepdims=True)
    zero = xp.zeros_like(rows)
    base = xp.where(infinite_row, xp.where(isinf, xp.sign(rows), zero), rows)
    m = xp.max(xp.abs(base), axis=1, keepdims=True) if rows.shape[1] else xp.ones_like(rows[:, :1])
    m = xp.where(xp.logical_and(m > 0, xp.isfinite(m)), m, xp.ones_like(m))
    s = base / m
    return infinite_row, m, s, ops.vector_norm(s, ord=ord, axis=1, keepdims=True)


def plain_rule(
    finfo: Any, d: int, ord: float, div_by_zero_eps: float
) -> Callable[[float, float], bool]:
    """``plain(lo, hi)``: whether rows of length ``d`` whose computed ``ord``-norms lie in
    ``[lo, hi]`` (their smallest and largest, host floats; NaN fails) are normalised exactly by
    dividing each by its norm: every norm finite, positive, at least ``div_by_zero_eps`` (then
    ``max(norm, eps) = norm``: eps rounds to at most ``lo`` in the norms' dtype ``finfo``) and
    beyond underflow (:func:`reliable_floor`). The usual case, decided without a look at a
    row; the thresholds are computed once, when the rule is made."""
    low = max(reliable_floor(finfo, d, ord), div_by_zero_eps)
    top = float(finfo.max)

    def plain(lo: float, hi: float) -> bool:
        return lo > 0 and lo >= low and hi <= top

    return plain


def check_finfo(finfo: Any) -> Any:
    """``finfo`` itself when it describes a floating dtype (``xp.finfo(dtype)``, or
    ``torch.finfo``): the numbers the rules read (``bits``, ``eps``, ``max``,
    ``smallest_normal``); TypeError naming ``finfo`` otherwise."""
    try:
        numbers = (finfo.bits, finfo.eps, finfo.max, finfo.smallest_normal)
        ok = all(float(v) > 0 for v in numbers)
    except (AttributeError, TypeError, ValueError):
        ok = False
    if not ok:
        raise TypeError(
            f"finfo must describe a floating dtype (xp.finfo(dtype)), got {finfo!r:.60} "
            f"({type(finfo).__name__})"
        )
    return finfo


def row_divisor(
    xp: Any, rows: Any, n: Any, ord: float, div_by_zero_eps: float
) -> tuple[Any, Any | None]:
    """``(divisor, flag)`` for an (N, D) array of rows, N >= 1, with computed ``ord``-norms
    ``n`` (N, 1): ``rows / divisor`` is :func:`normalize_rows` for every row that ``flag``
    leaves out, and ``flag`` (None when it would mark no row) marks the rows whose norm is
    unreliable (:func:`unreliable`: the scaled recomputation takes them).

    When :func:`plain_rule` holds, ``divisor`` is ``n`` itself. Else ``divisor =
    max(n, div_by_zero_eps)`` with 1 in place of 0 (a zero row stays zero, also where
    ``div_by_zero_eps`` rounds to 0) and of inf (inf / inf would only make NaNs)."""
    lo, hi = extremes(xp, n)
    d = rows.shape[1]
    if plain_rule(xp.finfo(n.dtype), d, ord, div_by_zero_eps)(lo, hi):
        return n, None
    guard = xp.clip(n, min=div_by_zero_eps)
    guard = xp.where(xp.logical_or(guard == 0, xp.isinf(guard)), xp.ones_like(guard), guard)
    flag = unreliable(xp, n, d, ord)
    return guard, flag if bool(xp.any(flag)) else None


def row_norms(rows: Any, ord: float) -> Any:
    """The ``ord``-norm of every row of an (N, D) array, shape (N, 1) (one fused pass)."""
    return ops.vector_norm(rows, ord=ord, axis=1, keepdims=True)


def normalize_rows(xp: Any, rows: Any, ord: float, div_by_zero_eps: float) -> Any:
    """``rows / max(||rows||_ord, div_by_zero_eps)`` per row of an (N, D) array.

    A zero row stays zero (also where ``div_by_zero_eps`` rounds to 0, as float16 rounds
    float32's tiny); rows with infinite entries give their limit; overflow and underflow of the
    norm are avoided by scaling (module docstring). A ``div_by_zero_eps`` beyond the dtype's
    largest value is refused (ValueError), as the torch front ends refuse it (and torch's
    ``clamp`` does, with a RuntimeError).

    Cost: one fused norm and one division per entry, decided by the smallest and largest norm
    (:func:`plain_rule`); the scaled recomputation runs only when some row's norm is
    flagged (inf, or small enough for squares to have underflowed)."""
    check_fits("div_by_zero_eps", div_by_zero_eps, rows.dtype, xp)
    if rows.shape[0] == 0:
        return rows / 1  # a new (empty) array, as for any other input
    divisor, flag = row_divisor(xp, rows, row_norms(rows, ord), ord, div_by_zero_eps)
    fast = rows / divisor
    if flag is None:
        return fast
    return xp.where(flag, scaled_normalize_rows(xp, rows, ord, div_by_zero_eps), fast)


def scaled_normalize_rows(xp: Any, rows: Any, ord: float, div_by_zero_eps: float) -> Any:
    """:func:`normalize_rows` computed through :func:`scaled_rows` for every row: right where
    the plain norm overflows or underflows, and for rows with infinite entries (their limit)."""
    wide = widen(xp, rows)
    infinite_row, m, s, ns = scaled_rows(xp, wide, ord)
    # rows / max(m ns, eps) is s / ns where the true norm m ns reaches eps, else rows / eps
    # (compared as ns >= eps / m: m ns may overflow)
    # (NaN rows count as reaching: NaN / NaN keeps them NaN, where rows / eps could overflow)
    reaches = xp.logical_or(xp.logical_or(ns >= div_by_zero_eps / m, infinite_row), ns != ns)
    unit = s / xp.where(ns == 0, xp.ones_like(ns), ns)
    small = xp.where(reaches, xp.zeros_like(wide), wide)
    small = small / div_by_zero_eps if div_by_zero_eps > 0 else small
    return xp.astype(xp.where(reaches, unit, small), rows.dtype)
