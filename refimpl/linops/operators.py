r"""Jacobian and Fisher operators (see the package docstring and ``docs/jacobians.md``)."""

from __future__ import annotations

import numbers
from typing import Any

from backends.linalg import as_scipy_linear_operator
from refimpl.models.base import linearize
from refimpl.validation import check_array, check_like, leading_batch

__all__ = ["FisherOperator", "JacobianOperator", "aslinearoperator", "jacobian"]

#: bytes of product vectors one chunk of ``jacobian`` may hold (tangents plus results)
CHUNK_BYTES = 64 * 2**20


def _check_block(a: Any, rows: int, ref: Any, *, name: str, block: bool) -> None:
    check_like(a, ref, name=name, ref_name="the operator's x")
    want = f"({rows}, k)" if block else f"({rows},)"
    if (block and (a.ndim != 2 or a.shape[0] != rows)) or (not block and tuple(a.shape) != (rows,)):
        raise ValueError(f"{name} must have shape {want}, got {tuple(a.shape)}")


class JacobianOperator:
    r"""The Jacobian :math:`J = \partial f / \partial x` of ``model`` at ``x``, shape (m, n).

    The model is linearized once (``model.linearize(x)`` where it exists); every product
    reuses that. Vectors are flat, in C order: ``matvec(v)`` takes ``(n,)`` and returns
    ``(m,)``; ``matmat(V)`` takes ``(n, k)`` and makes **one** batched JVP call for the k
    columns. A model whose products cannot take a batch axis sets ``batched = False``; its k
    products are then made one by one. A block of ``k = 0`` columns gives the empty
    ``(m, 0)`` (``(n, 0)`` for ``rmatmat``) without calling the model.

    Attributes: ``shape``, ``dtype``, ``x``, ``y`` (the model output at ``x``),
    ``n_jvp``/``n_vjp`` (vectors multiplied so far), ``n_products`` (their sum).
    """

    def __init__(self, model: Any, x: Any) -> None:
        self.xp, self.device = check_array(x, name="x")
        self.model = model
        self.linearization = linearize(model, x)
        self.x, self.y = x, self.linearization.y
        self.in_shape, self.out_shape = tuple(x.shape), tuple(self.y.shape)
        self.shape = (_size(self.out_shape), _size(self.in_shape))
        self.dtype = x.dtype
        self.batched = getattr(model, "batched", True) is not False
        self.n_jvp = self.n_vjp = 0

    @property
    def n_products(self) -> int:
        return self.n_jvp + self.n_vjp

    def __repr__(self) -> str:
        return f"<JacobianOperator {self.shape[0]}x{self.shape[1]} {self.dtype}>"

    # -- products on model-shaped arrays (leading batch axis allowed) -----------------------
    def _jvp(self, v: Any) -> Any:
        return self._apply(self.linearization.jvp_fn, v, self.in_shape, self.out_shape)

    def _vjp(self, u: Any) -> Any:
        return self._apply(self.linearization.vjp_fn, u, self.out_shape, self.in_shape)

    def _apply(self, fn: Any, a: Any, in_shape: tuple, out_shape: tuple) -> Any:
        xp = self.xp
        single = a.ndim == len(in_shape)
        if not single and a.shape[0] == 0:  # no vectors, no product (whatever the model takes)
            return xp.zeros((0, *out_shape), dtype=a.dtype, device=self.device)
        if single or self.batched:
            out = fn(a)
        else:
            out = xp.stack([fn(a[i, ...]) for i in range(a.shape[0])], axis=0)
        want = out_shape if single else (a.shape[0], *out_shape)
        if tuple(out.shape) != want:
            raise ValueError(
                f"the model's product returned shape {tuple(out.shape)}, expected {want}; the "
                "derivative protocol allows one leading batch axis on tangents and cotangents "
                "(set model.batched = False if the model cannot take one)"
            )
        return out

    # -- flat products (scipy's conventions) ----------------------------------------------
    def matvec(self, v: Any) -> Any:
        """:math:`J v`: ``(n,) -> (m,)``."""
        _check_block(v, self.shape[1], self.x, name="v", block=False)
        self.n_jvp += 1
        return self.xp.reshape(self._jvp(self.xp.reshape(v, self.in_shape)), (-1,))

    def matmat(self, V: Any) -> Any:
        """:math:`J V`: ``(n, k) -> (m, k)``, one batched JVP."""
        _check_block(V, self.shape[1], self.x, name="V", block=True)
        xp, k = self.xp, V.shape[1]
        self.n_jvp += k
        out = self._jvp(xp.reshape(xp.matrix_transpose(V), (k, *self.in_shape)))
        return xp.matrix_transpose(xp.reshape(out, (k, self.shape[0])))

    def rmatvec(self, u: Any) -> Any:
        r""":math:`J^\top u`: ``(m,) -> (n,)``."""
        _check_block(u, self.shape[0], self.x, name="u", block=False)
        self.n_vjp += 1
        return self.xp.reshape(self._vjp(self.xp.reshape(u, self.out_shape)), (-1,))

    def rmatmat(self, U: Any) -> Any:
        r""":math:`J^\top U`: ``(m, k) -> (n, k)``, one batched VJP."""
        _check_block(U, self.shape[0], self.x, name="U", block=True)
        xp, k = self.xp, U.shape[1]
        self.n_vjp += k
        out = self._vjp(xp.reshape(xp.matrix_transpose(U), (k, *self.out_shape)))
        return xp.matrix_transpose(xp.reshape(out, (k, self.shape[1])))


