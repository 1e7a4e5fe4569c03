"""refimpl.attr.NoiseTunnel on every backend: the defining identities, the noise itself
(distribution, dtype, device, per-input stdevs, relative level), reproducibility, chunk
independence, stable VarGrad, convergence deltas, kwargs expansion, and bad input.

Statistical tests use exact distributions (normal, chi-square, non-central chi-square) with
a stated false-failure probability for a random seed; the seeds are fixed, so they are
deterministic here.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from backends import namespace_and_device
from conformance.cases.seed003 import quadratic_bounds
from refimpl import attr as ra
from refimpl import models as rm
from refimpl.attr import noise as noise_mod
from tests.conftest import arr, tol

RNG = np.random.default_rng(0)
W1 = RNG.standard_normal((4, 5)) * 0.8
W2 = RNG.standard_normal((3, 4))
WL = RNG.standard_normal((3, 5))
X = RNG.standard_normal((3, 5))


def mlp(backend, dtype):
    a = lambda w: backend.asarray(w, dtype=dtype)  # noqa: E731
    return rm.Sequential(rm.Linear(a(W1)), rm.Pointwise("tanh"), rm.Linear(a(W2)))


class SumSquares:
    """f(x) = sum x^2 over the trailing axes: gradient 2x (elementwise: no BLAS)."""

    def __call__(self, x):
        xp, _ = namespace_and_device(x)
        return xp.sum(xp.reshape(x * x, (x.shape[0], -1)), axis=1)

    def vjp(self, x, u):
        return 2 * x * xp_reshape(u, x)

    def jvp(self, x, v):
        xp, _ = namespace_and_device(x)
        return xp.sum(xp.reshape(2 * x * v, (x.shape[0], -1)), axis=1)


def xp_reshape(u, x):
    xp, _ = namespace_and_device(u)
    return xp.reshape(u, tuple(u.shape) + (1,) * (x.ndim - u.ndim))


class Identity:
    """An "attribution" that returns its (noisy) inputs and records every call: the noise
    tunnel's statistics of it are statistics of the noise."""

    multiplies_by_inputs = False

    def __init__(self):
        self.calls = []

    def attribute(self, inputs, **kwargs):
        self.calls.append((inputs, kwargs))
        return inputs


class Recorder:
    """Wraps a method; records the inputs and kwargs of every call."""

    def __init__(self, method):
        self.method, self.calls = method, []
        self.multiplies_by_inputs = getattr(method, "multiplies_by_inputs", False)

    def has_convergence_delta(self):
        return self.method.has_convergence_delta()

    def attribute(self, inputs, **kwargs):
        self.calls.append((inputs, kwargs))
        return self.method.attribute(inputs, **kwargs)


def noise_of(backend, calls, x, index=0):
    """The noise z[b, j] (samples in order) recorded by an Identity/Recorder, as numpy."""
    b = x.shape[0]
    parts = []
    for inputs, _ in calls:
        rows = backend.to_numpy(inputs[index] if isinstance(inputs, tuple) else inputs)
        parts.append(rows.reshape(b, -1, *x.shape[1:]))
    return np.concatenate(parts, axis=1) - np.asarray(x)[:, None]


# -- the defining identities -------------------------------------------------------------------
def test_stdevs_zero_returns_the_wrapped_attribution(backend, dtype):
    x = backend.asarray(X, dtype=dtype)
    sal = ra.Saliency(mlp(backend, dtype), abs=False)
    plain = backend.to_numpy(sal.attribute(x, target=[0, 1, 2]))
    nt = ra.NoiseTunnel(sal)
    t = tol(backend.dtype_name(dtype))
    for nt_type, expect in [("smoothgrad", plain), ("smoothgrad_sq", plain**2)]:
        out = nt.attribute(x, nt_type, 6, 4, stdevs=0, target=[0, 1, 2], rng=1)
        backend.assert_same_place(out, dtype)
        np.testing.assert_allclose(backend.to_numpy(out), expect, **t)
    var = nt.attribute(x, "vargrad", 6, 4, stdevs=0, target=[0, 1, 2], rng=1)
    var = backend.to_numpy(var)  # 0 up to the method's row-to-row rounding (batched BLAS)
    assert np.all(var >= 0) and np.all(var <= 1e-12 * np.max(plain**2))


