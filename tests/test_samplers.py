"""refimpl.perturbations samplers: values, uniformity, ball membership and bad input.

Statistical tests use fixed seeds, so each outcome is deterministic. A conforming sampler
would fail one of these checks, for a seed picked at random, with probability at most
``P_MIN = 1e-4`` (the p-value threshold of each KS / binomial test). Sample sizes are chosen so
that the negative controls (a wrong radius law, a one-signed sampler) are rejected with
p-values below 1e-12: the tests cannot pass by accident.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

import backends
from refimpl.perturbations import samplers, uniform_like_l1_n_ball
from tests.conftest import arr, as64, has_dtype, tol

KINDS = ("l1", "l2", "linf")
ORD = {"l1": 1, "l2": 2, "linf": np.inf}
P_MIN = 1e-4  # false-failure probability of each statistical check for a random seed
N_ROWS = 8000


def sampler(kind: str):
    return getattr(samplers, f"uniform_like_{kind}_n_ball")


SAMPLERS = {kind: sampler(kind) for kind in KINDS}


def native_generator(backend, seed: int):
    """A fresh native generator for the backend (two with one seed give the same stream)."""
    if backend.name == "torch":
        import torch

        return torch.Generator(device=backend.device).manual_seed(seed)
    return np.random.default_rng(seed)


def zeros(backend, shape, dtype):
    # (backend.asarray(np.zeros(())) makes a 1-d torch tensor: np.ascontiguousarray is >= 1-d)
    return backend.xp.zeros(shape, dtype=backend.dtype(dtype), device=backend.device)


def draw(backend, kind, shape, dtype, *, eps=1.0, param_ndim=-1, seed=0):
    x = zeros(backend, shape, dtype)
    return x, sampler(kind)(x, eps, param_ndim, rng=native_generator(backend, seed))


def radii(out: np.ndarray, kind: str, eps: float, rows: int) -> np.ndarray:
    """Norm of each row divided by epsilon, in float64."""
    flat = out.astype(np.float64).reshape(rows, -1)
    return np.linalg.norm(flat, ord=ORD[kind], axis=1) / eps


# -- values: the formula applied to the same primitive draws (float64 numpy reference) ------
def reference(backend, kind, x, eps, param_ndim, seed) -> np.ndarray:
    """Replay the primitive draws with the backend's RNG, then compute in float64."""
    rng = backends.as_rng(native_generator(backend, seed), like=x)
    from refimpl.batching import batch_shape

    n, *row = batch_shape(tuple(x.shape), param_ndim)
    d = math.prod(row)
    as64 = lambda a: backend.to_numpy(a).astype(np.float64)  # noqa: E731
    if kind == "l1":
        u = as64(rng.uniform((n, d), dtype=x.dtype))
        w = as64(rng.uniform((n, d), dtype=x.dtype, low=-1.0, high=1.0))
        z = np.diff(np.sort(u, axis=1), axis=1, prepend=0.0)
        out = eps * np.sign(w) * z
    elif kind == "l2":
        g = as64(rng.normal((n, d + 2), dtype=x.dtype))
        out = eps * g[:, :d] / np.linalg.norm(g, axis=1, keepdims=True)
    else:
        out = as64(rng.uniform(tuple(x.shape), dtype=x.dtype, low=-eps, high=eps))
    return out.reshape(tuple(x.shape))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "shape, param_ndim", [((4, 3), -1), ((2, 3, 5), None), ((2, 3, 5), 1), ((6,), 0), ((), None)]
)
def test_values_match_float64_reference(backend, dtype, kind, shape, param_ndim):
    eps = 0.7
    x, out = draw(backend, kind, shape, dtype, eps=eps, param_ndim=param_ndim, seed=11)
    backend.assert_same_place(out, dtype)
    assert tuple(out.shape) == shape
    ref = reference(backend, kind, x, eps, param_ndim, seed=11)
    np.testing.assert_allclose(backend.to_numpy(out), ref, **tol(backend.dtype_name(dtype)))
    np.testing.assert_array_equal(backend.to_numpy(x), np.zeros(shape))  # template untouched


