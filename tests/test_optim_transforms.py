"""refimpl.optim.transforms: top-q rule (count, ties, NaN), sign, normalisation, dq draw."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from refimpl.optim import (
    l1q_gradient,
    normalize_gradient,
    sample_q,
    sign_gradient,
    top_q_count,
    top_q_gradient,
)
from tests.conftest import tol


def _ref_top_q(g: np.ndarray, k: int) -> np.ndarray:
    """float64 reference: keep the k largest |g| per row, ties -> lowest index, NaN largest."""
    key = np.where(np.isnan(g), np.inf, np.abs(g))
    order = np.argsort(-key, axis=1, kind="stable")[:, :k]
    out = np.zeros_like(g)
    np.put_along_axis(out, order, np.take_along_axis(g, order, axis=1), axis=1)
    return out


@pytest.mark.parametrize(
    "q, d, k",
    [(0.5, 5, 2), (0.5, 3, 2), (0.1, 5, 4), (0.9, 5, 0), (0.0, 7, 7), (1.0, 7, 0), (0.3, 3, 2)],
)
def test_top_q_count_rounds_half_to_even(backend, q, d, k):
    assert top_q_count(q, d) == k
    g = backend.asarray(np.arange(1.0, d + 1.0), dtype="float64")
    out = top_q_gradient(g, q, param_ndim=None)
    backend.assert_same_place(out, g.dtype)
    assert int(np.count_nonzero(backend.to_numpy(out))) == k


@given(
    rows=st.integers(1, 4),
    d=st.integers(1, 12),
    q=st.floats(0, 1),
    seed=st.integers(0, 2**16),
    levels=st.sampled_from([3, 1000]),
)
def test_top_q_matches_reference_with_and_without_ties(backend, dtype, rows, d, q, seed, levels):
    rng = np.random.default_rng(seed)
    g = rng.integers(-levels, levels + 1, size=(rows, d)).astype(np.float64) / 7
    x = backend.asarray(g, dtype=dtype)
    out = top_q_gradient(x, q, param_ndim=-1)
    backend.assert_same_place(out, dtype)
    ref = _ref_top_q(backend.to_numpy(x).astype(np.float64), top_q_count(q, d))
    np.testing.assert_array_equal(backend.to_numpy(out).astype(np.float64), ref)


def test_tie_rule_lowest_index_exactly_k(backend):
    g = backend.asarray([[1.0, -1.0, 1.0, -1.0], [2.0, 1.0, 1.0, 1.0]], dtype="float64")
    out = backend.to_numpy(top_q_gradient(g, 0.5, param_ndim=-1))  # k = 2
    np.testing.assert_array_equal(out, [[1.0, -1.0, 0.0, 0.0], [2.0, 1.0, 0.0, 0.0]])


def test_same_set_as_torch_topk_without_ties(backend):
    torch = pytest.importorskip("torch")
    g = np.random.default_rng(1).standard_normal((3, 40))
    k = top_q_count(0.3, 40)
    idx = torch.topk(torch.from_numpy(np.abs(g)), k, dim=1).indices.numpy()
    expected = np.zeros_like(g)
    np.put_along_axis(expected, idx, np.take_along_axis(g, idx, axis=1), axis=1)
    out = top_q_gradient(backend.asarray(g, dtype="float64"), 0.3, param_ndim=-1)
    np.testing.assert_array_equal(backend.to_numpy(out), expected)


def test_nan_counts_as_largest_and_propagates(backend):
    nan = float("nan")
    g = backend.asarray([[0.5, nan, 3.0, -2.0, 0.1]], dtype="float64")
    kept = backend.to_numpy(top_q_gradient(g, 0.6, param_ndim=-1))  # k = 2: NaN and 3.0
    np.testing.assert_array_equal(np.isnan(kept), [[False, True, False, False, False]])
    np.testing.assert_array_equal(np.nan_to_num(kept), [[0.0, 0.0, 3.0, 0.0, 0.0]])
    v = backend.to_numpy(l1q_gradient(g, 0.6, param_ndim=-1))
    assert np.isnan(v).all()  # the row's L1 norm is NaN: nothing is silently zeroed
    assert np.isnan(backend.to_numpy(sign_gradient(g)))[0, 1]


def test_l1q_gradient_values(backend, dtype):
    g = backend.asarray([[0.0, 1.0, 2.0], [-3.0, 0.5, 0.25]], dtype=dtype)
    v = l1q_gradient(g, 0.3, param_ndim=-1)  # k = 2
    backend.assert_same_place(v, dtype)
    np.testing.assert_allclose(
        backend.to_numpy(v), [[0.0, 0.5, 0.5], [-0.5, 0.5, 0.0]], **tol(backend.dtype_name(dtype))
    )
    zero = l1q_gradient(backend.asarray([[0.0, 0.0]], dtype=dtype), 0.0)
    np.testing.assert_array_equal(backend.to_numpy(zero), [[0.0, 0.0]])


@pytest.mark.parametrize("ord", [1, 2])
def test_normalize_gradient(backend, dtype, ord):
    g = np.random.default_rng(0).standard_normal((2, 3, 4))
    out = normalize_gradient(backend.asarray(g, dtype=dtype), ord, param_ndim=1)
    backend.assert_same_place(out, dtype)
    ref = g / np.linalg.norm(g, ord=ord, axis=2, keepdims=True)
    np.testing.assert_allclose(backend.to_numpy(out), ref, **tol(backend.dtype_name(dtype)))


def test_zero_gradient_float16_is_not_nan(backend):
    """Fix: the documented library gives 0/0 = NaN in float16 (TINY rounds to 0)."""
    if backend.name == "array_api_strict":
        pytest.skip("array_api_strict has no float16")
    g = backend.asarray(np.zeros((2, 3)), dtype="float16")
    for out in (normalize_gradient(g, 2), normalize_gradient(g, 1), l1q_gradient(g, 0.0)):
        backend.assert_same_place(out, g.dtype)
        np.testing.assert_array_equal(backend.to_numpy(out), np.zeros((2, 3)))


def test_sample_q_interval_and_dtype(backend):
    from backends import as_rng

    g = backend.asarray([1.0, 2.0], dtype="float64")
    rng = as_rng(3, like=g)
    qs = np.array([sample_q(0.9, 0.3, rng, like=g) for _ in range(200)])
    assert qs.min() >= 0.6 and qs.max() < 1.0  # clipped interval [0.6, 1.0]
    assert np.all(qs == qs.astype(np.float32))  # drawn and combined in float32
    assert sample_q(0.4, 0.0, rng, like=g) == 0.4
    same = [sample_q(0.5, 0.2, as_rng(7, like=g), like=g) for _ in range(2)]
    assert same[0] == same[1]


def test_sample_q_reproduces_torch_rand(torch_device):
    import torch

    from backends import as_rng

    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    like = torch.ones(1, dtype=torch.float32, device=torch_device)
    ours = sample_q(0.3, 0.25, as_rng(g1, like=like), like=like)
    u = torch.rand(1, generator=g2)
    assert ours == float((0.55 - 0.05) * u + 0.05)
    assert torch.equal(g1.get_state(), g2.get_state())


def test_top_q_beyond_2_to_24_elements(backend):
    """Selection of the k largest, no sort- or quantile-size limit (numpy: partition)."""
    if backend.name != "numpy":
        pytest.skip("one large-size check is enough (numpy)")
    n = 2**24 + 5
    g = np.random.default_rng(0).standard_normal(n).astype(np.float32)
    out = top_q_gradient(backend.asarray(g), 0.999, param_ndim=None)
    assert int(np.count_nonzero(out)) == top_q_count(0.999, n)


@pytest.mark.parametrize(
    "call, exc, words",
    [
        (lambda g: top_q_gradient(g, 1.5), ValueError, "q"),
        (lambda g: top_q_gradient(g, -0.1), ValueError, "q"),
        (lambda g: top_q_gradient(g, float("nan")), ValueError, "q"),
        (lambda g: top_q_gradient(g, "0.5"), TypeError, "q"),
        (lambda g: top_q_gradient(g, 0.5, param_ndim=3), ValueError, "param_ndim"),
        (lambda g: normalize_gradient(g, 3), ValueError, "ord"),
        (lambda g: normalize_gradient(g, True), TypeError, "ord must be 1 or 2, got the bool"),
        (lambda g: sample_q(5, 0.0, None, like=g), ValueError, r"q must be .* in \[0, 1\]"),
        (lambda g: sample_q(0.5, -0.1, None, like=g), ValueError, r"dq must be .* in \[0, 1\]"),
        (lambda g: sample_q(0.5, 1.5, None, like=g), ValueError, "dq"),
        (lambda g: sample_q(0.5, 0.1, True, like=g), TypeError, "rng"),
        (lambda g: sample_q(0.5, 0.1, 0, like=[1.0]), TypeError, "like"),
        (lambda g: normalize_gradient(g, 2, div_by_zero_eps=-1.0), ValueError, "div_by_zero_eps"),
    ],
)
def test_bad_input(backend, call, exc, words):
    g = backend.asarray(np.ones((2, 3)), dtype="float64")
    with pytest.raises(exc, match=words):
        call(g)


@given(
    d=st.integers(0, 6),
    shape=st.sampled_from([(), (4,), (2, 3, 4)]),
    k=st.integers(-1, 7),
)
def test_top_q_drop_mask_takes_rows(backend, d, shape, k):
    """``top_q_drop_mask`` works on (N, D) rows: any other rank is refused naming the shape."""
    from refimpl.optim import top_q_drop_mask

    rows = backend.asarray(np.abs(np.arange(3.0 * d).reshape(3, d)), dtype="float64")
    drop = backend.to_numpy(top_q_drop_mask(rows, k))
    assert drop.shape == (3, d)
    assert np.all((~drop).sum(axis=1) == min(max(k, 0), d))
    for bad_shape in (shape, (d,)):  # 1-d rows (one row of length d) included
        bad = backend.asarray(np.ones(bad_shape), dtype="float64")
        with pytest.raises(ValueError, match=r"a must be an \(N, D\) array of rows .* got shape"):
            top_q_drop_mask(bad, k)


def test_sample_q_documented_rng_kinds(backend):
    """An int seed draws the same q at every call; an Rng or a generator advances; None
    draws fresh entropy; dq = 0 returns q itself, as a float, without drawing."""
    from backends import as_rng

    g = backend.asarray([1.0, 2.0], dtype="float32")
    seeded = {sample_q(0.5, 0.2, 7, like=g) for _ in range(3)}
    assert len(seeded) == 1
    rng = as_rng(7, like=g)
    advancing = [sample_q(0.5, 0.2, rng, like=g) for _ in range(3)]
    assert advancing[0] == seeded.pop() and len(set(advancing)) == 3
    fresh = {sample_q(0.5, 0.2, None, like=g) for _ in range(5)}
    assert len(fresh) > 1 and all(0.3 <= q <= 0.7 for q in fresh)
    for q in (0, 1, 0.25):
        out = sample_q(q, 0, None, like=g)
        assert type(out) is float and out == q


# -- the per-row divisor and the rule that settles it from two norms --------------------------
def _hard_rows(name: str, d: int = 6) -> np.ndarray:
    """One row per branch of the normalisation: ordinary, zero, squares that underflow, a sum
    that overflows, an infinite entry, a NaN entry, and entries around the dtype's tiny."""
    info = np.finfo(name)
    small = float(np.sqrt(info.smallest_normal)) / 64  # squares below the smallest normal
    big = float(info.max) / 8  # a sum of squares (and of magnitudes) beyond the largest value
    base = np.array([3.0, -4.0, 0.5, 0.0, 1.0, -2.0][:d])
    rows = [base, np.zeros(d), base * small, base * big, base.copy(), base.copy()]
    rows[4][1], rows[5][2] = np.inf, np.nan
    rows.append(base * float(info.smallest_normal) * 4)
    return np.stack(rows).astype(name)


