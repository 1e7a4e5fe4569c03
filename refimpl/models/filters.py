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

import math
import numbers
from typing import Any

import backends
from refimpl.validation import check_dtype, check_int, check_real

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


def gaussian_kernel(
    size: int, std: float, *, backend: Any = None, device: Any = None, dtype: Any = "float64"
) -> Any:
    """A ``(size, size)`` circular Gaussian summing to 1 (``size`` odd, ``std`` > 0)."""
    size, std = _check_size(size), _check_std(std, "std")
    adapter, dev = backends.resolve(backend, device)
    xp, dt = adapter.xp, check_dtype("dtype", dtype, adapter)
    r = (xp.arange(size, dtype=dt, device=dev) - (size - 1) / 2) / std  # offsets in stds
    r = xp.clip(r, -64.0, 64.0)  # exp(-64^2 / 2) is 0 in every float format: no overflow
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
    """Difference of Gaussians ``amplitude_ratio * sign * (g_center - g_surround)``."""
    if isinstance(amplitude_ratio, bool) or not isinstance(amplitude_ratio, numbers.Real):
        raise TypeError(f"amplitude_ratio must be a real number, got {amplitude_ratio!r}")
    if not (math.isfinite(float(amplitude_ratio)) and amplitude_ratio >= 1):
        raise ValueError(f"amplitude_ratio must be a finite number >= 1, got {amplitude_ratio!r}")
    if not isinstance(on_center, bool):
        raise TypeError(f"on_center must be a bool, got {on_center!r}")
    kw = dict(backend=backend, device=device, dtype=dtype)
    center = gaussian_kernel(size, _check_std(center_std, "center_std"), **kw)
    surround = gaussian_kernel(size, _check_std(surround_std, "surround_std"), **kw)
    sign = 1.0 if on_center else -1.0
    return (float(amplitude_ratio) * sign) * (center - surround)