@pytest.mark.parametrize("kind", KINDS)
def test_same_seed_same_values(backend, kind):
    dt = backend.dtype("float32")
    _, a = draw(backend, kind, (5, 7), dt, seed=3)
    _, b = draw(backend, kind, (5, 7), dt, seed=3)
    _, c = draw(backend, kind, (5, 7), dt, seed=4)
    np.testing.assert_array_equal(backend.to_numpy(a), backend.to_numpy(b))
    assert not np.array_equal(backend.to_numpy(a), backend.to_numpy(c))


# -- uniformity ------------------------------------------------------------------------------
def marginal_cdf(kind: str, d: int):
    """CDF of the statistic ``marginal_stat`` of one coordinate of a uniform draw."""
    if kind == "l1":  # |x_i| / eps ~ Beta(1, d)
        return lambda t: stats.beta.cdf(t, 1, d)
    if kind == "l2":  # (x_i / eps)^2 ~ Beta(1/2, (d + 1)/2): a coordinate of S^(d+1)
        return lambda t: stats.beta.cdf(t, 0.5, (d + 1) / 2)
    return lambda t: stats.uniform.cdf(t, -1, 2)  # x_i / eps ~ U[-1, 1)


def marginal_stat(kind: str, col: np.ndarray, eps: float) -> np.ndarray:
    return {"l1": np.abs(col) / eps, "l2": (col / eps) ** 2, "linf": col / eps}[kind]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("d", [2, 5])
def test_uniform_in_ball(backend, dtype, kind, d):
    """r/eps has CDF t^d; coordinates have the ball's marginal law; signs are symmetric."""
    eps = 1.5
    _, out = draw(backend, kind, (N_ROWS, d), dtype, eps=eps, seed=100 + d)
    out = backend.to_numpy(out).astype(np.float64)
    r = radii(out, kind, eps, N_ROWS)
    assert np.all(r < 1.0), f"max radius {r.max()} (every sample must be strictly inside)"
    p_radius = stats.kstest(r, lambda t: np.clip(t, 0, 1) ** d).pvalue
    assert p_radius > P_MIN, f"radius law t^{d} rejected, p={p_radius:.2e} (false-fail prob 1e-4)"
    for j in (0, d - 1):
        p = stats.kstest(marginal_stat(kind, out[:, j], eps), marginal_cdf(kind, d)).pvalue
        assert p > P_MIN, f"coordinate {j} marginal rejected, p={p:.2e} (false-fail prob 1e-4)"
    positives = int(np.count_nonzero(out > 0))
    p_sign = stats.binomtest(positives, out.size, 0.5).pvalue
    assert p_sign > P_MIN, f"{positives}/{out.size} positive, p={p_sign:.2e} (false-fail 1e-4)"


@pytest.mark.parametrize("kind", KINDS)
def test_negative_controls_are_rejected(backend, kind):
    """The same tests reject a wrong radius law (t^(d-1)) and a positive-only sampler."""
    d, eps = 5, 1.0
    _, out = draw(backend, kind, (N_ROWS, d), backend.dtype("float64"), seed=7)
    out = backend.to_numpy(out)
    r = radii(out, kind, eps, N_ROWS)
    assert stats.kstest(r, lambda t: np.clip(t, 0, 1) ** (d - 1)).pvalue < 1e-12
    one_signed = np.abs(out)
    assert stats.binomtest(int(np.count_nonzero(one_signed > 0)), out.size, 0.5).pvalue < 1e-12


