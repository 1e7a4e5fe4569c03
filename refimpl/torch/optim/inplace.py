r"""In-place forms of ``refimpl.optim``'s row-wise transforms, for the torch front ends.

The array-API functions of ``refimpl.optim`` return new arrays; writing their result back
(``g.copy_(normalize_gradient(g, 2))``) costs a new tensor and a copy on top of the transform.
Here the same results are written into the tensor with the passes of the documented library
(``g /= clamp(||g||, eps)``, ``renorm_``, ``sign(g, out=g)``, ``clamp_``), and the guarantees
of ``refimpl.optim`` (no overflow or underflow in norms, no NaN from a zero gradient,
``sign(NaN) = NaN``) are paid for only where they are needed:

* row norms: one fused ``torch.linalg.vector_norm`` per row, and their smallest and largest
  on the host (one ``aminmax``). The rules of ``refimpl.optim`` (``normalization_rule``,
  ``l2_ball_rule``, made once per row length, dtype and options) tell from those two
  numbers whether every row takes the plain arithmetic (the documented library's:
  ``g / norm``, ``torch.renorm``'s factor), which is then applied with no further check;
  otherwise ``refimpl.optim.normalize_divisor`` / ``l2_ball_factor`` give the per-row
  divisor or factor, and only the rows they flag (a norm that is inf, or small enough for
  squares to have underflowed) are gathered, recomputed by the array-API function and
  scattered back;
* ``sign(NaN) = NaN``: one ``amax`` read (NaN propagates through it) tells whether the
  array-API ``sign_gradient`` is needed; otherwise ``torch.sign(g, out=g)``;
* the bounds of ``clamp`` and of the Linf projection: ``refimpl.optim.clamp_bounds``.

Every function takes the batch view ``(N, d0, ...)`` of a parameter or gradient (rows:
``t[i]``) and leaves in it, bit for bit, what the array-API function returns
(``tests/torch/test_optim.py``). A tensor that cannot be viewed as ``(N, D)`` rows takes
the array-API function and a copy.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import torch

from refimpl.optim import (
    clamp_bounds,
    l2_ball_factor,
    l2_ball_rule,
    normalization_rule,
    normalize_divisor,
    normalize_gradient,
    project_l2_ball,
    sign_gradient,
)

__all__ = ["clamp_", "normalize_", "project_l2_", "sign_"]


def sign_(g: torch.Tensor) -> None:
    """``g <- sign(g)`` with ``sign(NaN) = NaN`` (``refimpl.optim.sign_gradient``; torch's
    ``sign`` gives 0 there)."""
    if g.numel() and math.isnan(torch.amax(g).item()):
        g.copy_(sign_gradient(g))
    else:
        torch.sign(g, out=g)


def normalize_(g: torch.Tensor, ord: int, div_by_zero_eps: float) -> None:
    """``g_i <- g_i / max(||g_i||_ord, div_by_zero_eps)`` for every row ``g_i``
    (``refimpl.optim.normalize_gradient``, ``ord`` 1 or 2)."""

    def exact(rows: Any) -> Any:
        return normalize_gradient(rows, ord, div_by_zero_eps=div_by_zero_eps)

    rows = _rows(g)
    if rows is None:
        g.copy_(exact(g))
        return
    norms = torch.linalg.vector_norm(rows, ord=ord, dim=1, keepdim=True)
    if _normalization_rule(rows.shape[1], ord, rows.dtype, div_by_zero_eps)(*_extremes(norms)):
        rows.div_(norms)  # the documented library's division, by max(norm, eps) = norm
        return
    divisor, flag = normalize_divisor(rows, ord, div_by_zero_eps=div_by_zero_eps, norms=norms)
    fixed = _recompute_flagged(rows, flag, exact)
    rows.div_(divisor)
    _write_back(rows, fixed)


def project_l2_(p: torch.Tensor, epsilon: float, margin: float) -> None:
    """``p_i <- p_i * epsilon / (||p_i||_2 + margin)`` for every row outside the ball
    (``refimpl.optim.project_l2_ball``; ``margin = 1e-7`` is ``torch.renorm``'s). Nothing is
    written when every row is inside."""

    def exact(rows: Any) -> Any:
        return project_l2_ball(rows, epsilon, -1, margin=margin)

    rows = _rows(p)
    if rows is None:
        p.copy_(exact(p))
        return
    norms = torch.linalg.vector_norm(rows, dim=1, keepdim=True)
    case = _l2_ball_rule(rows.shape[1], epsilon, rows.dtype)(*_extremes(norms))
    if case == "inside":
        return
    e = _radius(epsilon, rows.dtype, rows.device)
    if case == "scale" and margin < e.max_margin:  # norm + margin cannot overflow
        # torch.renorm's factor: e / (norm + margin) for rows outside, 1 for rows inside (their
        # quotients, beyond 1, or 0 / 0 with a zero radius, are replaced)
        factor = e.value / (norms + margin)
        rows.mul_(factor.masked_fill_(norms <= e.value, 1.0))
        return
    factor, flag = l2_ball_factor(rows, epsilon, margin=margin, norms=norms)
    fixed = _recompute_flagged(rows, flag, exact)
    if factor is not None:
        rows.mul_(factor)
    _write_back(rows, fixed)


def clamp_(t: torch.Tensor, low: float | None, high: float | None) -> None:
    """``t <- clamp(t, low, high)`` (``refimpl.optim.clamp``: bounds beyond the dtype capped
    to its largest finite value; NaN stays NaN)."""
    lo, hi = _clamp_bounds(repr(low), repr(high), t.dtype, low, high)
    if lo is not None or hi is not None:  # both infinite: nothing to clamp
        t.clamp_(lo, hi)


def _clamp_bounds(
    low_key: str, high_key: str, dtype: torch.dtype, low: Any, high: Any
) -> tuple[float | None, float | None]:
    """``refimpl.optim.clamp_bounds`` remembered per bounds (by ``repr``: -0.0 is not 0.0)
    and dtype: the same every step."""
    key = (low_key, high_key, dtype)
    bounds = _BOUNDS.get(key)
    if bounds is None:
        bounds = clamp_bounds(low, high, finfo=torch.finfo(dtype))
        if len(_BOUNDS) >= 256:
            _BOUNDS.clear()
        _BOUNDS[key] = bounds
    return bounds


#: bounds already capped: {(repr(low), repr(high), dtype): (lo, hi)}
_BOUNDS: dict[tuple[str, str, torch.dtype], tuple[float | None, float | None]] = {}


class _Radius:
    """``value``: ``min(epsilon, max)`` rounded to the dtype, a 0-d tensor on the device (what
    ``refimpl.optim.project_l2_ball`` divides); ``max_margin``: the margins below which
    ``norm + margin`` cannot overflow (``max * eps / 2``)."""

    def __init__(self, epsilon: float, dtype: torch.dtype, device: torch.device) -> None:
        info = torch.finfo(dtype)
        self.value = torch.full((), min(epsilon, info.max), dtype=dtype, device=device)
        self.max_margin = info.max * info.eps / 2


@functools.lru_cache(maxsize=256)
def _radius(epsilon: float, dtype: torch.dtype, device: torch.device) -> _Radius:
    """The :class:`_Radius` of a projection, made once per radius, dtype and device."""
    return _Radius(epsilon, dtype, device)


@functools.lru_cache(maxsize=256)
def _normalization_rule(
    d: int, ord: int, dtype: torch.dtype, div_by_zero_eps: float
) -> Callable[[float, float], bool]:
    """``refimpl.optim.normalization_rule``, made once per row length, order, dtype and eps."""
    return normalization_rule(d, ord=ord, finfo=torch.finfo(dtype), div_by_zero_eps=div_by_zero_eps)


@functools.lru_cache(maxsize=256)
def _l2_ball_rule(d: int, epsilon: float, dtype: torch.dtype) -> Callable[[float, float], str]:
    """``refimpl.optim.l2_ball_rule``, made once per row length, radius and dtype."""
    return l2_ball_rule(d, epsilon=epsilon, finfo=torch.finfo(dtype))


def _extremes(norms: torch.Tensor) -> tuple[float, float]:
    """The smallest and largest of the norms on the host (one reduction); no rows: (inf, 0),
    which every rule takes for "nothing to do"."""
    if norms.numel() == 0:
        return math.inf, 0.0
    lo, hi = torch.aminmax(norms)
    return lo.item(), hi.item()


def _rows(t: torch.Tensor) -> torch.Tensor | None:
    """The batch view ``t`` as ``(N, D)`` rows sharing its memory, or None where torch cannot
    view it so (rows that are not contiguous)."""
    if t.ndim == 0:
        return None
    try:
        return t.view(t.shape[0], math.prod(t.shape[1:]))
    except RuntimeError:
        return None


Fixed = tuple[torch.Tensor, torch.Tensor] | None


def _recompute_flagged(rows: torch.Tensor, flag: torch.Tensor | None, exact: Callable) -> Fixed:
    """``(indices, values)``: the rows that ``flag`` (N, 1) marks, recomputed by ``exact`` (an
    array-API function of rows) from their current values; None when no row is flagged."""
    if flag is None:
        return None
    index = flag.view(-1).nonzero().view(-1)
    return index, exact(rows.index_select(0, index))


def _write_back(rows: torch.Tensor, fixed: Fixed) -> None:
    if fixed is not None:
        rows.index_copy_(0, *fixed)
