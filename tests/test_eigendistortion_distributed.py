"""``Eigendistortion.synthesize("randomized_svd", executor=...)``: the sketch and its power
steps are multiplied in column blocks of ``solvers.SKETCH_BLOCK`` columns, one task each; the
results are bitwise those of one process, on a thread pool and on a real dask.distributed
cluster (2 worker processes), for refimpl models and for a torch module through the torch
front end. A column's product never depends on how many columns go with it.
"""

from __future__ import annotations

import pickle
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from refimpl import models as rm
from refimpl.eigendistortion import Eigendistortion, solvers
from refimpl.linops import FisherOperator
from tests.cluster import cluster_fixture
from tests.test_eigendistortion import Doubling
from tests.test_models import arr

executor = cluster_fixture()

N = 16  # 16 x 16 images: a task is a few milliseconds


@pytest.fixture
def one_torch_thread():
    """torch's CPU kernels (convolutions) split their work by the number of intra-op threads,
    and their float32 sums then round differently; the cluster's workers run one thread, so
    the comparison does too (numpy's products here come out the same with any thread count)."""
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture
def one_thread(backend, request):
    """One intra-op thread where the backend is torch (see ``one_torch_thread``)."""
    if backend.name == "torch":
        request.getfixturevalue("one_torch_thread")


def _model(backend, dtype):
    r = np.random.default_rng(0)
    w = arr(backend, r.standard_normal((2, 1, 3, 3)) / 3, dtype)
    return rm.Sequential(rm.Conv2d(w, pad_mode="circular"), rm.Pointwise("softplus"))


def _image(backend, dtype):
    return arr(backend, np.random.default_rng(1).uniform(0.1, 0.9, (1, 1, N, N)), dtype)


