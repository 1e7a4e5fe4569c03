r"""Luminance gain control (Berardino et al. 2017, plenoptic's ``LuminanceGainControl``).

A centre-surround response divided by the local mean luminance, then rectified:

.. math::

    u = C x, \quad \ell = G x, \quad d = 1 + a \ell, \quad z = u / d, \quad y = \phi(z)

with :math:`C` a difference-of-Gaussians correlation, :math:`G` a Gaussian blur (both
:class:`~refimpl.models.conv.Conv2d`, same padding), :math:`a` the luminance scalar and
:math:`\phi` softplus. Differentiating the quotient,

.. math::

    J v = \phi'(z) \odot \frac{C v - a\, z \odot G v}{d}, \qquad
    J^\top w = C^\top\!\Big(\frac{\tilde w}{d}\Big) - a\, G^\top\!\Big(\frac{\tilde w \odot z}{d}\Big),
    \quad \tilde w = \phi'(z) \odot w.

A linearization keeps :math:`z`, :math:`d` and :math:`\phi'(z)`; each product then costs one
correlation with :math:`C` and one with :math:`G` (or their adjoints).

Defaults are the parameters fitted to human distortion judgments (Berardino et al. 2017,
table 2, as in plenoptic's ``pretrained=True``): centre std 1.962, surround std 4.235,
amplitude ratio 1.25, luminance std 4.235, :math:`a` = 14.95, kernel 31 x 31.

Reference: A. Berardino, J. Ballé, V. Laparra, E. Simoncelli. Eigen-distortions of
hierarchical representations. NeurIPS 2017.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from refimpl.models.base import Linearization, Model
from refimpl.models.conv import Conv2d
from refimpl.models.filters import center_surround, gaussian_kernel
from refimpl.models.pointwise import Pointwise

__all__ = ["LuminanceGainControl"]


class LuminanceGainControl(Model):
    """``y = phi(C x / (1 + a G x))`` on images ``(..., 1, H, W)``.

    Parameters
    ----------
    kernel_size : odd int (default 31)
    center_std, surround_std, amplitude_ratio, on_center : the centre-surround filter
    luminance_std : float, the Gaussian of the luminance pool
    luminance_scalar : float a >= 0
    pad_mode : "reflect" (default), "circular", "constant", "replicate"
    activation : a :class:`Pointwise` name ("softplus") or a ``Pointwise`` model
    backend, device, dtype : where the filters are made (shape-only call: the current backend)
    method : the correlation method of both convolutions ("auto", "direct", "fft")
    """

    def __init__(
        self,
        kernel_size: int = 31,
        *,
        center_std: float = 1.962,
        surround_std: float = 4.235,
        amplitude_ratio: float = 1.25,
        on_center: bool = True,
        luminance_std: float = 4.235,
        luminance_scalar: float = 14.95,
        pad_mode: str = "reflect",
        activation: str | Pointwise = "softplus",
        backend: Any = None,
        device: Any = None,
        dtype: Any = "float64",
        method: str = "auto",
    ) -> None:
        a = luminance_scalar
        if isinstance(a, bool) or not isinstance(a, numbers.Real):
            raise TypeError(f"luminance_scalar must be a real number, got {a!r}")
        if not (math.isfinite(float(a)) and a >= 0):
            raise ValueError(f"luminance_scalar must be a finite number >= 0, got {a!r}")
        where = dict(backend=backend, device=device, dtype=dtype)
        cs = center_surround(
            kernel_size, center_std, surround_std, amplitude_ratio, on_center, **where
        )
        lum = gaussian_kernel(kernel_size, luminance_std, **where)
        self.center_surround = Conv2d(cs, pad_mode=pad_mode, method=method)
        self.luminance = Conv2d(lum, pad_mode=pad_mode, method=method)
        self.luminance_scalar = float(a)
        self.activation = activation if isinstance(activation, Pointwise) else Pointwise(activation)

    def __repr__(self) -> str:
        k = self.luminance.weight.shape[-1]
        return (
            f"LuminanceGainControl(kernel {k}x{k}, a={self.luminance_scalar:g}, "
            f"pad_mode={self.luminance.pad_mode!r}, activation={self.activation.name!r})"
        )

    def _check_input(self, x: Any) -> None:
        self.center_surround._check_input(x)

    def _normalised(self, x: Any) -> tuple[Any, Any]:
        d = 1 + self.luminance_scalar * self.luminance.apply_linear(x)
        return self.center_surround.apply_linear(x) / d, d

    def _forward(self, x: Any) -> Any:
        z, _ = self._normalised(x)
        return self.activation.f(z)

    def _linearize(self, x: Any) -> Linearization:
        a, C, G = self.luminance_scalar, self.center_surround, self.luminance
        z, d = self._normalised(x)
        dphi = self.activation.fprime(z)
        hw = (x.shape[-2], x.shape[-1])

        def jvp(v: Any) -> Any:
            return dphi * (C.apply_linear(v) - a * z * G.apply_linear(v)) / d

        def vjp(w: Any) -> Any:
            w_d = dphi * w / d
            return C.apply_adjoint(w_d, hw) - a * G.apply_adjoint(w_d * z, hw)

        return Linearization(x, self.activation.f(z), jvp, vjp)
