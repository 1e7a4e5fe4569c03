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

:math:`C` and :math:`G` act on the same image, so they run as one two-channel correlation
(one transform of the image, two filters) and the adjoint of the pair is one call too:
:math:`C^\top a + G^\top b` is the adjoint of the two-channel correlation applied to
:math:`(a, b)`. A linearization keeps :math:`z`, :math:`d` and :math:`\phi'(z)`; each product
then costs one two-channel correlation (or its adjoint).

Defaults are the parameters fitted to human distortion judgments (Berardino et al. 2017,
table 2, as in plenoptic's ``pretrained=True``): centre std 1.962, surround std 4.235,
amplitude ratio 1.25, luminance std 4.235, :math:`a` = 14.95, kernel 31 x 31.

Reference: A. Berardino, J. Ballé, V. Laparra, E. Simoncelli. Eigen-distortions of
hierarchical representations. NeurIPS 2017.
"""

from __future__ import annotations

from typing import Any

import backends
from refimpl.models.base import Linearization, Model
from refimpl.models.conv import Conv2d
from refimpl.models.filters import center_surround, gaussian_kernel
from refimpl.models.pointwise import ACTIVATIONS, Pointwise
from refimpl.validation import check_choice, check_fits, check_real

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
        a = check_real("luminance_scalar", luminance_scalar, low=0.0)
        luminance_std = check_real("luminance_std", luminance_std, low=0.0, low_open=True)
        activation = _activation(activation)
        where = dict(backend=backend, device=device, dtype=dtype)
        cs = center_surround(
            kernel_size, center_std, surround_std, amplitude_ratio, on_center, **where
        )
        xp, _ = backends.namespace_and_device(cs)
        check_fits("luminance_scalar", a, cs.dtype, xp)
        lum = gaussian_kernel(kernel_size, luminance_std, **where)
        #: channel 0 the centre-surround filter C, channel 1 the luminance Gaussian G
        self.filters = Conv2d(xp.stack([cs, lum])[:, None, ...], pad_mode=pad_mode, method=method)
        self.luminance_scalar = a
        self.activation = activation

    def __repr__(self) -> str:
        k = self.filters.weight.shape[-1]
        return (
            f"LuminanceGainControl(kernel {k}x{k}, a={self.luminance_scalar:g}, "
            f"pad_mode={self.filters.pad_mode!r}, activation={self.activation.name!r})"
        )

    def _check_input(self, x: Any) -> None:
        self.filters._check_input(x)
        # 1 + a G x in x's dtype: a float16 image takes a <= 65504
        check_fits("luminance_scalar", self.luminance_scalar, x.dtype, self.filters.xp)

    def _responses(self, v: Any) -> tuple[Any, Any]:
        """(C v, G v), from one two-channel correlation."""
        both = self.filters.apply_linear(v)
        return both[..., 0:1, :, :], both[..., 1:2, :, :]

    def _normalised(self, x: Any) -> tuple[Any, Any]:
        u, ell = self._responses(x)
        d = 1 + self.luminance_scalar * ell
        return u / d, d

    def _forward(self, x: Any) -> Any:
        z, _ = self._normalised(x)
        return self.activation.f(z)

    def _linearize(self, x: Any) -> Linearization:
        a, xp = self.luminance_scalar, self.filters.xp
        z, d = self._normalised(x)
        dphi = self.activation.fprime(z)
        hw = (x.shape[-2], x.shape[-1])

        def jvp(v: Any) -> Any:
            Cv, Gv = self._responses(v)
            return dphi * (Cv - a * z * Gv) / d

        def vjp(w: Any) -> Any:  # C^T (w~/d) - a G^T (w~ z/d): one adjoint of the pair
            w_d = dphi * w / d
            return self.filters.apply_adjoint(xp.concat([w_d, -a * w_d * z], axis=-3), hw)

        return Linearization(x, self.activation.f(z), jvp, vjp)


def _activation(activation: Any) -> Pointwise:
    """A :class:`Pointwise` model from a name of :data:`ACTIVATIONS` or the model itself."""
    if isinstance(activation, Pointwise):
        return activation
    if isinstance(activation, str):
        return Pointwise(check_choice("activation", activation, tuple(ACTIVATIONS)))
    raise TypeError(
        f"activation must be a name ({', '.join(map(repr, ACTIVATIONS))}) or a Pointwise "
        f"model, got {activation!r} ({type(activation).__name__})"
    )
