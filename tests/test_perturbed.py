"""refimpl.perturbed.perturbed: values and closed-form derivatives against exact closed forms,
adjointness, chunk-size invariance, the variance-reduction modes, output handling, bad input.

Statistical checks: fixed seeds, and a bound that a correct implementation would violate,
for a seed picked at random, with the false-failure probability stated next to each. The
unbiasedness checks use R independent replicate estimates (different seeds) and a
two-sided t bound on their mean: |mean - exact| <= t_{R-1}(1 - ALPHA/2) * standard error,
per entry (ALPHA = 1e-7; with <= 60 entries a test fails falsely with probability < 1e-5).
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from refimpl.perturbed import argmax_one_hot, hard_or, perturbed
from refimpl.perturbed.sampling import block_size
from tests.conftest import arr

THETA_BATCH = [[-0.6, 1.9, -0.2, 1.1, -1.0], [-0.6, 1.0, -0.2, 1.8, -1.0]]
EULER_GAMMA = 0.5772156649015329
ALPHA = 1e-7
MODES = [(s, b) for s in ("mc", "antithetic", "qmc") for b in (False, True)]


def softmax(theta, sigma):
    t = np.asarray(theta, dtype=np.float64) / sigma
    e = np.exp(t - t.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def softmax_jacobian(theta, sigma):
    p = softmax(theta, sigma)
    return (
        np.einsum("...i,ij->...ij", p, np.eye(p.shape[-1])) - p[..., :, None] * p[..., None, :]
    ) / sigma


def t_bound(replicates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, half-width) of the replicate estimates at level ALPHA (two-sided t)."""
    from scipy.stats import t

    r = replicates.shape[0]
    se = replicates.std(axis=0, ddof=1) / math.sqrt(r)
    return replicates.mean(axis=0), t.isf(ALPHA / 2, r - 1) * se


def assert_unbiased(replicates, exact, what):
    mean, half = t_bound(np.asarray(replicates, dtype=np.float64))
    err = np.abs(mean - exact)
    assert np.all(err <= half + 1e-12), (
        f"{what}: |mean - exact| max {err.max():.4g} exceeds the t bound (max excess "
        f"{(err - half).max():.3g}; false-failure probability < 1e-5)"
    )


def assert_below(err, bound, what=""):
    err, bound = np.broadcast_arrays(np.asarray(err, dtype=np.float64), bound)
    assert np.all(err < bound), (
        f"{what}: error {err.max():.4g} above its bound (max excess {(err - bound).max():.3g})"
    )


def as_np(backend, a):
    return backend.to_numpy(a).astype(np.float64)


# -- placement, shapes, forms ---------------------------------------------------------------
def test_function_and_both_decorator_forms_agree(backend):
    theta = backend.asarray(THETA_BATCH, dtype="float64")
    kw = dict(num_samples=200, sigma=0.5, noise="gumbel", rng=3)
    as_function = perturbed(argmax_one_hot, **kw)

    @perturbed(**kw)
    def with_args(x):
        return argmax_one_hot(x)

    @perturbed
    def bare(x):
        return argmax_one_hot(x)

    a, b = as_np(backend, as_function(theta)), as_np(backend, with_args(theta))
    np.testing.assert_array_equal(a, b)
    assert bare.num_samples == 1000 and bare.sigma == 0.05 and bare.noise.name == "normal"
    assert bare.batched and bare.baseline and bare.sampling == "mc"
    assert bare(theta).shape == (2, 5) and with_args.__name__ == "with_args"


@pytest.mark.parametrize("batched", [True, False])
def test_outputs_live_with_theta(backend, dtype, batched):
    shape = (3, 4) if batched else (4,)
    theta = backend.asarray(np.linspace(-1, 1, math.prod(shape)).reshape(shape), dtype=dtype)
    p = perturbed(argmax_one_hot, num_samples=64, sigma=0.3, batched=batched, rng=0)
    value, jac = p.value_and_jacobian(theta)
    assert value.shape == shape and jac.shape == ((3, 4, 4) if batched else (4, 4))
    v, u = backend.xp.ones_like(theta), backend.xp.ones_like(value)
    for out, expected in (
        (value, shape),
        (jac, jac.shape),
        (p.jvp(theta, v), shape),
        (p.vjp(theta, u), shape),
    ):
        backend.assert_same_place(out, dtype)
        assert tuple(out.shape) == tuple(expected)