class FisherOperator:
    r"""The Fisher information matrix :math:`F = J^\top J` of ``model`` at ``x``, shape (n, n).

    :math:`F v = J^\top (J v)`: one JVP then one VJP, both from one linearization. For
    :math:`y = f(x) + \varepsilon`, :math:`\varepsilon \sim \mathcal{N}(0, I)`, this is the
    Fisher information of :math:`y` about :math:`x`. Symmetric positive semidefinite;
    ``rmatvec`` is ``matvec``. ``n_products`` counts Fisher products (vectors).
    """

    def __init__(self, model: Any, x: Any) -> None:
        self.jacobian = JacobianOperator(model, x)
        self.xp, self.x, self.y = self.jacobian.xp, x, self.jacobian.y
        n = self.jacobian.shape[1]
        self.shape, self.dtype = (n, n), x.dtype
        self.n_products = 0

    def __repr__(self) -> str:
        return f"<FisherOperator {self.shape[0]}x{self.shape[1]} {self.dtype}>"

    def apply(self, v: Any) -> Any:
        """:math:`F v` for ``v`` shaped like ``x``, or ``(k, *x.shape)`` (``k = 0`` gives the
        empty batch); ``v`` must be an array of ``x``'s library, device and dtype."""
        J = self.jacobian
        check_like(v, self.x, name="v", ref_name="the operator's x")
        k = leading_batch(v, J.in_shape, name="v", expected="x")
        return self._apply(v, k)

    def _apply(self, v: Any, k: int | None) -> Any:
        """``apply`` without the checks: ``v`` shaped like ``x`` (k None) or ``(k, *x.shape)``."""
        J = self.jacobian
        self.n_products += 1 if k is None else k
        return J._vjp(J._jvp(v))

    def matvec(self, v: Any) -> Any:
        """:math:`F v`: ``(n,) -> (n,)``."""
        _check_block(v, self.shape[0], self.x, name="v", block=False)
        xp = self.xp
        return xp.reshape(self._apply(xp.reshape(v, self.jacobian.in_shape), None), (-1,))

    def matmat(self, V: Any) -> Any:
        """:math:`F V`: ``(n, k) -> (n, k)``, one batched JVP and one batched VJP."""
        _check_block(V, self.shape[0], self.x, name="V", block=True)
        xp, k = self.xp, V.shape[1]
        out = self._apply(xp.reshape(xp.matrix_transpose(V), (k, *self.jacobian.in_shape)), k)
        return xp.matrix_transpose(xp.reshape(out, (k, self.shape[0])))

    rmatvec, rmatmat = matvec, matmat


def jacobian(model: Any, x: Any, *, chunk_size: int | None = None) -> Any:
    """The dense Jacobian ``(m, n)`` of ``model`` at ``x`` (flattened in C order).

    Built from batched JVPs of the unit vectors (n columns) when ``n <= m``, else from
    batched VJPs (m rows), ``chunk_size`` vectors per call (default: as many as fit in
    64 MiB of tangents and results).
    """
    J = x if isinstance(x, JacobianOperator) else JacobianOperator(model, x)
    xp, m, n = J.xp, J.shape[0], J.shape[1]
    count, other = (n, m) if n <= m else (m, n)
    if chunk_size is None:
        itemsize = xp.finfo(J.dtype).bits // 8
        chunk_size = max(1, min(count, CHUNK_BYTES // max(1, itemsize * (m + n))))
    elif isinstance(chunk_size, bool) or not isinstance(chunk_size, numbers.Integral):
        raise TypeError(f"chunk_size must be an int or None, got {chunk_size!r}")
    elif chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    blocks = []
    for start in range(0, count, chunk_size):
        c = min(chunk_size, count - start)
        eye = xp.eye(c, count, k=start, dtype=J.dtype, device=J.device)  # rows e_start..
        if n <= m:
            blocks.append(xp.reshape(J._jvp(xp.reshape(eye, (c, *J.in_shape))), (c, m)))
            J.n_jvp += c
        else:
            blocks.append(xp.reshape(J._vjp(xp.reshape(eye, (c, *J.out_shape))), (c, n)))
            J.n_vjp += c
    stacked = (
        xp.concat(blocks, axis=0)
        if blocks
        else xp.zeros((0, other), dtype=J.dtype, device=J.device)
    )
    return xp.matrix_transpose(stacked) if n <= m else stacked


def aslinearoperator(op: Any) -> Any:
    """A ``scipy.sparse.linalg.LinearOperator`` over a :class:`JacobianOperator` or
    :class:`FisherOperator` (numpy and torch CPU arrays, zero-copy; others raise TypeError)."""
    if not isinstance(op, JacobianOperator | FisherOperator):
        raise TypeError(
            f"op must be a JacobianOperator or a FisherOperator, got {type(op).__name__}"
        )
    return as_scipy_linear_operator(
        op.shape,
        like=op.x,
        matvec=op.matvec,
        rmatvec=op.rmatvec,
        matmat=op.matmat,
        rmatmat=op.rmatmat,
    )


def _size(shape: tuple[int, ...]) -> int:
    out = 1
    for s in shape:
        out *= int(s)
    return out