def test_linear_model_has_constant_smoothgrad_and_zero_vargrad(backend, dtype):
    model = rm.Linear(backend.asarray(WL, dtype=dtype))
    x = backend.asarray(X, dtype=dtype)
    nt = ra.NoiseTunnel(ra.Saliency(model, abs=False))
    out = nt.attribute(x, nt_samples=9, nt_samples_batch_size=4, stdevs=2.0, target=[2, 0, 1])
    np.testing.assert_allclose(
        backend.to_numpy(out), WL[[2, 0, 1]], **tol(backend.dtype_name(dtype))
    )
    var = nt.attribute(x, "vargrad", 9, 4, stdevs=2.0, target=[2, 0, 1])
    assert np.all(backend.to_numpy(var) == 0)


def test_quadratic_moments_within_exact_bounds(backend, dtype):
    """f = sum x^2, n = 64, sigma = 0.5: smoothgrad ~ N(2x, sigma^2 4/n), n sg_sq/(4 sigma^2) ~
    ncx2(n, n x^2/sigma^2), n vargrad/(4 sigma^2) ~ chi2(n - 1). False-failure probability
    <= 1e-6 for a random seed (Bonferroni over 64 elements and 3 statistics)."""
    x0 = np.random.default_rng(2).standard_normal((2, 32))
    bounds = quadratic_bounds(x0, 64, 0.5, 1e-6)
    nt = ra.NoiseTunnel(ra.Saliency(SumSquares(), abs=False))
    for nt_type in ra.NT_TYPES:
        out = nt.attribute(backend.asarray(x0, dtype=dtype), nt_type, 64, 24, stdevs=0.5, rng=3)
        lo, hi = bounds[nt_type]
        got = backend.to_numpy(out)
        assert np.all((got >= lo) & (got <= hi)), nt_type


# -- the noise: distribution, dtype, device, per-input stdevs, relative level --------------
def chi2_ok(z: np.ndarray, sigma, p: float) -> bool:
    """sum (z/sigma)^2 ~ chi2(z.size) inside its two-sided (1 - p) interval."""
    s = float(np.sum((z / sigma) ** 2))
    return stats.chi2.ppf(p / 2, z.size) <= s <= stats.chi2.isf(p / 2, z.size)


def test_tuple_inputs_with_per_input_stdevs(backend, dtype):
    """Two inputs, stdevs (0.5, 2): each input's noise is N(0, stdev_i^2) in its dtype, on its
    device (chi-square bounds, false-failure probability 1e-6 each); the output is a tuple
    shaped like the inputs; the remainder chunk has 1 sample."""
    x1, x2 = RNG.standard_normal((3, 4)), RNG.standard_normal((3, 2, 2))
    xs = (backend.asarray(x1, dtype=dtype), backend.asarray(x2, dtype=dtype))
    probe = Identity()
    out = ra.NoiseTunnel(probe).attribute(xs, "smoothgrad", 200, 7, stdevs=(0.5, 2), rng=4)
    assert isinstance(out, tuple) and [tuple(o.shape) for o in out] == [(3, 4), (3, 2, 2)]
    assert [inp[0].shape[0] for inp, _ in probe.calls] == [21] * 28 + [12]  # 28 x 7 + 4
    for inputs, _ in probe.calls:
        for a in inputs:
            backend.assert_same_place(a, dtype)
    z1, z2 = noise_of(backend, probe.calls, x1, 0), noise_of(backend, probe.calls, x2, 1)
    assert z1.shape == (3, 200, 4) and z2.shape == (3, 200, 2, 2)
    assert chi2_ok(z1, 0.5, 1e-6) and chi2_ok(z2, 2.0, 1e-6)
    assert not chi2_ok(z1, 2.0, 1e-6)  # the test can fail: the wrong sigma is rejected
    # smoothgrad of the identity is the mean noisy input
    np.testing.assert_allclose(backend.to_numpy(out[1]), x2 + z2.mean(axis=1), rtol=1e-4, atol=1e-4)


def test_relative_noise_level(backend):
    """relative=True: sigma = level * (max - min) of each example (the SmoothGrad paper's noise
    level): each example's noise passes a chi-square test with its own sigma (p = 1e-6)."""
    x0 = RNG.standard_normal((3, 50)) * np.array([[0.1], [1.0], [10.0]])
    probe = Identity()
    ra.NoiseTunnel(probe).attribute(backend.asarray(x0, dtype="float64"), nt_samples=40,
                                    stdevs=0.15, relative=True, rng=5)  # fmt: skip
    z = noise_of(backend, probe.calls, x0)
    for b in range(3):
        assert chi2_ok(z[b], 0.15 * np.ptp(x0[b]), 1e-6)


