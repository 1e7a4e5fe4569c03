"""The JAX backend (``backends/jax.py``): the adapter, ``jax.random`` keys behind ``Rng``, and
one end-to-end check per seed showing refimpl's unchanged code computing the documented
quantities on jax arrays.

Runs whenever jax is installed (the full suite's jax column is opt-in: ``pytest --backend
jax``; see tests/conftest.py). Without jax the module is skipped.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

jax = pytest.importorskip("jax")

import backends  # noqa: E402
from backends import as_rng  # noqa: E402

B = backends.get("jax")
xp = B.xp


def arr(a, dtype="float64"):
    return B.asarray(np.asarray(a), dtype=dtype)


def test_adapter_namespace_device_and_float64():
    x = arr([1.0, 2.0])
    assert x.dtype == xp.float64  # jax_enable_x64 is on: float64 means float64
    assert backends.backend_of(x) is B
    assert x.device == B.device("cpu") == B.default_device
    np.testing.assert_array_equal(B.to_numpy(x), [1.0, 2.0])
    with pytest.raises(ValueError, match=r"out of range"):
        B.device("cpu:7")
    with pytest.raises(ValueError, match=r"JAX has no 'tpu' device"):
        B.device("tpu")


def test_int_seed_and_key_give_reproducible_independent_draws():
    a = as_rng(3, like=arr([0.0])).normal((4,), dtype=xp.float64)
    b = as_rng(3, like=arr([0.0])).normal((4,), dtype=xp.float64)
    assert np.array_equal(B.to_numpy(a), B.to_numpy(b))
    r = as_rng(jax.random.key(3), like=arr([0.0]))  # a key is accepted as rng=
    first, second = r.normal((4,), dtype=xp.float64), r.normal((4,), dtype=xp.float64)
    assert np.array_equal(B.to_numpy(first), B.to_numpy(a))  # the same key: the same draw
    assert not np.array_equal(B.to_numpy(first), B.to_numpy(second))  # split per draw
    assert first.dtype == xp.float64 and backends.backend_of(first) is B
    legacy = as_rng(jax.random.PRNGKey(3), like=arr([0.0]))  # the raw key data of key(3)
    assert np.array_equal(B.to_numpy(legacy.normal((4,), dtype=xp.float64)), B.to_numpy(a))
    with pytest.raises(TypeError, match="rng must be None, an int seed"):
        as_rng(arr(np.zeros(3), dtype="uint32"), like=arr([0.0]))  # not a key: wrong shape


def test_key_refused_for_other_arrays_and_generators_refused_for_jax():
    with pytest.raises(TypeError, match=r"rng is a JAX key but the arrays belong to 'numpy'"):
        as_rng(jax.random.key(0), like=np.zeros(2))
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match=r"rng is a torch.Generator .* belong to 'jax'"):
        as_rng(torch.Generator(), like=arr([0.0]))


def test_normal_and_uniform_moments():
    """n = 20000 draws: 5 sd bounds on the mean and variance (false-failure < 1e-5)."""
    r = as_rng(0, like=arr([0.0]))
    z = B.to_numpy(r.normal((20000,), dtype=xp.float64))
    u = B.to_numpy(r.uniform((20000,), dtype=xp.float32))
    assert abs(z.mean()) < 5 / math.sqrt(20000) and abs(z.var() - 1) < 5 * math.sqrt(2 / 20000)
    assert u.dtype == np.float32 and u.min() >= 0 and u.max() < 1
    assert abs(u.mean() - 0.5) < 5 * math.sqrt(1 / 12 / 20000)


def test_seed000_l2_ball_and_additive_perturbation():
    from refimpl.perturbations import AdditivePerturbation, samplers

    x = arr(np.zeros((64, 5)))
    d = samplers.uniform_like_l2_n_ball(x, epsilon=2.0, rng=0)
    assert backends.backend_of(d) is B and d.shape == (64, 5)
    norms = np.linalg.norm(B.to_numpy(d), axis=1)
    assert np.all(norms <= 2.0 + 1e-12)
    # uniform in the 5-ball of radius 2: P(||d|| <= r) = (r / 2)^5, E||d|| = 2 * 5 / 6
    assert abs(norms.mean() - 10 / 6) < 5 * 0.28 / 8  # sd of ||d|| = 0.28; false-failure < 1e-6
    pert = AdditivePerturbation(x, init_fn=samplers.uniform_like_l2_n_ball, rng=1)
    y = pert(arr(np.ones((64, 5))))
    np.testing.assert_allclose(B.to_numpy(y) - 1.0, B.to_numpy(pert.delta))


def test_seed001_lmos():
    """Linear minimisation oracles: L1 puts the whole radius on the largest gradient
    coordinate against its sign; L2 is -epsilon g / ||g||."""
    from refimpl.optim import lmo

    g = arr([[0.1, -3.0, 2.0]])
    np.testing.assert_array_equal(B.to_numpy(lmo.lmo_l1(g, 2.0)), [[0.0, 2.0, 0.0]])
    expected = -2.0 * np.array([[0.1, -3.0, 2.0]]) / math.sqrt(0.01 + 9 + 4)
    np.testing.assert_allclose(B.to_numpy(lmo.lmo_l2(g, 2.0)), expected, rtol=1e-12)


def test_seed002_gumbel_argmax_is_softmax():
    """E[argmax(theta + sigma Z)] = softmax(theta / sigma) for Gumbel Z; 20000 samples, per
    coordinate sd <= 0.5 / sqrt(N): 5 sd bound (false-failure < 1e-5)."""
    from refimpl.perturbed import argmax_one_hot, perturbed

    theta = np.array([[-0.6, 1.9, -0.2, 1.1]])
    p = perturbed(argmax_one_hot, num_samples=20000, sigma=0.5, noise="gumbel", rng=0)
    value = B.to_numpy(p(arr(theta)))
    e = np.exp(theta / 0.5)
    assert np.all(np.abs(value - e / e.sum()) < 5 * 0.5 / math.sqrt(20000))


def test_seed003_smoothgrad_of_a_linear_model_is_its_weights():
    from refimpl import attr as ra
    from refimpl import models as rm

    W = np.random.default_rng(0).standard_normal((3, 4))
    nt = ra.NoiseTunnel(ra.Saliency(rm.Linear(arr(W)), abs=False))
    out = nt.attribute(arr(np.ones((2, 4))), nt_samples=5, stdevs=1.0, target=[2, 0], rng=0)
    np.testing.assert_allclose(B.to_numpy(out), W[[2, 0]], rtol=1e-12)


def test_seed004_exact_eigendistortions_of_a_linear_model():
    from refimpl import models as rm
    from refimpl.eigendistortion import Eigendistortion

    W = np.random.default_rng(0).standard_normal((5, 16))
    model = rm.Sequential(rm.Flatten(3), rm.Linear(arr(W)))
    eig = Eigendistortion(arr(np.full((1, 1, 4, 4), 0.5)), model)
    eig.synthesize("exact", progress=False)
    expected = np.linalg.eigvalsh(W.T @ W)[::-1].clip(0, None)
    np.testing.assert_allclose(B.to_numpy(eig.eigenvalues), expected, atol=1e-10)
    assert backends.backend_of(eig.eigendistortions) is B


# -- bad input ---------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [jax.random.key, jax.random.PRNGKey], ids=["key", "PRNGKey"])
def test_a_batch_of_keys_is_refused_as_rng(make):
    """``jax.random.split(key)`` is a batch of keys: one stream needs one key."""
    batch = jax.random.split(make(0), 3)
    with pytest.raises(TypeError, match=r"rng must be one JAX key, got a batch of keys"):
        as_rng(batch, like=arr([0.0]))
    with pytest.raises(TypeError, match=r"rng must be one JAX key, got a batch of keys"):
        as_rng(batch, backend="jax")


def test_device_specs():
    """An int is an index into ``jax.devices()`` (as cupy's adapter takes one); a malformed
    index or another kind of spec is refused naming the spec."""
    assert B.device(0) == jax.devices()[0]
    x = B.asarray([1.0], device=0)
    assert x.device == jax.devices()[0]
    assert as_rng(0, backend="jax", device=0).uniform((2,), dtype="float32").shape == (2,)
    with pytest.raises(ValueError, match=r"device index must be an int.*'cpu:x'"):
        B.device("cpu:x")
    with pytest.raises(ValueError, match=r"out of range"):
        B.device(len(jax.devices()))
    with pytest.raises(ValueError, match=r"out of range"):
        B.device(-1)
    for bad in (True, 1.0, [0]):
        with pytest.raises(TypeError, match=r"device must be"):
            B.device(bad)
