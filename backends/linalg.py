"""The bridge from array-API linear operators to scipy's (and cupyx's) solvers.

scipy's ``LinearOperator``, ``eigsh`` and ``svds`` work on numpy arrays only. Two namespaces
reach them without a copy: numpy itself, and torch tensors on the CPU (``torch.from_numpy``
and ``Tensor.numpy`` share memory): :func:`host_bridge` is that one bridge. GPU arrays (cupy,
CUDA tensors) go to ``cupyx.scipy.sparse.linalg`` instead. Everything else
(array_api_strict's devices, say) is refused with an error: a device array is never copied to
the host silently.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import array_api_compat
import numpy as np

from backends.namespace import namespace_and_device

__all__ = ["as_scipy_linear_operator", "eigsh", "host_bridge"]


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


def _gpu_bridge(like: Any) -> tuple[Callable[[Any], Any], Callable[[Any], Any], np.dtype] | None:
    """The same for cupy arrays and CUDA tensors (DLPack views into cupy), else None."""
    xp, dev = namespace_and_device(like)
    np_dtype = np.dtype(str(like.dtype).rsplit(".", 1)[-1])
    if array_api_compat.is_cupy_namespace(xp):
        return (lambda a: a), (lambda a: a), np_dtype
    if array_api_compat.is_torch_namespace(xp) and getattr(dev, "type", None) == "cuda":
        import cupy
        import torch

        return torch.from_dlpack, (lambda t: cupy.from_dlpack(t.detach())), np_dtype
    return None


def _refuse(like: Any, what: str) -> TypeError:
    xp, dev = namespace_and_device(like)
    return TypeError(
        f"{what} works on host numpy arrays; arrays of {xp.__name__} on {dev!r} are never "
        "copied to the host silently. Use numpy or torch CPU arrays, or the array-API solvers "
        "of refimpl (power, randomized SVD, Krylov-Schur)"
    )


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
        raise _refuse(like, "scipy's LinearOperator")
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


def eigsh(
    matvec: Callable[[Any], Any],
    n: int,
    k: int,
    *,
    like: Any,
    which: str = "LA",
    seed: int = 0,
    tol: float = 0.0,
    maxiter: int | None = None,
) -> tuple[Any, Any]:
    """``k`` eigenpairs of a symmetric operator given only ``matvec`` (Lanczos, ARPACK).

    ``matvec`` maps arrays of ``like``'s namespace and device shaped ``(n,)`` or ``(n, m)``
    to arrays of the same shape. ``which``: ``"LA"`` largest or ``"SA"`` smallest algebraic,
    ``"LM"`` largest magnitude. Returns ``(w, V)`` ascending, as arrays of ``like``'s
    namespace and device. The start vector comes from ``seed`` (reproducible).

    Dispatch: numpy and torch CPU tensors go to ``scipy.sparse.linalg.eigsh`` through
    :func:`host_bridge`; cupy arrays and CUDA tensors to ``cupyx.scipy.sparse.linalg.eigsh``.
    Other namespaces raise NotImplementedError: a device array is never copied to the host
    silently.
    """
    xp, dev = namespace_and_device(like)
    if which not in ("LA", "SA", "LM"):
        raise ValueError(f"which must be one of 'LA', 'SA', 'LM', got {which!r}")
    if not 1 <= k < n:
        raise ValueError(f"k must satisfy 1 <= k < n={n} for Lanczos, got {k}")
    v0 = np.random.default_rng(seed).standard_normal(n)
    bridge = host_bridge(like)
    if bridge is not None:
        from scipy.sparse.linalg import eigsh as solve

        op = as_scipy_linear_operator((n, n), like=like, matvec=matvec, matmat=matvec)
        to_x, _, np_dtype = bridge
        w, V = solve(op, k=k, which=which, v0=v0.astype(np_dtype), tol=tol, maxiter=maxiter)
        return xp.asarray(to_x(w.astype(np_dtype))), xp.asarray(to_x(V.astype(np_dtype)))
    bridge = _gpu_bridge(like)
    if bridge is not None:
        import cupy
        from cupyx.scipy.sparse.linalg import LinearOperator
        from cupyx.scipy.sparse.linalg import eigsh as solve

        to_x, from_x, np_dtype = bridge
        op = LinearOperator((n, n), dtype=np_dtype, matvec=lambda v: from_x(matvec(to_x(v))))
        v0 = cupy.asarray(v0.astype(np_dtype))
        w, V = solve(op, k=k, which=which, v0=v0, tol=tol, maxiter=maxiter)
        return to_x(w), to_x(V)
    raise NotImplementedError(
        f"eigsh has no Lanczos route for arrays of {xp.__name__} on {dev!r}; "
        "use a block method written in the standard (power / randomized SVD) instead"
    )