# -- exact closed forms ----------------------------------------------------------------------------
@pytest.mark.parametrize("sampling, baseline", MODES)
def test_gumbel_argmax_is_softmax_and_its_jacobian(backend, sampling, baseline):
    """E[argmax(theta + sigma Z)] = softmax(theta / sigma) and J = (diag p - p p^T) / sigma
    for Gumbel Z (exact). 32 replicates of 512 samples; false-failure < 1e-5."""
    dt = backend.dtype("float64")
    theta = backend.asarray(THETA_BATCH, dtype=dt)
    values, jacs = [], []
    for seed in range(32):
        p = perturbed(argmax_one_hot, num_samples=512, sigma=0.5, noise="gumbel", rng=seed,
                      sampling=sampling, baseline=baseline)  # fmt: skip
        value, jac = p.value_and_jacobian(theta)
        values.append(as_np(backend, value))
        jacs.append(as_np(backend, jac))
    assert_unbiased(values, softmax(THETA_BATCH, 0.5), f"{sampling} value")
    assert_unbiased(jacs, softmax_jacobian(THETA_BATCH, 0.5), f"{sampling} baseline={baseline} J")


@pytest.mark.parametrize("sampling", ["mc", "antithetic", "qmc"])
def test_normal_noise_on_a_linear_map_gives_the_map(backend, sampling):
    """func(x) = x A^T + c: value A theta + c, Jacobian A (optax's test). With the baseline,
    J_hat = A (1/N) sum z z^T; per entry Var <= 2 |A_o|^2 / N, bound 5 sd (CLT):
    false-failure < 12 * 6e-7 for plain Monte Carlo (the other modes are tighter)."""
    rng = np.random.default_rng(0)
    a_np, c_np = rng.standard_normal((2, 3)), rng.standard_normal(2)
    dt = backend.dtype("float64")
    a, c = backend.asarray(a_np, dtype=dt), backend.asarray(c_np, dtype=dt)
    theta_np = rng.standard_normal((4, 3))
    theta = backend.asarray(theta_np, dtype=dt)
    n, sigma = 4096, 0.3

    def linear(x):
        return x @ backend.xp.matrix_transpose(a) + c

    p = perturbed(linear, num_samples=n, sigma=sigma, rng=1, sampling=sampling)
    value, jac = p.value_and_jacobian(theta)
    row_norm = np.linalg.norm(a_np, axis=1)
    bound_j = 5 * math.sqrt(2) * row_norm[:, None] / math.sqrt(n)
    assert_below(np.abs(as_np(backend, jac) - a_np[None]), bound_j[None], "Jacobian")
    bound_v = 5 * sigma * row_norm / math.sqrt(n)
    assert_below(np.abs(as_np(backend, value) - (theta_np @ a_np.T + c_np)), bound_v, "value")


def test_gumbel_identity_is_shifted_by_sigma_gamma(backend):
    """E[theta + sigma Z] = theta + sigma gamma for Gumbel Z; J = I (optax #1308: the 1/sigma
    factor). Per coordinate sd sigma pi / sqrt(6 N); 5 sd bounds (false-failure < 1e-5)."""
    dt = backend.dtype("float64")
    theta_np = np.array([[0.3, -1.0, 2.0]])
    n, sigma = 20000, 0.2
    p = perturbed(lambda x: x, num_samples=n, sigma=sigma, noise="gumbel", rng=5)
    value, jac = p.value_and_jacobian(backend.asarray(theta_np, dtype=dt))
    sd = sigma * math.pi / math.sqrt(6 * n)
    assert_below(np.abs(as_np(backend, value) - theta_np - sigma * EULER_GAMMA), 5 * sd, "value")
    # J_hat = (1/N) sum z (1 - e^{-z})^T; Var of an entry <= E[z^2] E[...]: bounded by 6 here
    assert_below(np.abs(as_np(backend, jac)[0] - np.eye(3)), 5 * math.sqrt(6 / n), "Jacobian")


def test_hard_or_closed_forms(backend):
    """Normal noise: E = 1 - 2 prod Phi(-x/sigma); Gumbel: 1 - 2 exp(-sum e^{x/sigma}).
    Each value is 2 * (binomial frequency) - 1: 5 sd bounds (false-failure < 1e-5)."""
    from scipy.stats import norm

    x_np = np.array([[-0.3, -0.1], [-0.05, -0.2], [0.1, -1.0]])
    x = backend.asarray(x_np, dtype="float64")
    n, sigma = 20000, 0.2
    exact = {
        "normal": 1 - 2 * norm.cdf(-x_np / sigma).prod(axis=1),
        "gumbel": 1 - 2 * np.exp(-np.exp(x_np / sigma).sum(axis=1)),
    }
    for noise, e in exact.items():
        got = as_np(backend, perturbed(hard_or, num_samples=n, sigma=sigma, noise=noise, rng=2)(x))
        q = (1 + e) / 2
        assert_below(np.abs(got - e), 5 * 2 * np.sqrt(q * (1 - q) / n) + 1e-12, noise)