@pytest.mark.parametrize("ord", [1, 2])
def test_normalize_divisor_is_normalize_gradient_on_every_row_it_does_not_flag(backend, dtype, ord):
    """``rows / divisor`` equals ``normalize_gradient`` bit for bit on every row left out of
    ``flag``; the flagged rows are those whose norm is inf (an infinite entry, an overflowing
    sum) or, for L2, may have lost squares to underflow (the zero row included)."""
    from refimpl.optim import normalize_divisor

    name = backend.dtype_name(dtype)
    host = _hard_rows(name)
    rows = backend.asarray(host, dtype=dtype)
    divisor, flag = normalize_divisor(rows, ord)
    backend.assert_same_place(divisor, dtype)
    assert tuple(divisor.shape) == (host.shape[0], 1) and flag is not None
    flagged = backend.to_numpy(flag)[:, 0]
    want = [False, ord == 2, ord == 2, True, True, False, ord == 2]
    np.testing.assert_array_equal(flagged, want)
    kept = ~flagged
    quotient = backend.to_numpy(rows / divisor)[kept]
    np.testing.assert_array_equal(quotient, backend.to_numpy(normalize_gradient(rows, ord))[kept])
    # the caller's own norms give the same answer
    from backends import ops

    norms = ops.vector_norm(rows, ord=ord, axis=1, keepdims=True)
    again, flag2 = normalize_divisor(rows, ord, norms=norms)
    np.testing.assert_array_equal(backend.to_numpy(again), backend.to_numpy(divisor))
    np.testing.assert_array_equal(backend.to_numpy(flag2), backend.to_numpy(flag))


