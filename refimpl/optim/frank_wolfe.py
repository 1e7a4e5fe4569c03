"""Frank-Wolfe (conditional gradient) on Lp balls, as pure optax-style optimizers.

Frank & Wolfe (1956); Jaggi (2013), "Revisiting Frank-Wolfe: projection-free sparse convex
optimization". For a parameter ``x`` constrained to the ball ``B`` of radius ``epsilon``, one
step with the gradient ``g`` is::

    s_k     = LMO(g) = argmin_{s in B} <g, s> = -epsilon * v(g)      (refimpl.optim.lmo)
    alpha_k = lr / (lr + k)          (default schedule; lr = 2 gives 2/(k+2), Jaggi's step)
    x_{k+1} = (1 - alpha_k) x_k + alpha_k s_k

``k`` counts the updates this parameter has received (from 0). With ``lr = 2`` the first step
has ``alpha = 1`` and discards ``x_0``. The iterates stay in ``B`` (a convex combination of
points of ``B``), and for a convex ``f`` with curvature constant ``C_f <= L diam(B)^2`` the
duality gap ``<g_k, x_k - s_k>`` of the best iterate is ``O(C_f / k)`` (Jaggi 2013, Thm 1-2).

Arithmetic, operation for operation as the documented library (so torch results are
bit-identical): ``alpha`` in Python float64, then ``w = v * (-(alpha * epsilon))``,
``x * (1 - alpha)``, and their sum; each scalar is rounded to the array's dtype.

Which ``v`` (rows of the ``param_ndim`` view, see ``refimpl.batching``):

=====================  ======================================  ==========================
optimizer              v (per row)                             ``div_by_zero_eps`` guards
=====================  ======================================  ==========================
``frank_wolfe``        the gradient itself (already -LMO/eps)  the schedule's denominator
``l1_frank_wolfe``     ``sign(g_j) e_j``, ``j = argmax |g|``    the schedule's denominator
``l2_frank_wolfe``     ``g / ||g||_2``                          the norm
``linf_frank_wolfe``   ``sign(g)``                              the schedule's denominator
``l1q_frank_wolfe``    normalised signs of the top-q entries   the norm
=====================  ======================================  ==========================
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from backends import as_rng, namespace_and_device, ops
from refimpl.batching import to_rows
from refimpl.optim.base import Optimizer, OptimizerState, Params, check_params, pack, pairs
from refimpl.optim.lmo import l1_direction_rows, l1q_rows, l2_rows, linf_direction
from refimpl.optim.options import FrankWolfeOptions
from refimpl.optim.transforms import draw_q
from refimpl.validation import (
    TINY,
    check_array,
    check_fits,
    check_int,
    check_like,
    check_real,
    check_same_place,
)

__all__ = [
    "duality_gap",
    "frank_wolfe",
    "frank_wolfe_update",
    "fw_step_size",
    "l1_frank_wolfe",
    "l1_frank_wolfe_update",
    "l1q_frank_wolfe",
    "l2_frank_wolfe",
    "linf_frank_wolfe",
]


# -- one step ---------------------------------------------------------------------------------
def frank_wolfe_update(param: Any, direction: Any, alpha: float, scale: float) -> Any:
    """``(1 - alpha) * param - (alpha * scale) * direction``, rounded as the documented
    library rounds it: ``param * (1 - alpha) + direction * (-(alpha * scale))``.

    ``direction`` must be an array of ``param``'s library, device, dtype and shape (never
    broadcast); ``alpha`` a step size in [0, 1] (a convex combination) and ``scale`` a
    finite real number within ``param``'s dtype."""
    xp, _ = check_array(param, name="param")
    check_like(direction, param, name="direction", ref_name="param")
    if tuple(direction.shape) != tuple(param.shape):
        raise ValueError(
            f"direction must have the shape of param {tuple(param.shape)} (no broadcasting), "
            f"got {tuple(direction.shape)}"
        )
    alpha = check_real("alpha", alpha, low=0.0, high=1.0)
    scale = check_real("scale", scale)
    check_fits("scale", scale, param.dtype, xp)
    return convex_step(param, direction, alpha, scale)


def convex_step(param: Any, direction: Any, alpha: float, scale: float) -> Any:
    """:func:`frank_wolfe_update` for arguments already validated (the optimizers' loop)."""
    w = direction * (-(alpha * scale))
    if alpha == 1:  # inf * 0 is NaN, as in torch: made without numpy's warning
        param = _nan_for_inf(param)
    return param * (1 - alpha) + w


def _nan_for_inf(param: Any) -> Any:
    xp, _ = namespace_and_device(param)
    return xp.where(xp.isinf(param), xp.full_like(param, math.nan), param)


