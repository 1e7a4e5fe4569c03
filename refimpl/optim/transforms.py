"""Gradient transforms, applied per row of the ``param_ndim`` batch view.

Each function takes a gradient ``g``, views it as rows ``G`` of shape ``(N, D)``
(``refimpl.batching.to_rows``), transforms every row independently and returns an array of
``g``'s shape, namespace, device and dtype. Nothing is modified in place.

These are the pre-step transforms of the documented library's parameter-transforming
optimizers (``SignedGradientOptim``, ``L1/L2NormedGradientOptim``,
``TopQGradientOptimizer``, ``L1qNormedGradientOptim``), written as pure functions.

Top-q selection rule (also used by ``L1qFrankWolfe``)
    ``k = round((1 - q) * D)`` entries of largest magnitude are kept in every row (Python
    ``round``: half to even, in float64, exactly as the documented library).
    The selection key is ``|g|`` with NaN counted as ``+inf``; the ``k`` largest keys are
    kept; among keys equal to the k-th largest (ties at the cut-off), the lowest indices
    are kept. Exactly ``k`` entries are kept on every backend, and the set equals
    ``torch.topk``'s whenever there is no tie at the cut-off.
    NaN: a NaN gradient entry is always among the kept ones (``torch.topk`` also counts NaN
    as largest) and then propagates (``sign(NaN) = NaN`` by the array API standard), so a
    row whose kept entries contain NaN yields NaN rather than a silently zeroed entry.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from backends import as_rng, namespace_and_device, ops
from refimpl.batching import to_rows
from refimpl.optim.robust import (
    check_finfo,
    check_norms,
    check_rows,
    normalize_rows,
    plain_rule,
    row_divisor,
    row_norms,
)
from refimpl.validation import TINY, check_array, check_fits, check_int, check_real, check_rng


def _rows(g: Any, param_ndim: int | None) -> tuple[Any, Any, Any]:
    xp, dev = check_array(g, name="the gradient")
    return xp, dev, to_rows(g, param_ndim)


def sign_gradient(g: Any) -> Any:
    """``sign(g)`` element-wise: the negative L-infinity unit-ball LMO direction.

    ``sign(NaN) = NaN`` (array API standard; the documented library uses ``torch.sign``,
    which gives 0).
    """
    xp, _ = check_array(g, name="the gradient")
    return xp.sign(g)


def normalize_gradient(
    g: Any,
    ord: float,
    *,
    param_ndim: int | None = -1,
    div_by_zero_eps: float = TINY,
) -> Any:
    """``G_i / max(||G_i||_ord, div_by_zero_eps)`` for every row ``G_i`` (ord = 1 or 2).

    A zero row stays zero in every dtype (the documented library returns 0/0 = NaN in
    float16, where ``div_by_zero_eps`` rounds to 0). Norms that overflow or underflow are
    rescaled, and rows with infinite entries go to their limit (``refimpl.optim.robust``).
    """
    _check_ord(ord)
    eps = check_real("div_by_zero_eps", div_by_zero_eps, low=0.0)
    xp, _, rows = _rows(g, param_ndim)
    return xp.reshape(normalize_rows(xp, rows, ord, eps), g.shape)


def _check_ord(ord: Any) -> None:
    if isinstance(ord, bool):
        raise TypeError(f"ord must be 1 or 2, got the bool {ord!r}")
    if ord not in (1, 2):
        raise ValueError(f"ord must be 1 or 2, got {ord!r}")


def clamp(x: Any, low: float | None = None, high: float | None = None) -> Any:
    """``clip(x, low, high)``; either bound may be None (but not both), ``low <= high``.

    Bounds beyond ``x``'s dtype are capped to its largest finite value, so clamping a float16
    array at 1e5 is a no-op on finite entries instead of an overflow (torch's ``clamp_``
    refuses such a bound). NaN entries stay NaN.
    """
    xp, _ = check_array(x, name="x")
    lo, hi = clamp_bounds(low, high, finfo=xp.finfo(x.dtype))
    return xp.clip(x, min=lo, max=hi)


def clamp_bounds(
    low: float | None, high: float | None, *, finfo: Any
) -> tuple[float | None, float | None]:
    """The bounds :func:`clamp` applies to an array of the dtype ``finfo`` (validated: real
    numbers, not both None, ``low <= high``): capped to the dtype's finite range, None for an
    infinite or absent one, so ``clip(x, *clamp_bounds(low, high, finfo=finfo(x.dtype)))`` is
    ``clamp(x, low, high)`` (also in place, for a caller that owns ``x``). Host arithmetic
    only."""
    for name, bound in (("clamp_min", low), ("clamp_max", high)):
        if bound is not None:
            check_real(name, bound, finite=False)
    if low is None and high is None:
        raise ValueError("clamp needs clamp_min or clamp_max (or both), got neither")
    if low is not None and high is not None and not low <= high:
        raise ValueError(f"clamp_min must satisfy clamp_min <= clamp_max={high!r}, got {low!r}")
    top = float(check_finfo(finfo).max)
    lo = None if low is None or low == -math.inf else min(max(float(low), -top), top)
    hi = None if high is None or high == math.inf else min(max(float(high), -top), top)
    return lo, hi


def normalize_divisor(
    rows: Any, ord: float, *, div_by_zero_eps: float = TINY, norms: Any = None
) -> tuple[Any, Any | None]:
    """``(divisor, flag)`` for an ``(N, D)`` array of rows (ord = 1 or 2): ``rows / divisor``
    (divisor of shape (N, 1)) is :func:`normalize_gradient` for every row that ``flag`` leaves
    out; ``flag`` (None when it would mark no row) marks the rows whose norm is inf or small
    enough for squares to have underflowed, which need the scaled computation (the function
    itself on those rows). Lets a caller that owns the rows divide them in place.

    ``norms``: the rows' ``ord``-norms (``linalg.vector_norm`` along axis 1, keepdims) when the
    caller has them; else one fused pass computes them. When the smallest and largest show
    every norm usable as it is (:func:`normalization_rule`, the usual case), the divisor is
    the norms themselves."""
    _check_ord(ord)
    eps = check_real("div_by_zero_eps", div_by_zero_eps, low=0.0)
    xp, dev = check_rows(rows)
    check_fits("div_by_zero_eps", eps, rows.dtype, xp)
    if rows.shape[0] == 0:
        return xp.ones((0, 1), dtype=rows.dtype, device=dev), None
    n = row_norms(rows, ord) if norms is None else check_norms(norms, rows)
    return row_divisor(xp, rows, n, ord, eps)


def normalization_rule(
    d: int, *, ord: float, finfo: Any, div_by_zero_eps: float = TINY
) -> Callable[[float, float], bool]:
    """The rule ``plain(lo, hi)`` of :func:`normalize_gradient` for rows of length ``d`` in the
    dtype ``finfo`` (``xp.finfo(dtype)``): True when rows whose computed ``ord``-norms lie in
    ``[lo, hi]`` (the smallest and largest, host floats) are normalised by dividing each by its
    norm, bit for bit: every norm finite, positive, at least ``div_by_zero_eps`` and beyond
    underflow. Made once (validated, thresholds computed), applied to every batch of norms;
    when it fails, :func:`normalize_divisor` decides row by row."""
    _check_ord(ord)
    eps = check_real("div_by_zero_eps", div_by_zero_eps, low=0.0)
    return plain_rule(check_finfo(finfo), check_int("d", d, low=0), ord, eps)


def top_q_count(q: float, d: int) -> int:
    """``k = round((1 - q) * d)``: how many entries of a row of length ``d`` top-q keeps.

    Python ``round`` of a float64: half to even (d=5, q=.5 -> 2; d=3, q=.5 -> 2), and
    ``(1 - 0.9) * 5 = 0.49999999999999994`` gives 0.
    """
    q = check_real("q", q, low=0.0, high=1.0)
    return round((1.0 - q) * check_int("d", d, low=0))


def sample_q(q: float, dq: float, rng: Any, *, like: Any) -> float:
    """The sparsity ``q`` of one top-q step, a Python float: ``q`` itself if ``dq == 0``
    (nothing is drawn and ``rng`` is not used), else one draw.

    ``q`` and ``dq`` are numbers in [0, 1]; ``like`` is an array of the target library and
    device. With ``dq > 0``: ``lo, hi = max(0, q - dq), min(1, q + dq)`` (the clipped interval,
    not re-centred), one float32 ``u ~ U[0, 1)`` and ``q = (hi - lo) * u + lo`` in float32, as
    the documented library does with ``torch.rand(1, generator=...)``: the same torch generator
    gives the same ``q`` and leaves the generator in the same state. Returns after a host sync.

    ``rng`` is turned into a generator by ``backends.as_rng`` at every call, so:

    * an ``Rng`` or a native generator advances: successive calls draw successive values
      (what a loop of steps needs; ``l1q_frank_wolfe`` keeps one ``Rng`` in its state);
    * an int seed makes a new generator each call: the same ``q`` at every call;
    * None draws from fresh entropy each call: a different, unreproducible ``q``.
    """
    q = check_real("q", q, low=0.0, high=1.0)
    dq = check_real("dq", dq, low=0.0, high=1.0)
    check_rng(rng)
    check_array(like, name="like")
    return draw_q(q, dq, rng, like)


def draw_q(q: float, dq: float, rng: Any, like: Any) -> float:
    """:func:`sample_q` for arguments already validated (the optimizers' inner loop)."""
    if dq == 0.0:
        return q
    xp, dev = namespace_and_device(like)
    lo, hi = max(0.0, q - dq), min(1.0, q + dq)
    u = as_rng(rng, like=like).uniform((1,), dtype=xp.float32, device=dev)
    return float(((hi - lo) * u + lo)[0])


def top_q_drop_mask(a: Any, k: int) -> Any:
    """Boolean ``(N, D)`` mask of the entries top-q *drops*, given magnitudes ``a >= 0``.

    Keeps exactly ``k`` entries per row by the rule in the module docstring. The common
    case (no tie at the cut-off) costs one O(D) selection (``backends.ops.kth_largest``)
    and a comparison; a host sync then checks that every
    row kept exactly ``k``, and only if not does a tie-breaking pass run (a
    ``cumulative_sum`` rank among the tied entries). ``a`` must be a real floating array
    of rank 2 (``refimpl.batching.to_rows`` makes the rows of any array) and ``k`` an int.
    """
    xp, dev = check_array(a, name="a")
    if a.ndim != 2:
        raise ValueError(
            f"a must be an (N, D) array of rows (refimpl.batching.to_rows makes them), "
            f"got shape {tuple(a.shape)}"
        )
    k = check_int("k", k)
    d = a.shape[1]
    if k <= 0:
        return xp.ones(a.shape, dtype=xp.bool, device=dev)
    if k >= d:
        return xp.zeros(a.shape, dtype=xp.bool, device=dev)
    t = xp.expand_dims(ops.kth_largest(a, k, axis=1), axis=1)
    drop = a < t  # NaN is never "< t", so it is kept, as the rule says
    if bool(xp.all(xp.count_nonzero(drop, axis=1) == d - k)):
        return drop
    # Ties at the cut-off (or NaN): key with NaN -> +inf, then rank the tied entries.
    key = xp.where(xp.isnan(a), xp.asarray(math.inf, dtype=a.dtype, device=dev), a)
    t = xp.expand_dims(ops.kth_largest(key, k, axis=1), axis=1)
    gt = key > t
    tied = key == t
    need = k - xp.count_nonzero(gt, axis=1, keepdims=True)
    rank = xp.cumulative_sum(xp.astype(tied, xp.int64), axis=1)
    keep = xp.logical_or(gt, xp.logical_and(tied, rank <= need))
    return xp.logical_not(keep)


def top_q_gradient(
    g: Any,
    q: float,
    *,
    param_ndim: int | None = -1,
) -> Any:
    """Top-q sparsification: keep the ``k = round((1 - q) D)`` largest ``|G_i|`` of each row
    (original signed values), zero the rest (Roberts & Tsiligkaridis 2021).

    ``q = 0`` keeps everything, ``q = 1`` nothing. Ties and NaN: see the module docstring.
    """
    q = check_real("q", q, low=0.0, high=1.0)
    xp, dev, rows = _rows(g, param_ndim)
    k = top_q_count(q, rows.shape[1])
    drop = top_q_drop_mask(xp.abs(rows), k)
    zero = xp.zeros((), dtype=g.dtype, device=dev)
    return xp.reshape(xp.where(drop, zero, rows), g.shape)


def l1q_gradient(
    g: Any,
    q: float,
    *,
    param_ndim: int | None = -1,
    div_by_zero_eps: float = TINY,
) -> Any:
    """The L1q direction: top-q, then sign, then L1 normalisation, per row.

    ``v_i = sign(G_i) * [i kept] / max(m, eps)`` with ``m`` the number of kept entries with
    a non-zero sign (the L1 norm of the kept signs). ``-epsilon * v`` is the L1q LMO used by
    ``L1qFrankWolfe`` (Roberts & Tsiligkaridis 2021): with ``q = 0`` it averages the signed
    vertices of all non-zero coordinates, and with ``k = 1`` it is the L1-ball LMO (ties aside).
    Nothing kept (``k = 0``, or only zeros kept) gives a zero row.
    """
    q = check_real("q", q, low=0.0, high=1.0)
    eps = check_real("div_by_zero_eps", div_by_zero_eps, low=0.0)
    check_array(g, name="the gradient")
    return l1q_kernel(g, q, param_ndim, eps)


def l1q_kernel(g: Any, q: float, param_ndim: int | None, div_by_zero_eps: float) -> Any:
    """:func:`l1q_gradient` for arguments already validated (the optimizers' inner loop)."""
    xp, dev = namespace_and_device(g)
    rows = to_rows(g, param_ndim)
    drop = top_q_drop_mask(xp.abs(rows), round((1.0 - q) * rows.shape[1]))
    zero = xp.zeros((), dtype=rows.dtype, device=dev)
    s = xp.where(drop, zero, xp.sign(rows))
    return xp.reshape(normalize_rows(xp, s, 1, div_by_zero_eps), g.shape)
