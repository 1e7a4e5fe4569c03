r"""Uniform samplers of :math:`L^p` balls, one independent draw per row (``param_ndim``).

Each function returns a new array shaped like ``x`` (same namespace, device and dtype) whose
rows are drawn uniformly from the ball :math:`\{\delta : \|\delta\|_p < \epsilon\}` of the
row's dimension ``D``. Rows are selected by ``param_ndim`` as in :mod:`refimpl.batching`
(None: the whole array is one row; ``p >= 0``: the last ``p`` dimensions; ``p < 0``: the
last ``x.ndim + p`` dimensions). ``x`` is only a template: its values are not read.

Random numbers come from ``rng`` (None, an int seed, a native generator or a
``backends.Rng``). On the torch backend with a ``torch.Generator`` the draws are the same
torch calls, in the same order and on the generator's device, as rai_toolbox 0.2.1's
in-place ``uniform_like_*_n_ball_``, so values and the final generator state are
bit-identical to the documented library (float32 and float64):

* L1: ``uniform_`` on (N, D), then ``uniform_(-1, 1)`` on (N, D) for the signs;
* L2: one ``normal_`` block of shape (N, D + 2);
* Linf: ``uniform_(-eps, eps)`` on ``x.shape`` (row-major; the torch front end handles the
  memory order of non-contiguous tensors).
"""

from __future__ import annotations

import math
from typing import Any

from backends import Rng, as_rng, ops
from refimpl.batching import batch_shape
from refimpl.validation import check_array, check_fits, check_real

__all__ = ["uniform_like_l1_n_ball", "uniform_like_l2_n_ball", "uniform_like_linf_n_ball"]


def _setup(
    x: Any, epsilon: float, param_ndim: int | None, rng: Any, *, complex_ok: bool = True
) -> tuple[Any, Any, float, tuple[int, int], Rng]:
    """Validate the common arguments: ``(xp, device, eps, (N, D), rng adapter)``."""
    xp, device = check_array(x, name="x", complex_ok=complex_ok)
    eps = check_real("epsilon", epsilon, low=0.0)
    check_fits("epsilon", eps, x.dtype, xp)
    n, *row = batch_shape(tuple(x.shape), param_ndim)  # ValueError if param_ndim is out of range
    return xp, device, eps, (n, math.prod(row)), as_rng(rng, like=x)


def _real_dtype(xp: Any, dtype: Any) -> Any:
    """The real dtype of a complex one (float32 for complex64); real dtypes unchanged."""
    if xp.isdtype(dtype, "complex floating"):
        return xp.float32 if dtype == xp.complex64 else xp.float64
    return dtype


def _complex(xp: Any, re: Any, im: Any, dtype: Any) -> Any:
    return xp.astype(re, dtype) + xp.astype(im, dtype) * 1j


def uniform_like_l1_n_ball(
    x: Any, epsilon: float = 1.0, param_ndim: int | None = -1, rng: Any = None
) -> Any:
    r"""Uniform draws from the :math:`L^1` ball of radius ``epsilon``, one per row of ``x``.

    Spacings construction (Devroye 1986, *Non-Uniform Random Variate Generation*, ch. V.2;
    also Rauber et al. 2020, Foolbox, and https://mathoverflow.net/a/9188): sort D uniforms
    :math:`u_{(1)} \le \dots \le u_{(D)}` of :math:`U[0, 1)` and take the first D spacings

    .. math:: z_i = u_{(i)} - u_{(i-1)}, \quad u_{(0)} = 0 .

    :math:`(z_1, \dots, z_D, 1 - u_{(D)})` is uniform on the D-simplex, so :math:`z` is
    uniform on the corner :math:`\{z \ge 0, \sum_i z_i < 1\}` and :math:`\sum_i z_i = u_{(D)} < 1`.
    Independent random signs :math:`s_i = \operatorname{sign}(w_i)`, :math:`w_i \sim U[-1, 1)`,
    reflect it into all :math:`2^D` orthants:

    .. math:: \delta = \epsilon \,(s \odot z), \qquad \|\delta\|_1 = \epsilon\, u_{(D)} < \epsilon .

    (``w_i == 0`` happens with probability :math:`2^{-24}` in float32 and leaves
    :math:`\delta_i = 0`, exactly as the documented library does.)

    Parameters
    ----------
    x : array, shape (..., )
        Template: the result has its shape, dtype (real floating), namespace and device.
    epsilon : float >= 0
        Radius of the ball (0: the degenerate ball {0}, all zeros).
    param_ndim : int | None
        Which sub-arrays are rows (default -1: ``x[i]`` are independent rows).
    rng : None | int | native generator | backends.Rng
        Source of randomness (see ``backends.rng``).

    Returns
    -------
    array shaped like ``x``.
    """
    xp, device, eps, (n, d), r = _setup(x, epsilon, param_ndim, rng, complex_ok=False)
    if d == 0:  # empty rows: nothing to draw (the documented library fails an assert)
        return xp.zeros(tuple(x.shape), dtype=x.dtype, device=device)
    u = r.uniform((n, d), dtype=x.dtype)
    v = xp.sort(u, axis=1, stable=False)  # the values (not the order) matter: no stable sort
    previous = xp.concat((xp.zeros((n, 1), dtype=x.dtype, device=device), v[:, : d - 1]), axis=1)
    z = v - previous
    signs = xp.sign(r.uniform((n, d), dtype=x.dtype, low=-1.0, high=1.0))
    return xp.reshape(eps * (signs * z), tuple(x.shape))


