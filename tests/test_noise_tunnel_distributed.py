"""NoiseTunnel.attribute(..., executor=) on a real dask.distributed cluster: the keyed run
(rng a numpy.random.SeedSequence) is bit-identical with and without an executor, whatever
the number of workers; its noise is N(0, sigma^2) with one generator per task; a sequential
rng with an executor is a ValueError; a failing task is named.

The cluster (tests/cluster.py: two worker processes) starts once for this module and skips
without dask.distributed. ``TASK_VALUES`` is lowered in this process only, so that small
problems have several tasks (the task size is computed here and sent with every task).
Statistical tests state their false-failure probability for a random seed; the seeds are
fixed, so they are deterministic here.
"""

from __future__ import annotations

import concurrent.futures

import numpy as np
import pytest
from scipy import stats

from backends.keys import NOISE, block_rng
from refimpl import attr as ra
from refimpl import models as rm
from refimpl.attr import noise as noise_mod
from refimpl.parallel import TaskError
from tests.cluster import cluster_fixture

executor = cluster_fixture()

RNG = np.random.default_rng(21)
W1 = RNG.standard_normal((4, 5)) * 0.8
W2 = RNG.standard_normal((3, 4))
X = RNG.standard_normal((3, 5))  # B = 3 examples of 5 values: 15 noise values per sample
N = 11  # samples: tasks of 4, 4 and 3 with TASK_VALUES = 60


def mlp(backend, dtype="float64"):
    a = lambda w: backend.asarray(w, dtype=dtype)  # noqa: E731
    return rm.Sequential(rm.Linear(a(W1)), rm.Pointwise("tanh"), rm.Linear(a(W2)))


@pytest.fixture
def small_tasks(monkeypatch):
    """Tasks of 4 samples for X (60 noise values each): N = 11 is 3 tasks, the last of 3."""
    monkeypatch.setattr(noise_mod, "TASK_VALUES", 60)
    assert noise_mod.task_samples((X,), N) == 4


class Identity:
    """An "attribution" that returns its (noisy) inputs and records them: the noise tunnel's
    statistics of it are statistics of the noise."""

    multiplies_by_inputs = False

    def __init__(self):
        self.calls = []

    def attribute(self, inputs, **kwargs):
        self.calls.append(inputs)
        return inputs


class FailsOnShortChunks:
    """Saliency that raises on a chunk of fewer than ``rows`` rows (the last task's)."""

    def __init__(self, method, rows):
        self.method, self.rows = method, rows

    def attribute(self, inputs, **kwargs):
        if inputs.shape[0] < self.rows:
            raise ArithmeticError(f"{inputs.shape[0]} rows")
        return self.method.attribute(inputs, **kwargs)


# -- bit-identical with and without an executor --------------------------------------------
@pytest.mark.parametrize("nt_type", ra.NT_TYPES)
def test_cluster_result_is_bitwise_the_local_one(backend, executor, small_tasks, nt_type):
    """Saliency of an MLP, n = 11 in tasks of 4 (not a multiple), two chunk sizes: the
    cluster's result is the executor=None result bit for bit, in the inputs' namespace,
    device and dtype."""
    x = backend.asarray(X, dtype="float64")
    nt = ra.NoiseTunnel(ra.Saliency(mlp(backend), abs=False))
    for bs in (2, 3):
        kw = dict(nt_type=nt_type, nt_samples=N, nt_samples_batch_size=bs, stdevs=0.4, target=1)
        here = nt.attribute(x, rng=np.random.SeedSequence(3), **kw)
        there = nt.attribute(x, rng=np.random.SeedSequence(3), executor=executor, **kw)
        backend.assert_same_place(there, x.dtype)
        assert np.array_equal(backend.to_numpy(there), backend.to_numpy(here)), bs


def test_cluster_deltas_and_drawn_baselines(backend, executor, small_tasks):
    """Integrated gradients with baselines drawn per (example, sample) and convergence
    deltas: attributions and deltas (B*n, example-major) are the local ones bit for bit."""
    x = backend.asarray(X, dtype="float64")
    pool = backend.asarray(RNG.standard_normal((4, 5)), dtype="float64")
    nt = ra.NoiseTunnel(ra.IntegratedGradients(mlp(backend), n_steps=4))
    kw = dict(nt_type="vargrad", nt_samples=N, nt_samples_batch_size=3, stdevs=0.2, target=0,
              draw_baseline_from_distrib=True, baselines=pool, return_convergence_delta=True)  # fmt: skip
    a_here, d_here = nt.attribute(x, rng=np.random.SeedSequence(4), **kw)
    a_there, d_there = nt.attribute(x, rng=np.random.SeedSequence(4), executor=executor, **kw)
    assert tuple(d_there.shape) == (3 * N,)
    assert np.array_equal(backend.to_numpy(a_there), backend.to_numpy(a_here))
    assert np.array_equal(backend.to_numpy(d_there), backend.to_numpy(d_here))


