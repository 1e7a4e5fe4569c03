"""refimpl.attr's Saliency, InputXGradient, IntegratedGradients and quadrature rules, on every
backend: values against analytic float64 gradients, completeness, exact rules, targets,
tuple inputs, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from backends import namespace_and_device
from refimpl import attr as ra
from refimpl import models as rm
from tests.conftest import tol

RNG = np.random.default_rng(0)
W1 = RNG.standard_normal((4, 5)) * 0.8
W2 = RNG.standard_normal((3, 4))
WL, BL = RNG.standard_normal((3, 5)), RNG.standard_normal(3)
X = RNG.standard_normal((3, 5))


def mlp(backend, dtype):
    a = lambda w: backend.asarray(w, dtype=dtype)  # noqa: E731
    return rm.Sequential(rm.Linear(a(W1)), rm.Pointwise("tanh"), rm.Linear(a(W2)))


def mlp_grad(x: np.ndarray, targets) -> np.ndarray:
    """float64 d f_t / dx of the tanh MLP, one row per example."""
    h = np.tanh(x @ W1.T)
    return np.stack([W1.T @ ((1 - h[b] ** 2) * W2[t]) for b, t in enumerate(targets)])


def mlp_out(x: np.ndarray) -> np.ndarray:
    return np.tanh(x @ W1.T) @ W2.T


def name(backend, dtype) -> str:
    return backend.dtype_name(dtype)


@pytest.mark.parametrize(
    "target, rows",
    [(1, [1, 1, 1]), ([0, 2, 1], [0, 2, 1]), ((2,), [2, 2, 2]), ("array", [2, 0, 1])],
)
def test_saliency_is_the_gradient_of_the_target(backend, dtype, target, rows):
    x = backend.asarray(X, dtype=dtype)
    if target == "array":
        target = backend.asarray(rows, dtype="int64")
    ref = mlp_grad(X, rows)
    signed = ra.Saliency(mlp(backend, dtype), abs=False).attribute(x, target=target)
    backend.assert_same_place(signed, dtype)
    np.testing.assert_allclose(backend.to_numpy(signed), ref, **tol(name(backend, dtype)))
    absolute = ra.Saliency(mlp(backend, dtype)).attribute(x, target=target)  # captum default
    np.testing.assert_allclose(backend.to_numpy(absolute), np.abs(ref), **tol(name(backend, dtype)))
    override = ra.Saliency(mlp(backend, dtype)).attribute(x, target=target, abs=False)
    np.testing.assert_array_equal(backend.to_numpy(override), backend.to_numpy(signed))


def test_input_x_gradient(backend, dtype):
    x = backend.asarray(X, dtype=dtype)
    ixg = ra.InputXGradient(mlp(backend, dtype))
    out = ixg.attribute(x, target=[1, 0, 2])
    backend.assert_same_place(out, dtype)
    ref = X * mlp_grad(X, [1, 0, 2])
    np.testing.assert_allclose(backend.to_numpy(out), ref, **tol(name(backend, dtype)))
    assert ixg.multiplies_by_inputs and not ra.Saliency(mlp(backend, dtype)).multiplies_by_inputs
    assert not ixg.has_convergence_delta()


@pytest.mark.parametrize("method", ra.METHODS)
def test_integrated_gradients_of_a_linear_model_is_exact(backend, dtype, method):
    """f = W x + b: IG = (x - x') W[t] with every rule (weights sum to 1), delta = 0."""
    model = rm.Linear(backend.asarray(WL, dtype=dtype), backend.asarray(BL, dtype=dtype))
    x = backend.asarray(X, dtype=dtype)
    base = RNG.standard_normal((1, 5))
    ig = ra.IntegratedGradients(model, method=method, n_steps=7)
    out, delta = ig.attribute(
        x, baselines=backend.asarray(base, dtype=dtype), target=[2, 1, 0],
        return_convergence_delta=True,
    )  # fmt: skip
    backend.assert_same_place(out, dtype)
    t = tol(name(backend, dtype))
    np.testing.assert_allclose(backend.to_numpy(out), (X - base) * WL[[2, 1, 0]], **t)
    np.testing.assert_allclose(backend.to_numpy(delta), 0, atol=50 * t["atol"])
    assert tuple(delta.shape) == (3,)


def test_integrated_gradients_completeness_and_options(backend, dtype):
    """Gauss-Legendre IG of a smooth MLP: sum IG = f(x) - f(x') up to the quadrature error;
    baselines as a number, (1, n) or (B, n) array; internal batching changes nothing;
    multiply_by_inputs=False leaves out (x - x')."""
    x = backend.asarray(X, dtype=dtype)
    model = mlp(backend, dtype)
    ig = ra.IntegratedGradients(model)
    t = tol(name(backend, dtype))
    for base_np, base in [
        (np.zeros((1, 5)), None),
        (np.full((1, 5), 0.5), 0.5),
        (np.full((1, 5), -0.25), backend.asarray(np.full((1, 5), -0.25), dtype=dtype)),
        (X[::-1] * 0.3, backend.asarray(X[::-1] * 0.3, dtype=dtype)),
    ]:
        out, delta = ig.attribute(x, baselines=base, target=1, return_convergence_delta=True)
        gap = mlp_out(X)[:, 1] - mlp_out(np.broadcast_to(base_np, X.shape))[:, 1]
        np.testing.assert_allclose(backend.to_numpy(out).sum(axis=1), gap, rtol=1e-4, atol=1e-5)
        assert np.abs(backend.to_numpy(delta)).max() < (1e-9 if t["rtol"] < 1e-6 else 1e-4)
    full = backend.to_numpy(ig.attribute(x, target=[0, 1, 2], n_steps=13))
    for rows in (3, 4, 7, 100):
        part = ig.attribute(x, target=[0, 1, 2], n_steps=13, internal_batch_size=rows)
        np.testing.assert_allclose(backend.to_numpy(part), full, **t)
    local = ra.IntegratedGradients(model, multiply_by_inputs=False)
    assert not local.multiplies_by_inputs and local.has_convergence_delta()
    np.testing.assert_allclose(
        backend.to_numpy(local.attribute(x, target=[0, 1, 2], n_steps=13)) * X, full, **t
    )


def test_integrated_gradients_matches_a_float64_quadrature(backend):
    """The path, nodes and weights: IG equals a direct numpy evaluation of sum_s w_s grad."""
    x = backend.asarray(X, dtype="float64")
    for method in ra.METHODS:
        alphas, weights = ra.quadrature(method, 6)
        ref = sum(w * mlp_grad(a * X, [1, 1, 1]) for a, w in zip(alphas, weights)) * X
        out = ra.IntegratedGradients(mlp(backend, "float64")).attribute(
            x, target=1, method=method, n_steps=6
        )
        np.testing.assert_allclose(backend.to_numpy(out), ref, rtol=1e-12, atol=1e-14)


# -- quadrature ----------------------------------------------------------------------------
@pytest.mark.parametrize("n", [1, 2, 3, 7, 50, 64])
def test_gauss_legendre_matches_numpy(n):
    nodes, weights = ra.gauss_legendre(n)
    x, w = np.polynomial.legendre.leggauss(n)
    np.testing.assert_allclose(nodes, 0.5 * (1 + x), rtol=0, atol=1e-15)
    np.testing.assert_allclose(weights, 0.5 * w, rtol=3e-12, atol=0)  # numpy: ~1e-12 off


@given(n=st.integers(1, 30), seed=st.integers(0, 2**31))
def test_gauss_legendre_is_exact_up_to_degree_2n_minus_1(n, seed):
    c = np.random.default_rng(seed).standard_normal(2 * n)  # degree 2n - 1
    nodes, weights = ra.quadrature("gausslegendre", n)
    approx = sum(w * np.polyval(c, a) for a, w in zip(nodes, weights))
    exact = np.polyval(np.polyint(c), 1.0) - np.polyval(np.polyint(c), 0.0)
    assert abs(approx - exact) <= 1e-12 * (1 + np.abs(c).sum())


@pytest.mark.parametrize("method", ra.METHODS)
def test_rules_weights_sum_to_one_and_integrate_lines(method):
    for n in (2, 3, 10):
        alphas, weights = ra.quadrature(method, n)
        assert abs(sum(weights) - 1) < 1e-14 and all(0 <= a <= 1 for a in alphas)
        exact_for_lines = method in ("gausslegendre", "riemann_middle", "riemann_trapezoid")
        line = sum(w * (3 * a + 1) for a, w in zip(alphas, weights))  # integral = 2.5
        assert (abs(line - 2.5) < 1e-14) == exact_for_lines


def test_quadrature_rejects_bad_arguments():
    with pytest.raises(ValueError, match="method must be one of"):
        ra.quadrature("simpson", 5)
    with pytest.raises(ValueError, match="n_steps must be an int >= 2"):
        ra.quadrature("riemann_trapezoid", 1)
    with pytest.raises(TypeError, match="n_steps must be an int"):
        ra.quadrature("gausslegendre", 2.5)
    with pytest.raises(ValueError, match="n_steps must be an int >= 1"):
        ra.IntegratedGradients(lambda x: x, n_steps=0)


# -- several inputs, extra arguments -------------------------------------------------------
class TwoInputs:
    """f((x1, x2), scale) = scale * (sum a x1 + sum x2^2): gradients (scale a, 2 scale x2)."""

    def __init__(self, a):
        self.a = a

    def __call__(self, x, scale=1.0):
        xp, _ = namespace_and_device(*x)
        x1, x2 = x
        sq = xp.reshape(x2 * x2, (x2.shape[0], -1))
        return scale * (xp.sum(self.a * x1, axis=1) + xp.sum(sq, axis=1))

    def vjp(self, x, u, scale=1.0):
        x1, x2 = x
        return (
            scale * self.a * u[:, None] + 0 * x1,
            scale * 2 * x2 * u[:, None, None],
        )


def test_tuple_inputs_and_additional_forward_args(backend, dtype):
    a = RNG.standard_normal(3)
    x1, x2 = RNG.standard_normal((2, 3)), RNG.standard_normal((2, 2, 2))
    xs = (backend.asarray(x1, dtype=dtype), backend.asarray(x2, dtype=dtype))
    model = TwoInputs(backend.asarray(a, dtype=dtype))
    g1, g2 = ra.Saliency(model, abs=False).attribute(xs, additional_forward_args=2.0)
    backend.assert_same_place(g1, dtype)
    t = tol(name(backend, dtype))
    np.testing.assert_allclose(backend.to_numpy(g1), np.broadcast_to(2 * a, (2, 3)), **t)
    np.testing.assert_allclose(backend.to_numpy(g2), 4 * x2, **t)
    out = ra.InputXGradient(model).attribute(xs)
    assert isinstance(out, tuple) and len(out) == 2
    one = ra.Saliency(mlp(backend, dtype)).attribute((backend.asarray(X, dtype=dtype),), target=0)
    assert isinstance(one, tuple) and len(one) == 1  # a 1-tuple stays a tuple
    ig, delta = ra.IntegratedGradients(model).attribute(
        xs, baselines=(0.0, 0.0), additional_forward_args=(2.0,), return_convergence_delta=True
    )
    np.testing.assert_allclose(backend.to_numpy(delta), 0, atol=1e-4)
    np.testing.assert_allclose(backend.to_numpy(ig[0]), 2 * a * x1, **t)


def test_compute_convergence_delta_is_the_attribute_delta(backend, dtype):
    """compute_convergence_delta (captum's) gives the delta attribute returns, bit for bit, for
    any internal_batch_size and baseline form; for Saliency it is sum(grad) - (f(x) - f(0))."""
    x = backend.asarray(X, dtype=dtype)
    model = mlp(backend, dtype)
    ig = ra.IntegratedGradients(model)
    for base in (None, 0.5, backend.asarray(X[::-1] * 0.3, dtype=dtype)):
        for rows in (None, 4, 7):
            out, delta = ig.attribute(
                x, base, [0, 2, 1], n_steps=9, internal_batch_size=rows,
                return_convergence_delta=True,
            )  # fmt: skip
            again = ig.compute_convergence_delta(out, base, x, target=[0, 2, 1])
            assert np.array_equal(backend.to_numpy(again), backend.to_numpy(delta))
            assert tuple(again.shape) == (3,)
            backend.assert_same_place(again, dtype)
    sal = ra.Saliency(model, abs=False)
    g = sal.attribute(x, target=1)
    d = backend.to_numpy(sal.compute_convergence_delta(g, None, x, target=1))
    expect = mlp_grad(X, [1] * 3).sum(axis=1) - (mlp_out(X)[:, 1] - mlp_out(0 * X)[:, 1])
    np.testing.assert_allclose(d, expect, **tol(name(backend, dtype)))
    with pytest.raises(ValueError, match="attributions has 2 rows but end_point"):
        ig.compute_convergence_delta(g[:2, ...], None, x, target=1)
    with pytest.raises(ValueError, match="start_point has shape"):
        ig.compute_convergence_delta(g, backend.asarray(X[:2], dtype=dtype), x, target=1)
    with pytest.raises(ra.TargetError, match="list of 2 items"):
        ig.compute_convergence_delta(g, None, x, target=[0, 1])


def test_attribute_future_is_not_implemented(backend):
    """As captum 0.9 for these four classes: NotImplementedError."""
    model = mlp(backend, "float64")
    for method in (
        ra.Saliency(model),
        ra.InputXGradient(model),
        ra.IntegratedGradients(model),
        ra.NoiseTunnel(ra.Saliency(model)),
    ):
        with pytest.raises(NotImplementedError, match="attribute_future is not implemented"):
            method.attribute_future()


# -- bad input -------------------------------------------------------------------------------
def test_targets_are_validated(backend):
    """Bad targets raise TargetError (a ValueError and captum's AssertionError) or
    TargetTypeError (a TypeError and an AssertionError), naming the problem."""
    assert issubclass(ra.TargetError, ValueError) and issubclass(ra.TargetError, AssertionError)
    assert issubclass(ra.TargetTypeError, TypeError)
    assert issubclass(ra.TargetTypeError, AssertionError)
    x = backend.asarray(X, dtype="float64")
    sal = ra.Saliency(mlp(backend, "float64"))
    with pytest.raises(ra.TargetError, match="list of 2 items but the batch has 3"):
        sal.attribute(x, target=[0, 1])
    with pytest.raises(ra.TargetError, match="out of range"):
        sal.attribute(x, target=3)
    with pytest.raises(ra.TargetError, match="out of range"):
        sal.attribute(x, target=backend.asarray([0, 5, 1], dtype="int64"))
    with pytest.raises(ra.TargetError, match="target=None needs one output value"):
        sal.attribute(x)
    with pytest.raises(ra.TargetTypeError, match="target must be None, an int"):
        sal.attribute(x, target=1.0)
    with pytest.raises(ra.TargetTypeError, match="integer dtype"):
        sal.attribute(x, target=backend.asarray([0.0, 1.0, 2.0], dtype="float64"))
    with pytest.raises(ra.TargetError, match="tuple of 2 indices"):
        sal.attribute(x, target=(0, 1))
    with pytest.raises(AssertionError, match="tuple of 20 indices"):  # captum's hook-removal test
        sal.attribute(x, target=(9999,) * 20)
    with pytest.raises(ra.TargetError, match="list of 2 items but the inputs have 3"):
        ra.NoiseTunnel(sal).attribute(x, target=[0, 1], nt_samples=2, rng=0)
    assert np.array_equal(
        backend.to_numpy(sal.attribute(x, target=-1)), backend.to_numpy(sal.attribute(x, target=2))
    )
    assert np.array_equal(
        backend.to_numpy(sal.attribute(x, target=np.int64(2))),
        backend.to_numpy(sal.attribute(x, target=2)),
    )


def test_bad_inputs_and_baselines(backend):
    x = backend.asarray(X, dtype="float64")
    model = mlp(backend, "float64")
    with pytest.raises(TypeError, match="got a list"):
        ra.Saliency(model).attribute([x], target=0)
    with pytest.raises(TypeError, match="real floating dtype"):
        ra.Saliency(model).attribute(backend.asarray([[1, 2, 3, 4, 5]], dtype="int64"), target=0)
    with pytest.raises(ValueError, match="same batch size"):
        ra.Saliency(model).attribute((x, x[:2, ...]), target=0)
    with pytest.raises(ValueError, match="empty tuple"):
        ra.Saliency(model).attribute((), target=0)
    with pytest.raises(TypeError, match="forward_func must be a model"):
        ra.Saliency(3)
    with pytest.raises(TypeError, match="abs must be True or False"):
        ra.Saliency(model, abs=1)
    ig = ra.IntegratedGradients(model)
    with pytest.raises(ValueError, match="baselines has shape"):
        ig.attribute(x, baselines=backend.asarray(np.zeros((2, 5)), dtype="float64"), target=0)
    with pytest.raises(ValueError, match="baselines has 2 entries"):
        ig.attribute(x, baselines=(0.0, 0.0), target=0)
    with pytest.raises(ValueError, match="method must be one of"):
        ig.attribute(x, target=0, method="riemann")
    with pytest.raises(ValueError, match="internal_batch_size must be an int >= 1"):
        ig.attribute(x, target=0, internal_batch_size=0)
    with pytest.raises(TypeError, match="return_convergence_delta must be True or False"):
        ig.attribute(x, target=0, return_convergence_delta="yes")
    if backend.name != "numpy":  # a numpy baseline with another library's inputs
        with pytest.raises(TypeError, match="use arrays of one library"):
            ig.attribute(x, baselines=np.zeros((1, 5)), target=0)


def test_complex_baselines_are_refused(backend):
    """A complex baseline used to be cast to the inputs' dtype, its imaginary part dropped."""
    x = backend.asarray(X, dtype="float64")
    ig = ra.IntegratedGradients(mlp(backend, "float64"))
    for b in (backend.asarray(np.zeros((3, 5)), dtype="complex128"), 1j, np.complex64(0.5)):
        with pytest.raises(TypeError, match="baselines must be real"):
            ig.attribute(x, baselines=b, target=0)
    zero = backend.asarray(np.zeros((1, 5)), dtype="complex128")
    with pytest.raises(TypeError, match=r"baselines\[1\] must be real"):
        ig.attribute((x, x), baselines=(0.0, zero), target=0)


@pytest.mark.parametrize(
    "scalar",
    [np.float32(0.5), np.float64(0.5), "0-d", "0-d numpy", 0.5],
    ids=["np.float32", "np.float64", "0-d", "0-d numpy", "float"],
)
def test_zero_d_baselines_are_scalars(backend, dtype, scalar):
    """A numpy scalar or a 0-d array is a number: the same attributions as baselines=0.5."""
    x = backend.asarray(X, dtype=dtype)
    ig = ra.IntegratedGradients(mlp(backend, dtype), n_steps=8)
    if scalar == "0-d":
        scalar = backend.asarray(0.5, dtype=dtype)
    elif scalar == "0-d numpy":
        scalar = np.asarray(0.5)
    ref = ig.attribute(x, baselines=0.5, target=1)
    out = ig.attribute(x, baselines=scalar, target=1)
    backend.assert_same_place(out, dtype)
    np.testing.assert_array_equal(backend.to_numpy(out), backend.to_numpy(ref))
    ints = ig.attribute(x, baselines=np.int64(0), target=1)
    np.testing.assert_array_equal(
        backend.to_numpy(ints), backend.to_numpy(ig.attribute(x, target=1))
    )


@given(
    batch=st.sampled_from([0, 2]),
    features=st.sampled_from([0, 5]),
    internal=st.sampled_from([None, 1, 4]),
)
def test_empty_inputs_give_empty_attributions(backend, batch, features, internal):
    """No examples (or no features): every method returns attributions of the inputs' shape
    (and integrated gradients one delta per example), never a ZeroDivisionError."""
    x = backend.asarray(np.ones((batch, features)), dtype="float64")
    w = backend.asarray(np.ones((3, features)), dtype="float64")
    model = rm.Linear(w)
    target = [0] * batch
    for method in (ra.Saliency(model), ra.InputXGradient(model)):
        out = method.attribute(x, target=target)
        backend.assert_same_place(out, x.dtype)
        assert tuple(out.shape) == (batch, features)
    ig = ra.IntegratedGradients(model, n_steps=5)
    out, delta = ig.attribute(x, target=0, internal_batch_size=internal,
                              return_convergence_delta=True)  # fmt: skip
    assert tuple(out.shape) == (batch, features) and tuple(delta.shape) == (batch,)
    np.testing.assert_allclose(backend.to_numpy(delta), 0.0, atol=1e-12)


def test_refimpl_models_take_no_additional_forward_args(backend):
    """A refimpl model is one array in, one array out: extra forward arguments are a
    TypeError before any work (Python's own 'linearize() takes 2 positional arguments'
    came from inside the model); the torch front end's forward_func takes them."""
    x = backend.asarray(X, dtype="float64")
    model = mlp(backend, "float64")
    for method in (ra.Saliency(model), ra.InputXGradient(model), ra.IntegratedGradients(model)):
        with pytest.raises(TypeError, match="refimpl models take no additional_forward_args"):
            method.attribute(x, target=0, additional_forward_args=(1.0,))
        method.attribute(x, target=0, additional_forward_args=None)  # None and () are none
        method.attribute(x, target=0, additional_forward_args=())
