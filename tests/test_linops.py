"""refimpl.linops: Jacobian and Fisher operators, the dense Jacobian, the scipy bridge."""

from __future__ import annotations

import numpy as np
import pytest

from refimpl import models as rm
from refimpl.linops import FisherOperator, JacobianOperator, aslinearoperator, jacobian
from tests.conftest import tol
from tests.test_models import arr, build, inputs

SMALL = ["linear", "conv-circular-fft-stride2", "conv-constant-direct-stride3", "lgc", "sequential"]


@pytest.mark.parametrize("name", SMALL)
def test_operator_products_agree_with_the_dense_jacobian(backend, dtype, name):
    model, shape, lo, hi = build(name, backend)
    _, x = inputs(backend, dtype, shape, lo, hi)
    J = JacobianOperator(model, x)
    m, n = J.shape
    assert (m, n) == (int(np.prod(J.out_shape)), int(np.prod(shape)))
    Jd = jacobian(model, x)
    backend.assert_same_place(Jd, dtype)
    assert tuple(Jd.shape) == (m, n)
    Jn = backend.to_numpy(Jd).astype(np.float64)
    r = np.random.default_rng(0)
    V, U = r.standard_normal((n, 4)), r.standard_normal((m, 3))
    t = tol(backend.dtype_name(dtype))
    t = dict(rtol=t["rtol"] * 50, atol=t["atol"] * 50 * max(1, np.abs(Jn).max()))
    JV = J.matmat(arr(backend, V, dtype))
    backend.assert_same_place(JV, dtype)
    np.testing.assert_allclose(backend.to_numpy(JV), Jn @ V, **t)
    np.testing.assert_allclose(backend.to_numpy(J.rmatmat(arr(backend, U, dtype))), Jn.T @ U, **t)
    for i in range(V.shape[1]):
        np.testing.assert_allclose(
            backend.to_numpy(J.matvec(arr(backend, V[:, i], dtype))), Jn @ V[:, i], **t
        )
    np.testing.assert_allclose(
        backend.to_numpy(J.rmatvec(arr(backend, U[:, 0], dtype))), Jn.T @ U[:, 0], **t
    )
    assert (J.n_jvp, J.n_vjp, J.n_products) == (4 + 4, 3 + 1, 12)


@pytest.mark.parametrize("chunk_size", [1, 4, None])
def test_jacobian_is_independent_of_side_and_chunk(backend, dtype, chunk_size):
    """n < m (JVP columns) and n > m (VJP rows) give the same matrix as the other side."""
    for name in ("linear", "conv-circular-fft-stride2"):  # m < n for both
        model, shape, lo, hi = build(name, backend)
        _, x = inputs(backend, dtype, shape, lo, hi)
        J = JacobianOperator(model, x)
        by_rows = backend.to_numpy(jacobian(model, x, chunk_size=chunk_size))
        assert J.shape[0] < J.shape[1] and by_rows.shape == J.shape
        cols = [
            backend.to_numpy(J.matvec(arr(backend, np.eye(J.shape[1])[j], dtype)))
            for j in range(J.shape[1])
        ]
        np.testing.assert_allclose(
            by_rows, np.stack(cols, axis=1), **tol(backend.dtype_name(dtype))
        )
    model = rm.Pointwise("tanh")  # m == n: columns by JVPs
    _, x = inputs(backend, dtype, (2, 3), -1, 1)
    d = backend.to_numpy(jacobian(model, x, chunk_size=chunk_size))
    np.testing.assert_allclose(
        d, np.diag(1 - np.tanh(backend.to_numpy(x).astype(np.float64)).ravel() ** 2), rtol=1e-5
    )


def test_jacobian_of_linear_is_its_weight(backend, dtype):
    w = np.random.default_rng(3).standard_normal((4, 6))
    model = rm.Linear(arr(backend, w, dtype))
    x = arr(backend, np.ones((2, 6)), dtype)
    np.testing.assert_allclose(
        backend.to_numpy(jacobian(model, x)), np.kron(np.eye(2), w), rtol=1e-6, atol=1e-6
    )