def l1_frank_wolfe_update(
    param: Any, grad: Any, alpha: float, scale: float, *, param_ndim: int | None
) -> Any:
    """``frank_wolfe_update`` with the L1 direction ``v = sign(g_j) e_j`` of each row,
    touching only the vertex: ``(1 - alpha) x`` everywhere, then ``-(alpha * scale) sign(g_j)``
    added at ``j``. Same rounding as the dense form, without building ``v``."""
    xp, _ = namespace_and_device(param, grad)
    rows = to_rows(grad, param_ndim)
    if alpha == 1:
        param = _nan_for_inf(param)
    if rows.shape[1] == 0:  # empty rows: nothing but the decay
        return param * (1 - alpha)
    j, sgn = l1_direction_rows(rows)
    decayed = to_rows(param * (1 - alpha), param_ndim)  # a temporary: may be updated in place
    new = ops.add_at_along_axis(decayed, j, sgn * (-(alpha * scale)), axis=1, copy=False)
    return xp.reshape(new, param.shape)


def _optimizer(
    name: str,
    options: FrankWolfeOptions,
    *,
    direction: Callable[[Any, Any], Any] | None = None,
    update_param: Callable[[Any, Any, float], Any] | None = None,
    schedule_guard: float | None = None,
    make_rng: Callable[[list], Any] | None = None,
) -> Optimizer:
    """The optax-style pair for one LMO: each parameter with a gradient ``g`` and ``k``
    updates so far moves to ``(1 - alpha_k) x - alpha_k epsilon v(g)``. The LMO is given as
    ``direction(g, rng) -> v`` (a dense ``v``) or as ``update_param(x, g, alpha)`` where a
    sparse ``v`` has a faster update. ``name`` tags the states its ``init`` makes; with
    ``make_rng``, ``update`` needs the ``Rng`` of such a state."""

    def init(params: Params) -> OptimizerState:
        plist = check_params(params, options.param_ndim)
        _check_radius_fits(options, plist)
        rng = None if make_rng is None else make_rng(plist)
        return OptimizerState(step=(0,) * len(plist), rng=rng, made_by=name)

    def update(grads: Any, state: OptimizerState, params: Params):
        glist, plist, single = pairs(
            grads, state, params, made_by=name, needs_rng=make_rng is not None
        )
        _check_radius_fits(options, [x for g, x in zip(glist, plist) if g is not None])
        new, steps = [], []
        for g, x, k in zip(glist, plist, state.step):
            if g is None:  # no gradient: no step, as torch skips parameters without .grad
                new.append(x)
                steps.append(k)
                continue
            alpha = options.step_size(k, guard=schedule_guard)
            if update_param is not None:
                new.append(update_param(x, g, alpha))
            else:
                new.append(convex_step(x, direction(g, state.rng), alpha, options.epsilon))
            steps.append(k + 1)
        return pack(new, params, single), state._replace(step=tuple(steps))

    return Optimizer(init, update)


def _check_radius_fits(options: FrankWolfeOptions, plist: list) -> None:
    """The ball's radius must be finite in every parameter's dtype: its vertices are the
    steps' targets (a radius of 1e39 would turn float32 parameters into infinities)."""
    name = "epsilon" if options.ball else "lmo_scaling_factor"
    for p in plist:
        check_fits(name, options.epsilon, p.dtype, namespace_and_device(p)[0])


# -- the optimizers ---------------------------------------------------------------------------
def frank_wolfe(
    *,
    lr: float = 2.0,
    lmo_scaling_factor: float = 1.0,
    use_default_lr_schedule: bool = True,
    div_by_zero_eps: float = TINY,
) -> Optimizer:
    """Plain Frank-Wolfe: ``grads`` must already hold the *negative* LMO direction ``v``;
    ``x <- (1 - alpha) x - alpha * lmo_scaling_factor * v`` (the documented ``FrankWolfe``)."""
    options = FrankWolfeOptions(
        lmo_scaling_factor, lr, use_default_lr_schedule, div_by_zero_eps, None, ball=False
    )
    return _optimizer("frank_wolfe", options, direction=lambda g, _: g)


def l1_frank_wolfe(
    *,
    epsilon: float,
    lr: float = 2.0,
    use_default_lr_schedule: bool = True,
    param_ndim: int | None = -1,
    div_by_zero_eps: float = TINY,
) -> Optimizer:
    """Frank-Wolfe on the L1 ball: ``s = -epsilon sign(g_j) e_j``, ``j = argmax |g_i|`` per
    row (rows of any dimension: the documented library fails or errs on rows of more than
    one dimension)."""
    o = FrankWolfeOptions(epsilon, lr, use_default_lr_schedule, div_by_zero_eps, param_ndim)

    def update_param(x: Any, g: Any, alpha: float) -> Any:
        return l1_frank_wolfe_update(x, g, alpha, o.epsilon, param_ndim=o.param_ndim)

    return _optimizer("l1_frank_wolfe", o, update_param=update_param)


