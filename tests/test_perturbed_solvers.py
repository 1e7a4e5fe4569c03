"""refimpl.perturbed's ready-made solvers, the Fenchel-Young loss, and the
Sobol source of backends.qmc: values against plain numpy / Python references on every
backend, exact identities, and bad input."""

from __future__ import annotations

import heapq
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from backends import qmc
from refimpl.perturbed import (
    argmax_one_hot,
    fenchel_young_loss,
    hard_or,
    perturbed,
    ranks,
    shortest_path,
    top_k_one_hot,
)

EULER_GAMMA = 0.5772156649015329


def as_np(backend, a):
    return backend.to_numpy(a).astype(np.float64)


# -- simple solvers ---------------------------------------------------------------------------
@given(data=st.lists(st.integers(-3, 3), min_size=12, max_size=12))
def test_argmax_ranks_topk_or_match_numpy(backend, data):
    """Integer entries make ties likely: ties go to the lowest index everywhere."""
    x_np = np.asarray(data, dtype=np.float64).reshape(3, 4)
    x = backend.asarray(x_np, dtype="float64")
    one_hot = np.eye(4)[x_np.argmax(axis=-1)]
    np.testing.assert_array_equal(as_np(backend, argmax_one_hot(x)), one_hot)
    np.testing.assert_array_equal(
        as_np(backend, argmax_one_hot(x, axis=0)), np.eye(3)[x_np.argmax(axis=0)].T
    )
    r = np.argsort(np.argsort(x_np, axis=-1, kind="stable"), axis=-1, kind="stable")
    np.testing.assert_array_equal(as_np(backend, ranks(x)), r)
    for k in range(5):
        order = np.argsort(-x_np, axis=-1, kind="stable")[:, :k]
        expected = np.zeros_like(x_np)
        np.put_along_axis(expected, order, 1.0, axis=-1)
        np.testing.assert_array_equal(as_np(backend, top_k_one_hot(x, k)), expected)
    np.testing.assert_array_equal(
        as_np(backend, hard_or(x)), np.where((x_np >= 0).any(-1), 1.0, -1.0)
    )


def test_solvers_keep_namespace_device_dtype(backend, dtype):
    x = backend.asarray(np.arange(6.0).reshape(2, 3), dtype=dtype)
    for out in (argmax_one_hot(x), hard_or(x), ranks(x), top_k_one_hot(x, 2)):
        backend.assert_same_place(out, dtype)
    w = backend.asarray(np.ones((2, 4, 4)), dtype=dtype)
    backend.assert_same_place(shortest_path(w), dtype)


def test_hard_or_counts_zero_as_true(backend):
    """The seed's (sign(x) + 1) / 2 cast to bool: sign(0) = 0 -> 0.5 -> True."""
    x = backend.asarray([[-1.0, 0.0], [-1.0, -0.5]], dtype="float32")
    np.testing.assert_array_equal(as_np(backend, hard_or(x)), [1.0, -1.0])


def test_solver_bad_input(backend):
    x = backend.asarray([[1.0, 2.0]], dtype="float64")
    with pytest.raises(ValueError, match="axis 2 is out of range"):
        argmax_one_hot(x, axis=2)
    with pytest.raises(TypeError, match="axis must be an int"):
        ranks(x, axis=1.0)
    with pytest.raises(ValueError, match=r"k must be an int in \[0, 2\], got 3"):
        top_k_one_hot(x, 3)
    with pytest.raises(TypeError, match="k must be an int"):
        top_k_one_hot(x, 1.0)
    with pytest.raises(TypeError, match="x must have a real (or complex )?floating dtype"):
        hard_or(backend.xp.asarray([[1, 2]], device=backend.device))
    with pytest.raises(TypeError, match="x must be an array"):
        argmax_one_hot([1.0, 2.0])
    with pytest.raises(ValueError, match=r"weights must have shape \(..., n, n\)"):
        shortest_path(backend.asarray(np.ones((3, 4)), dtype="float64"))
    with pytest.raises(ValueError, match="target must be a node index in"):
        shortest_path(backend.asarray(np.ones((3, 3)), dtype="float64"), target=3)
    with pytest.raises(TypeError, match="source must be an int"):
        shortest_path(backend.asarray(np.ones((3, 3)), dtype="float64"), source=0.0)