def test_same_seed_same_map_and_generators(backend, dtype):
    x = backend.asarray(X, dtype=dtype)
    nt = ra.NoiseTunnel(ra.Saliency(mlp(backend, dtype)))
    run = lambda rng: backend.to_numpy(nt.attribute(x, "vargrad", 6, 4, 0.3, target=1, rng=rng))  # noqa: E731
    assert np.array_equal(run(7), run(7))
    assert not np.array_equal(run(7), run(8))
    assert not np.array_equal(run(None), run(None))  # fresh entropy
    native = backend.adapter.rng(7, device=backend.device).generator  # a library generator
    assert np.array_equal(run(native), run(7))


# -- chunk independence ------------------------------------------------------------------------
@pytest.mark.parametrize("block_values", [noise_mod.BLOCK_VALUES, 16])
def test_results_do_not_depend_on_the_batch_size(backend, monkeypatch, block_values):
    """Same seed: bit-identical maps and deltas for every nt_samples_batch_size (remainder
    chunks included), with noise blocks larger or smaller than a chunk, for tuple inputs."""
    monkeypatch.setattr(noise_mod, "BLOCK_VALUES", block_values)
    x1, x2 = RNG.standard_normal((2, 3)), RNG.standard_normal((2, 2, 2))
    xs = (backend.asarray(x1, dtype="float32"), backend.asarray(x2, dtype="float32"))
    nt = ra.NoiseTunnel(Identity())
    ig = ra.NoiseTunnel(ra.IntegratedGradients(SumSquares()))
    for nt_type in ra.NT_TYPES:
        ref = [backend.to_numpy(a) for a in nt.attribute(xs, nt_type, 11, stdevs=(0.3, 1), rng=2)]
        for bs in (1, 2, 3, 4, 10, 11, 50):
            out = nt.attribute(xs, nt_type, 11, bs, stdevs=(0.3, 1), rng=2)
            for a, r in zip(out, ref):
                assert np.array_equal(backend.to_numpy(a), r), (nt_type, bs)
    _, d_ref = ig.attribute(xs[0], nt_samples=7, stdevs=0.2, rng=1, return_convergence_delta=True)
    for bs in (2, 3):
        _, d = ig.attribute(xs[0], nt_samples=7, nt_samples_batch_size=bs, stdevs=0.2, rng=1,
                            return_convergence_delta=True)  # fmt: skip
        np.testing.assert_allclose(backend.to_numpy(d), backend.to_numpy(d_ref), atol=1e-5)


@given(
    n=st.integers(1, 12),
    bs=st.integers(1, 15),
    batch=st.integers(1, 3),
    shape=st.lists(st.integers(1, 3), min_size=0, max_size=2),
    sigma=st.floats(0.0, 3.0),
    nt_type=st.sampled_from(ra.NT_TYPES),
)
def test_property_chunking_and_the_identity_statistics(
    backend, n, bs, batch, shape, sigma, nt_type
):
    """For any sizes and sigma: the batch size changes nothing (bit for bit), and the
    statistics of the identity "attribution" are those of x + noise computed in float64."""
    x0 = np.random.default_rng(n).standard_normal((batch, *shape))
    x = backend.asarray(x0, dtype="float64")
    probe = Identity()
    out = ra.NoiseTunnel(probe).attribute(x, nt_type, n, bs, stdevs=sigma, rng=1)
    ref = ra.NoiseTunnel(Identity()).attribute(x, nt_type, n, stdevs=sigma, rng=1)
    assert np.array_equal(backend.to_numpy(out), backend.to_numpy(ref))
    noisy = x0[:, None] + noise_of(backend, probe.calls, x0)  # (B, n, ...)
    expect = {
        "smoothgrad": noisy.mean(axis=1),
        "smoothgrad_sq": (noisy**2).mean(axis=1),
        "vargrad": noisy.var(axis=1),
    }[nt_type]
    np.testing.assert_allclose(backend.to_numpy(out), expect, rtol=1e-12, atol=1e-12)


def test_batch_size_independence_through_a_model(backend):
    """Through an MLP (matrix products over different row counts): equal to rounding."""
    x = backend.asarray(X, dtype="float64")
    nt = ra.NoiseTunnel(ra.Saliency(mlp(backend, "float64")))
    ref = backend.to_numpy(nt.attribute(x, "vargrad", 10, stdevs=0.5, target=1, rng=0))
    for bs in (1, 3, 4):
        out = nt.attribute(x, "vargrad", 10, bs, stdevs=0.5, target=1, rng=0)
        np.testing.assert_allclose(backend.to_numpy(out), ref, rtol=1e-12, atol=1e-15)