def _synthesize(eig, ex, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the sketch's accuracy note
        eig.synthesize("randomized_svd", rng=0, progress=False, executor=ex, **kw)
    return eig


def _assert_same_bits(backend, a, b):
    for name in ("eigenvalues", "eigendistortions", "eigenindex"):
        x, y = backend.to_numpy(getattr(a, name)), backend.to_numpy(getattr(b, name))
        assert x.dtype == y.dtype and np.array_equal(x, y), (name, np.abs(x - y).max())
    top_a, top_b = a.convergence["top"], b.convergence["top"]
    for key in ("residuals", "error_estimate", "n_products"):
        assert top_a[key] == top_b[key], key


def _fisher(source, V):
    """A product for ``blocked_product`` (module level: it pickles)."""
    return FisherOperator(*source).matmat(V)


# -- one process, a thread pool, a cluster: the same bits ------------------------------------
@pytest.mark.parametrize("k, p, q", [(1, 5, 2), (3, 14, 0)])
def test_cluster_gives_the_bits_of_one_process(backend, dtype, executor, k, p, q, one_thread):
    """k + p = 6 (one block, two zero columns) and 17 (three blocks, the last one padded)."""
    model, image = _model(backend, dtype), _image(backend, dtype)
    here = _synthesize(Eigendistortion(image, model), None, k=k, p=p, q=q)
    there = _synthesize(Eigendistortion(image, model), executor, k=k, p=p, q=q)
    _assert_same_bits(backend, here, there)
    backend.assert_same_place(there.eigenvalues, dtype)
    blocks = solvers.padded(k + p)
    assert here.convergence["top"]["n_products"] == blocks * (q + 2) + 10  # + the probes


@pytest.mark.parametrize("workers", [1, 3])
def test_a_thread_pool_gives_the_bits_of_one_process(backend, workers):
    dtype = backend.dtype("float64")
    model, image = _model(backend, dtype), _image(backend, dtype)
    here = _synthesize(Eigendistortion(image, model), None, k=2, p=20, q=1)
    with ThreadPoolExecutor(workers) as pool:
        there = _synthesize(Eigendistortion(image, model), pool, k=2, p=20, q=1)
    _assert_same_bits(backend, here, there)


def test_the_torch_front_end_on_a_cluster(torch_device, torch_dtype, executor, one_torch_thread):
    """A small nn.Module through refimpl.torch.Eigendistortion: same bits here and on the
    cluster."""
    torch = pytest.importorskip("torch")
    if torch_device.type != "cpu":
        pytest.skip("the cluster's workers have no GPU")
    from refimpl.torch import Eigendistortion as TorchEigendistortion

    module = _torch_module(torch).to(torch_dtype)
    image = torch.as_tensor(np.random.default_rng(1).uniform(0.1, 0.9, (1, 1, N, N)),
                            dtype=torch_dtype)  # fmt: skip
    results = []
    for ex in (None, executor):
        eig = TorchEigendistortion(image, module)
        eig.synthesize("randomized_svd", k=2, p=9, q=1, rng=0, progress=False, executor=ex)
        results.append(eig)
    for name in ("eigenvalues", "eigendistortions", "eigenindex"):
        a, b = (getattr(e, name) for e in results)
        assert a.dtype == b.dtype and torch.equal(a, b), name
    assert results[1].eigenvalues.dtype == torch_dtype


def _torch_module(torch):
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(1, 2, 3, padding=1, padding_mode="circular")
    return torch.nn.Sequential(conv, torch.nn.Softplus()).eval()


# -- the blocks ------------------------------------------------------------------------------
@pytest.mark.parametrize("use_cluster", [False, True])
def test_a_column_does_not_depend_on_the_other_columns(backend, executor, use_cluster, one_thread):
    """Two sketches of 5 and 21 columns share their first 5: those come out bitwise equal
    (each block has exactly SKETCH_BLOCK columns, the last one filled with zeros), here and
    on the cluster; the products equal F X to rounding."""
    dtype = backend.dtype("float64")
    model, image = _model(backend, dtype), _image(backend, dtype)
    n = N * N
    Omega = arr(backend, np.random.default_rng(2).standard_normal((n, 21)), dtype)
    ex = executor if use_cluster else None
    big = solvers.blocked_product(_fisher, (model, image), Omega, executor=ex)
    small = solvers.blocked_product(_fisher, (model, image), Omega[:, :5], executor=ex)
    assert big.shape == (n, 21) and small.shape == (n, 5)
    assert np.array_equal(backend.to_numpy(big[:, :5]), backend.to_numpy(small))
    direct = backend.to_numpy(FisherOperator(model, image).matmat(Omega))
    np.testing.assert_allclose(backend.to_numpy(big), direct, rtol=1e-12, atol=1e-12)


def test_padded_counts_whole_blocks():
    w = solvers.SKETCH_BLOCK
    assert [solvers.padded(c) for c in (1, w, w + 1, 3 * w)] == [w, w, 2 * w, 3 * w]


# -- bad input --------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", ["dask", 3, object()])
def test_an_executor_without_submit_is_refused_before_any_work(backend, bad):
    dtype = backend.dtype("float64")
    eig = Eigendistortion(_image(backend, dtype), _model(backend, dtype))
    with pytest.raises(TypeError, match="executor must be None"):
        eig.synthesize("randomized_svd", progress=False, executor=bad)
    assert eig.result is None


def test_a_model_that_does_not_pickle_fails_with_pickles_error(executor):
    """A process executor pickles the model with every task: a model holding a lock fails
    there with the pickling error, and nothing is stored."""
    model = _LockedModel()
    with pytest.raises(TypeError, match="pickle"):
        pickle.dumps(model)
    image = np.random.default_rng(1).uniform(0.1, 0.9, (1, 1, N, N))
    eig = Eigendistortion(image, model)
    with pytest.raises(Exception, match="pickle|serializ"):  # dask: "Could not serialize"
        eig.synthesize("randomized_svd", progress=False, executor=executor)
    assert eig.result is None
    with ThreadPoolExecutor(2) as pool:  # threads share the model: nothing is pickled
        eig.synthesize("randomized_svd", k=2, progress=False, executor=pool, rng=0,
                       warn_unconverged=False)  # fmt: skip
    np.testing.assert_allclose(eig.eigenvalues, [4.0, 4.0])


class _LockedModel(Doubling):
    """y = 2 x, holding a lock (which no pickler takes)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
