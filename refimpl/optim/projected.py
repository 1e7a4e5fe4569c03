"""Projected normalised-gradient descent on Lp balls (the documented ``L2ProjectedOptim``
and ``LinfProjectedOptim`` with their default inner optimizer, plain SGD)::

    x <- P_B(x - lr * v(g))

``L2``: ``v = g / max(||g||_2, div_by_zero_eps)`` per row and ``P_B`` the L2-ball projection
with ``torch.renorm``'s margin (``project_l2_ball(..., margin=1e-7)``, so a projected row
ends a hair inside the ball, as in the documented library). ``Linf``: ``v = sign(g)`` (the
steepest-descent direction for the Linf norm, i.e. FGSM/PGD steps) and ``P_B`` a clip.

As in the documented library, the projection is applied to every parameter at every step,
including parameters whose gradient is None (they are not moved, only projected).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from backends import namespace_and_device
from refimpl.optim.base import Optimizer, OptimizerState, Params, check_params, pack, pairs
from refimpl.optim.lmo import l2_direction, linf_direction
from refimpl.optim.projections import project_l2_ball, project_linf_ball
from refimpl.validation import TINY, check_fits, check_param_ndim, check_real

#: ``torch.renorm``'s margin, used by the documented ``L2ProjectedOptim``
RENORM_MARGIN = 1e-7


def _make(
    name: str,
    direction: Callable[[Any], Any],
    project: Callable[[Any], Any],
    *,
    lr: float,
    param_ndim: int | None,
) -> Optimizer:
    def init(params: Params) -> OptimizerState:
        n = len(check_params(params, param_ndim))
        return OptimizerState(step=(0,) * n, made_by=name)

    def update(grads: Any, state: OptimizerState, params: Params):
        glist, plist, single = pairs(grads, state, params, made_by=name)
        new, steps = [], []
        for g, p, k in zip(glist, plist, state.step):
            if g is not None:
                check_fits("lr", lr, p.dtype, namespace_and_device(p)[0])  # else inf steps
                p = p + direction(g) * (-lr)
                k += 1
            new.append(project(p))
            steps.append(k)
        return pack(new, params, single), state._replace(step=tuple(steps))

    return Optimizer(init, update)


def l2_projected(
    *,
    epsilon: float,
    lr: float,
    param_ndim: int | None = -1,
    div_by_zero_eps: float = TINY,
    margin: float = RENORM_MARGIN,
) -> Optimizer:
    """``x <- P_{||.||_2 <= epsilon}(x - lr * g / ||g||_2)`` per row."""
    eps = check_real("epsilon", epsilon, low=0.0)
    lr = check_real("lr", lr, low=0.0)
    dz = check_real("div_by_zero_eps", div_by_zero_eps, low=0.0)
    margin = check_real("margin", margin, low=0.0)
    pn = check_param_ndim(param_ndim)
    return _make(
        "l2_projected",
        lambda g: l2_direction(g, param_ndim=pn, div_by_zero_eps=dz),
        lambda p: project_l2_ball(p, eps, pn, margin=margin),
        lr=lr,
        param_ndim=pn,
    )


def linf_projected(*, epsilon: float, lr: float, param_ndim: int | None = None) -> Optimizer:
    """``x <- clip(x - lr * sign(g), -epsilon, epsilon)``."""
    eps = check_real("epsilon", epsilon, low=0.0)
    lr = check_real("lr", lr, low=0.0)
    pn = check_param_ndim(param_ndim)
    return _make(
        "linf_projected",
        linf_direction,
        lambda p: project_linf_ball(p, eps, pn),
        lr=lr,
        param_ndim=pn,
    )
