r"""Perturbation models and uniform :math:`L^p`-ball samplers (rai_toolbox's ``perturbations``).

* :class:`AdditivePerturbation`: :math:`x \mapsto x + \delta` with explicit ``jvp``/``vjp``
  (with respect to the data) and ``jvp_delta``/``vjp_delta`` (with respect to ``delta``).
* :func:`uniform_like_l1_n_ball`, :func:`uniform_like_l2_n_ball`,
  :func:`uniform_like_linf_n_ball`: functional samplers returning a new array shaped like
  their template, one independent draw per row selected by ``param_ndim``.

The torch versions with the documented signatures (an ``nn.Module`` and in-place samplers
taking ``generator=``) are in :mod:`refimpl.torch.perturbations`.
"""

from refimpl.perturbations.additive import (
    AdditivePerturbation,
    broadcast_shapes,
    delta_shape,
    pullback,
)
from refimpl.perturbations.samplers import (
    uniform_like_l1_n_ball,
    uniform_like_l2_n_ball,
    uniform_like_linf_n_ball,
)

__all__ = [
    "AdditivePerturbation",
    "broadcast_shapes",
    "delta_shape",
    "pullback",
    "uniform_like_l1_n_ball",
    "uniform_like_l2_n_ball",
    "uniform_like_linf_n_ball",
]