@given(
    k=st.integers(0, 4),
    kind=st.sampled_from([int, np.int8, np.int32, np.int64, np.uint16]),
    axis=st.sampled_from([-1, 1, np.int64(-1), np.int32(1)]),
)
def test_numpy_integers_are_ints(backend, k, kind, axis):
    """k and axis: any integer that is not a bool (numpy's included), as check_int accepts."""
    x = backend.asarray(np.arange(8.0).reshape(2, 4)[:, ::-1].copy(), dtype="float64")
    expected = as_np(backend, top_k_one_hot(x, k))
    np.testing.assert_array_equal(as_np(backend, top_k_one_hot(x, kind(k), axis=axis)), expected)
    np.testing.assert_array_equal(as_np(backend, argmax_one_hot(x, axis=axis)),
                                  as_np(backend, argmax_one_hot(x)))  # fmt: skip
    np.testing.assert_array_equal(as_np(backend, ranks(x, axis=axis)), as_np(backend, ranks(x)))


def test_shortest_path_symmetrize_must_be_a_bool(backend):
    w = backend.asarray(np.ones((3, 3)), dtype="float64")
    for bad in ("no", 0, None):
        with pytest.raises(TypeError, match="symmetrize must be True or False"):
            shortest_path(w, symmetrize=bad)


@pytest.mark.parametrize("shape", [(3, 0), (0, 0), (2, 0, 4)])
def test_solvers_on_an_empty_axis(backend, shape):
    """Reducing an axis of length 0: the arg-max of nothing is undefined (ValueError naming
    the axis); ranks and top-0 of nothing are empty; the OR of nothing is False (-1)."""
    x = backend.asarray(np.zeros(shape), dtype="float64")
    axis = 1 if len(shape) == 3 else -1
    with pytest.raises(
        ValueError, match=f"argmax_one_hot needs at least one entry along axis {axis}"
    ):
        argmax_one_hot(x, axis=axis)
    assert tuple(ranks(x, axis=axis).shape) == shape
    assert tuple(top_k_one_hot(x, 0, axis=axis).shape) == shape
    with pytest.raises(ValueError, match=r"k must be an int in \[0, 0\], got 1"):
        top_k_one_hot(x, 1, axis=axis)
    if axis == -1:
        np.testing.assert_array_equal(as_np(backend, hard_or(x)), -np.ones(shape[:-1]))
    empty_rows = backend.asarray(np.zeros((0, 3)), dtype="float64")
    assert tuple(argmax_one_hot(empty_rows).shape) == (0, 3)  # no slice to reduce: empty


# -- shortest path ---------------------------------------------------------------------------------
def reference_path(w: np.ndarray, source: int, target: int, symmetrize: bool = True) -> np.ndarray:
    """Plain-Python Bellman-Ford with the documented semantics (synchronous rounds, strict
    improvement, lowest predecessor on ties, backtrack stopping at a visited node)."""
    n = w.shape[0]
    if symmetrize:
        w = (w + w.T) / 2
    dist = [math.inf] * n
    dist[source] = 0.0
    pred = [-1] * n
    for _ in range(n - 1):
        new, new_pred = dist[:], pred[:]
        for v in range(n):
            cands = [dist[u] + w[u, v] for u in range(n)]
            u_best = min(range(n), key=lambda u: (cands[u], u))
            if cands[u_best] < dist[v]:
                new[v], new_pred[v] = cands[u_best], u_best
        dist, pred = new, new_pred
    p = np.zeros((n, n))
    v, visited = target, {target}
    for _ in range(n):
        u = pred[v]
        if u < 0:
            break
        p[v, u] = 1.0
        if u in visited:
            break
        visited.add(u)
        v = u
    return p


