"""Attributions from explicit derivatives, and the noise tunnel around any of them (captum's NoiseTunnel).

=========================  =============================================================
``NoiseTunnel``            SmoothGrad, SmoothGrad², VarGrad of any method with
                           ``attribute(inputs, **kwargs)`` (captum's included)
``Saliency``               the gradient of the target score (its absolute value by default)
``InputXGradient``         input times gradient
``IntegratedGradients``    path integral of the gradient, Gauss-Legendre or Riemann rules,
                           with the completeness (convergence) delta
``TargetError``            a bad ``target``: a ValueError and an AssertionError (captum's
                           type), ``TargetTypeError`` likewise a TypeError
``quadrature``             the nodes and weights of those rules on [0, 1]
``visualize_image_attr``   captum's picture of an attribution: normalised, a diverging
                           colormap centred on 0, a colour bar (matplotlib, imported on
                           first call)
=========================  =============================================================

The methods take any model of the derivative protocol (``refimpl.models`` on every backend,
``refimpl.torch.as_model(module)`` on torch); the gradient is one vector-Jacobian product.
See docs/noise_tunnel.md.
"""

from refimpl.attr.expand import expand_kwargs
from refimpl.attr.gradient import Attribution, InputXGradient, Saliency, mirror
from refimpl.attr.integrated_gradients import IntegratedGradients
from refimpl.attr.moments import RunningMoments
from refimpl.attr.noise import noise_stream, relative_stdevs
from refimpl.attr.noise_tunnel import NoiseTunnel, TunnelCall
from refimpl.attr.options import NT_TYPES, NoiseTunnelOptions
from refimpl.attr.plot import visualize_image_attr
from refimpl.attr.quadrature import METHODS, gauss_legendre, quadrature
from refimpl.attr.targets import (
    TargetError,
    TargetTypeError,
    target_cotangent,
    target_gradients,
    target_scores,
)
from refimpl.attr.tunnel_call import prepare_call

__all__ = [
    "METHODS",
    "NT_TYPES",
    "Attribution",
    "InputXGradient",
    "IntegratedGradients",
    "NoiseTunnel",
    "NoiseTunnelOptions",
    "RunningMoments",
    "Saliency",
    "TargetError",
    "TargetTypeError",
    "expand_kwargs",
    "gauss_legendre",
    "mirror",
    "prepare_call",
    "quadrature",
    "relative_stdevs",
    "target_cotangent",
    "target_gradients",
    "target_scores",
    "TunnelCall",
    "noise_stream",
    "visualize_image_attr",
]
