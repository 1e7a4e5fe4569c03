"""refimpl.perturbations.AdditivePerturbation: shapes, placement, forward, derivatives, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import backends
from refimpl.perturbations import (
    AdditivePerturbation,
    uniform_like_l1_n_ball,
    uniform_like_l2_n_ball,
)
from tests.conftest import arr, as64, tol

DATA_SHAPE = (3, 4, 5)
ALL_DELTA_NDIM = [None, *range(-3, 4)]


def rand(backend, shape, dtype, seed=0):
    """Standard normal entries (built from a list: the torch adapter turns 0-d numpy input
    into a 1-d tensor)."""
    a = np.random.default_rng(seed).standard_normal(shape)
    return backend.xp.asarray(a.tolist(), dtype=dtype, device=backend.device)


def expected_delta_shape(shape, delta_ndim):
    if delta_ndim is None:
        return tuple(shape)
    keep = delta_ndim if delta_ndim >= 0 else len(shape) + delta_ndim
    return tuple(shape)[len(shape) - keep :]


def with_delta(backend, x, delta_ndim, dtype, seed=1):
    """A perturbation of ``x`` whose delta is a known random array."""
    p = AdditivePerturbation(x, delta_ndim=delta_ndim)
    p.delta = rand(backend, tuple(p.delta.shape), dtype, seed)
    return p


def sum_to(u: np.ndarray, shape: tuple) -> np.ndarray:
    """numpy reference: the adjoint of broadcasting ``shape`` to ``u.shape``."""
    extra = u.ndim - len(shape)
    u = u.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, s in enumerate(shape) if s == 1 and u.shape[i] != 1)
    return u.sum(axis=axes, keepdims=True).reshape(shape)


# -- construction --------------------------------------------------------------------------
@pytest.mark.parametrize("delta_ndim", ALL_DELTA_NDIM)
def test_delta_shape_dtype_and_place_from_data(backend, dtype, delta_ndim):
    x = rand(backend, DATA_SHAPE, dtype)
    p = AdditivePerturbation(x, delta_ndim=delta_ndim)
    assert tuple(p.delta.shape) == expected_delta_shape(DATA_SHAPE, delta_ndim)
    backend.assert_same_place(p.delta, dtype)
    np.testing.assert_array_equal(backend.to_numpy(p.delta), 0.0)
    assert p.parameters()[0] is p.delta


def test_shape_only_uses_the_backend_switch(backend):
    with backends.use(backend.name, device=backend.device):
        p = AdditivePerturbation((3, 2, 2), delta_ndim=-1)
    default = backend.xp.__array_namespace_info__().default_dtypes(device=backend.device)
    backend.assert_same_place(p.delta, default["real floating"])
    assert tuple(p.delta.shape) == (2, 2)
    q = AdditivePerturbation([2], backend=backend.name, device=backend.device, dtype="float32")
    backend.assert_same_place(q.delta, backend.dtype("float32"))


def test_explicit_dtype_beats_the_datas(backend):
    x = rand(backend, (2, 3), backend.dtype("float64"))
    p = AdditivePerturbation(x, dtype=backend.dtype("float32"))
    backend.assert_same_place(p.delta, backend.dtype("float32"))
    p = AdditivePerturbation(x, dtype="float32", device=backend.device)
    backend.assert_same_place(p.delta, backend.dtype("float32"))
    # promotion in the forward: float64 data + float32 delta -> float64
    backend.assert_same_place(p(x), backend.dtype("float64"))


def test_init_fn_gets_kwargs_and_rng(backend, dtype):
    x = rand(backend, (50, 4), dtype)
    p = AdditivePerturbation(x, uniform_like_l1_n_ball, epsilon=0.5, rng=3)
    q = AdditivePerturbation(x, uniform_like_l1_n_ball, epsilon=0.5, rng=3)
    backend.assert_same_place(p.delta, dtype)
    d = backend.to_numpy(p.delta).astype(np.float64)
    np.testing.assert_array_equal(d, backend.to_numpy(q.delta))
    assert np.all(np.abs(d).sum(axis=1) < 0.5) and np.any(d != 0)
    direct = uniform_like_l1_n_ball(backend.xp.zeros_like(x), epsilon=0.5, rng=3)
    np.testing.assert_array_equal(d, backend.to_numpy(direct))  # same draws as a direct call


# -- forward and derivatives ------------------------------------------------------------------
@pytest.mark.parametrize("delta_ndim", ALL_DELTA_NDIM)
def test_forward_matches_numpy(backend, dtype, delta_ndim):
    x = rand(backend, DATA_SHAPE, dtype)
    p = with_delta(backend, x, delta_ndim, dtype)
    y = p(x)
    backend.assert_same_place(y, dtype)
    ref = backend.to_numpy(x).astype(np.float64) + backend.to_numpy(p.delta).astype(np.float64)
    np.testing.assert_allclose(backend.to_numpy(y), ref, **tol(backend.dtype_name(dtype)))


@pytest.mark.parametrize("delta_ndim", ALL_DELTA_NDIM)
def test_vjp_delta_is_the_summed_cotangent(backend, dtype, delta_ndim):
    x = rand(backend, DATA_SHAPE, dtype)
    p = with_delta(backend, x, delta_ndim, dtype)
    u = rand(backend, DATA_SHAPE, dtype, seed=2)
    g = p.vjp_delta(x, u)
    backend.assert_same_place(g, dtype)
    ref = sum_to(backend.to_numpy(u).astype(np.float64), tuple(p.delta.shape))
    np.testing.assert_allclose(backend.to_numpy(g), ref, rtol=1e-5, atol=1e-5)
    gx = p.vjp(x, u)  # w.r.t. x: the identity here (x has the output shape)
    np.testing.assert_array_equal(backend.to_numpy(gx), backend.to_numpy(u))


@pytest.mark.parametrize("delta_ndim", ALL_DELTA_NDIM)
def test_vjp_delta_matches_finite_differences(backend, delta_ndim):
    """L(delta) = <w, p(x)> is linear in delta, so the central difference is exact up to
    rounding: (L(delta + h v) - L(delta - h v)) / 2h == <vjp_delta(x, w), v>."""
    dt = backend.dtype("float64")
    xp = backend.xp
    x = rand(backend, DATA_SHAPE, dt)
    p = with_delta(backend, x, delta_ndim, dt)
    w = rand(backend, DATA_SHAPE, dt, seed=5)
    grad = p.vjp_delta(x, w)
    delta0, h = p.delta, 1e-3
    for seed in range(3):
        v = rand(backend, tuple(delta0.shape), dt, seed=10 + seed)
        p.delta = delta0 + h * v
        up = float(xp.sum(w * p(x)))
        p.delta = delta0 - h * v
        down = float(xp.sum(w * p(x)))
        fd = (up - down) / (2 * h)
        assert fd == pytest.approx(float(xp.sum(grad * v)), rel=1e-8, abs=1e-9)


@pytest.mark.parametrize("delta_ndim", ALL_DELTA_NDIM)
def test_jvp_vjp_are_adjoint(backend, dtype, delta_ndim):
    """<J v, u> == <v, J^T u> for the derivative in x and in delta."""
    xp = backend.xp
    x = rand(backend, (4, 5), dtype)  # delta broadcasts up to (3, 4, 5) below
    p = AdditivePerturbation(rand(backend, DATA_SHAPE, dtype), delta_ndim=delta_ndim)
    p.delta = rand(backend, tuple(p.delta.shape), dtype, seed=3)
    out = tuple(p(x).shape)
    u = rand(backend, out, dtype, seed=4)
    for jvp, vjp, primal in [(p.jvp, p.vjp, x), (p.jvp_delta, p.vjp_delta, p.delta)]:
        v = rand(backend, tuple(primal.shape), dtype, seed=6)
        jv = jvp(x, v)
        assert tuple(jv.shape) == out
        backend.assert_same_place(jv, dtype)
        lhs, rhs = float(xp.sum(jv * u)), float(xp.sum(v * vjp(x, u)))
        assert lhs == pytest.approx(rhs, rel=1e-4, abs=1e-4)


def test_leading_batch_of_tangents_and_cotangents(backend, dtype):
    x = rand(backend, (3, 2, 2), dtype)
    p = with_delta(backend, x, -1, dtype)
    u = rand(backend, (7, 3, 2, 2), dtype, seed=2)
    g = p.vjp_delta(x, u)
    assert tuple(g.shape) == (7, 2, 2)
    ref = backend.to_numpy(u).astype(np.float64).sum(axis=1)
    np.testing.assert_allclose(backend.to_numpy(g), ref, rtol=1e-5, atol=1e-5)
    assert tuple(p.vjp(x, u).shape) == (7, 3, 2, 2)
    v = rand(backend, (7, 2, 2), dtype, seed=3)
    jv = p.jvp_delta(x, v)
    assert tuple(jv.shape) == (7, 3, 2, 2)
    np.testing.assert_array_equal(
        backend.to_numpy(jv), np.broadcast_to(backend.to_numpy(v)[:, None], (7, 3, 2, 2))
    )


def test_documented_gradients(backend):
    """The seed's reductions with the documented (positive) delta: sum -> 2(1 + delta),
    mean over the (3, 2, 2) broadcast -> (1 + delta) / 2."""
    dt = backend.dtype("float32")
    data = backend.asarray(np.ones((3, 2, 2)), dtype=dt)
    doc = np.array([[0.2793, 0.4783], [0.4031, 0.3316]], dtype=np.float32)
    p = AdditivePerturbation(data, delta_ndim=-1)
    p.delta = backend.asarray(doc, dtype=dt)
    g = p.vjp_delta(data, 2 * p(data) / 12)
    np.testing.assert_allclose(backend.to_numpy(g), (1 + doc) / 2, rtol=1e-6)
    np.testing.assert_allclose(backend.to_numpy(g), [[0.6397, 0.7392], [0.7015, 0.6658]], atol=1e-4)


def test_inputs_are_not_modified(backend, dtype):
    x = rand(backend, DATA_SHAPE, dtype)
    before = backend.to_numpy(x)
    p = AdditivePerturbation(x, uniform_like_l1_n_ball, rng=0)
    u = rand(backend, DATA_SHAPE, dtype, seed=9)
    u_before = backend.to_numpy(u)
    p(x), p.vjp(x, u), p.vjp_delta(x, u), p.jvp(x, u), p.jvp_delta(x, u)
    np.testing.assert_array_equal(backend.to_numpy(x), before)
    np.testing.assert_array_equal(backend.to_numpy(u), u_before)


@given(
    shape=st.lists(st.integers(1, 3), min_size=0, max_size=4).map(tuple),
    data=st.data(),
)
def test_property_vjp_delta_shapes(backend, shape, data):
    ndim = len(shape)
    delta_ndim = data.draw(st.one_of(st.none(), st.integers(-ndim, ndim)))
    dt = backend.dtype("float64")
    x = rand(backend, shape, dt)
    p = with_delta(backend, x, delta_ndim, dt)
    assert tuple(p.delta.shape) == expected_delta_shape(shape, delta_ndim)
    u = rand(backend, shape, dt, seed=2)
    ref = sum_to(np.asarray(backend.to_numpy(u)), expected_delta_shape(shape, delta_ndim))
    np.testing.assert_allclose(backend.to_numpy(p.vjp_delta(x, u)), ref, rtol=1e-12, atol=1e-12)


# -- complex dtypes -----------------------------------------------------------------------------
def test_complex_data_is_accepted(backend):
    x = arr(backend, np.ones((3, 2)), "complex64")
    p = AdditivePerturbation(x, uniform_like_l2_n_ball, delta_ndim=-1, epsilon=0.5, rng=0)
    assert p.delta.dtype == x.dtype and tuple(p.delta.shape) == (2,)
    y = p(x)
    backend.assert_same_place(y, x.dtype)
    u = backend.xp.ones((3, 2), dtype=x.dtype, device=backend.device) * (1 + 2j)
    np.testing.assert_allclose(as64(backend, p.vjp_delta(x, u)), np.full(2, 3 + 6j))
    np.testing.assert_allclose(as64(backend, p.jvp(x, u)), np.full((3, 2), 1 + 2j))


# -- bad input -----------------------------------------------------------------------------
@pytest.mark.parametrize("delta_ndim", [4, 5, -4, 99])
def test_delta_ndim_out_of_range(backend, delta_ndim):
    x = rand(backend, DATA_SHAPE, backend.dtype("float32"))
    with pytest.raises(ValueError, match="delta_ndim"):
        AdditivePerturbation(x, delta_ndim=delta_ndim)


def test_bad_arguments(backend):
    f32 = backend.dtype("float32")
    x = rand(backend, (3, 2), f32)
    with pytest.raises(TypeError, match="delta_ndim"):
        AdditivePerturbation(x, delta_ndim=1.0)
    with pytest.raises(TypeError, match="init_fn"):
        AdditivePerturbation(x, init_fn="uniform")
    with pytest.raises(TypeError, match="epsilon"):
        AdditivePerturbation(x, epsilon=1.0)  # init kwargs but no init_fn
    with pytest.raises(TypeError, match="rng"):
        AdditivePerturbation(x, rng=0)
    with pytest.raises(TypeError, match="dtype"):
        AdditivePerturbation(x, dtype="int32")
    with pytest.raises(TypeError, match="data_or_shape"):
        AdditivePerturbation(3)
    with pytest.raises(ValueError, match="data_or_shape"):
        AdditivePerturbation((3, -1), backend=backend.name)
    with pytest.raises(TypeError, match="init_fn returned None"):
        AdditivePerturbation(x, init_fn=lambda z: None)
    with pytest.raises(ValueError, match="shape"):
        AdditivePerturbation(
            x, init_fn=lambda z: backend.xp.zeros((1,), dtype=f32, device=backend.device)
        )
    with pytest.raises(ValueError, match="epsilon"):
        AdditivePerturbation(x, uniform_like_l1_n_ball, epsilon=-1.0)


def test_bad_call_arguments(backend):
    f32 = backend.dtype("float32")
    x = rand(backend, (3, 2), f32)
    p = AdditivePerturbation(x, delta_ndim=-1)
    with pytest.raises(ValueError, match="broadcast"):
        p(rand(backend, (3, 4), f32))
    with pytest.raises(TypeError, match="x must have a real (or complex )?floating dtype"):
        p(backend.asarray(np.ones((3, 2), dtype=np.int64)))
    with pytest.raises(ValueError, match="u must have the shape"):
        p.vjp_delta(x, rand(backend, (2, 2), f32))
    with pytest.raises(TypeError, match="one array library"):
        p(np.ones((3, 2), dtype=np.float32) if backend.name != "numpy" else _strict((3, 2)))
    with pytest.raises(ValueError, match="delta must keep the shape"):
        p.delta = rand(backend, (3,), f32)


@given(
    shape=st.sampled_from([(), (3,), (2, 3)]),
    scalar=st.sampled_from([np.float16, np.float32, np.float64]),
    value=st.floats(-10, 10),
)
def test_a_new_delta_keeps_dtype_library_and_shape(backend, dtype, shape, scalar, value):
    """``p.delta = new`` takes an array of the current delta's library, device, dtype and
    shape. A numpy scalar (what 0-d numpy arithmetic returns) gets the same checks and is
    stored as a 0-d array."""
    p = AdditivePerturbation(backend.xp.zeros(shape, dtype=dtype, device=backend.device))
    name = backend.dtype_name(dtype)
    if shape == () and backend.name == "numpy":
        if np.dtype(scalar).name == name:
            p.delta = scalar(value)
            assert hasattr(p.delta, "__setitem__") and p.delta.dtype == dtype  # a 0-d array
            assert float(p.delta) == float(scalar(value))
        else:
            with pytest.raises(TypeError, match=f"delta has dtype {np.dtype(scalar).name}"):
                p.delta = scalar(value)
    elif shape == ():
        with pytest.raises(TypeError, match="use arrays of one library"):
            p.delta = scalar(value)
    other = "float64" if name == "float32" else "float32"
    with pytest.raises(TypeError, match=f"delta has dtype .*{other}.* but the current delta"):
        p.delta = backend.xp.zeros(shape, dtype=backend.dtype(other), device=backend.device)
    with pytest.raises(ValueError, match="delta must keep the shape"):
        p.delta = backend.xp.zeros((*shape, 1), dtype=dtype, device=backend.device)
    assert p.delta.dtype == dtype and tuple(p.delta.shape) == shape


def test_jvp_and_vjp_check_namespace_and_device(backend):
    x = arr(backend, np.ones((3, 2)), "float32")
    p = AdditivePerturbation(x, delta_ndim=-1)
    other = np.ones((3, 2), np.float32) if backend.name != "numpy" else _strict((3, 2))
    for f in (p.jvp, p.vjp):
        with pytest.raises(TypeError, match="one array library"):
            f(x, other)
    with pytest.raises(TypeError, match="one array library"):
        p.jvp_delta(x, other[0, ...])
    if backend.name == "array_api_strict":
        xp = backend.xp
        on_cpu = xp.ones((2,), dtype=xp.float32, device=xp.__array_namespace_info__().devices()[0])
        for f in (p.jvp_delta, p.vjp_delta):
            with pytest.raises(ValueError, match="devices"):
                f(x, on_cpu if f is p.jvp_delta else xp.ones((3, 2), dtype=xp.float32))


def _strict(shape):
    import array_api_strict as xs

    return xs.ones(shape, dtype=xs.float32)