def dijkstra_cost(w: np.ndarray, source: int, target: int) -> float:
    n = w.shape[0]
    dist = [math.inf] * n
    dist[source] = 0.0
    heap = [(0.0, source)]
    while heap:
        d, u = heapq.heappop(heap)
        if d > dist[u]:
            continue
        for v in range(n):
            if d + w[u, v] < dist[v]:
                dist[v] = d + w[u, v]
                heapq.heappush(heap, (dist[v], v))
    return dist[target]


@given(
    n=st.integers(2, 7),
    seed=st.integers(0, 2**16),
    negative=st.booleans(),
    symmetrize=st.booleans(),
)
def test_shortest_path_matches_the_python_reference(backend, n, seed, negative, symmetrize):
    rng = np.random.default_rng(seed)
    w_np = rng.random((3, n, n)) * 2 - (0.3 if negative else -0.05)  # negative: loops possible
    w = backend.asarray(w_np, dtype="float64")
    source, target = int(rng.integers(n)), int(rng.integers(n))
    got = as_np(backend, shortest_path(w, source=source, target=target, symmetrize=symmetrize))
    for s in range(3):
        np.testing.assert_array_equal(got[s], reference_path(w_np[s], source, target, symmetrize))
        if not negative and symmetrize and source != target:  # a true shortest path
            sym = (w_np[s] + w_np[s].T) / 2
            cost = float((got[s] * sym.T).sum())  # P[v, u] = 1 for the edge u -> v
            assert math.isclose(cost, dijkstra_cost(sym, source, target), rel_tol=1e-9)