@pytest.mark.parametrize("kind", ["l1", "l2"])
def test_param_ndim_selects_the_rows(backend, kind):
    """param_ndim=None: one row over the whole array; 1: one per last axis."""
    dt = backend.dtype("float64")
    _, whole = draw(backend, kind, (400, 2, 3), dt, param_ndim=None, seed=1)
    _, rows = draw(backend, kind, (400, 2, 3), dt, param_ndim=1, seed=1)
    whole, rows = backend.to_numpy(whole), backend.to_numpy(rows)
    assert radii(whole, kind, 1.0, 1)[0] < 1.0
    r = radii(rows, kind, 1.0, 800)
    assert np.all(r < 1.0)
    assert stats.kstest(r, lambda t: np.clip(t, 0, 1) ** 3).pvalue > P_MIN  # rows are 3-d


# -- properties (hypothesis) -------------------------------------------------------------------
@st.composite
def shapes_and_param_ndim(draw):
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=0, max_size=4)))
    ndim = len(shape)
    param_ndim = draw(st.one_of(st.none(), st.integers(-ndim, ndim)))
    return shape, param_ndim


@given(
    sp=shapes_and_param_ndim(),
    eps=st.floats(1e-3, 1e3, allow_nan=False, allow_infinity=False),
    kind=st.sampled_from(KINDS),
    seed=st.integers(0, 2**31 - 1),
)
def test_property_shape_place_and_ball(backend, dtype, sp, eps, kind, seed):
    shape, param_ndim = sp
    x = zeros(backend, shape, dtype)
    out = sampler(kind)(x, eps, param_ndim, rng=seed)
    backend.assert_same_place(out, dtype)
    assert tuple(out.shape) == shape
    o = backend.to_numpy(out).astype(np.float64)
    if kind == "linf":
        e32 = float(np.float32(eps)) if backend.dtype_name(dtype) == "float32" else eps
        assert np.all((o >= -e32) & (o < e32)), "outside [-eps, eps)"
    else:
        from refimpl.batching import batch_shape

        n = batch_shape(shape, param_ndim)[0]
        assert np.all(radii(o, kind, eps, n) < 1.0), "a sample is not strictly inside the ball"
    again = sampler(kind)(x, eps, param_ndim, rng=seed)
    np.testing.assert_array_equal(backend.to_numpy(again), backend.to_numpy(out))


def test_empty_rows_and_empty_batches(backend):
    dt = backend.dtype("float32")
    for kind in KINDS:
        for shape in [(0, 3), (2, 0)]:
            _, out = draw(backend, kind, shape, dt)
            backend.assert_same_place(out, dt)
            assert tuple(out.shape) == shape


# -- bfloat16, a huge epsilon, complex dtypes --------------------------------------------------
@pytest.mark.parametrize("kind", sorted(SAMPLERS))
def test_bfloat16_is_sampled(backend, kind):
    if not has_dtype(backend, "bfloat16"):
        pytest.skip(f"{backend.name} has no bfloat16")
    x = backend.xp.zeros((300, 4), dtype=backend.xp.bfloat16, device=backend.device)
    for rng in (0, np.random.default_rng(0)):  # native generator, and numpy's (float32, cast)
        out = SAMPLERS[kind](x, 2.0, rng=rng)
        backend.assert_same_place(out, x.dtype)
        o = as64(backend, out)
        norm = {"l1": 1, "l2": 2, "linf": np.inf}[kind]
        assert np.all(np.linalg.norm(o, ord=norm, axis=1) <= 2.0 * (1 + 2**-7))
        assert np.any(o != 0)


@pytest.mark.parametrize("kind", sorted(SAMPLERS))
def test_large_epsilon_stays_finite(backend, kind):
    x = arr(backend, np.ones((4, 3)), "float64")
    out = as64(backend, SAMPLERS[kind](x, epsilon=1e308, rng=0))
    assert np.all(np.isfinite(out)) and np.any(out != 0)
    assert np.all(np.abs(out) <= 1e308)


def _complex_draws(backend, kind, n, d, eps, seed):
    x = arr(backend, np.zeros((n, d)), "complex128")
    out = SAMPLERS[kind](x, eps, rng=seed)
    backend.assert_same_place(out, x.dtype)
    return as64(backend, out)


