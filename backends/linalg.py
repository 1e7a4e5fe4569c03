"""The bridge from array-API linear operators to scipy's host solvers.

scipy's ``LinearOperator``, ``eigsh`` and ``svds`` work on numpy arrays only. Two namespaces
reach them without a copy: numpy itself, and torch tensors on the CPU (``torch.from_numpy``
and ``Tensor.numpy`` share memory). Everything else (GPU tensors, cupy, array_api_strict's
devices) is refused with an error: a device array is never copied to the host silently
(DESIGN.md, conventions).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import array_api_compat
import numpy as np

from backends._namespace import namespace_and_device

__all__ = ["as_scipy_linear_operator", "host_bridge"]


def host_bridge(like: Any) -> tuple[Callable[[Any], Any], Callable[[Any], Any], np.dtype] | None:
    """``(to_native, to_numpy, numpy_dtype)`` for arrays like ``like`` when they can be viewed
    as numpy arrays without a copy (numpy, torch CPU), else None."""
    xp, dev = namespace_and_device(like)
    if array_api_compat.is_numpy_namespace(xp):
        return (lambda a: a), (lambda a: np.asarray(a)), np.dtype(like.dtype)
    if array_api_compat.is_torch_namespace(xp) and getattr(dev, "type", None) == "cpu":
        import torch

        np_dtype = torch.empty((), dtype=like.dtype).numpy().dtype
        return (
            lambda a: torch.from_numpy(np.ascontiguousarray(a)),
            lambda t: t.detach().numpy(),
            np_dtype,
        )
    return None


def as_scipy_linear_operator(
    shape: tuple[int, int],
    *,
    like: Any,
    matvec: Callable[[Any], Any],
    rmatvec: Callable[[Any], Any] | None = None,
    matmat: Callable[[Any], Any] | None = None,
    rmatmat: Callable[[Any], Any] | None = None,
) -> Any:
    """A ``scipy.sparse.linalg.LinearOperator`` over products on arrays like ``like``.

    The callables take and return arrays of ``like``'s namespace: vectors ``(n,)`` and blocks
    ``(n, k)``. numpy and torch CPU only (zero-copy views); other arrays raise TypeError.
    """
    from scipy.sparse.linalg import LinearOperator

    bridge = host_bridge(like)
    if bridge is None:
        xp, dev = namespace_and_device(like)
        raise TypeError(
            f"scipy's LinearOperator works on host numpy arrays; arrays of {xp.__name__} on "
            f"{dev!r} are never copied to the host silently. Use numpy or torch CPU arrays, or "
            "the array-API solvers of refimpl (power, randomized SVD, block Krylov)"
        )
    to_x, from_x, np_dtype = bridge
    m, n = shape

    def wrap(fn: Callable[[Any], Any] | None, size: int, block: bool) -> Any:
        if fn is None:
            return None

        def call(a: np.ndarray) -> np.ndarray:
            a = np.asarray(a, dtype=np_dtype)
            a = a.reshape(size, -1) if block else a.reshape(size)
            return from_x(fn(to_x(a)))

        return call

    return LinearOperator(
        (m, n),
        dtype=np_dtype,
        matvec=wrap(matvec, n, False),
        rmatvec=wrap(rmatvec, m, False),
        matmat=wrap(matmat, n, True),
        rmatmat=wrap(rmatmat, m, True),
    )