# -- VarGrad: stable, never negative ----------------------------------------------------------
class QuadLin:
    """Gradient w + eps x: mean/sd of the gradient under N(0, sigma^2) noise is w/(eps sigma)."""

    def __init__(self, w, eps):
        self.w, self.eps = w, eps

    def __call__(self, x):
        xp, _ = namespace_and_device(x)
        return xp.sum(self.w * x + 0.5 * self.eps * x * x, axis=-1)

    def vjp(self, x, u):
        return (self.w + self.eps * x) * u[..., None]

    def jvp(self, x, v):
        xp, _ = namespace_and_device(x)
        return xp.sum((self.w + self.eps * x) * v, axis=-1)


def test_vargrad_is_accurate_in_float32_where_the_one_pass_formula_fails(backend):
    """mean/sd = 1e4 in float32 (where captum 0.9's E[a^2] - E[a]^2 fails): Welford VarGrad within 1% (median) and
    5% (max) of the float64 variance of the same samples, never negative; the one-pass
    E[a^2] - E[a]^2 on the very same float32 attributions is off by > 100% and goes negative."""
    w, eps = 100.0, 0.01
    x0 = np.random.default_rng(4).standard_normal((4, 500))
    rec = Recorder(ra.Saliency(QuadLin(w, eps), abs=False))
    out = backend.to_numpy(
        ra.NoiseTunnel(rec).attribute(
            backend.asarray(x0, dtype="float32"), "vargrad", 50, 8, stdevs=1.0, rng=2
        )  # fmt: skip
    )
    z = noise_of(backend, rec.calls, x0.astype(np.float32))
    noisy = x0[:, None].astype(np.float32) + z
    ref = (w + eps * noisy.astype(np.float64)).var(axis=1)
    rel = np.abs(out - ref) / ref
    assert out.min() >= 0 and np.median(rel) < 0.01 and rel.max() < 0.05
    a32 = np.float32(w) + np.float32(eps) * noisy.astype(np.float32)  # the float32 attributions
    one_pass = (a32 * a32).mean(axis=1, dtype=np.float32) - a32.mean(axis=1, dtype=np.float32) ** 2
    rel1 = np.abs(one_pass - ref) / ref
    assert np.median(rel1) > 1 and (one_pass < 0).mean() > 0.1


@given(
    offset=st.floats(-1e4, 1e4),
    scale=st.floats(1e-3, 10.0),
    n=st.integers(1, 40),
    chunk=st.integers(1, 40),
    seed=st.integers(0, 2**31),
)
def test_running_vargrad_never_negative_and_accurate(offset, scale, n, chunk, seed):
    """Welford over float32 samples fed in chunks: never negative, and within a rounding
    bound of the float64 two-pass variance of the same samples,
    8 n eps (var + sd max|a|) (the mean's rounding, about n eps max|a|, enters linearly)."""
    a = (offset + scale * np.random.default_rng(seed).standard_normal((n, 2, 3))).astype(np.float32)
    m = ra.RunningMoments("vargrad")
    for start in range(0, n, chunk):
        m.add(np.moveaxis(a[start : start + chunk], 0, 1))  # (B, k, ...)
    got = m.result()
    ref = a.astype(np.float64).var(axis=0)
    assert got.dtype == np.float32 and np.all(got >= 0)
    eps = float(np.finfo(np.float32).eps)
    bound = 8 * n * eps * (ref + np.sqrt(ref) * np.abs(a).max(axis=0))
    assert np.all(np.abs(got - ref) <= bound + 1e-30)


@given(
    offset=st.floats(-1e4, 1e4),
    scale=st.floats(1e-3, 10.0),
    sizes=st.lists(st.integers(0, 15), min_size=1, max_size=6).filter(lambda s: sum(s) > 0),
    seed=st.integers(0, 2**31),
)
def test_merged_moments_are_the_moments_of_all_samples(offset, scale, sizes, seed):
    """The tasks of a keyed run: moments of consecutive groups of float32 samples, merged in
    order (Chan et al.'s pairwise VarGrad), are within the rounding bound above of the float64
    statistics of all samples; VarGrad is never negative; an empty group changes nothing."""
    n = sum(sizes)
    a = (offset + scale * np.random.default_rng(seed).standard_normal((n, 2, 3))).astype(np.float32)
    a64 = a.astype(np.float64)
    eps = float(np.finfo(np.float32).eps)
    for nt_type, ref in (
        ("smoothgrad", a64.mean(axis=0)),
        ("smoothgrad_sq", (a64**2).mean(axis=0)),
        ("vargrad", a64.var(axis=0)),
    ):
        merged, start = ra.RunningMoments(nt_type), 0
        for k in sizes:
            part = ra.RunningMoments(nt_type)
            if k:
                part.add(np.moveaxis(a[start : start + k], 0, 1))
            merged.merge(part)
            start += k
        got = merged.result()
        assert got.dtype == np.float32 and merged.count == n
        if nt_type == "vargrad":
            assert np.all(got >= 0)
            bound = 8 * n * eps * (ref + np.sqrt(ref) * np.abs(a).max(axis=0))
        else:
            bound = 4 * n * eps * np.abs(a64 if nt_type == "smoothgrad" else a64**2).max(axis=0)
        assert np.all(np.abs(got - ref) <= bound + 1e-30), nt_type