# -- derivative protocol: exact identities on the same samples ---------------------------------------
@given(
    batch=st.integers(1, 3),
    d=st.integers(1, 5),
    sigma=st.floats(0.05, 3.0),
    noise=st.sampled_from(["normal", "gumbel"]),
    mode=st.sampled_from(MODES),
    batched=st.booleans(),
    n=st.integers(1, 70),
)
def test_jvp_vjp_are_adjoint_and_match_the_jacobian(
    backend, batch, d, sigma, noise, mode, batched, n
):
    """With an int seed every call sees the same samples: <J v, u> = <v, J^T u> up to
    rounding, and both equal the contractions of jacobian(); value_and_vjp = (p, vjp)."""
    rng = np.random.default_rng(batch * 100 + d)
    shape = (batch, d) if batched else (d,)
    dt = backend.dtype("float64")
    theta = backend.asarray(rng.standard_normal(shape), dtype=dt)
    weights = backend.asarray(rng.standard_normal((d, 2)), dtype=dt)

    def func(x):  # a piecewise-linear solver with output (rows, 2)
        return argmax_one_hot(x) @ weights

    sampling, baseline = mode
    p = perturbed(func, num_samples=n, sigma=sigma, noise=noise, batched=batched, rng=7,
                  sampling=sampling, baseline=baseline)  # fmt: skip
    out_shape = (batch, 2) if batched else (2,)
    v_np, u_np = rng.standard_normal(shape), rng.standard_normal(out_shape)
    v, u = backend.asarray(v_np, dtype=dt), backend.asarray(u_np, dtype=dt)
    jv, jtu = as_np(backend, p.jvp(theta, v)), as_np(backend, p.vjp(theta, u))
    np.testing.assert_allclose((jv * u_np).sum(), (v_np * jtu).sum(), rtol=1e-9, atol=1e-9)
    jac = as_np(backend, p.jacobian(theta))
    if batched:
        np.testing.assert_allclose(jv, np.einsum("boi,bi->bo", jac, v_np), rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(jtu, np.einsum("boi,bo->bi", jac, u_np), rtol=1e-9, atol=1e-9)
    else:
        np.testing.assert_allclose(jv, jac @ v_np, rtol=1e-9, atol=1e-9)
    value, jtu2 = p.value_and_vjp(theta, u)
    np.testing.assert_array_equal(as_np(backend, value), as_np(backend, p(theta)))
    np.testing.assert_array_equal(as_np(backend, jtu2), jtu)


def test_leading_tangent_and_cotangent_batches(backend):
    dt = backend.dtype("float64")
    theta = backend.asarray(THETA_BATCH, dtype=dt)
    p = perturbed(argmax_one_hot, num_samples=100, sigma=0.5, rng=1)
    vs = np.random.default_rng(0).standard_normal((3, 2, 5))
    stacked_v = as_np(backend, p.jvp(theta, backend.asarray(vs, dtype=dt)))
    stacked_u = as_np(backend, p.vjp(theta, backend.asarray(vs, dtype=dt)))
    assert stacked_v.shape == stacked_u.shape == (3, 2, 5)
    for k in range(3):
        one = backend.asarray(vs[k], dtype=dt)
        np.testing.assert_allclose(stacked_v[k], as_np(backend, p.jvp(theta, one)), atol=1e-12)
        np.testing.assert_allclose(stacked_u[k], as_np(backend, p.vjp(theta, one)), atol=1e-12)


def test_central_differences_under_common_random_numbers(backend):
    """TF's test: the directional derivative of sum(y_sigma^2) along w against a central
    difference (eps 1e-2, |diff| < 0.05). With one seed for all three calls (common random
    numbers) N = 10^5 suffices: the difference's sd is about 0.01 here, so 0.05 is 5 sd."""
    dt = backend.dtype("float64")
    x = backend.asarray([-0.6, -0.5, 0.5], dtype=dt)
    w_np = np.random.default_rng(1).standard_normal(3)
    w_np /= np.linalg.norm(w_np)
    w = backend.asarray(w_np, dtype=dt)
    p = perturbed(argmax_one_hot, num_samples=100_000, sigma=0.5, batched=False, rng=11)
    y = p(x)
    lhs = float((as_np(backend, p.vjp(x, 2 * y)) * w_np).sum())
    eps = 1e-2

    def f(t):
        return float((as_np(backend, p(t)) ** 2).sum())

    rhs = (f(x + eps * w) - f(x - eps * w)) / (2 * eps)
    assert abs(lhs - rhs) < 0.05, (lhs, rhs)


# -- chunking and the noise stream -------------------------------------------------------------------
class Recorder:
    """A solver that records every perturbed input it sees."""

    def __init__(self, backend):
        self.backend, self.seen = backend, []

    def __call__(self, x):
        self.seen.append(self.backend.to_numpy(x))
        return argmax_one_hot(x)


@pytest.mark.parametrize("noise", ["normal", "gumbel"])
@pytest.mark.parametrize("sampling", ["mc", "antithetic", "qmc"])
def test_chunk_size_never_changes_the_samples(backend, dtype, noise, sampling):
    theta = backend.asarray(np.linspace(-1, 1, 6).reshape(2, 3), dtype=dtype)
    u = backend.asarray(np.arange(6.0).reshape(2, 3), dtype=dtype)
    results = {}
    for chunk in (None, 1, 3, 16, 37, 200):
        rec = Recorder(backend)
        p = perturbed(rec, num_samples=150, sigma=0.4, noise=noise, rng=9, chunk_size=chunk,
                      sampling=sampling, baseline=False)  # fmt: skip
        value, g = p.value_and_vjp(theta, u)
        results[chunk] = (np.concatenate(rec.seen), as_np(backend, value), as_np(backend, g))
    ref = results[None]
    for chunk, (x, value, g) in results.items():
        np.testing.assert_array_equal(x, ref[0], err_msg=f"chunk_size={chunk}: other samples")
        np.testing.assert_array_equal(value, ref[1])  # sums of 0/1 are exact
        np.testing.assert_allclose(g, ref[2], rtol=1e-5, atol=1e-5)  # summation order only


def test_block_sizes_are_even_and_bounded():
    for per in (1, 3, 10, 16, 25600, 81, 7, 10**6):
        for n in (1, 5, 1000, 10**6):
            b = block_size(per, n)
            assert b % 2 == 0 and 2 <= b <= max(2, n + 1)
            assert b * per <= max(2 * per, 2**18)


def test_antithetic_pairs_are_neighbours(backend):
    dt = backend.dtype("float64")
    theta_np = np.array([[0.2, -0.1, 0.4]])
    theta = backend.asarray(theta_np, dtype=dt)
    for noise in ("normal", "gumbel"):
        rec = Recorder(backend)
        perturbed(rec, num_samples=64, sigma=0.5, noise=noise, rng=4, sampling="antithetic")(theta)
        z = (np.concatenate(rec.seen) - theta_np) / 0.5  # (64, 3)
        a, b = z[0::2], z[1::2]
        if noise == "normal":  # z and -z
            np.testing.assert_allclose(a, -b, atol=1e-12)
        else:  # U and 1 - U: F(z) + F(z') = 1 with F(z) = exp(-exp(-z))
            np.testing.assert_allclose(np.exp(-np.exp(-a)) + np.exp(-np.exp(-b)), 1.0, atol=1e-9)


def test_qmc_points_are_stratified(backend):
    """Scrambled Sobol: the first 64 points put exactly one value in each [k/64, (k+1)/64) per
    coordinate and batch element (a (0, m, 1)-net); independent scrambles per element."""
    from scipy.stats import norm

    theta_np = np.zeros((2, 3))
    rec = Recorder(backend)
    p = perturbed(rec, num_samples=64, sigma=1.0, rng=8, sampling="qmc")
    p(backend.asarray(theta_np, dtype="float64"))
    u = norm.cdf(np.concatenate(rec.seen).reshape(64, 2, 3))
    cells = np.floor(u * 64).astype(int)
    for b in range(2):
        for i in range(3):
            assert sorted(cells[:, b, i]) == list(range(64))
    assert not np.allclose(u[:, 0], u[:, 1])


def test_qmc_beyond_sobol_dimension_warns_and_falls_back(backend):
    theta = backend.xp.zeros((1, 21202), dtype=backend.dtype("float32"), device=backend.device)
    kw = dict(num_samples=4, sigma=1.0, rng=3)
    with pytest.warns(UserWarning, match="falling back to sampling='mc'"):
        qmc = perturbed(lambda x: x, sampling="qmc", **kw)(theta)
    mc = perturbed(lambda x: x, sampling="mc", **kw)(theta)
    np.testing.assert_array_equal(backend.to_numpy(qmc), backend.to_numpy(mc))


def test_rng_semantics(backend):
    """An int seed repeats the noise on every call; a generator advances; None is fresh."""
    theta = backend.asarray(THETA_BATCH, dtype="float64")
    p = perturbed(lambda x: x, num_samples=8, sigma=1.0, rng=5)
    np.testing.assert_array_equal(as_np(backend, p(theta)), as_np(backend, p(theta)))
    shared = perturbed(
        lambda x: x, num_samples=8, sigma=1.0, rng=backend.adapter.rng(5, device=backend.device)
    )
    first = as_np(backend, shared(theta))
    np.testing.assert_array_equal(first, as_np(backend, p(theta)))  # same seed, same first draw
    assert not np.array_equal(first, as_np(backend, shared(theta)))
    fresh = perturbed(lambda x: x, num_samples=8, sigma=1.0)
    assert not np.array_equal(as_np(backend, fresh(theta)), as_np(backend, fresh(theta)))


# -- variance reduction -------------------------------------------------------------------------------
def jacobian_rmse(sampling, baseline, seeds=range(32), n=1024):
    """RMSE of the Jacobian estimate on the seed's 2x5 argmax (sigma 0.5, Gumbel)."""
    theta = np.asarray(THETA_BATCH)
    exact = softmax_jacobian(THETA_BATCH, 0.5)
    errs = []
    for seed in seeds:
        p = perturbed(argmax_one_hot, num_samples=n, sigma=0.5, noise="gumbel", rng=seed,
                      sampling=sampling, baseline=baseline)  # fmt: skip
        errs.append(np.mean((p.jacobian(theta) - exact) ** 2))
    return math.sqrt(np.mean(errs))


def test_variance_reduction_on_the_seed_argmax():
    """The documented table (docs/perturbed.md): 32 seeds, N 1024. The best option is at least
    2.5x below plain Monte Carlo, and the baseline helps (deterministic for these seeds)."""
    rmse = {mode: jacobian_rmse(*mode) for mode in MODES}
    plain = rmse[("mc", False)]
    assert 0.02 < plain < 0.035, rmse  # spec: about 0.027
    assert rmse[("mc", True)] < 0.8 * plain, rmse  # spec: about 0.019
    assert min(rmse.values()) * 2.5 <= plain, rmse
    assert rmse[("qmc", True)] * 2.5 <= plain, rmse


# -- outputs of other types and shapes -------------------------------------------------------------
def test_integer_and_bool_outputs_are_cast(backend, dtype):
    xp = backend.xp
    theta = backend.asarray(THETA_BATCH, dtype=dtype)
    as_bool = perturbed(lambda x: x > 0, num_samples=50, sigma=0.5, rng=0)
    as_int = perturbed(lambda x: xp.argmax(x, axis=-1), num_samples=50, sigma=0.5, rng=0)
    for p, shape in ((as_bool, (2, 5)), (as_int, (2,))):
        value, g = p.value_and_vjp(theta, xp.ones(shape, dtype=dtype, device=backend.device))
        backend.assert_same_place(value, dtype)
        backend.assert_same_place(g, dtype)
        assert tuple(value.shape) == shape
    mean_index = as_np(backend, as_int(theta))
    assert np.all((mean_index >= 0) & (mean_index <= 4)) and mean_index[0] != round(mean_index[0])


def test_other_output_shapes(backend):
    xp = backend.xp
    dt = backend.dtype("float64")
    theta = backend.asarray(np.random.default_rng(0).standard_normal((4, 3)), dtype=dt)

    def scalar(x):  # one number per example
        return xp.max(x, axis=-1)

    def outer(x):  # (rows, 3) -> (rows, 2, 3)
        return xp.stack((argmax_one_hot(x), argmax_one_hot(-x)), axis=1)

    for func, out in ((scalar, (4,)), (outer, (4, 2, 3))):
        p = perturbed(func, num_samples=64, sigma=0.3, rng=1)
        value, jac = p.value_and_jacobian(theta)
        assert tuple(value.shape) == out and tuple(jac.shape) == (*out, 3)
        assert tuple(p.vjp(theta, xp.ones(out, dtype=dt, device=backend.device)).shape) == (4, 3)
        assert tuple(p.jvp(theta, xp.ones_like(theta)).shape) == out
    single = perturbed(scalar, num_samples=64, sigma=0.3, batched=False, rng=1)
    assert tuple(single(theta[0, ...]).shape) == ()
    assert tuple(single.jacobian(theta[0, ...]).shape) == (3,)


def test_extra_args_and_kwargs_reach_func(backend):
    xp = backend.xp
    theta = backend.asarray(THETA_BATCH, dtype="float64")
    calls = []

    def scaled(x, scale, *, shift=0.0):
        calls.append((scale, shift))
        return argmax_one_hot(x * scale + shift)

    p = perturbed(scaled, num_samples=10, sigma=0.5, rng=0)
    p(theta, -1.0, shift=0.5)
    p.vjp(theta, xp.ones_like(theta), 2.0, shift=1.0)
    p.jvp(theta, xp.ones_like(theta), 3.0)
    assert {c for c in calls} == {(-1.0, 0.5), (2.0, 1.0), (3.0, 0.0)}
    flipped = as_np(backend, p(theta, -1.0))  # argmax of -x: the smallest entry wins
    assert flipped[0].argmax() == 4


def test_theta_is_not_modified(backend):
    theta = backend.asarray(THETA_BATCH, dtype="float64")
    before = backend.to_numpy(theta).copy()
    p = perturbed(argmax_one_hot, num_samples=20, sigma=0.5, rng=0)
    p.value_and_vjp(theta, backend.xp.ones_like(theta))
    p.jacobian(theta)
    np.testing.assert_array_equal(backend.to_numpy(theta), before)


def test_progress_bar(capsys):
    theta = np.zeros((2, 3))
    perturbed(argmax_one_hot, num_samples=10, sigma=0.5, rng=0, progress=True)(theta)
    assert "perturbed argmax_one_hot" in capsys.readouterr().err
    perturbed(argmax_one_hot, num_samples=10, sigma=0.5, rng=0, progress=False)(theta)
    perturbed(argmax_one_hot, num_samples=10, sigma=0.5, rng=0)(theta)  # small: no bar
    assert capsys.readouterr().err == ""


# -- the anchors' own tests (perturbations_test.py of google-research/perturbations, and its port)
@pytest.mark.parametrize("sigma", [1e-3, 1e-2, 1e-1])
def test_tf_reduce_sign_any(backend, sigma):
    """TF test 3: perturbed reduce_sign_any (N 1000, normal) -> [1, -1] to 2 decimals. Row 2
    flips per draw with probability P(Z > 4) = 3e-5, so a -0.99x needs > 5 of 1000 flips:
    probability < 1e-17."""
    x = backend.asarray([[-0.3, -1.2, 1.6], [-0.4, -2.4, -1.0]], dtype="float32")
    out = as_np(backend, perturbed(hard_or, num_samples=1000, sigma=sigma, rng=0)(x))
    np.testing.assert_allclose(out, [1.0, -1.0], atol=5e-3)


def test_tf_reduce_sign_any_gradient(backend):
    """TF test 4: the gradient of sum(perturbed reduce_sign_any) at sigma 0.1: g[0,2] > 0,
    g[1,0] > 0, all g <= g[0,2]. Over seeds g[0,2] is about 7 (sd 0.3) and g[1,0] about 1.1
    (sd 0.2), the other entries within +-0.5: every condition holds by 5 sd or more."""
    x = backend.asarray([[-0.6, -1.2, 0.05], [-0.2, -2.4, -1.0]], dtype="float64")
    p = perturbed(hard_or, num_samples=1000, sigma=0.1, rng=0)
    g = as_np(backend, p.vjp(x, backend.xp.ones((2,), dtype=x.dtype, device=backend.device)))
    assert g[0, 2] > 0 and g[1, 0] > 0 and np.all(g <= g[0, 2]), g


def test_batched_needs_rank_two(backend):
    """TF test 5."""
    p = perturbed(argmax_one_hot, num_samples=10)
    with pytest.raises(ValueError, match="batched=True needs theta of rank >= 2"):
        p(backend.asarray([1.0, 2.0], dtype="float64"))


def test_jaxopt_ranks_with_tiny_sigma_are_hard_ranks(backend):
    from refimpl.perturbed import ranks

    x = backend.asarray([[0.3, -1.0, 2.0, 0.5]], dtype="float64")
    p = perturbed(ranks, num_samples=100, sigma=1e-9, rng=0)
    np.testing.assert_allclose(as_np(backend, p(x)), [[1.0, 0.0, 3.0, 2.0]], atol=1e-3)


# -- bad input ----------------------------------------------------------------------------------
BAD_OPTIONS = [
    (dict(num_samples=0), ValueError, "num_samples must be an int >= 1, got 0"),
    (dict(num_samples=-3), ValueError, "num_samples"),
    (dict(num_samples=1.5), TypeError, "num_samples must be an int"),
    (dict(num_samples=True), TypeError, "num_samples"),
    (dict(num_samples="10"), TypeError, "num_samples"),
    (dict(sigma=0.0), ValueError, "sigma must be a finite number > 0, got 0.0"),
    (dict(sigma=-1), ValueError, "sigma"),
    (dict(sigma=float("nan")), ValueError, "sigma"),
    (dict(sigma=float("inf")), ValueError, "sigma"),
    (dict(sigma="0.1"), TypeError, "sigma must be a real number"),
    (dict(sigma=None), TypeError, "sigma"),
    (dict(noise="uniform"), ValueError, "noise must be one of 'normal', 'gumbel', got 'uniform'"),
    (dict(sampling="sobol"), ValueError, "sampling must be one of 'mc', 'antithetic', 'qmc'"),
    (dict(batched="yes"), TypeError, "batched must be True or False"),
    (dict(baseline=1), TypeError, "baseline must be True or False"),
    (dict(chunk_size=0), ValueError, "chunk_size"),
    (dict(progress="no"), TypeError, "progress"),
    (dict(rng=-1), ValueError, "rng seed"),
    (dict(rng=True), TypeError, "rng"),
]


@pytest.mark.parametrize("options, exc, match", BAD_OPTIONS)
def test_bad_options_raise_at_once(options, exc, match):
    with pytest.raises(exc, match=match):
        perturbed(argmax_one_hot, **options)
    with pytest.raises(exc, match=match):  # the decorator form checks at decoration time
        perturbed(**options)


def test_func_must_be_callable():
    with pytest.raises(TypeError, match="func must be callable, got 3"):
        perturbed(3)


def test_bad_rng_type_at_call(backend):
    p = perturbed(argmax_one_hot, num_samples=4, rng="seed")
    with pytest.raises(TypeError, match="rng must be"):
        p(backend.asarray(THETA_BATCH, dtype="float64"))


def test_bad_theta(backend):
    xp = backend.xp
    p = perturbed(argmax_one_hot, num_samples=4, rng=0)
    with pytest.raises(ValueError, match="theta contains NaN or infinite values"):
        p(backend.asarray([[1.0, float("nan")]], dtype="float64"))
    with pytest.raises(ValueError, match="NaN or infinite"):
        p(backend.asarray([[1.0, float("inf")]], dtype="float64"))
    with pytest.raises(TypeError, match="theta must have a real floating dtype"):
        p(xp.asarray([[1, 2]], device=backend.device))
    with pytest.raises(TypeError, match="theta must be an array, got list"):
        p([[1.0, 2.0]])
    with pytest.raises(ValueError, match="theta must not be empty"):
        p(xp.zeros((0, 3), dtype=backend.dtype("float64"), device=backend.device))


def test_bad_func_results(backend):
    xp = backend.xp
    theta = backend.asarray(THETA_BATCH, dtype="float64")
    with pytest.raises(TypeError, match="func must return an array, got list"):
        perturbed(lambda x: [1.0], num_samples=4, rng=0)(theta)
    with pytest.raises(TypeError, match="func must return an array, got NoneType"):
        perturbed(lambda x: None, num_samples=4, rng=0)(theta)
    with pytest.raises(ValueError, match="one result per row"):
        perturbed(lambda x: x[:1, ...], num_samples=4, rng=0)(theta)
    with pytest.raises(ValueError, match="one result per row"):
        perturbed(lambda x: xp.sum(x), num_samples=4, rng=0)(theta)
    with pytest.raises(TypeError, match="real values"):
        perturbed(lambda x: xp.astype(x, xp.complex128), num_samples=4, rng=0)(theta)
    calls = []

    def shifty(x):
        calls.append(1)
        return x if len(calls) == 1 else x[:, :2]

    with pytest.raises(ValueError, match="must not change between calls"):
        perturbed(shifty, num_samples=40, chunk_size=10, rng=0)(theta)


def test_func_returning_another_library(backend):
    if backend.name == "numpy":
        pytest.skip("needs a non-numpy backend")
    theta = backend.asarray(THETA_BATCH, dtype="float64")
    with pytest.raises(TypeError, match="func must return an array of its input's library"):
        perturbed(lambda x: np.ones((x.shape[0], 2)), num_samples=4, rng=0)(theta)


def test_bad_tangents_and_cotangents(backend):
    xp = backend.xp
    theta = backend.asarray(THETA_BATCH, dtype="float64")
    p = perturbed(argmax_one_hot, num_samples=4, rng=0)
    with pytest.raises(ValueError, match=r"v must have the shape of theta \(2, 5\)"):
        p.jvp(theta, xp.ones((5,), dtype=theta.dtype, device=backend.device))
    with pytest.raises(ValueError, match=r"u must have the shape of p\(theta\) \(2, 5\)"):
        p.vjp(theta, xp.ones((2, 4), dtype=theta.dtype, device=backend.device))
    with pytest.raises(TypeError, match="unknown option"):
        p.replace(samples=3)


class CallCounter:
    """A solver (argmax one-hot) that counts the rows it was called on."""

    def __init__(self):
        self.rows = []

    def __call__(self, x):
        self.rows.append(x.shape[0])
        return argmax_one_hot(x)


@given(
    shape=st.lists(st.integers(1, 4), min_size=0, max_size=3),
    batched=st.booleans(),
    chunk=st.sampled_from([None, 1, 7, 100]),
)
def test_samples_never_reach_the_solver_on_an_event_axis(backend, shape, batched, chunk):
    """func receives (rows, *event): theta of rank 0 unbatched (rank < 2 batched) would put
    the samples on func's last axis, so it is refused; otherwise every chunk size gives the
    same mean, whose one-hot slices sum to 1 over the event's last axis."""
    theta_np = np.random.default_rng(len(shape)).standard_normal(shape)
    theta = backend.asarray(theta_np, dtype="float64")
    p = perturbed(argmax_one_hot, num_samples=60, sigma=0.5, batched=batched, rng=0,
                  chunk_size=chunk)  # fmt: skip
    if len(shape) < (2 if batched else 1):
        with pytest.raises(ValueError, match=r"batched=(True|False) needs theta of rank >= "):
            p(theta)
        return
    value = as_np(backend, p(theta))
    assert value.shape == tuple(shape)
    np.testing.assert_allclose(value.sum(axis=-1), 1.0, atol=1e-12)
    ref = as_np(backend, p.replace(chunk_size=None)(theta))
    np.testing.assert_array_equal(value, ref)
    scalar = perturbed(hard_or, num_samples=60, sigma=0.5, batched=batched, rng=0,
                       chunk_size=chunk)  # fmt: skip
    assert tuple(scalar(theta).shape) == tuple(shape[:-1])


def test_unbatched_scalar_theta_is_refused_before_any_call(backend):
    """The issue's case: a 0-d theta gave 0.001, 1.0, 0.1, 0.01 for chunk sizes None, 1, 10,
    100 (the arg-max mixed the samples)."""
    rec = CallCounter()
    for chunk in (None, 1, 10, 100):
        p = perturbed(rec, batched=False, num_samples=1000, sigma=0.5, rng=0, chunk_size=chunk)
        with pytest.raises(ValueError, match=r"batched=False needs theta of rank >= 1"):
            p(backend.asarray(0.3, dtype="float64"))
    assert rec.rows == []


@pytest.mark.parametrize(
    "dtype_name, sigma, theta_value",
    [("float32", 1e39, 0.0), ("float32", 1e37, 0.0), ("float32", 8e36, 3e38),
     ("float16", 1e5, 0.0), ("float16", 1700.0, 0.0), ("float64", 1e307, 0.0)],
)  # fmt: skip
def test_sigma_must_keep_the_perturbed_theta_finite(backend, dtype_name, sigma, theta_value):
    """max|theta| + 40 sigma must be finite in theta's dtype (40 bounds every noise draw),
    checked when the call starts: sigma=1e39 on float32 made every draw infinite and the
    ties went to index 0 ([0.53, 0.25, ...] instead of about 0.2 each)."""
    theta = arr(backend, np.full((1, 5), theta_value), dtype_name)
    for noise in ("normal", "gumbel"):
        rec = CallCounter()
        p = perturbed(rec, sigma=sigma, noise=noise, num_samples=10, rng=0)
        with pytest.raises(ValueError, match=re.escape(f"sigma={sigma!r} is too large for")):
            p(theta)
        with pytest.raises(ValueError, match="sigma="):
            p.vjp(theta, backend.xp.ones_like(theta))
        assert rec.rows == []


@pytest.mark.parametrize("dtype_name", ["float16", "float32", "float64"])
@pytest.mark.parametrize("noise", ["normal", "gumbel"])
def test_the_largest_accepted_sigma_gives_finite_results(backend, dtype_name, noise):
    """Just inside the bound, every perturbed theta (and so every estimate) is finite and the
    perturbed arg-max is close to uniform."""
    theta = arr(backend, np.zeros((1, 5)), dtype_name)
    top = float(np.finfo(dtype_name).max)
    seen = []

    def argmax(x):
        seen.append(bool(backend.xp.all(backend.xp.isfinite(x))))
        return argmax_one_hot(x)

    p = perturbed(argmax, sigma=top / 40 * 0.999, noise=noise, num_samples=400, rng=0)
    value = as_np(backend, p(theta))
    assert all(seen) and np.all(np.isfinite(value))
    if noise == "normal":  # the Gumbel's location shift (sigma gamma) is huge but harmless
        np.testing.assert_allclose(value, 0.2, atol=0.1)


def test_directions_are_checked_before_sampling(backend):
    """u and v: None, complex (the imaginary part used to be dropped), another library or a
    wrong shape fail before any sample is drawn: v entirely before any call of func, u's
    shape as soon as func's output shape is known (the baseline call, else the first chunk)."""
    xp = backend.xp
    theta = backend.asarray(THETA_BATCH, dtype="float64")
    ones = xp.ones_like(theta)
    bad = [
        (None, TypeError, "{} must be an array, got NoneType"),
        ([[1.0] * 5] * 2, TypeError, "{} must be an array, got list"),
        (xp.astype(ones, xp.complex128), TypeError, "{} must have a real floating dtype"),
        (xp.ones((2, 4), dtype=theta.dtype, device=backend.device), ValueError,
         r"{} must have the shape of"),
    ]  # fmt: skip
    if backend.name != "numpy":
        bad.append((np.ones((2, 5)), TypeError, "{} is a numpy.ndarray.*one library"))
    for baseline in (True, False):
        rec = CallCounter()
        p = perturbed(rec, num_samples=50, chunk_size=10, sigma=0.5, rng=0, baseline=baseline)
        for direction, exc, match in bad:
            for name, call in (("v", p.jvp), ("u", p.vjp), ("u", p.value_and_vjp)):
                del rec.rows[:]
                with pytest.raises(exc, match=match.format(name)):
                    call(theta, direction)
                late = name == "u" and exc is ValueError  # u's shape needs func's output
                expected = ([2] if baseline else [20]) if late else []
                assert rec.rows == expected, (name, rec.rows)
