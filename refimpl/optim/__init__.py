"""Constrained optimisation on Lp balls: Frank-Wolfe (L1, L2, Linf, L1q), projected
normalised-gradient steps, their building blocks, and Euclidean projections.

Layers (each a small pure function or optax-style optimizer, written against the array API):

* ``transforms``: gradient transforms per ``param_ndim`` row (sign, L1/L2 normalisation,
  top-q sparsification with its tie and NaN rule, the ``dq`` draw, clamping);
* ``lmo``: linear minimisation oracles of the L1, L2, Linf balls and the L1q LMO;
* ``projections``: ``project_l1_ball`` (sort-based or Michelot/Condat), ``project_l2_ball``,
  ``project_linf_ball``;
* the per-row scalars of the row-wise transforms (``normalize_divisor``, ``l2_ball_factor``,
  ``clamp_bounds``) and the host rules that decide them from the smallest and largest row
  norm (``normalization_rule``, ``l2_ball_rule``), for callers that own their arrays and
  apply them in place (the torch front ends): one fused norm per row, and only rows flagged
  as overflowed or underflowed take the scaled recomputation;
* ``frank_wolfe`` / ``projected``: pure optimizers ``init(params) -> state``,
  ``update(grads, state, params) -> (new_params, state)``;
* ``wrappers``: stateful classes with the documented constructors
  (``L1qFrankWolfe(params, *, q, epsilon, ...)``; ``step(grads)`` returns the new params).
"""

from refimpl.optim.base import Optimizer, OptimizerState
from refimpl.optim.frank_wolfe import (
    duality_gap,
    frank_wolfe,
    frank_wolfe_update,
    fw_step_size,
    l1_frank_wolfe,
    l1q_frank_wolfe,
    l2_frank_wolfe,
    linf_frank_wolfe,
)
from refimpl.optim.lmo import (
    l1_direction,
    l1_direction_rows,
    l1q_direction,
    l2_direction,
    linf_direction,
    lmo_l1,
    lmo_l1q,
    lmo_l2,
    lmo_linf,
)
from refimpl.optim.options import FrankWolfeOptions
from refimpl.optim.projected import RENORM_MARGIN, l2_projected, linf_projected
from refimpl.optim.projections import (
    l2_ball_factor,
    l2_ball_rule,
    project_l1_ball,
    project_l2_ball,
    project_linf_ball,
)
from refimpl.optim.transforms import (
    clamp,
    clamp_bounds,
    l1q_gradient,
    normalization_rule,
    normalize_divisor,
    normalize_gradient,
    sample_q,
    sign_gradient,
    top_q_count,
    top_q_drop_mask,
    top_q_gradient,
)
from refimpl.optim.wrappers import (
    FrankWolfe,
    L1FrankWolfe,
    L1qFrankWolfe,
    L2FrankWolfe,
    L2ProjectedOptim,
    LinfFrankWolfe,
    LinfProjectedOptim,
    StatefulOptimizer,
)

__all__ = [
    "RENORM_MARGIN",
    "FrankWolfe",
    "FrankWolfeOptions",
    "L1FrankWolfe",
    "L1qFrankWolfe",
    "L2FrankWolfe",
    "L2ProjectedOptim",
    "LinfFrankWolfe",
    "LinfProjectedOptim",
    "Optimizer",
    "OptimizerState",
    "StatefulOptimizer",
    "clamp",
    "clamp_bounds",
    "duality_gap",
    "frank_wolfe",
    "frank_wolfe_update",
    "fw_step_size",
    "l1_direction",
    "l1_direction_rows",
    "l1_frank_wolfe",
    "l1q_direction",
    "l1q_frank_wolfe",
    "l1q_gradient",
    "l2_ball_factor",
    "l2_ball_rule",
    "l2_direction",
    "l2_frank_wolfe",
    "l2_projected",
    "linf_direction",
    "linf_frank_wolfe",
    "linf_projected",
    "lmo_l1",
    "lmo_l1q",
    "lmo_l2",
    "lmo_linf",
    "normalization_rule",
    "normalize_divisor",
    "normalize_gradient",
    "project_l1_ball",
    "project_l2_ball",
    "project_linf_ball",
    "sample_q",
    "sign_gradient",
    "top_q_count",
    "top_q_drop_mask",
    "top_q_gradient",
]
