r"""Jacobian and Fisher matrices as linear operators built from the derivative protocol.

For a model :math:`f:\mathbb{R}^n\to\mathbb{R}^m` at a point :math:`x` (flattened in C
order):

* :class:`JacobianOperator`: :math:`J` (shape (m, n)): ``matvec`` :math:`Jv` (a JVP),
  ``rmatvec`` :math:`J^\top u` (a VJP), ``matmat``/``rmatmat`` for k vectors in one batched
  call;
* :class:`FisherOperator`: :math:`F = J^\top J` (shape (n, n), symmetric positive
  semidefinite), the Fisher information of :math:`f(x) + \varepsilon`,
  :math:`\varepsilon \sim \mathcal{N}(0, I)`;
* :func:`jacobian`: the dense :math:`J`, from batched JVPs (n columns) or VJPs (m rows),
  whichever is fewer, in chunks;
* :func:`aslinearoperator`: a ``scipy.sparse.linalg.LinearOperator`` for numpy and torch CPU
  arrays (zero-copy), for scipy's ``eigsh``/``svds``.

Every operator counts the vectors it has been applied to (``n_products``). See
``docs/jacobians.md``.
"""

from refimpl.linops.operators import (
    FisherOperator,
    JacobianOperator,
    aslinearoperator,
    jacobian,
)

__all__ = ["FisherOperator", "JacobianOperator", "aslinearoperator", "jacobian"]
