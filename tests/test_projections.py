"""refimpl.optim projections: KKT conditions, idempotence, non-expansiveness, both L1 methods."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import refimpl.optim as ro
from refimpl.optim import project_l1_ball, project_l2_ball, project_linf_ball
from tests.conftest import arr, as64, tol

vec = st.lists(st.floats(-100, 100, allow_nan=False, width=32), min_size=1, max_size=12)
radius = st.floats(0.01, 50)


def _ref_l1(x: np.ndarray, eps: float) -> np.ndarray:
    """float64 Duchi et al. (2008), one row."""
    a = np.abs(x)
    if a.sum() <= eps:
        return x.copy()
    u = np.sort(a)[::-1]
    css = np.cumsum(u)
    rho = np.nonzero(u - (css - eps) / np.arange(1, x.size + 1) > 0)[0][-1]
    theta = (css[rho] - eps) / (rho + 1)
    return np.sign(x) * np.maximum(a - theta, 0)


@pytest.mark.parametrize("method", ["sort", "michelot"])
@given(x=vec, eps=radius)
def test_l1_projection_kkt_and_reference(backend, dtype, method, x, eps):
    x = np.asarray(x)
    xa = backend.asarray(x, dtype=dtype)
    y = project_l1_ball(xa, eps, method=method)
    backend.assert_same_place(y, dtype)
    y = backend.to_numpy(y).astype(np.float64)
    xr = backend.to_numpy(xa).astype(np.float64)
    rtol = 1e-4 if backend.dtype_name(dtype) == "float32" else 1e-10
    scale = max(1.0, np.abs(xr).sum())
    np.testing.assert_allclose(y, _ref_l1(xr, eps), rtol=rtol, atol=rtol * scale)
    if np.abs(xr).sum() <= eps:
        np.testing.assert_array_equal(y, xr)
        return
    # KKT: on the sphere; y = sign(x) (|x| - theta)_+ with theta > 0 on the support, |x| <= theta off it
    np.testing.assert_allclose(np.abs(y).sum(), eps, rtol=rtol * 10, atol=rtol * scale)
    on = y != 0
    theta = np.abs(xr - y)[on]
    assert np.all(np.sign(y[on]) == np.sign(xr[on]))
    np.testing.assert_allclose(theta, theta.mean(), rtol=rtol * 10, atol=rtol * scale)
    assert np.all(np.abs(xr[~on]) <= theta.mean() + rtol * scale)


def _exact_l1(x: list[Fraction], eps: Fraction) -> list[Fraction]:
    """The exact projection onto the L1 ball, in rational arithmetic (sort-based)."""
    a = [abs(v) for v in x]
    if sum(a) <= eps:
        return list(x)
    u = sorted(a, reverse=True)
    css, theta = Fraction(0), Fraction(0)
    for j, uj in enumerate(u, start=1):
        css += uj
        if uj * j >= css - eps:  # u_j >= (c_j - eps) / j: j is in the support (or tied)
            theta = (css - eps) / j
    return [(1 if v > 0 else -1) * max(abs(v) - theta, Fraction(0)) for v in x]


#: a coarse decimal grid: ties between |x_i| and theta are frequent, and 0.02 is not a binary
#: fraction, so tied quantities differ by rounding (what made the fixed point oscillate)
GRID = st.integers(-30, 30)
FLOATS = ["float16", "float32", "float64", "bfloat16"]


@st.composite
def tied_rows(draw):
    """Grid values and a radius (both in units of 0.02); half of the draws put the threshold
    theta exactly on one |x_t| (in exact arithmetic): radius = sum_{|x_i| > |x_t|} (|x_i| - |x_t|).
    """
    ks = draw(st.lists(GRID, min_size=1, max_size=9))
    if draw(st.booleans()):
        t = abs(ks[draw(st.integers(0, len(ks) - 1))])
        m = sum(abs(k) - t for k in ks if abs(k) > t)
    else:
        m = draw(st.integers(0, 60))
    return ks, m


@pytest.mark.parametrize("method", ["sort", "michelot"])
@pytest.mark.parametrize("dtype_name", FLOATS)
@example(km=([18, -5, -35], 17), rows=2)  # the example: 0.36 ties with 0.7 - 0.34
@given(km=tied_rows(), rows=st.integers(1, 3))
def test_l1_projection_exact_on_tied_grid_inputs(backend, dtype_name, method, km, rows):
    """Exact (against rational arithmetic), feasible and finite-time on tied inputs, on every
    backend and floating dtype (16-bit floats are computed in float32, then rounded toward 0).
    """
    ks, m = km
    if getattr(backend.xp, dtype_name, None) is None:
        pytest.skip(f"{backend.name} has no {dtype_name}")
    base = np.asarray(ks, dtype=np.float64) * 0.02
    x = np.stack([np.roll(base, r) for r in range(rows)])  # rows that differ, same ties
    xa = backend.xp.astype(backend.asarray(x, dtype="float64"), getattr(backend.xp, dtype_name))
    eps = m * 0.02
    y = project_l1_ball(xa, eps, param_ndim=-1, method=method)
    backend.assert_same_place(y, xa.dtype)
    to64 = lambda a: backend.to_numpy(  # noqa: E731
        a if dtype_name != "bfloat16" else backend.xp.astype(a, backend.xp.float32)
    ).astype(np.float64)
    y, xr = to64(y), to64(xa)
    ulp = {"float16": 2**-10, "bfloat16": 2**-7, "float32": 2**-23, "float64": 2**-52}
    eps_d = float(np.asarray(eps, dtype=np.float64))
    for row, out in zip(xr, y):
        exact = _exact_l1([Fraction(v) for v in row], Fraction(eps_d))
        scale = max(1.0, float(np.abs(row).sum()))
        atol = 4 * ulp[dtype_name] * scale + (
            len(row) * 2**-23 * scale if "16" in dtype_name else 0
        )
        np.testing.assert_allclose(out, [float(v) for v in exact], rtol=0, atol=atol)
        assert np.abs(out).sum() <= eps_d + len(row) * 4 * 2**-52 * scale + (
            2**-22 * scale if dtype_name != "float64" else 0
        ), "outside the ball"
        assert np.all(np.sign(out) * np.sign(row) >= 0)  # no sign flips


# -- L1 projection: a tie at the threshold, 16-bit input ---------------------------------------
@pytest.mark.parametrize("method", ["sort", "michelot"])
def test_l1_projection_with_a_tie_at_the_threshold(backend, dtype, method):
    """|x_0| = 0.36 equals theta = 0.7 - 0.34: the fixed point used to oscillate."""
    x = backend.asarray([0.36, -0.1, -0.7], dtype=dtype)
    y = ro.project_l1_ball(x, 0.34, method=method)
    backend.assert_same_place(y, dtype)
    np.testing.assert_allclose(as64(backend, y), [0.0, 0.0, -0.34], atol=1e-6)
    # many tied rows at once (vectorised): each row finishes in finite time
    rows = backend.xp.reshape(
        backend.asarray(np.tile([0.36, -0.1, -0.7], 2000), dtype=dtype), (2000, 3)
    )
    out = as64(backend, ro.project_l1_ball(rows, 0.34, param_ndim=-1, method=method))
    np.testing.assert_allclose(out, np.tile([0.0, 0.0, -0.34], (2000, 1)), atol=1e-6)


@pytest.mark.parametrize("method", ["sort", "michelot"])
def test_float16_l1_projection_stays_in_the_ball(backend, method):
    """Accumulated in float16, the sums drift by percents; in float32 and rounded toward 0,
    the projection never leaves the ball."""
    x = arr(backend, np.random.default_rng(0).standard_normal((300, 50)) * 30, "float16")
    y = as64(backend, ro.project_l1_ball(x, 3.0, param_ndim=-1, method=method))
    assert np.abs(y).sum(axis=1).max() <= 3.0
    np.testing.assert_allclose(np.abs(y).sum(axis=1), 3.0, rtol=2e-3)


# -- L1 projection: rows whose L1 norm overflows the dtype ---------------------------------------
@pytest.mark.parametrize("method", ["sort", "michelot"])
@example(fracs=[0.88, 0.88, -0.88], eps_frac=1.2)  # [3e38] * 3, radius 4e38, in float32
@example(fracs=[1.0, 1.0], eps_frac=1.0)
@example(fracs=[0.9, -0.5, 0.1], eps_frac=1e-3)
@given(
    fracs=st.lists(st.floats(-1, 1, allow_nan=False), min_size=2, max_size=9).filter(
        lambda f: sum(abs(v) for v in f) > 1.01
    ),
    eps_frac=st.floats(1e-3, 4.0),
)
def test_l1_projection_of_rows_whose_norm_overflows(backend, dtype, method, fracs, eps_frac):
    """Entries near the dtype's largest value (the L1 norm overflows), radii up to 4 times
    that value (beyond float32's range, as a Python float): exact to a few ulps of ``||x||_1``
    against rational arithmetic, finite, and in the ball to that accuracy (as on ordinary
    rows: ``|x_i| - theta`` cancels when ``epsilon << ||x||_1``)."""
    name = backend.dtype_name(dtype)
    top = float(np.finfo(name).max)
    x = (np.asarray(fracs) * top).astype(name)
    eps = min(eps_frac * top, np.finfo(np.float64).max)
    xa = backend.asarray(x, dtype=dtype)
    y = project_l1_ball(xa, eps, method=method)
    backend.assert_same_place(y, dtype)
    y = as64(backend, y) / top  # in units of top: the rationals below stay in float range
    exact = _exact_l1([Fraction(float(v)) for v in x], Fraction(eps))
    norm = float(sum(Fraction(abs(float(v))) for v in x) / Fraction(top))
    ulp = float(np.finfo(name).eps)
    assert np.all(np.isfinite(y))
    np.testing.assert_allclose(
        y, [float(v / Fraction(top)) for v in exact], rtol=0, atol=8 * ulp * norm
    )
    assert np.abs(y).sum() <= eps / top + 8 * ulp * norm, "outside the ball"


@given(x=vec, z=vec, eps=radius)
def test_projections_idempotent_and_non_expansive(backend, x, z, eps):
    n = min(len(x), len(z))
    x, z = np.asarray(x[:n]), np.asarray(z[:n])
    xa, za = backend.asarray(x, dtype="float64"), backend.asarray(z, dtype="float64")
    for proj in (
        lambda v: project_l1_ball(v, eps),
        lambda v: project_l1_ball(v, eps, method="michelot"),
        lambda v: project_l2_ball(v, eps),
        lambda v: project_linf_ball(v, eps),
    ):
        px, pz = proj(xa), proj(za)
        np.testing.assert_allclose(
            backend.to_numpy(proj(px)), backend.to_numpy(px), rtol=1e-9, atol=1e-9 * (1 + eps)
        )
        d_out = np.linalg.norm(backend.to_numpy(px) - backend.to_numpy(pz))
        assert d_out <= np.linalg.norm(x - z) * (1 + 1e-9) + 1e-9


def test_sort_and_michelot_identical_per_row(backend, dtype):
    x = np.random.default_rng(0).standard_normal((6, 5000)) * np.arange(1, 7)[:, None]
    xa = backend.asarray(x, dtype=dtype)
    for eps in (0.5, 50.0, 1e4):
        a = project_l1_ball(xa, eps, param_ndim=-1, method="sort")
        b = project_l1_ball(xa, eps, param_ndim=-1, method="michelot")
        np.testing.assert_array_equal(backend.to_numpy(a), backend.to_numpy(b))
        ref = np.stack([_ref_l1(r, eps) for r in backend.to_numpy(xa).astype(np.float64)])
        np.testing.assert_allclose(backend.to_numpy(a), ref, rtol=1e-4, atol=1e-5)


def test_l2_and_linf_values(backend, dtype):
    x = np.array([[3.0, 4.0], [0.3, 0.4]])
    xa = backend.asarray(x, dtype=dtype)
    t = tol(backend.dtype_name(dtype))
    y = project_l2_ball(xa, 1.0, param_ndim=-1)
    backend.assert_same_place(y, dtype)
    np.testing.assert_allclose(backend.to_numpy(y), [[0.6, 0.8], [0.3, 0.4]], **t)
    y = project_l2_ball(xa, 1.0, param_ndim=-1, margin=1e-7)  # torch.renorm's margin
    n0 = np.linalg.norm(backend.to_numpy(y)[0].astype(np.float64))
    assert n0 < 1.0 if backend.dtype_name(dtype) == "float64" else n0 <= 1.0 + 1e-6
    y = project_linf_ball(xa, 0.35)
    np.testing.assert_allclose(backend.to_numpy(y), [[0.35, 0.35], [0.3, 0.35]], **t)
    y = project_l2_ball(xa, 1.0)  # whole array is one row
    np.testing.assert_allclose(backend.to_numpy(y), x / np.linalg.norm(x), **t)


def test_l2_projection_matches_torch_renorm(torch_device, torch_dtype):
    import torch

    x = torch.randn(5, 7, generator=torch.Generator().manual_seed(0), dtype=torch_dtype) * 3
    x = x.to(torch_device)
    ours = project_l2_ball(x, 2.0, param_ndim=-1, margin=1e-7)
    assert torch.equal(ours, x.renorm(p=2, dim=0, maxnorm=2.0))


@pytest.mark.parametrize(
    "call, exc, words",
    [
        (lambda x: project_l1_ball(x, -1.0), ValueError, "epsilon"),
        (lambda x: project_l1_ball(x, float("inf")), ValueError, "epsilon"),
        (lambda x: project_l1_ball(x, 1.0, method="condat2"), ValueError, "method"),
        (lambda x: project_l2_ball(x, float("nan")), ValueError, "epsilon"),
        (lambda x: project_linf_ball(x, -0.5), ValueError, "epsilon"),
        (lambda x: project_l1_ball(x, 1.0, param_ndim=4), ValueError, "param_ndim"),
        (lambda x: project_l2_ball(x, "1"), TypeError, "epsilon"),
    ],
)
def test_bad_input(backend, call, exc, words):
    with pytest.raises(exc, match=words):
        call(backend.asarray(np.ones((2, 3)), dtype="float64"))


def test_integer_input_rejected(backend):
    with pytest.raises(TypeError, match="floating"):
        project_l1_ball(backend.asarray([1, 2], dtype="int64"), 1.0)


# -- the per-row factor of the L2 projection and the rule that settles it from two norms -------
def _hard_rows(name: str) -> np.ndarray:
    """Rows inside and outside the unit ball, zero, with squares that underflow, a sum that
    overflows, an infinite entry and a NaN entry."""
    info = np.finfo(name)
    small = float(np.sqrt(info.smallest_normal)) / 64
    base = np.array([3.0, -4.0, 0.5, 0.0])
    rows = [base, base / 10, np.zeros(4), base * small, base * (float(info.max) / 8), base.copy()]
    rows.append(base.copy())
    rows[5][1], rows[6][0] = np.inf, np.nan
    return np.stack(rows).astype(name)


@pytest.mark.parametrize("margin", [0.0, 1e-7])
@pytest.mark.parametrize("epsilon", [1.0, 1e-40, 0.0])
def test_l2_ball_factor_is_the_projection_on_every_row_it_does_not_flag(
    backend, dtype, margin, epsilon
):
    """``rows * f`` equals ``project_l2_ball`` bit for bit on every row left out of ``flag``;
    flagged: the rows whose norm is inf, and with a radius below the underflow threshold the
    rows whose norm may have underflowed (zero included)."""
    from refimpl.optim import l2_ball_factor

    name = backend.dtype_name(dtype)
    host = _hard_rows(name)
    rows = backend.asarray(host, dtype=dtype)
    f, flag = l2_ball_factor(rows, epsilon, margin=margin)
    assert f is not None and flag is not None
    backend.assert_same_place(f, dtype)
    flagged = backend.to_numpy(flag)[:, 0]
    from refimpl.optim.robust import underflow_threshold

    tiny_radius = epsilon < underflow_threshold(
        np.finfo(name), 4
    )  # an underflowed norm may exceed it
    want = [False, False, tiny_radius, tiny_radius, True, True, False]
    np.testing.assert_array_equal(flagged, want)
    exact = backend.to_numpy(project_l2_ball(rows, epsilon, -1, margin=margin))
    np.testing.assert_array_equal(backend.to_numpy(rows * f)[~flagged], exact[~flagged])


@given(
    exponents=st.lists(st.integers(-45, 38), min_size=1, max_size=5),
    eps_exp=st.integers(-44, 39),
    margin=st.sampled_from([0.0, 1e-7]),
    seed=st.integers(0, 2**16),
)
def test_l2_ball_rule_settles_every_row(backend, exponents, eps_exp, margin, seed):
    """float32 rows of magnitudes 10^k and radii 10^j (both beyond the dtype's range at the
    ends): "inside" leaves every row as it is, "scale" is ``rows * where(n > e, e / (n +
    margin), 1)``, and ``l2_ball_factor`` agrees (no factor, or that factor and no flag)."""
    from backends import ops
    from refimpl.optim import l2_ball_factor, l2_ball_rule

    eps = 10.0**eps_exp
    rng = np.random.default_rng(seed)
    host = np.stack([rng.standard_normal(4) * 10.0**k for k in exponents]).astype(np.float32)
    rows = backend.asarray(host, dtype="float32")
    xp = backend.xp
    norms = ops.vector_norm(rows, axis=1, keepdims=True)
    n = backend.to_numpy(norms)
    case = l2_ball_rule(4, epsilon=eps, finfo=xp.finfo(rows.dtype))(float(n.min()), float(n.max()))
    exact = backend.to_numpy(project_l2_ball(rows, eps, -1, margin=margin))
    f, flag = l2_ball_factor(rows, eps, margin=margin, norms=norms)
    if case == "inside":
        assert f is None and flag is None
        np.testing.assert_array_equal(exact, host)
    elif case == "scale":
        assert flag is None
        cap = min(eps, float(xp.finfo(rows.dtype).max))
        e = xp.full((), cap, dtype=rows.dtype, device=backend.device)
        out = norms > e
        scale = xp.where(out, e / xp.where(out, norms + margin, 1.0), 1.0)
        np.testing.assert_array_equal(backend.to_numpy(rows * scale), exact)
        np.testing.assert_array_equal(backend.to_numpy(rows * f), exact)
    else:
        assert case == "rows"