def test_results_do_not_depend_on_the_number_of_workers(backend, small_tasks):
    """Thread pools of 1 and 3 threads and no executor: the same bits, for tuple inputs."""
    xs = (backend.asarray(X, dtype="float32"), backend.asarray(X[:, :2], dtype="float32"))
    nt = ra.NoiseTunnel(Identity())
    runs = []
    for workers in (None, 1, 3):
        pool = None if workers is None else concurrent.futures.ThreadPoolExecutor(workers)
        try:
            out = nt.attribute(xs, "vargrad", 23, 2, stdevs=(0.5, 2.0),
                               rng=np.random.SeedSequence(5), executor=pool)  # fmt: skip
        finally:
            if pool is not None:
                pool.shutdown()
        runs.append([backend.to_numpy(a) for a in out])
    for run in runs[1:]:
        assert all(np.array_equal(a, b) for a, b in zip(run, runs[0]))


def test_keyed_results_do_not_depend_on_the_chunk_size(backend, small_tasks):
    """Keyed, no executor: the identity's statistics are bit-identical for every chunk size
    (the noise of a task does not depend on it), a model's equal to rounding (its matrix
    products see other row counts)."""
    x = backend.asarray(X, dtype="float64")
    key = np.random.SeedSequence(6)
    for nt_type in ra.NT_TYPES:
        ref = backend.to_numpy(ra.NoiseTunnel(Identity()).attribute(x, nt_type, N, rng=key))
        for bs in (1, 2, 3, 5):
            out = ra.NoiseTunnel(Identity()).attribute(x, nt_type, N, bs, rng=key)
            assert np.array_equal(backend.to_numpy(out), ref), (nt_type, bs)
    nt = ra.NoiseTunnel(ra.Saliency(mlp(backend)))
    ref = backend.to_numpy(nt.attribute(x, "vargrad", N, stdevs=0.5, target=2, rng=key))
    for bs in (1, 3, 4):
        out = nt.attribute(x, "vargrad", N, bs, stdevs=0.5, target=2, rng=key)
        np.testing.assert_allclose(backend.to_numpy(out), ref, rtol=1e-12, atol=1e-15)


# -- the keyed noise -------------------------------------------------------------------------
def test_keyed_noise_is_normal_with_one_generator_per_task(backend, monkeypatch):
    """n = 37 in tasks of 5 (8 tasks, the last of 2), sigma = 0.7, B = 2 x 50 values: the noise
    of task t is one normal draw of block_rng(key, NOISE, t), shape (B, m, 50); tasks differ;
    the 3700 values have mean 0 (normal bound) and variance sigma^2 (chi-square bound),
    each with false-failure probability 1e-6 for a random key."""
    monkeypatch.setattr(noise_mod, "TASK_VALUES", 500)
    x0 = np.zeros((2, 50))
    x = backend.asarray(x0, dtype="float64")
    key, sigma, p = np.random.SeedSequence(7), 0.7, 1e-6
    probe = Identity()
    ra.NoiseTunnel(probe).attribute(x, nt_samples=37, nt_samples_batch_size=3, stdevs=sigma,
                                    rng=key)  # fmt: skip
    z = np.concatenate([backend.to_numpy(r).reshape(2, -1, 50) for r in probe.calls], axis=1)
    assert z.shape == (2, 37, 50)
    tasks = [z[:, t : t + 5] for t in range(0, 37, 5)]
    for t, got in enumerate(tasks):
        m = got.shape[1]
        draw = block_rng(key, NOISE, t, like=x).normal((2, m, 50), dtype=x.dtype)
        np.testing.assert_allclose(got, sigma * backend.to_numpy(draw), rtol=1e-15, atol=0)
        assert t == 0 or not np.allclose(got[:, :2], tasks[t - 1][:, :2])
    mean = float(np.mean(z)) * np.sqrt(z.size) / sigma  # ~ N(0, 1)
    assert abs(mean) <= stats.norm.isf(p / 2)
    chi2 = float(np.sum((z / sigma) ** 2))  # ~ chi2(3700)
    assert stats.chi2.ppf(p / 2, z.size) <= chi2 <= stats.chi2.isf(p / 2, z.size)
    assert not stats.chi2.ppf(p / 2, z.size) <= chi2 / 1.2**2  # a 20% wrong sigma fails


def test_fresh_keys_and_keyed_seeds(backend):
    """rng=None with an executor draws a fresh key per call; a SeedSequence repeats."""
    x = backend.asarray(X, dtype="float64")
    nt = ra.NoiseTunnel(Identity())
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        run = lambda rng: backend.to_numpy(nt.attribute(x, nt_samples=4, rng=rng, executor=pool))  # noqa: E731
        assert not np.array_equal(run(None), run(None))
        assert np.array_equal(run(np.random.SeedSequence(8)), run(np.random.SeedSequence(8)))
        assert not np.array_equal(run(np.random.SeedSequence(8)), run(np.random.SeedSequence(9)))


