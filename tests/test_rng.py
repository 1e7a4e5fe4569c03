"""The RNG adapters: reproducibility, the block rule, distributions, and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

import backends
import refimpl.optim as ro
from backends.rng import HostRng, Rng, as_rng
from backends.torch import TorchRng
from refimpl.perturbations import uniform_like_l2_n_ball
from tests.conftest import arr, as64

METHODS = ["uniform", "normal", "exponential", "gumbel"]


def draw(rng: Rng, method: str, n: int, dtype):
    return getattr(rng, method)((n,), dtype=dtype)


@pytest.mark.parametrize("method", METHODS)
def test_same_seed_same_values(backend, dtype, method):
    a = draw(backend.adapter.rng(7, device=backend.device), method, 50, dtype)
    b = draw(backend.adapter.rng(7, device=backend.device), method, 50, dtype)
    c = draw(backend.adapter.rng(8, device=backend.device), method, 50, dtype)
    backend.assert_same_place(a, dtype)
    np.testing.assert_array_equal(backend.to_numpy(a), backend.to_numpy(b))
    assert not np.array_equal(backend.to_numpy(a), backend.to_numpy(c))


def test_integers_reproducible_and_in_range(backend):
    r1 = backend.adapter.rng(3, device=backend.device)
    r2 = backend.adapter.rng(3, device=backend.device)
    a, b = r1.integers(-2, 5, (200,)), r2.integers(-2, 5, (200,))
    backend.assert_same_place(a, backend.dtype("int64"))
    a, b = backend.to_numpy(a), backend.to_numpy(b)
    np.testing.assert_array_equal(a, b)
    assert a.min() >= -2 and a.max() <= 4
    assert set(np.unique(a)) == set(range(-2, 5))  # P(miss a value) < 7 (6/7)^200 ~ 3e-13


@pytest.mark.parametrize("method", ["uniform", "exponential", "gumbel", "integers"])
@pytest.mark.parametrize("n,m", [(3, 5), (16, 7), (1, 40)])
def test_stream_consistency(backend, dtype, method, n, m):
    """Drawing n then m values equals drawing n + m (the block rule, first half)."""

    def take(rng, k):
        if method == "integers":
            return backend.to_numpy(rng.integers(0, 1000, (k,)))
        return backend.to_numpy(draw(rng, method, k, dtype))

    r = backend.adapter.rng(11, device=backend.device)
    split = np.concatenate([take(r, n), take(r, m)])
    whole = take(backend.adapter.rng(11, device=backend.device), n + m)
    if backend.name == "jax" and method in ("exponential", "gumbel"):
        # same uniforms, but XLA's vectorised log rounds the tail of an array differently
        eps = np.finfo(split.dtype).eps
        np.testing.assert_allclose(split, whole, rtol=4 * eps, atol=4 * eps)
    else:
        np.testing.assert_array_equal(split, whole)


@pytest.mark.parametrize("n,m", [(16, 32), (48, 16)])
def test_normal_block_rule(backend, dtype, n, m):
    """normal is stream-consistent for calls of multiples of 16 values on every backend."""
    r = backend.adapter.rng(5, device=backend.device)
    split = np.concatenate(
        [
            backend.to_numpy(draw(r, "normal", n, dtype)),
            backend.to_numpy(draw(r, "normal", m, dtype)),
        ]
    )
    whole = backend.to_numpy(
        draw(backend.adapter.rng(5, device=backend.device), "normal", n + m, dtype)
    )
    np.testing.assert_array_equal(split, whole)


@pytest.mark.parametrize("n,m", [(3, 5), (17, 15)])
def test_normal_any_split_on_host_backends(backend, dtype, n, m):
    if backend.name not in ("numpy", "array_api_strict"):
        pytest.skip("only numpy-generated normals are stream-consistent for every split")
    r = backend.adapter.rng(5, device=backend.device)
    split = np.concatenate(
        [
            backend.to_numpy(draw(r, "normal", n, dtype)),
            backend.to_numpy(draw(r, "normal", m, dtype)),
        ]
    )
    whole = backend.to_numpy(
        draw(backend.adapter.rng(5, device=backend.device), "normal", n + m, dtype)
    )
    np.testing.assert_array_equal(split, whole)


# moments: with n = 40_000 draws, |mean - mu| <= 6 sd/sqrt(n) fails a correct sampler with
# probability < 2e-9 (normal approximation), so the whole parametrised set fails < 1e-7.
MOMENTS = {
    "uniform": (0.5, math.sqrt(1 / 12)),
    "normal": (0.0, 1.0),
    "exponential": (1.0, 1.0),
    "gumbel": (0.5772156649, math.pi / math.sqrt(6)),
}


@pytest.mark.parametrize("method", METHODS)
def test_moments(backend, dtype, method):
    n = 40_000
    x = backend.to_numpy(draw(backend.adapter.rng(123, device=backend.device), method, n, dtype))
    mu, sd = MOMENTS[method]
    assert np.all(np.isfinite(x))
    assert abs(x.mean() - mu) <= 6 * sd / math.sqrt(n), (method, x.mean(), mu)
    assert abs(x.std() - sd) <= 0.05 * sd, (method, x.std(), sd)


def test_uniform_bounds_and_scaling(backend, dtype):
    r = backend.adapter.rng(1, device=backend.device)
    x = backend.to_numpy(r.uniform((5000,), dtype=dtype, low=-2.0, high=3.0))
    assert x.min() >= -2.0 and x.max() < 3.0
    y = backend.to_numpy(r.normal((5000,), dtype=dtype, loc=10.0, scale=0.5))
    assert abs(y.mean() - 10.0) < 6 * 0.5 / math.sqrt(5000)


def test_uniform_wide_interval_stays_finite(backend, dtype):
    r = backend.adapter.rng(0, device=backend.device)
    big = 1e308 if backend.dtype_name(dtype) == "float64" else 3e38
    u = as64(backend, r.uniform((1000,), dtype=dtype, low=-big, high=big))
    assert np.all(np.isfinite(u)) and u.min() >= -big and u.max() <= big
    assert stats.kstest(u / big, "uniform", args=(-1, 2)).pvalue > 1e-4  # false-fail 1e-4
    with pytest.raises(ValueError, match="high"):
        r.uniform((3,), dtype=dtype, low=0.0, high=math.inf)


class _EdgeRng(HostRng):
    """Returns the extreme uniforms: 0, the largest value below 1 of the dtype, and 1 itself
    (what rounding a draw near the top to a narrow dtype can give)."""

    def _uniform(self, shape, name, low, high, device):
        top = float(np.nextafter(np.asarray(1.0, dtype=name), np.asarray(0.0, dtype=name)))
        vals = np.resize(np.array([0.0, top, 1.0], dtype=name), shape)
        return self._to(vals, name, device)


def test_gumbel_and_exponential_never_infinite(backend, dtype):
    if backend.name not in ("numpy", "array_api_strict"):
        pytest.skip("the edge adapter draws on the host")
    r = _EdgeRng(np.random.default_rng(0), backend.adapter, backend.device)
    g = backend.to_numpy(r.gumbel((6,), dtype=dtype))
    e = backend.to_numpy(r.exponential((6,), dtype=dtype))
    assert np.all(np.isfinite(g)), g
    assert np.all(np.isfinite(e)) and np.all(e >= 0), e


def test_as_rng_accepts_every_documented_form(backend):
    dt = backend.dtype("float64")
    by_seed = as_rng(4, backend=backend.adapter, device=backend.device)
    fresh = as_rng(None, backend=backend.adapter, device=backend.device)
    same = as_rng(by_seed, backend=backend.adapter, device=backend.device)
    assert same.generator is by_seed.generator
    like = backend.asarray([0.0])
    from_like = as_rng(4, like=like)
    np.testing.assert_array_equal(
        backend.to_numpy(from_like.uniform((3,), dtype=dt)),
        backend.to_numpy(by_seed.uniform((3,), dtype=dt)),
    )
    assert backend.to_numpy(fresh.uniform((3,), dtype=dt)).shape == (3,)
    native = np.random.default_rng(9)
    host = as_rng(native, backend=backend.adapter, device=backend.device)
    backend.assert_same_place(host.uniform((2,), dtype=dt), dt)


def test_torch_seed_matches_torch_generator():
    torch = pytest.importorskip("torch")
    r = as_rng(0, backend="torch", device="cpu")
    assert isinstance(r, TorchRng)
    g = torch.Generator().manual_seed(0)
    expect_u = torch.empty(6, dtype=torch.float32).uniform_(-1, 1, generator=g)
    expect_n = torch.randn(20, generator=g, dtype=torch.float64)
    assert torch.equal(r.uniform((6,), dtype="float32", low=-1.0, high=1.0), expect_u)
    assert torch.equal(r.normal((20,), dtype="float64"), expect_n)
    assert torch.equal(r.generator.get_state(), g.get_state())
    # a user generator is consumed in place, like torch code would
    g2 = torch.Generator().manual_seed(0)
    as_rng(g2, backend="torch").uniform((6,), dtype="float32")
    assert not torch.equal(g2.get_state(), torch.Generator().manual_seed(0).get_state())


def test_bad_input():
    with pytest.raises(TypeError, match="rng must be None, an int seed"):
        as_rng("seed", backend="numpy")
    with pytest.raises(TypeError, match="rng must be"):
        as_rng(True, backend="numpy")
    with pytest.raises(ValueError, match="non-negative"):
        as_rng(-1, backend="numpy")
    r = as_rng(0, backend="numpy")
    with pytest.raises(TypeError, match="real floating dtype"):
        r.uniform((2,), dtype="int64")
    with pytest.raises(TypeError, match="dtype is required"):
        r.normal((2,), dtype=None)
    with pytest.raises(ValueError, match="low < high"):
        r.uniform((2,), dtype="float64", low=1.0, high=1.0)
    with pytest.raises(ValueError, match="low < high"):
        r.integers(3, 3, (2,))
    with pytest.raises(ValueError, match="non-negative sizes"):
        r.uniform((-1,), dtype="float64")


def test_bad_draw_arguments(backend):
    r = backend.adapter.rng(0, device=backend.device)
    f = backend.dtype("float32")
    with pytest.raises(TypeError, match="shape"):
        r.uniform((2.7,), dtype=f)
    with pytest.raises(TypeError, match="shape"):
        r.uniform((True,), dtype=f)
    with pytest.raises(ValueError, match="scale"):
        r.normal((2,), dtype=f, scale=-1.0)
    with pytest.raises(ValueError, match="scale"):
        r.exponential((2,), dtype=f, scale=-1.0)
    with pytest.raises(ValueError, match="loc"):
        r.gumbel((2,), dtype=f, loc=math.nan)
    with pytest.raises(TypeError, match="low"):
        r.integers(0.5, 3, (2,))
    with pytest.raises(TypeError, match="high"):
        r.integers(0, 3.5, (2,))


@pytest.mark.parametrize(
    "low, high", [(0, 2**70), (-(2**64), 0), (0, 2**63), (-(2**63) - 1, 5), (2**63, 2**64)]
)
def test_integers_bounds_beyond_int64_are_refused(backend, low, high):
    """Draws are int64: bounds outside its range are a ValueError naming them, on every
    backend (torch: 'Overflow when unpacking long long'; numpy: its own message)."""
    r = backend.adapter.rng(0, device=backend.device)
    with pytest.raises(ValueError, match=r"integers draws int64 values: low and high must be"):
        r.integers(low, high, (2,))
    edge = as64(backend, r.integers(-(2**63), 2**63 - 1, (64,)))
    assert edge.shape == (64,)


@pytest.mark.parametrize("like", [1.0, 3, "x", [1.0, 2.0], None])
def test_as_rng_like_must_be_an_array(like):
    if like is None:
        assert isinstance(as_rng(0, like=None), Rng)  # None: the backend switch decides
        return
    with pytest.raises(TypeError, match=r"like must be an array .*, got "):
        as_rng(0, like=like)


def test_seed_range_optimizer_state_and_sample_q_rng(backend):
    x = arr(backend, np.ones((2, 3)), "float32")
    for bad in (2**64, 2**70):
        with pytest.raises(ValueError, match="rng"):
            uniform_like_l2_n_ball(x, rng=bad)
    uniform_like_l2_n_ball(x, rng=2**64 - 1)  # the largest accepted seed
    opt = ro.l1_frank_wolfe(epsilon=1.0)
    with pytest.raises(TypeError, match="state"):
        opt.update([x], None, [x])
    q1 = ro.sample_q(0.5, 0.2, 7, like=x)
    q2 = ro.sample_q(0.5, 0.2, 7, like=x)
    assert q1 == q2 and 0.3 <= q1 < 0.7
    with pytest.raises(TypeError, match="rng"):
        ro.sample_q(0.5, 0.2, "seed", like=x)


def test_torch_generator_for_another_backend_is_refused():
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match="torch.Generator but the arrays belong to 'numpy'"):
        as_rng(torch.Generator(), backend="numpy")
    with pytest.raises(TypeError, match="cannot draw for the backend 'numpy'"):
        as_rng(as_rng(0, backend="torch"), backend="numpy")


def test_current_backend_is_used_without_arguments():
    with backends.use("array_api_strict", device="device1"):
        r = as_rng(0)
    assert r.backend.name == "array_api_strict" and str(r.device).endswith("device1')")