def test_complex_l2_sampler_is_uniform_in_the_ball(backend):
    """C^d is R^(2d): ||z||_2 / eps has CDF t^(2d) (KS p > 1e-4: false-fail 1e-4)."""
    n, d, eps = 4000, 3, 1.5
    z = _complex_draws(backend, "l2", n, d, eps, seed=3)
    r = np.linalg.norm(z, axis=1) / eps
    assert np.all(r < 1)
    assert stats.kstest(r, lambda t: np.clip(t, 0, 1) ** (2 * d)).pvalue > 1e-4
    phase = np.angle(z[:, 0])
    assert stats.kstest(phase, "uniform", args=(-np.pi, 2 * np.pi)).pvalue > 1e-4


def test_complex_linf_sampler_is_uniform_in_the_polydisc(backend):
    """||z||_inf = max |z_i| < eps; each |z_i| / eps has CDF t^2 (false-fail 1e-4 each)."""
    z = _complex_draws(backend, "linf", 3000, 2, 0.7, seed=4)
    m = np.abs(z) / 0.7
    assert np.all(m < 1)
    assert stats.kstest(m[:, 0], lambda t: np.clip(t, 0, 1) ** 2).pvalue > 1e-4
    assert stats.kstest(np.angle(z[:, 1]), "uniform", args=(-np.pi, 2 * np.pi)).pvalue > 1e-4


# -- bad input ---------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("eps", [-1e-300, -1.0, float("nan"), float("inf")])
def test_bad_epsilon_value(backend, kind, eps):
    x = backend.asarray(np.zeros((2, 3)), dtype="float32")
    with pytest.raises(ValueError, match="epsilon"):
        sampler(kind)(x, eps)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("eps", ["1", True, None, [1.0]])
def test_bad_epsilon_type(backend, kind, eps):
    x = backend.asarray(np.zeros((2, 3)), dtype="float32")
    with pytest.raises(TypeError, match="epsilon"):
        sampler(kind)(x, eps)


@pytest.mark.parametrize("kind", sorted(SAMPLERS))
def test_epsilon_beyond_the_dtype_is_rejected(backend, kind):
    x = arr(backend, np.ones((4, 3)), "float32")
    with pytest.raises(ValueError, match=r"epsilon=1e\+39.*float32"):
        SAMPLERS[kind](x, epsilon=1e39, rng=0)


@pytest.mark.parametrize("kind", KINDS)
def test_non_floating_or_non_array_x(backend, kind):
    with pytest.raises(TypeError, match="x must have a real (or complex )?floating dtype"):
        sampler(kind)(backend.asarray(np.zeros((2, 3), dtype=np.int64)))
    with pytest.raises(TypeError, match="x must be an array"):
        sampler(kind)([[0.0, 0.0]])


def test_complex_l1_sampler_says_unsupported(backend):
    x = arr(backend, np.zeros((2, 3)), "complex64")
    with pytest.raises(TypeError, match="complex"):
        uniform_like_l1_n_ball(x)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("param_ndim", [3, -3, 99])
def test_param_ndim_out_of_range(backend, kind, param_ndim):
    x = backend.asarray(np.zeros((2, 3)), dtype="float32")
    with pytest.raises(ValueError, match="param_ndim"):
        sampler(kind)(x, 1.0, param_ndim)


@pytest.mark.parametrize("kind", KINDS)
def test_param_ndim_and_rng_types(backend, kind):
    x = backend.asarray(np.zeros((2, 3)), dtype="float32")
    with pytest.raises(TypeError, match="param_ndim"):
        sampler(kind)(x, 1.0, 1.0)
    with pytest.raises(TypeError, match="rng"):
        sampler(kind)(x, 1.0, -1, rng="seed")
    with pytest.raises(ValueError, match="param_ndim"):  # 0-d: the default -1 is out of range
        sampler("l1")(zeros(backend, (), "float32"))