# -- the convergence delta ---------------------------------------------------------------------
def test_delta_has_one_value_per_noisy_sample_example_major(backend):
    """B=3, n=5, batch size 2: delta shape (15,); delta.reshape(3, 5)[b, j] is IG's delta at the
    noisy row (b, j), whatever the chunking."""
    x = backend.asarray(X, dtype="float64")
    rec = Recorder(ra.IntegratedGradients(mlp(backend, "float64"), n_steps=5))
    attrs, delta = ra.NoiseTunnel(rec).attribute(
        x, nt_samples=5, nt_samples_batch_size=2, stdevs=0.3, target=1, rng=0,
        return_convergence_delta=True,
    )  # fmt: skip
    assert tuple(delta.shape) == (15,)
    backend.assert_same_place(delta)
    rows = [backend.to_numpy(inp).reshape(3, -1, 5) for inp, _ in rec.calls]
    noisy = np.concatenate(rows, axis=1)  # (3, 5, 5): example, sample, feature
    ig = ra.IntegratedGradients(mlp(backend, "float64"), n_steps=5)
    _, per_row = ig.attribute(backend.asarray(noisy.reshape(15, 5), dtype="float64"), target=1,
                              return_convergence_delta=True)  # fmt: skip
    np.testing.assert_allclose(backend.to_numpy(delta), backend.to_numpy(per_row), rtol=1e-10,
                               atol=1e-14)  # fmt: skip
    nt = ra.NoiseTunnel(ra.IntegratedGradients(mlp(backend, "float64")))
    assert nt.has_convergence_delta() and nt.multiplies_by_inputs
    assert not ra.NoiseTunnel(ra.Saliency(mlp(backend, "float64"))).has_convergence_delta()


# -- kwargs forwarded and expanded per sample --------------------------------------------------
def test_kwargs_expanded_per_sample(backend):
    x = backend.asarray(X, dtype="float64")  # B = 3
    per_example = backend.asarray(RNG.standard_normal((3, 2)), dtype="float64")
    shared = backend.asarray(RNG.standard_normal((1, 2)), dtype="float64")
    weights = backend.asarray(RNG.standard_normal(4), dtype="float64")  # not per example
    mask = backend.asarray(np.arange(15).reshape(3, 5), dtype="int64")
    mask_nobatch = backend.asarray(np.arange(5), dtype="int64")
    targets = [0, 2, 1]
    probe = Identity()
    ra.NoiseTunnel(probe).attribute(
        x, nt_samples=5, nt_samples_batch_size=2, stdevs=0.1, rng=0, target=targets,
        additional_forward_args=(per_example, shared, weights, 7, None),
        baselines=backend.asarray(np.ones((3, 5)), dtype="float64"),
        feature_mask=mask, n_steps=11,
    )  # fmt: skip
    assert targets == [0, 2, 1]  # the caller's list is not modified
    assert [kw["target"] for _, kw in probe.calls] == [
        [0, 0, 2, 2, 1, 1],
        [0, 0, 2, 2, 1, 1],
        [0, 2, 1],
    ]
    for (_, kw), k in zip(probe.calls, (2, 2, 1)):
        pe, sh, wt, seven, none = kw["additional_forward_args"]
        np.testing.assert_array_equal(
            backend.to_numpy(pe), np.repeat(backend.to_numpy(per_example), k, axis=0)
        )
        assert sh is shared and wt is weights and seven == 7 and none is None
        assert tuple(kw["baselines"].shape) == (3 * k, 5)
        np.testing.assert_array_equal(backend.to_numpy(kw["feature_mask"]),
                                      np.repeat(np.arange(15).reshape(3, 5), k, axis=0))  # fmt: skip
        assert kw["n_steps"] == 11
    probe = Identity()
    ra.NoiseTunnel(probe).attribute(
        x, nt_samples=2, stdevs=0.1, rng=0, additional_forward_args=per_example,
        target=backend.asarray([1, 0, 1], dtype="int64"), baselines=0.5,
        feature_mask=mask_nobatch,
    )  # fmt: skip
    ((_, kw),) = probe.calls
    assert isinstance(kw["additional_forward_args"], tuple)  # wrapped, as captum does
    assert backend.to_numpy(kw["target"]).tolist() == [1, 1, 0, 0, 1, 1]
    assert kw["baselines"] == 0.5 and kw["feature_mask"] is mask_nobatch
    probe = Identity()
    zeros = backend.asarray(np.zeros((1, 5)), dtype="float64")
    ra.NoiseTunnel(probe).attribute(
        x, nt_samples=2, stdevs=0.1, rng=0, target=(1,), baselines=zeros
    )
    ((_, kw),) = probe.calls
    assert kw["target"] == (1,) and tuple(kw["baselines"].shape) == (1, 5)