# -- Fenchel-Young loss -------------------------------------------------------------------------
def test_fy_gradient_is_y_sigma_minus_y(backend):
    theta = backend.asarray([[0.3, -0.2, 1.0], [0.0, 0.5, -1.0]], dtype="float64")
    y = backend.asarray([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype="float64")
    kw = dict(num_samples=300, sigma=0.4, noise="gumbel", rng=4)
    value, grad = fenchel_young_loss(argmax_one_hot, **kw).value_and_grad(theta, y)
    y_sigma = perturbed(argmax_one_hot, **kw)(theta)  # the same samples
    np.testing.assert_allclose(as_np(backend, grad), as_np(backend, y_sigma - y), atol=1e-12)
    backend.assert_same_place(value, theta.dtype)
    assert tuple(value.shape) == (2,)
    minimize = fenchel_young_loss(argmax_one_hot, maximize=False, **kw)
    v2, g2 = minimize.value_and_grad(theta, y)
    np.testing.assert_allclose(as_np(backend, g2), -as_np(backend, grad), atol=1e-12)
    np.testing.assert_allclose(as_np(backend, v2), -as_np(backend, value), atol=1e-12)


def test_fy_value_for_one_hot_gumbel_is_the_logistic_loss(backend):
    """F_sigma(theta) = sigma logsumexp(theta / sigma) + sigma gamma (Gumbel max), so the loss
    of a one-hot y is sigma * cross-entropy + sigma * gamma (jaxopt's test at sigma 1). The
    estimate averages max_i(theta_i + sigma z_i) ~ Gumbel(., sigma): sd sigma pi / sqrt(6N),
    5 sd bound (false-failure < 1e-6 per entry)."""
    theta_np = np.array([[0.3, -0.2, 1.0], [0.0, 0.5, -1.0]])
    y_np = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    n, sigma = 20_000, 0.7
    fy = fenchel_young_loss(argmax_one_hot, num_samples=n, sigma=sigma, noise="gumbel", rng=1)
    value = as_np(
        backend,
        fy(backend.asarray(theta_np, dtype="float64"), backend.asarray(y_np, dtype="float64")),
    )
    t = theta_np / sigma
    lse = t.max(-1) + np.log(np.exp(t - t.max(-1, keepdims=True)).sum(-1))
    expected = sigma * (lse - (t * y_np).sum(-1)) + sigma * EULER_GAMMA
    assert np.all(np.abs(value - expected) < 5 * sigma * math.pi / math.sqrt(6 * n)), (
        value,
        expected,
    )


def test_fy_port_value_is_the_squared_distance_of_softmax(backend):
    """value="port" gives the TensorFlow original's and the PyTorch port's number,
    sum((y_sigma - y)**2) per example, from the same samples as the gradient (exactly
    sum(grad**2)); for the Gumbel arg-max y_sigma = softmax(theta / sigma), so it is close to
    ||softmax(theta / sigma) - y||^2 (each entry of y_sigma has sd <= 0.5 / sqrt(N): with
    N = 20000 the 0.03 tolerance is over 8 sd of the linear term). The default value is
    sigma * cross-entropy + sigma * gamma: no constant links the two (their difference
    changes from example to example), and the gradient is the same for both."""
    theta_np = np.array([[0.3, -0.2, 1.0], [0.0, 0.5, -1.0], [2.0, 0.1, 0.0]])
    y_np = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    n, sigma = 20_000, 0.7
    theta = backend.asarray(theta_np, dtype="float64")
    y = backend.asarray(y_np, dtype="float64")
    kw = dict(num_samples=n, sigma=sigma, noise="gumbel", rng=1)
    port = fenchel_young_loss(argmax_one_hot, value="port", **kw)
    fy = fenchel_young_loss(argmax_one_hot, **kw)
    value, grad = (as_np(backend, a) for a in port.value_and_grad(theta, y))
    np.testing.assert_allclose(value, (grad**2).sum(-1), rtol=1e-12)
    t = theta_np / sigma
    soft = np.exp(t - t.max(-1, keepdims=True))
    soft /= soft.sum(-1, keepdims=True)
    np.testing.assert_allclose(value, ((soft - y_np) ** 2).sum(-1), atol=0.03)
    fy_value, fy_grad = (as_np(backend, a) for a in fy.value_and_grad(theta, y))
    np.testing.assert_array_equal(fy_grad, grad)  # same samples, same gradient
    lse = t.max(-1) + np.log(np.exp(t - t.max(-1, keepdims=True)).sum(-1))
    closed = sigma * (lse - (t * y_np).sum(-1)) + sigma * EULER_GAMMA
    np.testing.assert_allclose(fy_value, closed, atol=5 * sigma * math.pi / math.sqrt(6 * n))
    gap = fy_value - value
    assert np.ptp(gap) > 0.2, gap  # not a constant offset
    # maximize=False: the same squared distance (the sign of y - y_sigma does not matter)
    mn = fenchel_young_loss(argmax_one_hot, value="port", maximize=False, **kw)
    v2, g2 = (as_np(backend, a) for a in mn.value_and_grad(theta, y))
    np.testing.assert_array_equal(g2, -grad)
    np.testing.assert_allclose(v2, value, rtol=1e-12)
    assert "value='port'" in repr(port) and port.replace(sigma=0.5).value == "port"
    with pytest.raises(ValueError, match="value must be one of 'fenchel_young', 'port'"):
        fenchel_young_loss(argmax_one_hot, value="tf")


def test_tf_fenchel_young_ranks():
    """The TF/port FY test: 1-based ranks, N 1e4, sigma 0.1, unbatched, theta [1,20,7.3,7.35]:
    g_true[:2] = 0 exactly (those ranks never move at sigma 0.1), |g_pert| < |g_hard| <
    |g_true| and sum(g) = 0 (ranks always sum to 10)."""

    def ranks_1(x):
        return ranks(x) + 1.0

    theta = np.array([1.0, 20.0, 7.3, 7.35])
    fy = fenchel_young_loss(ranks_1, num_samples=10_000, sigma=0.1, batched=False, rng=0)
    y_true, y_hard = np.array([1.0, 4, 3, 2]), np.array([1.0, 4, 2, 3])
    y_pert = perturbed(ranks_1, num_samples=10_000, sigma=0.1, batched=False, rng=1)(theta)
    grads = [fy.grad(theta, y) for y in (y_true, y_hard, y_pert)]
    np.testing.assert_array_equal(grads[0][:2], 0.0)
    norms = [np.linalg.norm(g) for g in grads]
    assert norms[2] < norms[1] < norms[0], norms
    for g in grads:
        assert abs(g.sum()) < 1e-9
    # E ranks [1, 4, 2.362, 2.638] (swap probability Phi(-0.05 / (0.1 sqrt 2)))
    np.testing.assert_allclose(y_pert, [1, 4, 2.362, 2.638], atol=5 * math.sqrt(0.23 / 10_000))


def test_fy_bad_input(backend):
    theta = backend.asarray([[0.3, -0.2, 1.0]], dtype="float64")
    fy = fenchel_young_loss(argmax_one_hot, num_samples=4, rng=0)
    with pytest.raises(ValueError, match=r"y must have the shape of theta \(1, 3\)"):
        fy(theta, backend.asarray([1.0, 0.0, 0.0], dtype="float64"))
    with pytest.raises(ValueError, match="shaped like its input"):
        fenchel_young_loss(hard_or, num_samples=4, rng=0)(theta, theta)
    with pytest.raises(TypeError, match="maximize must be True or False"):
        fenchel_young_loss(argmax_one_hot, maximize="yes")
    with pytest.raises(TypeError, match="func must be callable"):
        fenchel_young_loss(None)


def test_fy_target_is_checked_before_sampling(backend):
    """y: None (an AttributeError after the whole pass), complex (the imaginary part used to
    be dropped), another library or shape fail before func is called; integer and bool
    labels are real values, cast to theta's dtype."""
    theta = backend.asarray([[0.3, -0.2, 1.0], [0.0, 0.5, -1.0]], dtype="float64")
    calls = []

    def solver(x):
        calls.append(x.shape[0])
        return argmax_one_hot(x)

    fy = fenchel_young_loss(solver, num_samples=20, rng=0, sigma=0.5)
    one_hot = np.eye(3)[[2, 1]]
    bad = [
        (None, TypeError, "y must be an array, got NoneType"),
        (one_hot.tolist(), TypeError, "y must be an array, got list"),
        (backend.asarray(one_hot, dtype="complex128"), TypeError, "y must be real"),
        (backend.asarray(one_hot[:1], dtype="float64"), ValueError, "y must have the shape"),
    ]
    if backend.name != "numpy":
        bad.append((one_hot, TypeError, "y is a numpy.ndarray.*one library"))
    for y, exc, match in bad:
        for call in (fy, fy.grad, fy.value_and_grad):
            with pytest.raises(exc, match=match):
                call(theta, y)
    assert calls == []
    ref = as_np(backend, fy(theta, backend.asarray(one_hot, dtype="float64")))
    for dt in ("int64", "bool"):
        got = fy(theta, backend.asarray(one_hot, dtype=dt))
        backend.assert_same_place(got, theta.dtype)
        np.testing.assert_array_equal(as_np(backend, got), ref)


# -- backends.qmc ----------------------------------------------------------------------------------
def test_sobol_dimension_limit_is_scipys():
    from scipy.stats import qmc as scipy_qmc

    assert qmc.MAX_DIM == scipy_qmc.Sobol.MAXDIM


def test_sobol_stream_continues_and_stays_open(backend):
    dt = backend.dtype("float32")
    a = qmc.sobol(3, 2, backend.adapter.rng(5, device=backend.device))
    b = qmc.sobol(3, 2, backend.adapter.rng(5, device=backend.device))
    first, second = a.uniform(8, dtype=dt), a.uniform(24, dtype=dt)
    backend.assert_same_place(first, dt)
    whole = backend.to_numpy(b.uniform(32, dtype=dt))
    np.testing.assert_array_equal(
        np.concatenate([backend.to_numpy(first), backend.to_numpy(second)]), whole
    )
    assert whole.shape == (32, 2, 3) and whole.min() > 0 and whole.max() <= 1
    assert not np.allclose(whole[:, 0], whole[:, 1])  # independent scrambles per copy
    c = qmc.sobol(3, 2, backend.adapter.rng(5, device=backend.device))
    z = backend.to_numpy(c.normal(32, dtype=backend.dtype("float64")))
    from scipy.special import ndtr

    np.testing.assert_allclose(ndtr(z), whole, atol=1e-6)
    assert np.all(np.isfinite(z))


def test_sobol_bad_dimension(backend):
    with pytest.raises(ValueError, match="dim must be in"):
        qmc.sobol(qmc.MAX_DIM + 1, 1, backend.adapter.rng(0, device=backend.device))