def test_the_progress_bar_counts_tasks(backend, small_tasks, monkeypatch):
    """progress=True on a keyed run: one bar over the 3 tasks, at 3 of 3 when closed."""
    import io

    import tqdm.auto
    import tqdm.std

    closed = []

    class Recording(tqdm.std.tqdm):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **{**kwargs, "file": io.StringIO()})

        def close(self):
            closed.append((self.desc, self.unit, self.n, self.total))
            super().close()

    monkeypatch.setattr(tqdm.auto, "tqdm", Recording)
    x = backend.asarray(X, dtype="float64")
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        ra.NoiseTunnel(Identity()).attribute(x, nt_samples=N, rng=np.random.SeedSequence(0),
                                             executor=pool, progress=True)  # fmt: skip
    assert closed[:1] == [("noise tunnel", "task", 3, 3)]


# -- bad input, failing tasks ---------------------------------------------------------------
def test_sequential_rng_or_bad_executor_refused_before_any_call(backend, executor):
    x = backend.asarray(X, dtype="float64")
    probe = Identity()
    nt = ra.NoiseTunnel(probe)
    generator = backend.adapter.rng(3, device=backend.device).generator
    for rng in (3, generator, backend.adapter.rng(3, device=backend.device)):
        with pytest.raises(ValueError, match=r"keyed random stream.*SeedSequence"):
            nt.attribute(x, rng=rng, executor=executor)
    with pytest.raises(TypeError, match="executor must be None"):
        nt.attribute(x, rng=np.random.SeedSequence(1), executor="dask")
    assert probe.calls == []


def test_a_failing_task_is_named(backend, small_tasks):
    """The last task (3 samples, 9 rows: the others have 12) raises on a thread pool: a
    TaskError naming task 2, from the method's error (this module's class would have to be
    imported by the cluster's workers, with scipy and pytest: seconds for nothing)."""
    x = backend.asarray(X, dtype="float64")
    nt = ra.NoiseTunnel(FailsOnShortChunks(ra.Saliency(mlp(backend)), rows=12))
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        with pytest.raises(TaskError, match="noise tunnel task 2 failed: ArithmeticError") as info:
            nt.attribute(x, nt_samples=N, target=0, rng=np.random.SeedSequence(1), executor=pool)
    assert info.value.index == 2 and isinstance(info.value.__cause__, ArithmeticError)


# -- the torch front end ------------------------------------------------------------------------
def test_torch_front_end_on_the_cluster(torch_device, executor, small_tasks):
    """refimpl.torch's NoiseTunnel around its Saliency (every nt_type, two chunk sizes) and
    IntegratedGradients (VarGrad with deltas) on an nn.Module pickled to the workers: the
    cluster's attributions and deltas are the local ones bit for bit; the caller's tensor
    is untouched."""
    torch = pytest.importorskip("torch")
    from refimpl.torch import attr as bta

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.Tanh(), torch.nn.Linear(4, 3))
    net = net.to(torch_device).eval()
    x = torch.tensor(X, dtype=torch.float32, device=torch_device)
    nt = bta.NoiseTunnel(bta.Saliency(net))
    for nt_type in ra.NT_TYPES:
        for bs in (2, 3):
            kw = dict(nt_type=nt_type, nt_samples=N, nt_samples_batch_size=bs, stdevs=0.3,
                      target=[0, 2, 1])  # fmt: skip
            here = nt.attribute(x, rng=np.random.SeedSequence(2), **kw)
            there = nt.attribute(x, rng=np.random.SeedSequence(2), executor=executor, **kw)
            assert there.device == x.device and there.dtype == x.dtype
            assert torch.equal(there, here), (nt_type, bs)
    ig = bta.NoiseTunnel(bta.IntegratedGradients(net))
    kw = dict(nt_type="vargrad", nt_samples=N, nt_samples_batch_size=3, stdevs=0.3, target=1,
              n_steps=5, return_convergence_delta=True)  # fmt: skip
    a_here, d_here = ig.attribute(x, rng=np.random.SeedSequence(2), **kw)
    a_there, d_there = ig.attribute(x, rng=np.random.SeedSequence(2), executor=executor, **kw)
    assert torch.equal(a_there, a_here)
    assert d_there.shape == (3 * N,) and torch.equal(d_there, d_here)
    assert x.grad is None and not x.requires_grad


def test_torch_front_end_refuses_sequential_generators_with_an_executor(torch_device):
    torch = pytest.importorskip("torch")
    from refimpl.torch import attr as bta

    net = torch.nn.Linear(5, 3).to(torch_device)
    x = torch.tensor(X, dtype=torch.float32, device=torch_device)
    nt = bta.NoiseTunnel(bta.Saliency(net))
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        for rng in (0, torch.Generator(torch_device).manual_seed(0)):
            with pytest.raises(ValueError, match="keyed random stream"):
                nt.attribute(x, target=0, rng=rng, executor=pool)
        compat = bta.NoiseTunnel(bta.Saliency(net), captum_compatible=True)
        with pytest.raises(ValueError, match="captum_compatible=True .* executor must be None"):
            compat.attribute(x, target=0, rng=np.random.SeedSequence(0), executor=pool)