@pytest.mark.parametrize("name", SMALL)
def test_fisher_is_symmetric_psd_and_equals_jtj(backend, dtype, name):
    model, shape, lo, hi = build(name, backend)
    _, x = inputs(backend, dtype, shape, lo, hi)
    F = FisherOperator(model, x)
    n = F.shape[0]
    Jn = backend.to_numpy(jacobian(model, x)).astype(np.float64)
    Fd = Jn.T @ Jn
    r = np.random.default_rng(1)
    A = r.standard_normal((n, 5))
    FA = backend.to_numpy(F.matmat(arr(backend, A, dtype))).astype(np.float64)
    scale = max(np.abs(Fd).max(), 1e-30)
    atol = (1e-4 if backend.dtype_name(dtype) == "float32" else 1e-11) * scale * np.sqrt(n)
    np.testing.assert_allclose(FA, Fd @ A, rtol=1e-4, atol=atol)
    sym = A.T @ FA  # <a_i, F a_j>
    np.testing.assert_allclose(sym, sym.T, atol=atol * np.abs(A).sum())
    assert np.all(np.diag(sym) >= -atol * np.abs(A).sum())
    fa0 = backend.to_numpy(F.matvec(arr(backend, A[:, 0], dtype)))
    np.testing.assert_allclose(fa0, FA[:, 0], rtol=1e-4, atol=atol)
    assert F.n_products == 6
    assert np.linalg.eigvalsh(Fd).min() >= -1e-10 * scale


@pytest.mark.parametrize("name", ["lgc", "sequential"])
def test_aslinearoperator_feeds_scipy_eigsh(backend, name):
    """numpy and torch CPU: scipy's eigsh on the Fisher operator finds the top eigenvalues of
    J^T J; any other array is refused instead of being copied to the host."""
    from scipy.sparse.linalg import eigsh

    dtype = backend.dtype("float64")
    model, shape, lo, hi = build(name, backend)
    _, x = inputs(backend, dtype, shape, lo, hi)
    F = FisherOperator(model, x)
    if backend.name not in ("numpy", "torch") or str(backend.device) != "cpu":
        with pytest.raises(TypeError, match="never copied to the host"):
            aslinearoperator(F)
        return
    Jn = backend.to_numpy(jacobian(model, x))
    ref = np.linalg.eigvalsh(Jn.T @ Jn)[::-1][:3]
    op = aslinearoperator(F)
    w = eigsh(op, k=3, which="LA", v0=np.ones(F.shape[0]), return_eigenvectors=False)
    np.testing.assert_allclose(np.sort(w)[::-1], ref, rtol=1e-8)
    assert F.n_products > 0
    Jop = aslinearoperator(JacobianOperator(model, x))
    u = np.random.default_rng(0).standard_normal(Jop.shape[0])
    np.testing.assert_allclose(Jop.rmatvec(u), Jn.T @ u, rtol=1e-10, atol=1e-12)


# -- any object with the protocol ----------------------------------------------------------------
class Cube:
    """A user's model with only __call__, jvp and vjp (no linearize): y = x^3."""

    def __call__(self, x):
        return x * x * x

    def jvp(self, x, v):
        return 3 * x * x * v

    def vjp(self, x, u):
        return 3 * x * x * u


class CubeOneVector(Cube):
    """Products on one vector at a time only: declares ``batched = False``."""

    batched = False

    def jvp(self, x, v):
        assert v.shape == x.shape
        return super().jvp(x, v)

    def vjp(self, x, u):
        assert u.shape == x.shape
        return super().vjp(x, u)


@pytest.mark.parametrize("cls", [Cube, CubeOneVector])
def test_user_class_with_the_protocol(backend, dtype, cls):
    a, x = inputs(backend, dtype, (3, 2), 0.5, 2.0)
    F = FisherOperator(cls(), x)
    V = np.random.default_rng(0).standard_normal((6, 2))
    got = backend.to_numpy(F.matmat(arr(backend, V, dtype)))
    np.testing.assert_allclose(got, (9 * a.ravel() ** 4)[:, None] * V, rtol=1e-5)


def test_objects_without_the_protocol_are_rejected(backend, dtype):
    _, x = inputs(backend, dtype, (3,), 0, 1)

    class NoVjp:
        def __call__(self, x):
            return x

        def jvp(self, x, v):
            return v

    with pytest.raises(TypeError, match="derivative protocol.*lacks vjp"):
        JacobianOperator(NoVjp(), x)
    with pytest.raises(TypeError, match="lacks __call__"):
        JacobianOperator(object(), x)


