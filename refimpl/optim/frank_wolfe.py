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

from collections.abc import Callable
from typing import Any

from backends import as_rng, namespace_and_device, ops

from refimpl.batching import to_rows
from refimpl.optim._checks import (
    TINY,
    check_bool,
    check_epsilon,
    check_param_ndim,
    check_real,
)
from refimpl.optim.base import (
    Optimizer,
    OptimizerState,
    Params,
    check_params,
    pack,
    pairs,
)
from refimpl.optim.lmo import (
    l1_direction_rows,
    l1q_direction,
    l2_direction,
    linf_direction,
)
from refimpl.optim.transforms import sample_q


def fw_step_size(
    lr: float, k: int, *, use_default_lr_schedule: bool = True, div_by_zero_eps: float = TINY
) -> float:
    """``alpha_k = lr / max(div_by_zero_eps, lr + k)`` with the schedule, else ``lr``.

    ``lr = 0`` gives 0 (the documented library raises ZeroDivisionError when
    ``div_by_zero_eps = 0`` too). ``k`` is the number of updates so far (an int >= 0).
    """
    lr = check_real("lr", lr, low=0.0)
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise ValueError(f"k (the number of updates so far) must be an int >= 0, got {k!r}")
    check_bool("use_default_lr_schedule", use_default_lr_schedule)
    div_by_zero_eps = check_real("div_by_zero_eps", div_by_zero_eps, low=0.0)
    if not use_default_lr_schedule:
        return lr
    if lr == 0.0:
        return 0.0
    return lr / max(div_by_zero_eps, lr + k)


def frank_wolfe_update(param: Any, direction: Any, alpha: float, scale: float) -> Any:
    """``(1 - alpha) * param - (alpha * scale) * direction``, rounded as the documented
    library rounds it: ``param * (1 - alpha) + direction * (-(alpha * scale))``."""
    w = direction * (-(alpha * scale))
    return param * (1 - alpha) + w


def l1_frank_wolfe_update(
    param: Any, grad: Any, alpha: float, scale: float, *, param_ndim: int | None
) -> Any:
    """``frank_wolfe_update`` with the L1 direction ``v = sign(g_j) e_j`` of each row,
    touching only the vertex: ``(1 - alpha) x`` everywhere, then ``-(alpha * scale) sign(g_j)``
    added at ``j``. Same rounding as the dense form, without building ``v``."""
    xp, _ = namespace_and_device(param, grad)
    rows = to_rows(grad, param_ndim)
    if rows.shape[1] == 0:  # empty rows: nothing but the decay
        return param * (1 - alpha)
    j, sgn = l1_direction_rows(rows)
    decayed = to_rows(param * (1 - alpha), param_ndim)  # a temporary: may be updated in place
    new = ops.add_at_along_axis(decayed, j, sgn * (-(alpha * scale)), axis=1, copy=False)
    return xp.reshape(new, param.shape)


def check_fw_options(
    *, epsilon: float, lr: float, use_default_lr_schedule: bool, div_by_zero_eps: float
) -> tuple[float, float, bool, float]:
    """Validated ``(epsilon, lr, use_default_lr_schedule, div_by_zero_eps)``."""
    eps = check_epsilon(epsilon)
    sched = check_bool("use_default_lr_schedule", use_default_lr_schedule)
    lr = check_real("lr", lr, low=0.0, high=None if sched else 1.0)
    dz = check_real("div_by_zero_eps", div_by_zero_eps, low=0.0)
    return eps, lr, sched, dz


def _lp_options(
    epsilon: float,
    lr: float,
    use_default_lr_schedule: bool,
    div_by_zero_eps: float,
    param_ndim: int | None,
) -> tuple[float, float, bool, float, int | None]:
    """``check_fw_options`` plus the ``param_ndim`` check, for the Lp-ball optimizers."""
    eps, lr, sched, dz = check_fw_options(
        epsilon=epsilon,
        lr=lr,
        use_default_lr_schedule=use_default_lr_schedule,
        div_by_zero_eps=div_by_zero_eps,
    )
    return eps, lr, sched, dz, check_param_ndim(param_ndim)


def _make(
    direction: Callable[[Any, Any], Any] | None,
    *,
    scale: float,
    lr: float,
    use_default_lr_schedule: bool,
    schedule_eps: float,
    param_ndim: int | None,
    make_rng: Callable[[list], Any] | None = None,
    update_param: Callable[[Any, Any, float], Any] | None = None,
) -> Optimizer:
    """A Frank-Wolfe optimizer from ``direction(grad, state_rng) -> v`` (dense update), or,
    with ``direction=None``, from ``update_param(param, grad, alpha) -> new param`` where a
    sparse LMO has a faster form."""
    if (direction is None) == (update_param is None):
        raise TypeError("pass exactly one of direction and update_param")

    def init(params: Params) -> OptimizerState:
        plist = check_params(params, param_ndim)
        rng = make_rng(plist) if make_rng is not None else None
        return OptimizerState(step=(0,) * len(plist), rng=rng)

    def update(grads: Any, state: OptimizerState, params: Params):
        glist, plist, single = pairs(grads, state, params)
        new, steps = [], []
        for g, p, k in zip(glist, plist, state.step):
            if g is None:
                new.append(p)
                steps.append(k)
                continue
            alpha = fw_step_size(
                lr,
                k,
                use_default_lr_schedule=use_default_lr_schedule,
                div_by_zero_eps=schedule_eps,
            )
            if update_param is not None:
                new.append(update_param(p, g, alpha))
            else:
                new.append(frank_wolfe_update(p, direction(g, state.rng), alpha, scale))
            steps.append(k + 1)
        return pack(new, params, single), state._replace(step=tuple(steps))

    return Optimizer(init, update)


