"""The JAX front end ``refimpl.jax.make_perturbed_fun``: optax's signature and draws (same
key: same value, same gradient to rounding), traceable under jax.jit, jax.grad and jax.vmap,
the closed form of the Gumbel arg-max, and the clear error of ``refimpl.perturbed`` under a
JAX transformation. Small shapes and few samples: XLA compiles every new shape."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

os.environ.setdefault("JAX_PLATFORMS", "cpu")
jax = pytest.importorskip("jax")
jnp = jax.numpy

import refimpl.jax as rj  # noqa: E402  (after the skip: it imports jax)

THETA = np.array([-0.6, 1.9, -0.2, 1.1, -1.0], dtype=np.float32)
THETA_BATCH = np.array([[-0.6, 1.9, -0.2, 1.1, -1.0], [-0.6, 1.0, -0.2, 1.8, -1.0]], np.float32)
#: the gradients differ from optax's by the order of the sums only
RTOL, ATOL = 1e-5, 1e-6


def argmax(x):
    return jax.nn.one_hot(jnp.argmax(x, axis=-1), x.shape[-1], dtype=x.dtype)


def loss_of(f, key):
    """A loss through the perturbed arg-max: squared distance to a one-hot target."""
    target = jnp.asarray([0, 0, 0, 1, 0], dtype=jnp.float32)
    return lambda t: jnp.sum((f(key, t) - target) ** 2)


@pytest.fixture(scope="module")
def op():
    return pytest.importorskip("optax.perturbations")


def _pair(op, noise, use_baseline, n=200, sigma=0.5):
    ours = rj.make_perturbed_fun(argmax, n, sigma, getattr(rj, noise)(), use_baseline)
    theirs = op.make_perturbed_fun(argmax, n, sigma, getattr(op, noise)(), use_baseline)
    return ours, theirs


@pytest.mark.parametrize("use_baseline", [True, False])
@pytest.mark.parametrize("noise", ["Gumbel", "Normal"])
def test_value_and_gradient_match_optax_on_the_same_key(op, noise, use_baseline):
    ours, theirs = _pair(op, noise, use_baseline)
    key, t = jax.random.key(3), jnp.asarray(THETA)
    np.testing.assert_array_equal(ours(key, t), theirs(key, t))  # same draws, same mean
    got, want = jax.grad(loss_of(ours, key))(t), jax.grad(loss_of(theirs, key))(t)
    assert np.abs(want).max() > 0.1  # a gradient worth comparing
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)


def test_optax_noise_objects_and_legacy_keys_are_accepted(op):
    """optax's own noise classes (score by jax.grad of log_prob) and a raw uint32 key."""
    ours = rj.make_perturbed_fun(argmax, 100, 0.5, op.Gumbel())
    theirs = op.make_perturbed_fun(argmax, 100, 0.5, op.Gumbel())
    key, t = jax.random.PRNGKey(5), jnp.asarray(THETA)
    np.testing.assert_array_equal(ours(key, t), theirs(key, t))
    np.testing.assert_allclose(
        jax.grad(loss_of(ours, key))(t), jax.grad(loss_of(theirs, key))(t), rtol=RTOL, atol=ATOL
    )


def test_defaults_are_optax_defaults(op):
    import inspect

    ours = inspect.signature(rj.make_perturbed_fun).parameters
    theirs = inspect.signature(op.make_perturbed_fun).parameters
    assert ours["num_samples"].default == theirs["num_samples"].default == 1000
    sigma = "scale" if "scale" in theirs else "sigma"
    assert ours["sigma"].default == theirs[sigma].default == 0.1
    assert type(theirs["noise"].default).__name__ == "Gumbel"  # ours: None means Gumbel()
    assert ours["use_baseline"].default is theirs["use_baseline"].default is True


def test_jit_grad_vmap_and_jit_of_grad(op):
    ours, theirs = _pair(op, "Gumbel", True, n=100)
    key, t = jax.random.key(0), jnp.asarray(THETA)
    np.testing.assert_allclose(jax.jit(ours)(key, t), ours(key, t), atol=ATOL)
    grad = jax.grad(loss_of(ours, key))(t)
    np.testing.assert_allclose(jax.jit(jax.grad(loss_of(ours, key)))(t), grad, rtol=RTOL, atol=ATOL)
    # batched as the optax column does: vmap over split keys, then the norm's gradient
    keys, tb = jax.random.split(key, 2), jnp.asarray(THETA_BATCH)
    value = jax.vmap(ours)(keys, tb)
    np.testing.assert_array_equal(value, jax.vmap(theirs)(keys, tb))
    for i in range(2):  # vmap = the rows one by one
        np.testing.assert_allclose(value[i], ours(keys[i], tb[i]), atol=ATOL)

    def norm(f):
        return lambda s: jnp.linalg.norm(jax.vmap(f)(keys, s))

    got = jax.jit(jax.grad(norm(ours)))(tb)
    np.testing.assert_allclose(got, jax.grad(norm(theirs))(tb), rtol=RTOL, atol=ATOL)
    # the key itself may be traced (a new key per step, under jit)
    step = jax.jit(jax.value_and_grad(lambda s, k: ours(k, s)[1]))
    v, g = step(t, jax.random.key(7))
    assert v.shape == () and g.shape == (5,) and bool(jnp.isfinite(g).all())


