"""Differentiable models with hand-written derivatives (docs/design.md, the derivative protocol).

Every model ``f`` offers ``f(x)``, ``f.jvp(x, v)`` (:math:`Jv`), ``f.vjp(x, u)``
(:math:`J^T u`) and ``f.linearize(x)`` (output and products at ``x``, computed once). Tangents
and cotangents may carry one leading batch axis. See ``docs/jacobians.md``.

========================  ===================================================================
``Linear``                ``y = x W^T + b`` on the last axis
``Conv2d``                2-D correlation with same padding (reflect, circular, constant,
                          replicate), stride; direct or FFT, never a dense matrix
``gaussian_kernel``,      the filters of plenoptic's early-vision models
``center_surround``
``Pointwise``             softplus, sigmoid, tanh, relu, or a user's ``f`` with ``f'``
``LuminanceGainControl``  ``softplus(C x / (1 + a G x))`` (Berardino et al. 2017)
``Flatten``               merge the trailing axes
``Sequential``            composition by the chain rule
========================  ===================================================================
"""

from refimpl.models.base import Linearization, Model, linearize
from refimpl.models.conv import Conv2d
from refimpl.models.filters import center_surround, gaussian_kernel
from refimpl.models.gain_control import LuminanceGainControl
from refimpl.models.linear import Flatten, Linear
from refimpl.models.pointwise import ACTIVATIONS, Pointwise
from refimpl.models.sequential import Sequential

__all__ = [
    "ACTIVATIONS",
    "Conv2d",
    "Flatten",
    "Linear",
    "Linearization",
    "LuminanceGainControl",
    "Model",
    "Pointwise",
    "Sequential",
    "center_surround",
    "gaussian_kernel",
    "linearize",
]