def frank_wolfe(
    *,
    lr: float = 2.0,
    lmo_scaling_factor: float = 1.0,
    use_default_lr_schedule: bool = True,
    div_by_zero_eps: float = TINY,
) -> Optimizer:
    """Plain Frank-Wolfe: ``grads`` must already hold the *negative* LMO direction ``v``;
    ``x <- (1 - alpha) x - alpha * lmo_scaling_factor * v`` (the documented ``FrankWolfe``)."""
    scale = check_real("lmo_scaling_factor", lmo_scaling_factor)
    _, lr, sched, dz = check_fw_options(
        epsilon=1.0,
        lr=lr,
        use_default_lr_schedule=use_default_lr_schedule,
        div_by_zero_eps=div_by_zero_eps,
    )
    return _make(
        lambda g, _: g,
        scale=scale,
        lr=lr,
        use_default_lr_schedule=sched,
        schedule_eps=dz,
        param_ndim=None,
    )


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
    eps, lr, sched, dz, pn = _lp_options(
        epsilon, lr, use_default_lr_schedule, div_by_zero_eps, param_ndim
    )
    return _make(
        None,
        scale=eps,
        lr=lr,
        use_default_lr_schedule=sched,
        schedule_eps=dz,
        param_ndim=pn,
        update_param=lambda p, g, alpha: l1_frank_wolfe_update(p, g, alpha, eps, param_ndim=pn),
    )


def l2_frank_wolfe(
    *,
    epsilon: float,
    lr: float = 2.0,
    use_default_lr_schedule: bool = True,
    param_ndim: int | None = -1,
    div_by_zero_eps: float = TINY,
) -> Optimizer:
    """Frank-Wolfe on the L2 ball: ``s = -epsilon g / max(||g||_2, div_by_zero_eps)``."""
    eps, lr, sched, dz, pn = _lp_options(
        epsilon, lr, use_default_lr_schedule, div_by_zero_eps, param_ndim
    )
    return _make(
        lambda g, _: l2_direction(g, param_ndim=pn, div_by_zero_eps=dz),
        scale=eps,
        lr=lr,
        use_default_lr_schedule=sched,
        schedule_eps=TINY,
        param_ndim=pn,
    )


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
    eps, lr, sched, dz, pn = _lp_options(
        epsilon, lr, use_default_lr_schedule, div_by_zero_eps, param_ndim
    )
    return _make(
        lambda g, _: linf_direction(g),
        scale=eps,
        lr=lr,
        use_default_lr_schedule=sched,
        schedule_eps=dz,
        param_ndim=pn,
    )


def check_q(q: float, dq: float) -> tuple[float, float]:
    return check_real("q", q, low=0.0, high=1.0), check_real("dq", dq, low=0.0, high=1.0)


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
    q, dq = check_q(q, dq)
    eps, lr, sched, dz, pn = _lp_options(
        epsilon, lr, use_default_lr_schedule, div_by_zero_eps, param_ndim
    )

    def direction(g: Any, state_rng: Any) -> Any:
        qq = sample_q(q, dq, state_rng, like=g)
        return l1q_direction(g, qq, param_ndim=pn, div_by_zero_eps=dz)

    make_rng = (lambda plist: as_rng(rng, like=plist[0])) if dq > 0 else None
    return _make(
        direction,
        scale=eps,
        lr=lr,
        use_default_lr_schedule=sched,
        schedule_eps=TINY,
        param_ndim=pn,
        make_rng=make_rng,
    )


def duality_gap(grad: Any, param: Any, lmo: Any) -> float:
    """Frank-Wolfe duality gap ``<g, x - s>`` (Jaggi 2013): an upper bound on
    ``f(x) - min_B f`` for convex ``f`` when ``s`` is the exact LMO (a host sync)."""
    xp, _ = namespace_and_device(grad, param, lmo)
    shapes = {tuple(a.shape) for a in (grad, param, lmo)}
    if len(shapes) != 1:
        raise ValueError(
            "grad, param and lmo must have one shape (no broadcasting), got "
            f"{tuple(grad.shape)}, {tuple(param.shape)} and {tuple(lmo.shape)}"
        )
    return float(xp.sum(grad * (param - lmo)))