def test_gumbel_argmax_is_softmax_within_a_stated_bound():
    """E[argmax(theta + sigma Z)] = softmax(theta / sigma) for Gumbel Z (the Gumbel-max
    trick). Each coordinate is a frequency of N Bernoulli draws: by Hoeffding,
    P(|mean - p| >= 0.02) <= 2 exp(-2 N 0.02^2) = 2.3e-7 at N = 20000, so with the 5
    coordinates the false-failure probability is below 1.2e-6 (fixed key: deterministic).
    The gradient of <u, f(theta)> is J^T u with J = (diag p - p p^T) / sigma: per sample
    |<y_n - b, u>| <= 1 and E[grad_nu(Z)^2] = Var(Exp(1)) = 1, so its standard deviation is
    at most 1 / (sigma sqrt N) = 0.0141, and 6 of them (0.085) fail with probability about
    2e-9 per coordinate (central limit theorem)."""
    n, sigma = 20_000, 0.5
    f = rj.make_perturbed_fun(argmax, n, sigma, rj.Gumbel())
    key, t = jax.random.key(2020), jnp.asarray(THETA)
    t64 = THETA.astype(np.float64) / sigma
    p = np.exp(t64 - t64.max()) / np.exp(t64 - t64.max()).sum()
    value = np.asarray(f(key, t), dtype=np.float64)
    assert np.abs(value - p).max() < 0.02
    u = np.array([0.0, 1.0, 0.0, 0.0, 0.0], dtype=np.float32)
    grad = jax.jit(jax.grad(lambda s: jnp.dot(f(key, s), jnp.asarray(u))))(t)
    exact = (np.diag(p) - np.outer(p, p)).T @ u / sigma
    assert np.abs(np.asarray(grad) - exact).max() < 6 / (sigma * math.sqrt(n))


def test_pytrees_and_extra_arguments(op):
    """Pytree inputs and outputs as in optax; extra *args reach fun, arrays among them are
    not differentiated (zero gradient), Python values stay static."""

    def fun(d):
        return {"a": argmax(d["x"]), "s": jnp.sum(d["y"] > 0)}

    ours, theirs = rj.make_perturbed_fun(fun, 50, 0.5), op.make_perturbed_fun(fun, 50, 0.5)
    key = jax.random.key(1)
    inputs = {"x": jnp.asarray(THETA), "y": jnp.asarray(THETA[:3])}
    for a, b in zip(jax.tree.leaves(ours(key, inputs)), jax.tree.leaves(theirs(key, inputs))):
        np.testing.assert_array_equal(a, b)

    def pick(f):
        return lambda d: f(key, d)["a"][1] + f(key, d)["s"]

    for a, b in zip(jax.tree.leaves(jax.grad(pick(ours))(inputs)),
                    jax.tree.leaves(jax.grad(pick(theirs))(inputs))):  # fmt: skip
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL)

    scaled = rj.make_perturbed_fun(lambda x, w, axis: argmax(x * w) * (axis == -1), 50, 0.5)
    w = jnp.ones(5, dtype=jnp.float32)
    g_t, g_w = jax.jit(jax.grad(lambda s, ww: scaled(key, s, ww, -1)[1], argnums=(0, 1)))(
        jnp.asarray(THETA), w
    )
    assert float(jnp.abs(g_t).max()) > 0 and float(jnp.abs(g_w).max()) == 0.0


def test_forward_mode_and_second_derivatives_raise():
    """A custom_vjp: no forward mode; differentiating its backward pass raises instead of
    silently returning 0 (the noise does not depend on the inputs)."""
    f = rj.make_perturbed_fun(argmax, 10, 0.5)
    key, t = jax.random.key(0), jnp.asarray(THETA)
    with pytest.raises(TypeError, match="forward-mode"):
        jax.jvp(lambda s: f(key, s), (t,), (t,))
    with pytest.raises(TypeError, match="second derivative is not available"):
        jax.grad(lambda s: jax.grad(lambda x: f(key, x)[1])(s).sum())(t)


def test_bad_options_and_inputs_are_refused():
    with pytest.raises(TypeError, match="fun must be callable"):
        rj.make_perturbed_fun(3)
    with pytest.raises(ValueError, match="num_samples"):
        rj.make_perturbed_fun(argmax, num_samples=0)
    with pytest.raises(TypeError, match="num_samples"):
        rj.make_perturbed_fun(argmax, num_samples=2.5)
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="sigma"):
            rj.make_perturbed_fun(argmax, sigma=bad)
    with pytest.raises(TypeError, match="noise must have sample"):
        rj.make_perturbed_fun(argmax, noise="gumbel")
    with pytest.raises(TypeError, match="use_baseline"):
        rj.make_perturbed_fun(argmax, use_baseline=1)
    f = rj.make_perturbed_fun(argmax, 10)
    with pytest.raises(TypeError, match="real floating"):
        f(jax.random.key(0), jnp.arange(5))
    with pytest.raises(ValueError, match="at least one array"):
        f(jax.random.key(0), {})


@pytest.mark.parametrize("transform", ["grad", "jit", "vmap"])
def test_refimpl_perturbed_under_a_transformation_points_to_the_front_end(transform):
    """``refimpl.perturbed`` runs eagerly on JAX arrays; traced, it says what to use instead
    (it used to fail with "func must return an array of its input's library and device" or
    a TracerBoolConversionError)."""
    from refimpl.perturbed import argmax_one_hot, perturbed

    p = perturbed(argmax_one_hot, num_samples=10, sigma=0.5, rng=0)
    t = jnp.asarray(THETA_BATCH)
    call = {
        "grad": lambda: jax.grad(lambda s: p(s).sum())(t),
        "jit": lambda: jax.jit(p)(t),
        "vmap": lambda: jax.vmap(p)(t[None]),
    }[transform]
    with pytest.raises(TypeError, match=r"refimpl\.jax\.make_perturbed_fun"):
        call()
