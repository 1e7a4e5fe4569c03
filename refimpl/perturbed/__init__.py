r"""Perturbed optimizers (Berthet et al. 2020): differentiable solvers by noise.

* :func:`perturbed`: function and decorator turning a solver into
  :math:`y_\sigma(\theta) = E[y^*(\theta + \sigma Z)]` with closed-form ``jvp``/``vjp``
  (no autograd), chunked Monte Carlo with bounded memory, and unbiased variance reduction
  (baseline, antithetic pairs, scrambled Sobol points);
* :func:`fenchel_young_loss`: the Fenchel-Young loss and its gradient
  :math:`y_\sigma(\theta) - y`;
* ready-made vectorised solvers: :func:`argmax_one_hot`, :func:`hard_or`, :func:`ranks`,
  :func:`top_k_one_hot`, :func:`shortest_path` (Bellman-Ford, edge-indicator matrix);
* :mod:`refimpl.perturbed.noise`: the normal and Gumbel laws with their scores.

The torch front end with the documented signature (``torch.autograd.Function``,
``FenchelYoungLoss`` module) is :mod:`refimpl.torch.perturbed`.
"""

from refimpl.perturbed.fenchel_young import FenchelYoungLoss, fenchel_young_loss
from refimpl.perturbed.noise import Gumbel, Noise, Normal
from refimpl.perturbed.perturbed import Estimates, Perturbed, PerturbedOptions, perturbed
from refimpl.perturbed.solvers import (
    argmax_one_hot,
    hard_or,
    ranks,
    shortest_path,
    top_k_one_hot,
)

__all__ = [
    "Estimates",
    "FenchelYoungLoss",
    "Gumbel",
    "Noise",
    "Normal",
    "Perturbed",
    "PerturbedOptions",
    "argmax_one_hot",
    "fenchel_young_loss",
    "hard_or",
    "perturbed",
    "ranks",
    "shortest_path",
    "top_k_one_hot",
]