@pytest.mark.parametrize("ord", [1, 2])
@given(
    exponents=st.lists(st.integers(-45, 38), min_size=1, max_size=5),
    d=st.integers(1, 7),
    eps_exp=st.integers(-40, 2),
    seed=st.integers(0, 2**16),
)
def test_normalization_rule_holds_exactly_when_norms_divide(
    backend, ord, exponents, d, eps_exp, seed
):
    """Rows of float32 entries of magnitudes 10^k (k from -45: subnormal, to 38): where the
    rule accepts the smallest and largest norm, dividing every row by its norm is
    ``normalize_gradient`` bit for bit, and ``normalize_divisor`` returns the norms themselves
    and no flag; where it refuses, some row is zero, beyond eps's reach, unreliable or NaN."""
    from backends import ops
    from refimpl.optim import normalization_rule, normalize_divisor

    eps = 10.0**eps_exp
    rng = np.random.default_rng(seed)
    host = np.stack([rng.standard_normal(d) * 10.0**k for k in exponents]).astype(np.float32)
    rows = backend.asarray(host, dtype="float32")
    norms = ops.vector_norm(rows, ord=ord, axis=1, keepdims=True)
    n = backend.to_numpy(norms).astype(np.float64)
    rule = normalization_rule(d, ord=ord, finfo=backend.xp.finfo(rows.dtype), div_by_zero_eps=eps)
    divisor, flag = normalize_divisor(rows, ord, div_by_zero_eps=eps, norms=norms)
    if rule(float(n.min()), float(n.max())):
        assert flag is None and divisor is norms
        want = backend.to_numpy(normalize_gradient(rows, ord, div_by_zero_eps=eps))
        np.testing.assert_array_equal(backend.to_numpy(rows / norms), want)
    else:
        top, floor = float(np.finfo(np.float32).max), 0.0
        if ord == 2:
            from refimpl.optim.robust import underflow_threshold

            floor = underflow_threshold(np.finfo(np.float32), d)
        assert n.min() <= 0 or n.min() < eps or n.min() < floor or n.max() > top


def test_clamp_bounds_are_clamps(backend, dtype):
    """``clip(x, *clamp_bounds(low, high, finfo))`` is ``clamp(x, low, high)``, with infinite
    bounds dropped and bounds beyond the dtype capped to its largest value."""
    import math

    from refimpl.optim import clamp, clamp_bounds

    xp = backend.xp
    x = backend.asarray([[-3e30, -1.0, 0.0, 0.5, 2.0, 3e30]], dtype=dtype)
    top = float(xp.finfo(dtype).max)
    for low, high in ((-0.5, 2.0), (None, 1.0), (-math.inf, 1.0), (-1e300, math.inf), (0.0, None)):
        lo, hi = clamp_bounds(low, high, finfo=xp.finfo(dtype))
        assert lo is None or -top <= lo <= top
        assert hi is None or -top <= hi <= top
        if lo is None and hi is None:
            continue
        np.testing.assert_array_equal(
            backend.to_numpy(xp.clip(x, min=lo, max=hi)), backend.to_numpy(clamp(x, low, high))
        )
    assert clamp_bounds(-math.inf, math.inf, finfo=xp.finfo(dtype)) == (None, None)
