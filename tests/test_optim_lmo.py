"""refimpl.optim.lmo: each LMO minimises <g, s> over its ball (checked by brute force)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import refimpl.optim as ro
from refimpl.optim import lmo_l1, lmo_l1q, lmo_l2, lmo_linf
from tests.conftest import arr, tol

finite = st.floats(-10, 10, allow_nan=False, width=32)


def _vertices_l1(d: int, eps: float) -> np.ndarray:
    eye = np.eye(d)
    return np.concatenate([eps * eye, -eps * eye])


def _vertices_linf(d: int, eps: float) -> np.ndarray:
    return eps * np.array(list(itertools.product([-1.0, 1.0], repeat=d)))


@given(g=st.lists(finite, min_size=1, max_size=6), eps=st.floats(0.1, 5))
def test_l1_and_linf_lmo_attain_the_vertex_minimum(backend, dtype, g, eps):
    g = np.asarray(g)
    x = backend.asarray(g, dtype=dtype)
    t = tol(backend.dtype_name(dtype))
    for lmo, verts, dual in (
        (lmo_l1, _vertices_l1(g.size, eps), np.abs(g).max()),
        (lmo_linf, _vertices_linf(g.size, eps), np.abs(g).sum()),
    ):
        s = lmo(x, eps, param_ndim=None)
        backend.assert_same_place(s, dtype)
        s = backend.to_numpy(s).astype(np.float64)
        best = (verts @ g).min()
        np.testing.assert_allclose(s @ g, best, rtol=1e-5, atol=1e-5 * max(1.0, abs(best)))
        np.testing.assert_allclose(s @ g, -eps * dual, rtol=1e-5, atol=1e-5)
        assert np.abs(s).sum() <= eps * (1 + 1e-6) if lmo is lmo_l1 else True
        assert np.abs(s).max() <= eps * (1 + 1e-6)
    del t


@given(g=st.lists(finite, min_size=1, max_size=6), eps=st.floats(0.1, 5))
def test_l2_lmo_is_optimal(backend, dtype, g, eps):
    g = np.asarray(g)
    s = backend.to_numpy(lmo_l2(backend.asarray(g, dtype=dtype), eps, param_ndim=None))
    n = np.linalg.norm(g)
    if n == 0:
        np.testing.assert_array_equal(s, np.zeros_like(g))
        return
    # Cauchy-Schwarz: min over the ball is -eps ||g||; random points of the ball do no better
    np.testing.assert_allclose(s @ g, -eps * n, rtol=1e-5, atol=1e-6)
    pts = np.random.default_rng(0).standard_normal((64, g.size))
    pts *= eps / np.linalg.norm(pts, axis=1, keepdims=True)
    assert (pts @ g).min() >= s @ g - 1e-4 * (1 + eps * n)


def test_l1_lmo_rows_of_any_dimension(backend, dtype):
    """Fix: the documented L1FrankWolfe errs or is wrong when rows are not 1-D."""
    g = np.array([[[1.0, -3.0, 2.0], [0.5, 0.0, 9.0]], [[-4.0, 1.0, 1.0], [0.0, 2.0, 3.0]]])
    s = backend.to_numpy(lmo_l1(backend.asarray(g, dtype=dtype), 2.0, param_ndim=-1))
    expected = np.zeros_like(g)
    expected[0, 1, 2] = -2.0
    expected[1, 0, 0] = 2.0
    np.testing.assert_array_equal(s, expected)
    # param_ndim=None on a 2-D array: one LMO vertex for the whole array
    s = backend.to_numpy(lmo_l1(backend.asarray(g[0], dtype=dtype), 1.0, param_ndim=None))
    np.testing.assert_array_equal(s, [[0, 0, 0], [0, 0, -1.0]])


def test_l1_lmo_first_index_among_maxima(backend):
    s = lmo_l1(backend.asarray([[1.0, -2.0, 2.0, -2.0]], dtype="float64"), 1.0)
    np.testing.assert_array_equal(backend.to_numpy(s), [[0.0, 1.0, 0.0, 0.0]])


def test_l1_paths_accept_empty_rows(backend, dtype):
    g = backend.xp.zeros((5, 0), dtype=dtype, device=backend.device)
    for out in (
        ro.lmo_l1(g, 1.0),
        ro.l1_direction(g),
        ro.project_l1_ball(g, 1.0, param_ndim=-1),
        ro.project_l1_ball(g, 1.0, param_ndim=-1, method="michelot"),
        ro.L1FrankWolfe([g], epsilon=1.0).step([g])[0],
        ro.l1q_direction(g, 0.5),
    ):
        backend.assert_same_place(out, dtype)
        assert tuple(out.shape) == (5, 0)


def test_l1q_lmo_in_ball_and_limits(backend, dtype):
    g = np.random.default_rng(2).standard_normal((3, 10))
    x = backend.asarray(g, dtype=dtype)
    s = backend.to_numpy(lmo_l1q(x, 1.5, 0.9, param_ndim=-1))  # k = 1: the L1 LMO
    np.testing.assert_allclose(
        s, backend.to_numpy(lmo_l1(x, 1.5)), **tol(backend.dtype_name(dtype))
    )
    s = backend.to_numpy(lmo_l1q(x, 1.5, 0.0, param_ndim=-1))  # keep all: -eps sign(g)/D
    np.testing.assert_allclose(s, -1.5 * np.sign(g) / 10, **tol(backend.dtype_name(dtype)))
    np.testing.assert_allclose(np.abs(s).sum(axis=1), 1.5, rtol=1e-5)


@pytest.mark.parametrize("eps", [-1e-300, -1.0, float("inf"), float("nan")])
def test_bad_epsilon(backend, eps):
    g = backend.asarray([1.0, 2.0], dtype="float64")
    for lmo in (lmo_l1, lmo_l2, lmo_linf):
        with pytest.raises(ValueError, match="epsilon"):
            lmo(g, eps)


def test_complex_input_to_the_lmos_is_rejected(backend):
    g = arr(backend, [1.0, -2.0], "complex64")
    for call in (
        lambda: ro.lmo_l1(g, 1.0),
        lambda: ro.lmo_l2(g, 1.0),
        lambda: ro.lmo_linf(g, 1.0),
        lambda: ro.lmo_l1q(g, 1.0, 0.5),
        lambda: ro.sign_gradient(g),
    ):
        with pytest.raises(TypeError, match="real floating"):
            call()
