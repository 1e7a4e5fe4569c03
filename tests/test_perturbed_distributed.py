"""``perturbed(..., executor=)``: keyed Monte Carlo tasks give the same bits here, on a thread
pool and on a real dask.distributed cluster (2 worker processes), whatever the number of
workers, for every sampling mode, baseline, chunk size and estimate.

Statistical checks use the bound of tests/test_perturbed.py (false-failure < 1e-5 each).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from refimpl import parallel
from refimpl.perturbed import argmax_one_hot, perturbed
from refimpl.perturbed import sampling as sampling_module
from tests.cluster import cluster_fixture
from tests.test_perturbed import THETA_BATCH, as_np, assert_unbiased, softmax, softmax_jacobian

executor = cluster_fixture()

MODES = [(s, b) for s in ("mc", "antithetic", "qmc") for b in (False, True)]


@pytest.fixture
def small_tasks(monkeypatch):
    """Tasks of a few dozen samples, so that a test of a few hundred samples has many (the
    block and task sizes are decided by the driver and sent with each task)."""
    monkeypatch.setattr(sampling_module, "BLOCK_VALUES", 2**7)
    monkeypatch.setattr(sampling_module, "TASK_VALUES", 2**9)


def _theta(backend, dtype="float32", shape=(6, 7)):
    values = np.random.default_rng(0).normal(size=shape)
    return backend.asarray(values, dtype=backend.dtype(dtype))


def _all_estimates(p, theta, backend):
    """value, jvp, vjp, jacobian and F_sigma (for outputs shaped like theta) from one pass."""
    u = backend.asarray(np.linspace(-1, 1, theta.shape[0] * theta.shape[1]).reshape(theta.shape),
                        dtype=theta.dtype)  # fmt: skip
    v = backend.asarray(np.cos(np.arange(theta.shape[0] * theta.shape[1])).reshape(theta.shape),
                        dtype=theta.dtype)  # fmt: skip
    e = p.estimate(theta, u=u, v=v, jacobian=True, f_sigma=True)
    return [as_np(backend, a) for a in (e.value, e.jvp, e.vjp, e.jacobian, e.f_sigma)]


def _assert_same_bits(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.dtype == y.dtype and np.array_equal(x, y), np.abs(x - y).max()


@pytest.mark.parametrize("sampling, baseline", MODES)
@pytest.mark.parametrize("chunk_size", [None, 5])
def test_cluster_gives_the_bits_of_one_process(
    backend, executor, small_tasks, sampling, baseline, chunk_size
):
    """executor=None and a 2-process LocalCluster fold the same per-task partial sums."""
    theta = _theta(backend)
    p = perturbed(argmax_one_hot, num_samples=301, sigma=0.5, noise="gumbel", sampling=sampling,
                  baseline=baseline, chunk_size=chunk_size, rng=np.random.SeedSequence(7),
                  progress=False)  # fmt: skip
    here = _all_estimates(p, theta, backend)
    there = _all_estimates(p.replace(executor=executor), theta, backend)
    _assert_same_bits(here, there)


@pytest.mark.parametrize("noise", ["normal", "gumbel"])
def test_the_number_of_workers_does_not_matter(backend, small_tasks, noise):
    theta = _theta(backend, "float64")
    p = perturbed(argmax_one_hot, num_samples=257, sigma=0.3, noise=noise,
                  rng=np.random.SeedSequence(3), progress=False)  # fmt: skip
    results = []
    for workers in (1, 3):
        with ThreadPoolExecutor(workers) as pool:
            results.append(_all_estimates(p.replace(executor=pool), theta, backend))
    _assert_same_bits(results[0], results[1])
    _assert_same_bits(results[0], _all_estimates(p, theta, backend))


def test_a_key_gives_the_same_noise_in_every_chunk_size(backend, small_tasks):
    """Chunks change the order of additions only: equal to rounding."""
    theta = _theta(backend, "float64")
    p = perturbed(argmax_one_hot, num_samples=301, sigma=0.5, rng=np.random.SeedSequence(1),
                  progress=False)  # fmt: skip
    ref = _all_estimates(p, theta, backend)
    for chunk in (1, 3, 64):
        got = _all_estimates(p.replace(chunk_size=chunk), theta, backend)
        for r, g in zip(ref, got):
            np.testing.assert_allclose(g, r, rtol=1e-12, atol=1e-12)


def test_tasks_draw_other_noise(backend, small_tasks):
    """Two tasks of one key do not repeat each other's noise: the identity's perturbed
    inputs differ between the first and second half of the samples."""
    theta = _theta(backend, "float64", (1, 4))
    size = sampling_module.task_size(4, 200)
    assert size < 200
    p = perturbed(lambda x: x, num_samples=size, sigma=1.0, rng=np.random.SeedSequence(5),
                  progress=False)  # fmt: skip
    first = as_np(backend, p(theta))
    both = as_np(backend, p.replace(num_samples=2 * size)(theta))
    second = 2 * both - first  # the mean of task 1's samples
    assert not np.allclose(first, second)


@pytest.mark.parametrize("sampling, baseline", MODES)
def test_keyed_gumbel_argmax_is_softmax(backend, small_tasks, sampling, baseline):
    """E[argmax(theta + sigma Z)] = softmax(theta / sigma), J = (diag p - p p^T) / sigma, with
    the keyed tasks (many of them): 32 replicate keys of 512 samples; false-failure < 1e-5."""
    theta = backend.asarray(THETA_BATCH, dtype=backend.dtype("float64"))
    values, jacs = [], []
    for seed in range(32):
        p = perturbed(argmax_one_hot, num_samples=512, sigma=0.5, noise="gumbel",
                      rng=np.random.SeedSequence(seed), sampling=sampling, baseline=baseline)  # fmt: skip
        value, jac = p.value_and_jacobian(theta)
        values.append(as_np(backend, value))
        jacs.append(as_np(backend, jac))
    assert_unbiased(values, softmax(THETA_BATCH, 0.5), f"{sampling} value")
    assert_unbiased(jacs, softmax_jacobian(THETA_BATCH, 0.5), f"{sampling} J")


def test_sequential_rngs_are_refused_with_an_executor(backend):
    theta = _theta(backend)
    with ThreadPoolExecutor(1) as pool:
        for rng in (3, np.random.default_rng(3)):
            p = perturbed(argmax_one_hot, rng=rng, executor=pool)
            with pytest.raises(ValueError, match=r"keyed random stream.*SeedSequence"):
                p(theta)
        fresh = perturbed(argmax_one_hot, num_samples=10, executor=pool)  # None: a fresh key
        assert as_np(backend, fresh(theta)).shape == tuple(theta.shape)


@pytest.mark.parametrize("bad", [1, "dask", object()])
def test_an_executor_must_have_submit(bad):
    with pytest.raises(TypeError, match="concurrent.futures.Executor"):
        perturbed(argmax_one_hot, executor=bad)


def test_a_failing_task_names_its_index(executor, small_tasks):
    """func raising on the samples of task 2 only: the error names task 2."""
    theta = np.zeros((1, 4))
    size = sampling_module.task_size(4, 1000)

    def picky(x):
        if picky.calls == 2:
            raise ArithmeticError("no")
        picky.calls += 1
        return x

    picky.calls = 0
    p = perturbed(picky, num_samples=1000, chunk_size=size, baseline=False,
                  rng=np.random.SeedSequence(0), progress=False)  # fmt: skip
    with ThreadPoolExecutor(1) as pool:
        with pytest.raises(parallel.TaskError, match=r"sample task 2 failed: ArithmeticError"):
            p.replace(executor=pool)(theta)


def test_torch_front_end_forward_and_backward_on_the_cluster(executor, small_tasks, torch_device):
    torch = pytest.importorskip("torch")
    device = torch_device
    from refimpl.torch import FenchelYoungLoss
    from refimpl.torch import perturbed as torch_perturbed

    def argmax(x):
        return torch.nn.functional.one_hot(x.argmax(-1), x.shape[-1]).to(x.dtype)

    theta0 = torch.tensor(np.random.default_rng(1).normal(size=(5, 9)), device=device)
    results = []
    for ex in (None, executor):
        f = torch_perturbed(argmax, num_samples=200, sigma=0.5, noise="gumbel",
                            generator=np.random.SeedSequence(2), executor=ex)  # fmt: skip
        theta = theta0.clone().requires_grad_(True)
        y = f(theta)
        (y * torch.arange(9.0, device=device)).sum().backward()
        loss = FenchelYoungLoss(argmax, num_samples=100, sigma=0.5,
                                generator=np.random.SeedSequence(2), executor=ex)  # fmt: skip
        t2 = theta0.clone().requires_grad_(True)
        value = loss(t2, argmax(theta0)).sum()
        value.backward()
        results.append([a.detach().cpu().numpy() for a in (y, theta.grad, value, t2.grad)])
    _assert_same_bits(results[0], results[1])


def test_torch_front_end_refuses_a_torch_generator_with_an_executor():
    torch = pytest.importorskip("torch")
    from refimpl.torch import perturbed as torch_perturbed

    with ThreadPoolExecutor(1) as pool:
        with pytest.raises(ValueError, match="keyed random stream"):
            torch_perturbed(argmax_one_hot, generator=torch.Generator(), executor=pool)
