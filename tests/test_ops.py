"""The shims for operations the standard lacks, on every backend, against numpy and against
their pure-standard fallbacks; and the robust row norms refimpl.optim builds on them (16-bit
input, overflow, underflow, infinite entries)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import refimpl.optim as ro
from backends import ops
from tests.conftest import arr, as64


def _distinct(rng: np.random.Generator, shape) -> np.ndarray:
    """Values without ties (a permutation scaled), so every selection is unique."""
    n = int(np.prod(shape))
    return (rng.permutation(n).reshape(shape) - n / 2) / 7.0


@given(
    rows=st.integers(1, 4),
    n=st.integers(1, 40),
    data=st.data(),
)
def test_topk_matches_numpy(backend, dtype, rows, n, data):
    k = data.draw(st.integers(0, n))
    seed = data.draw(st.integers(0, 2**16))
    a = _distinct(np.random.default_rng(seed), (rows, n))
    x = backend.asarray(a, dtype=dtype)
    for native in (True, False):
        vals, idx = ops.topk(x, k, axis=-1, native=native)
        backend.assert_same_place(vals, dtype)
        order = np.argsort(-a, axis=-1, kind="stable")[:, :k]
        np.testing.assert_array_equal(backend.to_numpy(idx), order)
        np.testing.assert_array_equal(
            backend.to_numpy(vals),
            np.take_along_axis(a, order, -1).astype(backend.dtype_name(dtype)),
        )


def test_topk_other_axis_and_ties(backend):
    a = np.array([[3.0, 1.0, 3.0], [2.0, 2.0, 0.0]])
    x = backend.asarray(a, dtype="float64")
    vals, idx = ops.topk(x, 1, axis=0)
    np.testing.assert_array_equal(backend.to_numpy(vals), [[3.0, 2.0, 3.0]])
    # ties: the fallback keeps the lowest indices; every path returns the same values
    vals, idx = ops.topk(x, 1, axis=-1, native=False)
    np.testing.assert_array_equal(backend.to_numpy(idx), [[0], [0]])
    for native in (True, False):
        vals, _ = ops.topk(x, 2, axis=-1, native=native)
        np.testing.assert_array_equal(backend.to_numpy(vals), [[3.0, 3.0], [2.0, 2.0]])


def test_topk_nan_is_largest(backend):
    a = np.array([[1.0, np.nan, 5.0, 2.0]])
    x = backend.asarray(a, dtype="float64")
    for native in (True, False):
        _, idx = ops.topk(x, 2, native=native)
        assert sorted(backend.to_numpy(idx)[0].tolist()) == [1, 2]


@given(rows=st.integers(1, 3), n=st.integers(1, 50), data=st.data())
def test_kth_largest_matches_sort(backend, dtype, rows, n, data):
    k = data.draw(st.integers(1, n))
    a = np.random.default_rng(data.draw(st.integers(0, 2**16))).standard_normal((rows, n))
    a = np.round(a, 1)  # ties allowed: the k-th value is still well defined
    x = backend.asarray(a, dtype=dtype)
    expect = -np.sort(-a.astype(backend.dtype_name(dtype)), axis=-1)[:, k - 1]
    for native in (True, False):
        got = ops.kth_largest(x, k, native=native)
        backend.assert_same_place(got, dtype)
        np.testing.assert_array_equal(backend.to_numpy(got), expect)


def test_kth_largest_axis0(backend):
    a = np.array([[1.0, 5.0], [4.0, 2.0], [3.0, 0.0]])
    got = ops.kth_largest(backend.asarray(a, dtype="float64"), 2, axis=0)
    np.testing.assert_array_equal(backend.to_numpy(got), [3.0, 2.0])


def test_selection_bad_input(backend):
    x = backend.asarray([[1.0, 2.0]], dtype="float64")
    with pytest.raises(ValueError, match=r"0 <= k <= 2"):
        ops.topk(x, 3)
    with pytest.raises(ValueError, match=r"1 <= k <= 2"):
        ops.kth_largest(x, 0)
    with pytest.raises(TypeError, match="k must be an int"):
        ops.topk(x, 1.0)
    with pytest.raises(ValueError, match="axis 2 is out of range"):
        ops.topk(x, 1, axis=2)
    with pytest.raises(ValueError, match="0-d"):
        ops.kth_largest(backend.asarray(1.0, dtype="float64"), 1)


def test_one_hot(backend, dtype):
    idx = backend.asarray([2, 0, 1], dtype="int64")
    got = ops.one_hot(idx, 4, dtype=dtype)
    backend.assert_same_place(got, dtype)
    np.testing.assert_array_equal(backend.to_numpy(got), np.eye(4)[[2, 0, 1]])


def test_at_functional_update_does_not_touch_a_copy(backend):
    x = backend.asarray([1.0, 2.0, 3.0], dtype="float64")
    y = ops.at(x, 1).set(9.0, copy=True)
    np.testing.assert_array_equal(backend.to_numpy(y), [1.0, 9.0, 3.0])
    np.testing.assert_array_equal(backend.to_numpy(x), [1.0, 2.0, 3.0])


def test_assign_writes_in_place_where_it_can_and_equals_at(backend, dtype):
    """``assign`` gives ``at(x)[key].set(value)``'s values on every backend; where arrays are
    writable it returns the same array, written (no copy of a preallocated buffer)."""
    import array_api_compat

    x0 = np.arange(12.0).reshape(3, 4)
    v = np.array([[-1.0, -2.0]])
    want = ops.at(backend.asarray(x0, dtype=dtype), (slice(1, 2), slice(2, 4))).set(
        backend.asarray(v, dtype=dtype)
    )
    x = backend.asarray(x0, dtype=dtype)
    got = ops.assign(x, (slice(1, 2), slice(2, 4)), backend.asarray(v, dtype=dtype))
    assert np.array_equal(backend.to_numpy(got), backend.to_numpy(want))
    assert array_api_compat.array_namespace(got) is array_api_compat.array_namespace(x)
    if array_api_compat.is_writeable_array(x):
        assert got is x
    else:  # jax: x untouched
        assert np.array_equal(backend.to_numpy(x), x0.astype(backend.to_numpy(got).dtype))
    backend.assert_same_place(got, dtype)


@pytest.mark.parametrize("dt", ["float16", "float32", "float64"])
def test_kth_largest_torch_cpu_fast_path_matches_kthvalue(dt):
    """The numpy.partition fast path for torch CPU tensors agrees with torch.kthvalue,
    NaN (largest) included, and returns a torch tensor."""
    torch = pytest.importorskip("torch")
    a = torch.randn(4, 101, generator=torch.Generator().manual_seed(0)).abs().to(getattr(torch, dt))
    a[0, 5] = float("nan")
    for k in (1, 17, 101):
        ref = torch.kthvalue(a, 101 - k + 1, dim=1).values
        got = ops.kth_largest(a, k, axis=1)
        assert isinstance(got, torch.Tensor) and got.dtype == a.dtype
        np.testing.assert_array_equal(got.numpy(), ref.numpy())
    assert np.isnan(ops.kth_largest(a, 1).numpy()[0])
    b = a.t().contiguous()  # along axis 0 as well
    np.testing.assert_array_equal(
        ops.kth_largest(b, 17, axis=0).numpy(), torch.kthvalue(b, 85, dim=0).values.numpy()
    )


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_add_at_along_axis(backend, dtype, axis):
    name = backend.dtype_name(dtype)
    rng = np.random.default_rng(3)
    a = rng.standard_normal((4, 5)).astype(name)
    idx = np.argmax(a, axis=axis, keepdims=True)
    val = rng.standard_normal(idx.shape).astype(name)
    expect = a.copy()  # numpy in the same dtype: the sum at the index rounds identically
    np.put_along_axis(expect, idx, np.take_along_axis(a, idx, axis=axis) + val, axis=axis)
    x = backend.asarray(a, dtype=dtype)
    i = backend.asarray(idx, dtype="int64")
    v = backend.asarray(val, dtype=dtype)
    for native in (True, False):
        out = ops.add_at_along_axis(x, i, v, axis=axis, native=native)
        backend.assert_same_place(out, dtype)
        np.testing.assert_array_equal(backend.to_numpy(out), expect)
    np.testing.assert_array_equal(backend.to_numpy(x), a)  # copy=True: the input is untouched


def test_add_at_along_axis_in_place_and_bad_shapes():
    x = np.zeros((2, 3))
    out = ops.add_at_along_axis(x, np.array([[2], [0]]), np.array([[1.0], [2.0]]), copy=False)
    assert out is x and x.tolist() == [[0, 0, 1], [2, 0, 0]]
    with pytest.raises(ValueError, match="size 1 along axis"):
        ops.add_at_along_axis(x, np.array([[0, 1], [0, 1]]), np.ones((2, 2)))


@pytest.mark.parametrize("name", ["float16", "float32", "float64"])
@pytest.mark.parametrize("ord", [1, 2])
def test_vector_norm_native_matches_fallback(backend, name, ord):
    """16-bit floats accumulate in float32 on every path: ten 300s have the norm sqrt(9e5)
    (numpy's own float16 norm overflows to inf)."""
    if getattr(backend.xp, name, None) is None:
        pytest.skip(f"{backend.name} has no {name}")
    a = np.random.default_rng(4).standard_normal((3, 10)) * 100
    a[0] = 300.0
    x = backend.asarray(a, dtype=name)
    ref = np.linalg.norm(backend.to_numpy(x).astype(np.float64), ord=ord, axis=1, keepdims=True)
    tol = {"float16": 1e-3, "float32": 1e-6, "float64": 1e-13}[name]
    for native in (True, False):
        out = ops.vector_norm(x, ord=ord, axis=1, keepdims=True, native=native)
        backend.assert_same_place(out, x.dtype)
        np.testing.assert_allclose(backend.to_numpy(out).astype(np.float64), ref, rtol=tol)


# -- robust row norms in refimpl.optim: overflow, underflow, infinite entries ------------------
def test_float16_norms_do_not_overflow(backend):
    x = arr(backend, np.full(10, 300.0), "float16")
    want = np.full(10, 1 / math.sqrt(10))
    y = ro.project_l2_ball(x, 1.0)
    backend.assert_same_place(y, x.dtype)
    np.testing.assert_allclose(as64(backend, y), want, rtol=2e-3)
    v = ro.l2_direction(backend.xp.reshape(x, (1, 10)))
    np.testing.assert_allclose(as64(backend, v)[0], want, rtol=2e-3)
    # the L2 Frank-Wolfe step moves the parameter
    opt = ro.l2_frank_wolfe(epsilon=1.0, param_ndim=None)
    p = arr(backend, np.zeros(10), "float16")
    (new,), _ = opt.update([x], opt.init([p]), [p])
    np.testing.assert_allclose(as64(backend, new), -want, rtol=2e-3)
    # L1: the row sum 10^5 overflows float16
    big = arr(backend, np.full(100, 1000.0), "float16")
    np.testing.assert_allclose(as64(backend, ro.project_l1_ball(big, 1.0)), 0.01, rtol=2e-3)
    np.testing.assert_allclose(
        as64(backend, ro.normalize_gradient(big, 1, param_ndim=None)), 0.01, rtol=2e-3
    )


@pytest.mark.parametrize("scale", [3e38, 1e-30])
def test_float32_norms_near_overflow_and_underflow(backend, scale, request):
    if backend.name == "jax" and scale > 1:
        request.applymarker(
            pytest.mark.xfail(
                strict=True,
                reason="XLA on CPU flushes subnormals to zero and divides by multiplying with "
                "the reciprocal: x / max|x| at 3e38 is 3e38 * 3.3e-39 = 3e38 * 0 = 0",
            )
        )
    x = arr(backend, np.full((2, 10), scale), "float32")
    want = np.full((2, 10), 1 / math.sqrt(10))
    np.testing.assert_allclose(as64(backend, ro.l2_direction(x)), want, rtol=1e-5)
    np.testing.assert_allclose(
        as64(backend, ro.project_l2_ball(x, 1.0, param_ndim=-1)),
        want if scale > 1 else np.full((2, 10), scale),
        rtol=1e-5,
    )
    np.testing.assert_allclose(
        as64(backend, ro.normalize_gradient(x, 1)), np.full((2, 10), 0.1), rtol=1e-5
    )
    if scale > 1:  # the L1 sum 3e39 overflows; theta = (3e39 - 1e38) / 10
        np.testing.assert_allclose(
            as64(backend, ro.project_l1_ball(x, 1e38, param_ndim=-1)), 1e37, rtol=1e-5
        )


def test_infinite_entries_take_the_limit(backend, dtype):
    inf = math.inf
    g = backend.asarray([[inf, 1.0], [-inf, inf], [3.0, 4.0]], dtype=dtype)
    want_dir = np.array([[1.0, 0.0], [-(0.5**0.5), 0.5**0.5], [0.6, 0.8]])
    np.testing.assert_allclose(as64(backend, ro.lmo_l2(g, 2.0)), -2 * want_dir, rtol=1e-6)
    np.testing.assert_allclose(
        as64(backend, ro.project_l2_ball(g, 2.0, param_ndim=-1)), 2 * want_dir, rtol=1e-6
    )
    np.testing.assert_allclose(
        as64(backend, ro.project_l1_ball(g, 2.0, param_ndim=-1)),
        [[2.0, 0.0], [-1.0, 1.0], [0.5, 1.5]],  # [3, 4]: theta = (7 - 2) / 2
        rtol=1e-6,
    )