def test_baselines_drawn_from_their_distribution(backend):
    """draw_baseline_from_distrib: every (example, sample) draws a row uniformly from K = 4
    baselines (chi-square goodness of fit, false-failure probability 1e-6), the draws do
    not depend on the batch size, and each row's baseline is one of the K."""
    x = backend.asarray(X, dtype="float64")
    pool = np.arange(4, dtype=np.float64)[:, None] * np.ones((1, 5))
    base = backend.asarray(pool, dtype="float64")

    def drawn(bs):
        probe = Identity()
        ra.NoiseTunnel(probe).attribute(x, nt_samples=300, nt_samples_batch_size=bs, stdevs=0.0,
                                        draw_baseline_from_distrib=True, baselines=base, rng=6)  # fmt: skip
        rows = [backend.to_numpy(kw["baselines"]).reshape(3, -1, 5) for _, kw in probe.calls]
        return np.concatenate(rows, axis=1)[..., 0]  # (3, 300): the drawn row index

    idx = drawn(None)
    assert set(np.unique(idx)) <= {0.0, 1.0, 2.0, 3.0}
    counts = np.bincount(idx.astype(int).ravel(), minlength=4)
    assert stats.chisquare(counts).pvalue > 1e-6
    assert np.array_equal(drawn(7), idx) and np.array_equal(drawn(1), idx)
    with pytest.raises(ValueError, match=r"shape \(K, \*input.shape\[1:\]\)"):
        ra.NoiseTunnel(Identity()).attribute(x, draw_baseline_from_distrib=True,
                                             baselines=backend.asarray(np.zeros((4, 3)), dtype="float64"))  # fmt: skip # noqa: E501


# -- the wrapped method, numbers accepted, inputs untouched ------------------------------------
def test_any_method_and_numeric_stdevs(backend):
    x = backend.asarray(X, dtype="float32")
    before = backend.to_numpy(x)
    nt = ra.NoiseTunnel(Identity())
    assert not nt.has_convergence_delta() and not nt.multiplies_by_inputs
    ref = backend.to_numpy(nt.attribute(x, stdevs=1.0, rng=3))
    for s in (1, np.float32(1.0), np.float64(1.0), np.int64(1)):
        assert np.array_equal(backend.to_numpy(nt.attribute(x, stdevs=s, rng=3)), ref)
    assert np.array_equal(backend.to_numpy(x), before)
    out = nt.attribute(x, nt_samples=np.int64(3), nt_samples_batch_size=np.int32(2), rng=3)
    backend.assert_same_place(out, x.dtype)
    assert nt.attribute(x, progress=True, rng=3).shape == x.shape


