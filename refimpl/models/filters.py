r"""Filters of the early-vision models: a circular Gaussian and a difference of Gaussians.

Both are made from shapes only, so they use the current backend (``backends.use`` /
``set_default``), or ``backend=`` and ``device=``; ``dtype`` defaults to float64 (a model
casts its weights to the input's dtype on use) and may be any real floating dtype the backend
has, by name or as a dtype object (``"bfloat16"`` on torch and jax, ``"float16"`` where it
exists); any other dtype raises TypeError.

* :func:`gaussian_kernel`: :math:`g_{ij} \propto \exp(-(y_i^2 + x_j^2) / 2\sigma^2)` on
  offsets :math:`-(k-1)/2, \dots, (k-1)/2`, normalised to sum 1 (plenoptic's
  ``circular_gaussian2d``).
* :func:`center_surround`: :math:`a\,s\,(g_{\sigma_c} - g_{\sigma_s})` with amplitude ratio
  :math:`a` and sign :math:`s = \pm 1` (on- or off-centre). This is what plenoptic 2.1.1's
  ``CenterSurround`` computes; its docstring's ``a g_c - g_s`` normalised is not. The filter
  sums to 0: a uniform image gives no response.

Kernel sizes must be odd, so that the kernel has a centre pixel and "same" padding shifts
nothing (plenoptic accepts even sizes, which move the image by half a pixel).
"""

from __future__ import annotations

from typing import Any

import backends
from refimpl.validation import check_bool, check_dtype, check_fits, check_int, check_real

__all__ = ["center_surround", "gaussian_kernel"]


def _check_size(size: Any) -> int:
    size = check_int("kernel size", size)
    if size < 1 or size % 2 == 0:
        raise ValueError(
            f"kernel size must be a positive odd int (a kernel with a centre pixel), got {size}"
        )
    return int(size)


def _check_std(std: Any, name: str) -> float:
    return check_real(name, std, low=0.0, low_open=True)


def _offsets(size: int, std: float) -> list[float]:
    """The pixel offsets from the centre in standard deviations, clipped to [-64, 64]
    (``exp(-64^2 / 2)`` is 0 in every float format), computed in Python floats: a ``std``
    below the dtype's smallest number (1e-300 in float32) gives a delta, never 0 / 0."""
    return [max(-64.0, min(64.0, (i - (size - 1) / 2) / std)) for i in range(size)]


def gaussian_kernel(
    size: int, std: float, *, backend: Any = None, device: Any = None, dtype: Any = "float64"
) -> Any:
    """A ``(size, size)`` circular Gaussian summing to 1 (``size`` odd, ``std`` > 0)."""
    size, std = _check_size(size), _check_std(std, "std")
    adapter, dev = backends.resolve(backend, device)
    xp, dt = adapter.xp, check_dtype("dtype", dtype, adapter)
    r = xp.asarray(_offsets(size, std), dtype=dt, device=dev)
    g = xp.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / 2)  # the centre is exp(0) = 1: sum >= 1
    return g / xp.sum(g)


def center_surround(
    size: int,
    center_std: float = 1.0,
    surround_std: float = 4.0,
    amplitude_ratio: float = 1.25,
    on_center: bool = True,
    *,
    backend: Any = None,
    device: Any = None,
    dtype: Any = "float64",
) -> Any:
    """Difference of Gaussians ``amplitude_ratio * sign * (g_center - g_surround)``
    (``amplitude_ratio`` >= 1 and finite in ``dtype``)."""
    ratio = check_real("amplitude_ratio", amplitude_ratio, low=1.0)
    sign = 1.0 if check_bool("on_center", on_center) else -1.0
    adapter, dev = backends.resolve(backend, device)
    dt = check_dtype("dtype", dtype, adapter)
    check_fits("amplitude_ratio", ratio, dt, adapter.xp)  # |g_c - g_s| <= 1: the filter fits
    kw = dict(backend=adapter, device=dev, dtype=dt)
    center = gaussian_kernel(size, _check_std(center_std, "center_std"), **kw)
    surround = gaussian_kernel(size, _check_std(surround_std, "surround_std"), **kw)
    return (ratio * sign) * (center - surround)