def l2_frank_wolfe(
    *,
    epsilon: float,
    lr: float = 2.0,
    use_default_lr_schedule: bool = True,
    param_ndim: int | None = -1,
    div_by_zero_eps: float = TINY,
) -> Optimizer:
    """Frank-Wolfe on the L2 ball: ``s = -epsilon g / max(||g||_2, div_by_zero_eps)``."""
    o = FrankWolfeOptions(epsilon, lr, use_default_lr_schedule, div_by_zero_eps, param_ndim)

    def direction(g: Any, _: Any) -> Any:
        return l2_rows(g, o.param_ndim, o.div_by_zero_eps)

    return _optimizer("l2_frank_wolfe", o, direction=direction, schedule_guard=TINY)


def linf_frank_wolfe(
    *,
    epsilon: float,
    lr: float = 2.0,
    use_default_lr_schedule: bool = True,
    param_ndim: int | None = -1,
    div_by_zero_eps: float = TINY,
) -> Optimizer:
    """Frank-Wolfe on the Linf ball: ``s = -epsilon sign(g)`` (``param_ndim`` is only
    validated: the LMO is element-wise)."""
    o = FrankWolfeOptions(epsilon, lr, use_default_lr_schedule, div_by_zero_eps, param_ndim)
    return _optimizer("linf_frank_wolfe", o, direction=lambda g, _: linf_direction(g))


def l1q_frank_wolfe(
    *,
    q: float,
    epsilon: float,
    dq: float = 0.0,
    lr: float = 2.0,
    use_default_lr_schedule: bool = True,
    param_ndim: int | None = -1,
    div_by_zero_eps: float = TINY,
    rng: Any = None,
) -> Optimizer:
    """Frank-Wolfe with the L1q LMO (Roberts & Tsiligkaridis 2021): per row keep the
    ``k = round((1 - q) D)`` largest ``|g_i|`` (tie and NaN rule: ``refimpl.optim.transforms``),
    take their signs and L1-normalise: ``s = -epsilon * sign(g_kept) / m``.

    ``dq > 0``: each step of each parameter (with a gradient) draws its own ``q`` uniformly
    in ``[max(0, q - dq), min(1, q + dq)]`` from ``rng`` (None, a seed, a native generator or
    an ``Rng``; a ``torch.Generator`` reproduces the documented library's draws). The ``Rng``
    lives in the state and advances with every draw.
    """
    q, dq = check_real("q", q, low=0.0, high=1.0), check_real("dq", dq, low=0.0, high=1.0)
    o = FrankWolfeOptions(epsilon, lr, use_default_lr_schedule, div_by_zero_eps, param_ndim)

    def direction(g: Any, state_rng: Any) -> Any:
        return l1q_rows(g, draw_q(q, dq, state_rng, g), o.param_ndim, o.div_by_zero_eps)

    def make_rng(plist: list) -> Any:
        return as_rng(rng, like=plist[0])

    return _optimizer(
        "l1q_frank_wolfe",
        o,
        direction=direction,
        schedule_guard=TINY,
        make_rng=make_rng if dq > 0 else None,
    )


# -- step sizes and the duality gap -----------------------------------------------------------
def fw_step_size(
    lr: float, k: int, *, use_default_lr_schedule: bool = True, div_by_zero_eps: float = TINY
) -> float:
    """``alpha_k = lr / max(div_by_zero_eps, lr + k)`` with the schedule, else ``lr``, for
    ``k`` updates so far (an int >= 0): :meth:`FrankWolfeOptions.step_size` with its checks."""
    options = FrankWolfeOptions(
        lr=lr, use_default_lr_schedule=use_default_lr_schedule, div_by_zero_eps=div_by_zero_eps
    )
    return options.step_size(check_int("k", k, low=0))


def duality_gap(grad: Any, param: Any, lmo: Any) -> float:
    """Frank-Wolfe duality gap ``<g, x - s>`` (Jaggi 2013): an upper bound on
    ``f(x) - min_B f`` for convex ``f`` when ``s`` is the exact LMO (a host sync)."""
    xp, _ = check_array(grad, name="grad")
    for name, a in (("param", param), ("lmo", lmo)):
        check_array(a, name=name)
        check_same_place(a, grad, name=name, ref_name="grad")
    shapes = {tuple(a.shape) for a in (grad, param, lmo)}
    if len(shapes) != 1:
        raise ValueError(
            "grad, param and lmo must have one shape (no broadcasting), got "
            f"{tuple(grad.shape)}, {tuple(param.shape)} and {tuple(lmo.shape)}"
        )
    return float(xp.sum(grad * (param - lmo)))