class WrongRows:
    def attribute(self, inputs, **kwargs):
        return inputs[:1, ...]


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(nt_type="foo"), ValueError, "nt_type must be one of"),
        (dict(nt_type="SmoothGrad"), ValueError, "nt_type must be one of .*got 'SmoothGrad'"),
        (dict(nt_samples=0), ValueError, "nt_samples must be an int >= 1, got 0"),
        (dict(nt_samples=-2), ValueError, "nt_samples must be an int >= 1, got -2"),
        (dict(nt_samples=2.5), TypeError, "nt_samples must be an int"),
        (dict(nt_samples=True), TypeError, "nt_samples must be an int"),
        (dict(nt_samples_batch_size=0), ValueError, "nt_samples_batch_size must be an int >= 1"),
        (dict(nt_samples_batch_size=-1), ValueError, "nt_samples_batch_size must be an int >= 1"),
        (dict(stdevs=-1.0), ValueError, "stdevs must be a finite number >= 0, got -1.0"),
        (dict(stdevs=float("nan")), ValueError, "stdevs must be a finite number"),
        (dict(stdevs=float("inf")), ValueError, "stdevs must be a finite number"),
        (dict(stdevs=(1.0, 2.0)), ValueError, "stdevs has 2 values but there are 1 input"),
        (dict(stdevs="1"), TypeError, "stdevs must be a real number"),
        (dict(stdevs=True), TypeError, "stdevs must be a real number"),
        (dict(target=[0, 1]), ValueError, "target is a list of 2 items but the inputs have 3"),
        (dict(draw_baseline_from_distrib=1), TypeError, "draw_baseline_from_distrib must be"),
        (dict(relative="yes"), TypeError, "relative must be True or False"),
        (dict(baselines=(0.0, 0.0)), ValueError, "baselines has 2 entries"),
    ],
)
def test_bad_arguments_raise_before_any_call(backend, kwargs, error, match):
    probe = Identity()
    with pytest.raises(error, match=match):
        ra.NoiseTunnel(probe).attribute(backend.asarray(X, dtype="float64"), **kwargs)
    assert probe.calls == []  # nothing computed


def test_bad_inputs_and_methods(backend):
    x = backend.asarray(X, dtype="float64")
    with pytest.raises(TypeError, match="must have a method attribute"):
        ra.NoiseTunnel(lambda x: x)
    with pytest.raises(TypeError, match="got a list"):
        ra.NoiseTunnel(Identity()).attribute([x])
    with pytest.raises(TypeError, match="real floating dtype"):
        ra.NoiseTunnel(Identity()).attribute(backend.asarray([[1, 2]], dtype="int64"))
    with pytest.raises(TypeError, match="has no convergence delta"):
        ra.NoiseTunnel(ra.Saliency(mlp(backend, "float64"))).attribute(
            x, target=0, return_convergence_delta=True
        )
    with pytest.raises(ValueError, match="needs one row per noisy input row"):
        ra.NoiseTunnel(WrongRows()).attribute(x, nt_samples=2)
    other = np.asarray(X) if backend.name != "numpy" else None
    if other is not None:
        with pytest.raises(TypeError, match=r"inputs\[1\] is a .*use arrays of one library"):
            ra.NoiseTunnel(Identity()).attribute((x, other))
    if backend.name == "array_api_strict":
        host = backend.xp.asarray(X, device=backend.xp.Device("CPU_DEVICE"))
        with pytest.raises(ValueError, match="different devices"):
            ra.NoiseTunnel(Identity()).attribute((x, host))
    # an explicit False is fine for a method without a delta
    ra.NoiseTunnel(ra.Saliency(mlp(backend, "float64"))).attribute(
        x, target=0, return_convergence_delta=False, rng=0
    )