def test_products_check_their_arguments(backend, dtype):
    model, shape, lo, hi = build("lgc", backend)
    _, x = inputs(backend, dtype, shape, lo, hi)
    J, F = JacobianOperator(model, x), FisherOperator(model, x)
    n = J.shape[1]
    with pytest.raises(ValueError, match=rf"v must have shape \({n},\)"):
        J.matvec(arr(backend, np.ones(n + 1), dtype))
    with pytest.raises(ValueError, match=rf"V must have shape \({n}, k\)"):
        F.matmat(arr(backend, np.ones(n), dtype))
    with pytest.raises(ValueError, match=r"U must have shape"):
        J.rmatmat(arr(backend, np.ones((n + 3, 2)), dtype))
    other = backend.dtype("float64" if backend.dtype_name(dtype) == "float32" else "float32")
    with pytest.raises(TypeError, match="dtype"):
        F.matvec(arr(backend, np.ones(n), other))
    if backend.name != "numpy":
        with pytest.raises(TypeError, match="the operator's x a .*use arrays of one library"):
            J.matvec(np.ones(n, dtype=backend.dtype_name(dtype)))
    with pytest.raises(ValueError, match="chunk_size must be >= 1"):
        jacobian(model, x, chunk_size=0)
    with pytest.raises(TypeError, match="chunk_size must be an int"):
        jacobian(model, x, chunk_size=2.0)
    with pytest.raises(TypeError, match="JacobianOperator or a FisherOperator"):
        aslinearoperator(model)


# -- bad input: empty blocks, FisherOperator.apply ------------------------------------------------
@pytest.mark.parametrize("name", ["linear", "conv-circular-fft-stride2", "sequential"])
def test_blocks_of_zero_columns_give_empty_results(backend, dtype, name):
    """k = 0 columns: matmat and rmatmat return (m, 0) and (n, 0), FisherOperator.apply a
    (0, *x.shape) batch, and nothing is counted."""
    model, shape, lo, hi = build(name, backend)
    _, x = inputs(backend, dtype, shape, lo, hi)
    J, F = JacobianOperator(model, x), FisherOperator(model, x)
    m, n = J.shape
    xp = backend.xp
    empty = lambda *s: xp.zeros(s, dtype=dtype, device=backend.device)  # noqa: E731
    for got, want in (
        (J.matmat(empty(n, 0)), (m, 0)),
        (J.rmatmat(empty(m, 0)), (n, 0)),
        (F.matmat(empty(n, 0)), (n, 0)),
        (F.apply(empty(0, *shape)), (0, *shape)),
    ):
        assert tuple(got.shape) == want
        backend.assert_same_place(got, dtype)
    assert J.n_products == F.n_products == 0
    one = JacobianOperator(CubeOneVector(), inputs(backend, dtype, (3, 2), 0.5, 2.0)[1])
    assert tuple(one.matmat(empty(6, 0)).shape) == tuple(one.rmatmat(empty(6, 0)).shape) == (6, 0)


def test_fisher_apply_checks_its_argument(backend, dtype):
    """apply(v) checks v as matvec and matmat do, before any product: an array of x's
    library, device and dtype, shaped like x with an optional leading batch axis."""
    model, shape, lo, hi = build("lgc", backend)
    _, x = inputs(backend, dtype, shape, lo, hi)
    F = FisherOperator(model, x)
    with pytest.raises(TypeError, match="v must be an array, got list"):
        F.apply(backend.to_numpy(x).tolist())
    for bad in ((1, 1, 11, 11), (1, 1, 11 * 10), (2, 2, *shape)):
        with pytest.raises(ValueError, match=r"v must have the shape of x \(1, 1, 11, 10\)"):
            F.apply(arr(backend, np.ones(bad), dtype))
    other = backend.dtype("float64" if backend.dtype_name(dtype) == "float32" else "float32")
    with pytest.raises(TypeError, match="v has dtype"):
        F.apply(arr(backend, np.ones(shape), other))
    if backend.name != "numpy":
        with pytest.raises(TypeError, match="use arrays of one library"):
            F.apply(np.ones(shape, dtype=backend.dtype_name(dtype)))
    assert F.n_products == 0