def uniform_like_l2_n_ball(
    x: Any, epsilon: float = 1.0, param_ndim: int | None = -1, rng: Any = None
) -> Any:
    r"""Uniform draws from the :math:`L^2` ball of radius ``epsilon``, one per row of ``x``.

    Voelker, Gosmann & Stewart (2017), *Efficiently sampling vectors and coordinates from the
    n-sphere and n-ball* (Centre for Theoretical Neuroscience, doi:10.13140/RG.2.2.15829.01767):
    a standard Gaussian :math:`g \in \mathbb{R}^{D+2}` normalised, :math:`g / \|g\|_2`, is
    uniform on the sphere :math:`S^{D+1}`; dropping two coordinates leaves a point uniform in
    the D-dimensional unit ball:

    .. math:: \delta = \epsilon \, \frac{(g_1, \dots, g_D)}{\|g\|_2},
              \qquad g \sim \mathcal{N}(0, I_{D+2}) .

    Parameters and result as for :func:`uniform_like_l1_n_ball`. The (N, D + 2) Gaussian block
    is drawn in one call (torch's vectorised normal sampler makes the values depend on the
    block size).

    Complex ``x``: :math:`\mathbb{C}^D` is :math:`\mathbb{R}^{2D}` with the same norm, so one
    Gaussian block of shape (N, 2D + 2) is normalised and its first 2D coordinates are the
    real and imaginary parts (the documented library drops two *complex* coordinates, i.e.
    four real ones, which is not uniform: its radius has CDF
    :math:`t^{2D}(D + 1 - D t^2)` rather than :math:`t^{2D}`).
    """
    xp, _, eps, (n, d), r = _setup(x, epsilon, param_ndim, rng)
    if xp.isdtype(x.dtype, "complex floating"):
        g = r.normal((n, 2 * d + 2), dtype=_real_dtype(xp, x.dtype))
        u = g / ops.vector_norm(g, axis=1, keepdims=True)
        z = _complex(xp, u[:, :d], u[:, d : 2 * d], x.dtype)
        return xp.reshape(eps * z, tuple(x.shape))
    g = r.normal((n, d + 2), dtype=x.dtype)
    norm = ops.vector_norm(g, axis=1, keepdims=True)
    return xp.reshape(eps * (g[:, :d] / norm), tuple(x.shape))


def uniform_like_linf_n_ball(
    x: Any, epsilon: float = 1.0, param_ndim: int | None = None, rng: Any = None
) -> Any:
    r"""Uniform draws from the :math:`L^\infty` ball (the cube) of radius ``epsilon``.

    The cube is a product of intervals, so every element is independent:

    .. math:: \delta_i \sim U[-\epsilon, \epsilon) .

    ``param_ndim`` does not change the distribution (a product of cubes is a cube); it is
    accepted for symmetry with the other samplers and validated (the documented library
    ignores it unchecked). The interval is half-open like ``Tensor.uniform_``: the value
    :math:`-\epsilon` itself is drawn with probability :math:`2^{-24}` (float32) per element.

    Complex ``x``: :math:`\|z\|_\infty = \max_i |z_i|`, so each entry is uniform in the
    disc of radius :math:`\epsilon`: :math:`z_i = \epsilon \sqrt{u_i}\, e^{2\pi i v_i}` with
    :math:`u, v \sim U[0, 1)` (the documented library draws the real and imaginary parts
    independently in :math:`[-\epsilon, \epsilon)`, a square whose corners are outside the
    ball). ``epsilon = 0`` gives zeros (after the same draws).
    """
    xp, _, eps, _, r = _setup(x, epsilon, param_ndim, rng)
    shape = tuple(x.shape)
    if xp.isdtype(x.dtype, "complex floating"):
        u = r.uniform((2, *shape), dtype=_real_dtype(xp, x.dtype))
        radius, angle = eps * xp.sqrt(u[0, ...]), (2 * math.pi) * u[1, ...]
        return _complex(xp, radius * xp.cos(angle), radius * xp.sin(angle), x.dtype)
    if eps == 0.0:
        return xp.zeros_like(r.uniform(shape, dtype=x.dtype, low=-1.0, high=1.0))
    return r.uniform(shape, dtype=x.dtype, low=-eps, high=eps)