def test_validation_survives_python_O():
    """Real exceptions, not asserts: under python -O a bad nt_type still raises ValueError
    (captum's checks are asserts and vanish there)."""
    code = (
        "import numpy as np; from refimpl.attr import NoiseTunnel\n"
        "class M:\n    def attribute(self, x, **k): return x\n"
        "try:\n    NoiseTunnel(M()).attribute(np.ones((2, 3)), nt_type='foo')\n"
        "except ValueError as e:\n    print('ValueError', e)\n"
    )
    res = subprocess.run([sys.executable, "-O", "-c", code], capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout.startswith("ValueError nt_type"), res.stderr


@pytest.mark.parametrize(
    "dtype_name, kwargs",
    [("float32", dict(stdevs=1e39)), ("float32", dict(stdevs=1e37)),
     ("float16", dict(stdevs=1e5)), ("float64", dict(stdevs=(0.1, 1e307))),
     ("float32", dict(stdevs=3e36, relative=True))],
)  # fmt: skip
def test_stdevs_must_keep_the_noisy_inputs_finite(backend, dtype_name, kwargs):
    """max|x| + 40 sigma must be finite in the inputs' dtype (40 bounds every normal draw),
    checked before any noise or call: stdevs=1e39 on float32 gave all-NaN attributions. With
    relative=True sigma is the level times each example's range (here 3)."""
    x = arr(backend, np.tile(np.linspace(-1.5, 1.5, 5), (3, 1)), dtype_name)
    inputs = (x, x) if isinstance(kwargs["stdevs"], tuple) else x
    probe = Identity()
    with pytest.raises(ValueError, match=r"stdevs.*=.* is too large for the dtype"):
        ra.NoiseTunnel(probe).attribute(inputs, nt_samples=2, rng=0, **kwargs)
    assert probe.calls == []


def test_the_largest_accepted_stdevs_gives_finite_noise(backend):
    x = backend.asarray(np.zeros((3, 5)), dtype="float32")
    out = ra.NoiseTunnel(Identity()).attribute(x, stdevs=3.4e38 / 40 * 0.999, rng=0)
    assert np.all(np.isfinite(backend.to_numpy(out)))


@pytest.mark.parametrize("nt_samples_batch_size", [None, 1, 3])
def test_a_bad_target_entry_is_named_as_the_user_gave_it(backend, nt_samples_batch_size):
    """The per-example target list is repeated per sample: errors name the entry of the
    caller's list (target[2]), not of the expanded one (it said target[4]); an entry of the
    wrong kind fails before any noise or call."""
    x = backend.asarray(X, dtype="float64")
    kw = dict(nt_samples=2, nt_samples_batch_size=nt_samples_batch_size, rng=0)
    probe = Identity()
    with pytest.raises(TypeError, match=r"target\[2\] must be an int or a tuple of ints, got None"):
        ra.NoiseTunnel(probe).attribute(x, target=[0, 1, None], **kw)
    assert probe.calls == []
    model = mlp(backend, "float64")
    for method in (ra.Saliency(model), ra.IntegratedGradients(model, n_steps=4)):
        with pytest.raises(ValueError, match=r"target\[2\]=5 is out of range"):
            ra.NoiseTunnel(method).attribute(x, target=[0, 1, 5], **kw)
        with pytest.raises(ValueError, match=r"target\[1\]=-4 is out of range"):
            ra.NoiseTunnel(method).attribute(x, target=[0, -4, 1], **kw)
    with pytest.raises(ValueError, match=r"target\[2\]=5 is out of range"):
        ra.IntegratedGradients(model, n_steps=4).attribute(x, target=[0, 1, 5],
                                                           internal_batch_size=4)  # fmt: skip


@pytest.mark.parametrize("shape", [(0, 5), (4, 0), (0, 0)])
@pytest.mark.parametrize("relative", [False, True])
def test_empty_inputs_give_empty_results(backend, shape, relative):
    """No examples or no features: attributions of the inputs' shape (and B * n deltas)."""
    x = backend.asarray(np.ones(shape), dtype="float64")
    out = ra.NoiseTunnel(Identity()).attribute(x, nt_samples=3, relative=relative, rng=0)
    backend.assert_same_place(out, x.dtype)
    assert tuple(out.shape) == shape
    model = rm.Linear(backend.asarray(np.ones((2, shape[1])), dtype="float64"))
    nt = ra.NoiseTunnel(ra.IntegratedGradients(model, n_steps=3))
    attr, delta = nt.attribute(x, nt_samples=3, nt_samples_batch_size=2, relative=relative,
                               target=0, rng=0, return_convergence_delta=True)  # fmt: skip
    assert tuple(attr.shape) == shape and tuple(delta.shape) == (shape[0] * 3,)


def test_refimpl_models_take_no_additional_forward_args_before_any_noise(backend):
    x = backend.asarray(X, dtype="float64")
    rng = np.random.default_rng(0) if backend.name == "numpy" else 0
    state = getattr(rng, "bit_generator", None)
    before = None if state is None else state.state
    with pytest.raises(TypeError, match="refimpl models take no additional_forward_args"):
        ra.NoiseTunnel(ra.Saliency(mlp(backend, "float64"))).attribute(
            x, target=0, additional_forward_args=(2.0,), rng=rng
        )
    assert before is None or rng.bit_generator.state == before  # no noise drawn


@pytest.mark.parametrize("draw", [False, True])
def test_zero_d_baselines_pass_as_scalars(backend, draw):
    """A numpy scalar or a 0-d array is a scalar baseline: it passes unexpanded (also when
    baselines are drawn from their distribution) and gives what the number gives."""
    x = backend.asarray(X, dtype="float64")
    nt = ra.NoiseTunnel(ra.IntegratedGradients(mlp(backend, "float64"), n_steps=4))
    kw = dict(nt_samples=3, target=0, rng=2, draw_baseline_from_distrib=draw)
    ref = backend.to_numpy(nt.attribute(x, baselines=0.5, **kw))
    for b in (np.float32(0.5), np.asarray(0.5), backend.asarray(0.5, dtype="float64")):
        np.testing.assert_array_equal(backend.to_numpy(nt.attribute(x, baselines=b, **kw)), ref)
