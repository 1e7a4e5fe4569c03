"""refimpl.eigendistortion on every backend and dtype.

Ground truth: a linear model y = W x with W = U diag(s) V^T chosen (F = W^T W eigendecomposed
by numpy: eigenvalues s^2 and a null space of dimension n - m), and small nonlinear models
against ``method="exact"``. Bottom pairs are judged by the Rayleigh quotient and the residual
||F v - lambda v|| (the bottom is degenerate), top pairs also by the eigenvector.
"""

from __future__ import annotations

import os
import warnings
import zipfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refimpl import models as rm
from refimpl.eigendistortion import Eigendistortion, solvers
from refimpl.eigendistortion import io as eio
from tests.test_models import arr

M = 48  # outputs of the linear model: rank 48, null space n - 48
SINGULAR = np.concatenate([[1.0, 0.7, 0.5, 0.35], np.linspace(0.3, 0.2, M - 4)])


def is32(backend, dtype) -> bool:
    return backend.dtype_name(dtype) == "float32"


def rtol_of(backend, dtype) -> float:
    """Relative accuracy of converged pairs: the solvers' tolerance floor (100 eps) in float32,
    a little above the default stop_criterion (1e-7) in float64."""
    return 2e-5 if is32(backend, dtype) else 2e-7  # 100 eps(float32) = 1.2e-5


class LinearCase:
    """y = W x on an (1, 1, N, N) image; F = W^T W = V diag(s^2) V^T, null space I - V V^T."""

    def __init__(self, backend, dtype, N: int, seed: int = 0) -> None:
        r = np.random.default_rng(seed)
        n = N * N
        U, _ = np.linalg.qr(r.standard_normal((M, M)))
        V, _ = np.linalg.qr(r.standard_normal((n, M)))
        self.W = (U * SINGULAR) @ V.T
        self.V, self.n = V, n
        self.lam = SINGULAR**2
        self.model = rm.Sequential(rm.Flatten(3), rm.Linear(arr(backend, self.W, dtype)))
        self.image_np = r.uniform(0.1, 0.9, (1, 1, N, N))
        self.image = arr(backend, self.image_np, dtype)

    def null_energy(self, v: np.ndarray) -> float:
        v = v.reshape(-1).astype(np.float64)
        return float(1 - np.sum((self.V.T @ v) ** 2) / np.sum(v**2))

    def residual(self, v: np.ndarray, lam: float) -> float:
        v = v.reshape(-1).astype(np.float64)
        return float(np.linalg.norm(self.W.T @ (self.W @ v) - lam * v))


def results(backend, eig):
    vals = backend.to_numpy(eig.eigenvalues).astype(np.float64)
    vecs = backend.to_numpy(eig.eigendistortions).astype(np.float64)
    index = backend.to_numpy(eig.eigenindex)
    return vals, vecs.reshape(vecs.shape[0], -1), index


def run(eig, method, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # large-Jacobian and randomized-SVD notes
        eig.synthesize(method, rng=kw.pop("rng", 0), progress=False, **kw)
    return eig


# -- ground truth: the linear model ------------------------------------------------------------
@pytest.mark.parametrize("N", [16, 32])
def test_exact_equals_numpy_eigh_of_wtw(backend, dtype, N):
    case = LinearCase(backend, dtype, N)
    eig = run(Eigendistortion(case.image, case.model), "exact")
    vals, vecs, index = results(backend, eig)
    backend.assert_same_place(eig.eigenvalues, dtype)
    backend.assert_same_place(eig.eigendistortions, dtype)
    assert eig.eigendistortions.shape == (case.n, 1, N, N)
    assert np.array_equal(index, np.arange(case.n))
    expected = np.concatenate([case.lam, np.zeros(case.n - M)])
    np.testing.assert_allclose(vals, expected, rtol=0, atol=30 * rtol_of(backend, dtype))
    assert np.all(np.diff(vals) <= 0) and np.all(vals >= 0)  # sorted: clip, not abs
    # top eigenvectors (distinct eigenvalues): parallel to numpy's
    for i in range(4):
        assert abs(vecs[i] @ case.V[:, i]) > 1 - 1e-3
    # the n - M trailing vectors span the null space
    assert case.null_energy(vecs[M:].sum(axis=0)) > 1 - 1e-3
    assert backend.to_numpy(eig.jacobian).shape == (M, case.n)


@pytest.mark.parametrize("method", ["power", "eigsh"])
@pytest.mark.parametrize("N", [16, 32])
def test_power_and_eigsh_against_ground_truth(backend, dtype, N, method):
    case = LinearCase(backend, dtype, N)
    k = 2
    eig = run(Eigendistortion(case.image, case.model), method, k=k)
    vals, vecs, index = results(backend, eig)
    backend.assert_same_place(eig.eigendistortions, dtype)
    assert eig.eigendistortions.shape == (2 * k, 1, N, N)
    assert np.array_equal(index, [0, 1, case.n - 2, case.n - 1])
    tol = rtol_of(backend, dtype)
    # top: eigenvalues and eigenvectors of numpy's decomposition
    np.testing.assert_allclose(vals[:k], case.lam[:k], rtol=10 * tol)
    for i in range(k):
        assert abs(vecs[i] @ case.V[:, i]) > 1 - 100 * tol
    # bottom (null space of dimension n - 48): Rayleigh quotient 0, small residual, and the
    # vector lies in the null space
    for i in (2, 3):
        assert vals[i] <= 10 * tol
        assert case.residual(vecs[i], vals[i]) <= 10 * tol
        assert case.null_energy(vecs[i]) > 1 - 100 * tol
    assert np.all(np.diff(vals) <= 0)
    # orthonormal blocks
    for block in (vecs[:k], vecs[k:]):
        np.testing.assert_allclose(block @ block.T, np.eye(k), atol=50 * tol)
    for name in ("top", "bottom"):
        info = eig.convergence[name]
        assert info["converged"] and info["max_residual"] <= max(1e-7, 100 * _eps(backend, dtype))
        assert info["n_products"] > 0


def test_eigsh_bottom_needs_far_fewer_products_than_power(backend):
    """Same problem, float64: shifted power iteration damps the smallest non-zero eigenvalue
    (0.04) by 0.96 per product; Lanczos builds the polynomial that removes it."""
    dtype = backend.dtype("float64")
    case = LinearCase(backend, dtype, 16)
    a = run(Eigendistortion(case.image, case.model), "power").convergence["bottom"]
    b = run(Eigendistortion(case.image, case.model), "eigsh").convergence["bottom"]
    assert a["converged"] and b["converged"]
    assert b["n_products"] * 5 < a["n_products"], (a, b)


@pytest.mark.parametrize("N", [16, 32])
def test_randomized_svd_with_a_sketch_of_the_whole_range_is_exact(backend, dtype, N):
    """rank(F) = 48 <= k + p: the sketch spans the range, the top-k pairs are exact."""
    case = LinearCase(backend, dtype, N)
    eig = run(Eigendistortion(case.image, case.model), "randomized_svd", k=3, p=M, q=1)
    vals, vecs, index = results(backend, eig)
    assert vals.shape == (3,) and np.array_equal(index, [0, 1, 2])
    np.testing.assert_allclose(vals, case.lam[:3], rtol=10 * rtol_of(backend, dtype))
    info = eig.convergence["top"]
    assert info["error_estimate"] < 1e3 * rtol_of(backend, dtype)
    # (k + p)(q + 2) + probes, the sketch in whole blocks of SKETCH_BLOCK columns
    assert info["n_products"] == solvers.padded(3 + M) * (1 + 2) + 10


def test_randomized_svd_k1_gives_a_1d_result_and_warns_when_inaccurate(backend):
    """plenoptic returns a 0-d eigenvalue tensor for k=1; here it is shaped (1,). The default
    sketch (p=5, q=2) cannot resolve this flat spectrum: it warns with its residual."""
    dtype = backend.dtype("float64")
    case = LinearCase(backend, dtype, 16)
    eig = Eigendistortion(case.image, case.model)
    with pytest.warns(UserWarning, match=r"randomized_svd: .* residual .* estimated"):
        eig.synthesize("randomized_svd", rng=0, progress=False)
    assert tuple(eig.eigenvalues.shape) == (1,) and tuple(eig.eigenindex.shape) == (1,)
    assert tuple(eig.eigendistortions.shape) == (1, 1, 16, 16)


def test_power_bottom_keeps_the_null_space(backend):
    """Verified plenoptic bug: its bottom run starts with v = F v / ||F v||, which removes the
    null-space part of the start (energy 4e-15 left). Every step here is on the shifted
    operator (c lambda_max I - F), which never shrinks the null-space share of the start: a
    random start has share (n - M) / n = 0.81 +- 0.035, so a share above 0.5 fails a
    conforming run with probability below 1e-15 and catches the bug (share ~ 0)."""
    dtype = backend.dtype("float64")
    case = LinearCase(backend, dtype, 16)
    eig = Eigendistortion(case.image, case.model)
    with pytest.warns(UserWarning, match="eigenpairs did not converge") as rec:
        eig.synthesize("power", max_iter=3, rng=1, progress=False)
    assert any("the bottom eigenpairs" in str(w.message) for w in rec)
    _, vecs, _ = results(backend, eig)
    assert case.null_energy(vecs[1]) > 0.5


def test_diagonal_model_orders_the_bottom_block_decreasing(backend, dtype):
    """plenoptic's bottom block is ascending while eigenindex labels it n-k..n-1 (F =
    diag(linspace(1, .05, 20)), k=3 gives [1, .95, .9, .05, .10, .15]); here eigenvalues
    decrease and eigenindex -1 is the smallest."""
    d = np.linspace(1.0, 0.05, 20)
    model = rm.Linear(arr(backend, np.diag(np.sqrt(d)), dtype))
    x = arr(backend, np.full(20, 0.5), dtype)
    for method in ("power", "eigsh"):
        eig = run(Eigendistortion(x, model), method, k=3)
        vals, vecs, index = results(backend, eig)
        np.testing.assert_allclose(vals, [1, 0.95, 0.9, 0.15, 0.10, 0.05], rtol=1e-4)
        assert np.array_equal(index, [0, 1, 2, 17, 18, 19])
        assert eig.indexer(-1) == 5 and eig.indexer(0) == 0 and eig.indexer(18) == 4
        assert abs(vecs[5, 19]) > 1 - 1e-4  # the smallest eigenvalue's unit vector
        with pytest.raises(ValueError, match="eigenindex must be the index"):
            eig.indexer(5)


# -- nonlinear models against exact ---------------------------------------------------------
def _nonlinear(backend, dtype, name: str, N: int):
    r = np.random.default_rng(3)
    w = lambda a: arr(backend, a, dtype)  # noqa: E731
    if name == "conv-stride2-softplus":  # m = n / 2: a null space of dimension n / 2
        conv = rm.Conv2d(w(r.standard_normal((2, 1, 3, 3))), w(r.standard_normal(2)), stride=2)
        model = rm.Sequential(conv, rm.Pointwise("softplus"))
    else:
        f32 = lambda v: float(np.float32(v))  # noqa: E731
        model = rm.LuminanceGainControl(
            9, center_std=f32(1.0), surround_std=f32(2.5), pad_mode="circular",
            backend=backend.name, device=backend.device,
        )  # fmt: skip
    return model, w(r.uniform(0.1, 0.9, (1, 1, N, N)))


@pytest.mark.parametrize("name, N", [("lgc", 16), ("conv-stride2-softplus", 32)])
def test_nonlinear_models_agree_with_exact(backend, dtype, name, N):
    """Lanczos (converged) equals exact at both ends. Any method, converged or not: each
    Rayleigh quotient has an eigenvalue within its residual (symmetric Bauer-Fike), the i-th
    top Ritz value is at most lambda_i and the bottom one at least lambda_n (Cauchy
    interlacing)."""
    model, x = _nonlinear(backend, dtype, name, N)
    exact, _, _ = results(backend, run(Eigendistortion(x, model), "exact"))
    lam_max = exact[0]
    tol = rtol_of(backend, dtype)
    slack = 10 * tol * lam_max  # rounding of exact's eigh and of the products
    for method, max_iter in (("eigsh", 1000), ("power", 25)):
        eig = run(Eigendistortion(x, model), method, k=2, max_iter=max_iter)
        vals, _, _ = results(backend, eig)
        c = eig.convergence
        res = [r * c[b]["scale"] for b in ("top", "bottom") for r in c[b]["residuals"]]
        for lam, r in zip(vals, res):
            assert np.min(np.abs(exact - lam)) <= r * (1 + 1e-6) + slack
        assert np.all(vals[:2] <= exact[:2] + slack) and vals[-1] >= exact[-1] - slack
        if method == "eigsh":
            assert c["top"]["converged"] and c["bottom"]["converged"], c
            np.testing.assert_allclose(vals[:2], exact[:2], rtol=100 * tol)
            assert vals[-1] <= exact[-1] + slack


def test_bottom_goes_on_when_the_true_residual_misses_the_estimate(backend, monkeypatch):
    """The bottom solve stops on its residual estimate and checks with a true product; where
    the product misses the tolerance (rounding near float32's floor), it goes on from those
    vectors with a narrower margin. Simulated: the first solve stops at 30x the tolerance;
    the second one starts from the first one's vectors and the pair converges."""
    from refimpl.eigendistortion import eigendistortion as ed

    calls = []
    real = solvers.krylov_schur

    def first_stops_early(A, X0, k, *, tol, **kw):
        calls.append((backend.to_numpy(X0).copy(), tol))
        return real(A, X0, k, tol=tol * (30 if len(calls) == 1 else 1), **kw)

    monkeypatch.setattr(solvers, "krylov_schur", first_stops_early)
    model, x = _nonlinear(backend, backend.dtype("float64"), "lgc", 16)
    eig = run(Eigendistortion(x, model), "eigsh", k=1, max_iter=1000)
    bottom = eig.convergence["bottom"]
    # the top solve may use Krylov-Schur too: the bottom's calls are the last two
    (x1, tol1), (x2, tol2) = calls[-2:]
    assert bottom["converged"] and bottom["max_residual"] <= bottom["tolerance"]
    assert tol2 < tol1 / ed.BOTTOM_MARGIN  # the margin narrowed by the gap
    assert not np.array_equal(x1, x2) and x2.shape == x1.shape == (256, 1)


@settings(max_examples=12)
@given(
    side=st.integers(2, 7),
    m=st.integers(1, 40),
    k=st.integers(1, 3),
    method=st.sampled_from(["exact", "power", "eigsh", "randomized_svd"]),
    seed=st.integers(0, 2**16),
)
def test_invariants_on_random_linear_models(backend, side, m, k, method, seed):
    """Any W (m x side^2) and k <= n: the documented shapes and eigenindex, eigenvalues
    decreasing and >= 0, and every reported pair within its residual of a true eigenvalue of
    W^T W (symmetric Bauer-Fike), converged or not."""
    n = side * side
    k = min(k, n)
    dtype = backend.dtype("float64")
    W = np.random.default_rng(seed).standard_normal((m, n))
    true = np.linalg.eigvalsh(W.T @ W)
    model = rm.Sequential(rm.Flatten(3), rm.Linear(arr(backend, W, dtype)))
    x = arr(backend, np.full((1, 1, side, side), 0.5), dtype)
    eig = run(Eigendistortion(x, model), method, k=k, max_iter=30)
    vals, vecs, index = results(backend, eig)
    want = {
        "exact": list(range(n)),
        "randomized_svd": list(range(k)),
    }.get(method, list(range(k)) + list(range(n - k, n)))
    assert index.tolist() == want and vecs.shape == (len(want), n)
    assert tuple(eig.eigendistortions.shape) == (len(want), 1, side, side)
    assert np.all(vals >= 0) and np.all(np.diff(vals) <= 0)
    slack = 1e-10 * max(true[-1], 1.0)
    if method == "exact":
        np.testing.assert_allclose(vals, np.clip(true[::-1], 0, None), atol=1e3 * slack)
        return
    blocks = [b for b in ("top", "bottom") if b in eig.convergence]
    res = [r * eig.convergence[b]["scale"] for b in blocks for r in eig.convergence[b]["residuals"]]
    for lam, r in zip(vals, res):
        assert np.min(np.abs(true - lam)) <= r * (1 + 1e-6) + slack


# -- the solvers on their own -------------------------------------------------------------
def _sym_operator(backend, dtype, n=300, seed=0):
    r = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(r.standard_normal((n, n)))
    lam = np.sort(np.concatenate([np.geomspace(1, 1e-3, n - 20), np.zeros(20)]))[::-1]
    A = (Q * lam) @ Q.T
    Ax = arr(backend, A, dtype)
    F = solvers.CountedOperator(lambda V: Ax @ V, n, arr(backend, np.zeros(n), dtype))
    return F, lam, A


@pytest.mark.parametrize("which", ["LA", "SA"])
def test_krylov_schur_finds_both_ends_with_restarts(backend, dtype, which):
    import backends as bk

    F, lam, A = _sym_operator(backend, dtype)
    rng = bk.as_rng(0, like=F.like)
    X0 = rng.normal((300, 3), dtype=dtype)
    tol = 100 * _eps(backend, dtype)
    ks = solvers.krylov_schur(
        F, X0, 3, which=which, tol=max(tol, 1e-10), max_steps=2000, basis_size=30, rng=rng
    )
    assert ks.converged and ks.restarts > 0  # a 30-vector basis had to restart
    lam_hat, V, res, _ = solvers.verify(F, ks.X, scale=1.0)
    got = backend.to_numpy(lam_hat).astype(np.float64)
    want = lam[:3] if which == "LA" else lam[-3:]
    np.testing.assert_allclose(got, want, atol=1e3 * max(tol, 1e-12))
    assert max(res) <= 1e3 * max(tol, 1e-10)


def test_arpack_route_and_dense_route_agree_with_ground_truth():
    F, lam, A = _sym_operator(_np(), "float64")
    X = solvers.arpack(F, 3, which="LA", tol=1e-12, max_iter=500, seed=0)
    got, _, res, _ = solvers.verify(F, X)
    np.testing.assert_allclose(got, lam[:3], rtol=1e-10)
    top, bottom = solvers.dense_pairs(F, 3)
    np.testing.assert_allclose(top.eigenvalues, lam[:3], rtol=1e-10)
    np.testing.assert_allclose(bottom.eigenvalues, lam[-3:], atol=1e-12)


def test_lanczos_routes_agree(backend):
    """eigsh's top pairs by ARPACK (host) or cupyx, and by the array-API Krylov-Schur: the
    same eigenvalues; "arpack" without a route raises ValueError naming lanczos."""
    case = LinearCase(backend, backend.dtype("float64"), 16)
    ks = run(Eigendistortion(case.image, case.model), "eigsh", k=2, lanczos="krylov_schur")
    assert ks.convergence["top"]["solver"] == "krylov_schur"
    np.testing.assert_allclose(results(backend, ks)[0][:2], case.lam[:2], rtol=1e-9)
    eig = Eigendistortion(case.image, case.model)
    if backend.name in ("array_api_strict", "jax"):  # no Lanczos library for these arrays
        with pytest.raises(ValueError, match="lanczos='arpack' needs .*no Lanczos route"):
            eig.synthesize("eigsh", rng=0, progress=False, lanczos="arpack")
    else:
        run(eig, "eigsh", k=2, lanczos="arpack")
        assert eig.convergence["top"]["solver"] == "arpack"
        np.testing.assert_allclose(results(backend, eig)[0][:2], case.lam[:2], rtol=1e-9)
    with pytest.raises(ValueError, match="lanczos must be one of"):
        eig.synthesize("eigsh", lanczos="lobpcg")


# -- warnings, progress -----------------------------------------------------------------------
def test_power_at_max_iter_warns_with_the_residual(backend):
    case = LinearCase(backend, backend.dtype("float64"), 16)
    eig = Eigendistortion(case.image, case.model)
    with pytest.warns(
        UserWarning, match=r"power: the (top|bottom) .* residual .* lambda_max"
    ) as rec:
        eig.synthesize("power", max_iter=2, rng=0, progress=False)
    assert {str(w.message).split()[2] for w in rec} == {"top", "bottom"}
    info = eig.convergence["top"]
    assert not info["converged"] and info["max_residual"] > 1e-7 and info["iterations"] == 2


def test_large_jacobian_warning(backend):
    case = LinearCase(backend, backend.dtype("float64"), 16)
    eig = Eigendistortion(case.image, case.model)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 48 x 256 entries: no warning
        eig.synthesize("exact", progress=False)
    x = arr(backend, np.full((1, 1, 32, 32), 0.5), backend.dtype("float32"))
    blur = rm.Conv2d(rm.gaussian_kernel(3, 1.0, backend=backend.name, device=backend.device))
    with pytest.warns(UserWarning, match=r"Jacobian > 1e6 elements"):
        Eigendistortion(x, blur).synthesize("exact")


def test_progress_bars_off_and_on(capsys):
    case = LinearCase(_np(), "float64", 16)
    Eigendistortion(case.image, case.model).synthesize("eigsh", rng=0, progress=False)
    assert capsys.readouterr().err == ""
    with pytest.warns(UserWarning, match="did not converge"):  # 5 iterations: too few
        eig = Eigendistortion(case.image, case.model)
        eig.synthesize("power", rng=0, max_iter=5, progress=True)
    err = capsys.readouterr().err
    assert "Top k=1 eigendists" in err and "Bottom k=1 eigendists" in err


# -- save / load ----------------------------------------------------------------------------
def test_save_load_round_trip_and_refusals(backend, dtype, tmp_path):
    case = LinearCase(backend, dtype, 16)
    eig = run(Eigendistortion(case.image, case.model), "eigsh", k=2)
    eig.compute_jacobian()
    path = tmp_path / "eig.npz"
    eig.save(path)
    loaded = Eigendistortion(case.image, case.model)
    loaded.load(path)
    for name in ("eigenvalues", "eigendistortions", "eigenindex", "jacobian"):
        a, b = getattr(eig, name), getattr(loaded, name)
        backend.assert_same_place(b, a.dtype)
        assert np.array_equal(backend.to_numpy(a), backend.to_numpy(b)), name
    assert loaded.method == "eigsh" and loaded.convergence == eig.convergence
    # numpy reads the file without pickle
    with np.load(path, allow_pickle=False) as f:
        np.testing.assert_array_equal(f["eigenvalues"], backend.to_numpy(eig.eigenvalues))
    # refusals: loaded twice, another image, another model, another method
    with pytest.raises(ValueError, match="just-initialized"):
        loaded.load(path)
    other = arr(backend, case.image_np[..., ::-1, :].copy(), dtype)
    with pytest.raises(ValueError, match="attribute image have different values"):
        Eigendistortion(other, case.model).load(path)
    model2 = LinearCase(backend, dtype, 16, seed=1).model
    with pytest.raises(ValueError, match="model output have different values"):
        Eigendistortion(case.image, model2).load(path)
    with pytest.raises(ValueError, match="not 'power' ones"):
        Eigendistortion(case.image, case.model).load(path, method="power")
    with pytest.warns(UserWarning, match="model output have different values"):
        Eigendistortion(case.image, model2).load(path, raise_on_checks=False)


def test_load_refuses_other_files_and_dtypes(tmp_path):
    case = LinearCase(_np(), "float64", 16)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="junk.npz': not an .npz archive"):
        Eigendistortion(case.image, case.model).load(tmp_path / "junk.npz")
    np.savez(tmp_path / "plain.npz", a=np.zeros(3))
    with pytest.raises(ValueError, match="no metadata.json"):
        Eigendistortion(case.image, case.model).load(tmp_path / "plain.npz")
    run(Eigendistortion(case.image, case.model), "exact").save(tmp_path / "e.npz")
    img32 = case.image.astype(np.float32)
    with pytest.raises(ValueError, match="attribute image have different dtype"):
        Eigendistortion(img32, case.model).load(tmp_path / "e.npz", raise_on_checks=False)
    with pytest.raises(FileNotFoundError, match="save: the directory of path .*nowhere"):
        run(Eigendistortion(case.image, case.model), "exact").save(tmp_path / "nowhere" / "e.npz")


def test_save_is_atomic(tmp_path, monkeypatch):
    """A crash while writing leaves the previous file intact and no temporary file."""
    case = LinearCase(_np(), "float64", 16)
    path = tmp_path / "eig.npz"
    first = run(Eigendistortion(case.image, case.model), "eigsh")
    first.save(path)
    before = path.read_bytes()
    second = run(Eigendistortion(case.image, case.model), "power", max_iter=50)
    calls = []

    def crash(a):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt("simulated crash")
        return real(a)

    real = eio._npy_bytes
    monkeypatch.setattr(eio, "_npy_bytes", crash)
    with pytest.raises(KeyboardInterrupt):
        second.save(path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["eig.npz"]


# -- bad input ---------------------------------------------------------------------------------
class NoJvp:
    def __call__(self, x):
        return x

    def vjp(self, x, u):
        return u


class Doubling:
    """A user's own class with only the protocol: y = 2 x, so F = 4 I."""

    def __call__(self, x):
        return 2 * x

    def jvp(self, x, v):
        return 2 * v

    def vjp(self, x, u):
        return 2 * u


def test_a_users_protocol_class_and_a_1d_image(backend, dtype):
    x = arr(backend, np.linspace(0.1, 0.9, 100), dtype)
    eig = run(Eigendistortion(x, Doubling()), "eigsh", k=2)
    assert tuple(eig.eigendistortions.shape) == (4, 100)  # 1-D image: (n_dist, n)
    np.testing.assert_allclose(results(backend, eig)[0], 4.0, rtol=1e-5)


def test_bad_input(backend):
    dtype = backend.dtype("float64")
    case = LinearCase(backend, dtype, 16)
    with pytest.raises(ValueError, match=r"image must be a single image: batch dimension"):
        Eigendistortion(arr(backend, np.zeros((2, 1, 16, 16)), dtype), case.model)
    bad = case.image_np.copy()
    bad[0, 0, 3, 3] = np.nan
    with pytest.raises(ValueError, match="image contains NaN or infinite values"):
        Eigendistortion(arr(backend, bad, dtype), case.model)
    with pytest.raises(TypeError, match="image must have a real floating dtype"):
        Eigendistortion(arr(backend, np.zeros((1, 4)), backend.dtype("int64")), case.model)
    if backend.name != "array_api_strict" or "float16" in dir(backend.xp):
        half = arr(backend, np.zeros((1, 4)), backend.dtype("float16"))
        with pytest.raises(TypeError, match="image must be float32 or float64, got"):
            Eigendistortion(half, case.model)
    with pytest.raises(TypeError, match="derivative protocol.*lacks jvp"):
        Eigendistortion(case.image, NoJvp())
    nan_model = rm.Pointwise(lambda x: x * float("nan"), lambda x: x)
    with pytest.raises(ValueError, match=r"model\(image\) contains NaN or infinite values"):
        Eigendistortion(case.image, nan_model)
    eig = Eigendistortion(case.image, case.model)
    with pytest.raises(ValueError, match=r"method must be in \['power', 'exact'"):
        eig.synthesize("bogus")
    with pytest.raises(ValueError, match=r"k must be an int >= 1, got 0"):
        eig.synthesize("eigsh", k=0)
    with pytest.raises(ValueError, match=r"k must be an int in \[1, 256\]"):
        eig.synthesize("power", k=257)
    with pytest.raises(TypeError, match="k must be an int"):
        eig.synthesize("power", k=1.0)
    with pytest.raises(ValueError, match="max_iter must be an int >= 1"):
        eig.synthesize("power", max_iter=0)
    with pytest.raises(ValueError, match="p must be an int >= 0"):
        eig.synthesize("randomized_svd", p=-1)
    with pytest.raises(ValueError, match="stop_criterion must be a finite number > 0"):
        eig.synthesize("power", stop_criterion=0.0)
    with pytest.raises(TypeError, match="progress must be True or False"):
        eig.synthesize("power", progress=1)
    with pytest.raises(ValueError, match="No eigendistortions synthesized"):
        eig.indexer(0)
    assert eig.eigenvalues is None  # nothing was computed by the failed calls


def test_indexer_and_display_refuse_bools_where_an_int_is_expected(backend):
    case = LinearCase(backend, backend.dtype("float64"), 16)
    eig = run(Eigendistortion(case.image, case.model), "eigsh", k=2)
    from refimpl.eigendistortion import display_eigendistortions as show

    assert eig.indexer(1) == 1 and eig.indexer(-1) == 3 and eig.indexer(np.int64(255)) == 3
    for bad in (True, False):
        with pytest.raises(TypeError, match="idx must be an int, got the bool"):
            eig.indexer(bad)
        with pytest.raises(TypeError, match="eigenindex must be an int or a list of ints"):
            show(eig, bad)
        with pytest.raises(TypeError, match="eigenindex must be an int, got the bool"):
            show(eig, [0, bad])
        with pytest.raises(TypeError, match="distortion_scale must be a real number"):
            show(eig, 0, distortion_scale=bad)
        with pytest.raises(TypeError, match="distortion_scale must be a real number"):
            show(eig, [0, -1], distortion_scale=[1.0, bad])
    with pytest.raises(TypeError, match="idx must be an int"):
        eig.indexer(1.0)
    with pytest.raises(TypeError, match="eigenindex must be an int or a list"):
        show(eig, "0")
    with pytest.raises(ValueError, match="distortion_scale must be a finite number"):
        show(eig, 0, distortion_scale=float("nan"))
    with pytest.raises(TypeError, match="process_image must be callable or None"):
        show(eig, 0, process_image="log")


def test_load_refuses_bad_tolerances_before_reading(backend, tmp_path):
    """A negative, NaN or infinite tolerance is refused, not reported as another image."""
    case = LinearCase(backend, backend.dtype("float64"), 8)
    path = tmp_path / "eig.npz"
    run(Eigendistortion(case.image, case.model), "exact").save(path)
    eig = Eigendistortion(case.image, case.model)
    bad = st.floats().filter(lambda v: not 0 <= v < float("inf"))

    @settings(max_examples=20)
    @given(value=bad, which=st.sampled_from(["atol", "rtol"]))
    def check(value, which):
        with pytest.raises(ValueError, match=f"{which} must be a finite number >= 0, got"):
            eig.load(path, **{which: value})

    check()
    eig.load(path)  # the defaults load the file's own image
    assert eig.method == "exact"


def test_load_refuses_bad_arguments(backend, tmp_path):
    case = LinearCase(backend, backend.dtype("float64"), 8)
    path = tmp_path / "eig.npz"
    run(Eigendistortion(case.image, case.model), "exact").save(path)
    eig = Eigendistortion(case.image, case.model)
    with pytest.raises(TypeError, match="raise_on_checks must be True or False, got 1"):
        eig.load(path, raise_on_checks=1)
    with pytest.raises(TypeError, match="atol must be a real number, got '1e-8'"):
        eig.load(path, atol="1e-8")
    with pytest.raises(TypeError, match="rtol must be a real number, got True"):
        eig.load(path, rtol=True)
    with pytest.raises(ValueError, match=r"method must be in \['power', 'exact'"):
        eig.load(path, method="bogus")
    with pytest.raises(ValueError, match="load: path must name a file, got ''"):
        eig.load("")
    with pytest.raises(ValueError, match="load: path must name a file, got .*a directory"):
        eig.load(tmp_path)
    with pytest.raises(TypeError, match="load: path must be a str or an os.PathLike, got 3"):
        eig.load(3)
    assert eig.result is None
    eig.load(path)


def test_save_refuses_an_empty_path_and_a_directory(backend, tmp_path, monkeypatch):
    case = LinearCase(backend, backend.dtype("float64"), 8)
    eig = run(Eigendistortion(case.image, case.model), "exact")
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    with pytest.raises(ValueError, match="save: path must name a file, got ''"):
        eig.save("")
    for directory in (tmp_path, str(tmp_path) + os.sep, "."):
        with pytest.raises(ValueError, match=f"save: path must name a file, got '{directory}'"):
            eig.save(directory)
    with pytest.raises(TypeError, match="save: path must be a str or an os.PathLike, got None"):
        eig.save(None)
    assert sorted(os.listdir(tmp_path)) == ["sub"] and os.listdir(tmp_path / "sub") == []


def test_save_refuses_a_suffix_it_does_not_write(backend, tmp_path):
    """The archive is npz: ``.npz`` or no suffix; ``x.pt`` would look like plenoptic's file."""
    case = LinearCase(backend, backend.dtype("float64"), 8)
    eig = run(Eigendistortion(case.image, case.model), "exact")
    for name in ("eig.pt", "eig.npy", "eig.npz.bak"):
        with pytest.raises(ValueError, match="save: writes an npz archive"):
            eig.save(tmp_path / name)
    assert os.listdir(tmp_path) == []
    for name in ("eig.npz", "eig"):
        eig.save(tmp_path / name)
        assert zipfile.is_zipfile(tmp_path / name)


# -- plots -----------------------------------------------------------------------------------
def test_display_eigendistortions_shows_image_plus_scaled_distortion(tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    from refimpl.eigendistortion import display_eigendistortions, plot_eigenvalues

    case = LinearCase(_np(), "float64", 16)
    eig = run(Eigendistortion(case.image, case.model), "eigsh", k=2)
    fig = display_eigendistortions(eig, [0, -1], distortion_scale=[2.0, 3.0])
    axes = fig.axes  # the image (both rows), two distortions, two sums: no empty panel
    assert len(axes) == 5 and axes[1].get_title().startswith("index 0 (most visible)\n")
    assert axes[2].get_title().startswith("index 255 (least visible)\n")
    assert axes[4].get_title() == "image + 3 × distortion 255"
    shown = axes[4].get_images()[0].get_array()
    expected = case.image_np[0, 0] + 3.0 * case_vec(eig, 3)
    np.testing.assert_array_equal(np.asarray(shown), expected)
    with pytest.raises(ValueError, match="If distortion_scale is a list"):
        display_eigendistortions(eig, [0, -1], distortion_scale=[1.0])
    with pytest.raises(ValueError, match="eigenindex must be the index"):
        display_eigendistortions(eig, [0, 5])
    ax = plot_eigenvalues(eig)
    assert ax.get_yscale() == "log" and len(ax.lines) >= 1
    assert ax.get_xlabel() == "eigenvalue index" and ax.get_ylabel().startswith("eigenvalue")
    fig.savefig(tmp_path / "fig.png")
    import matplotlib.pyplot as plt

    plt.close("all")


def case_vec(eig, i):
    return np.asarray(eig.eigendistortions[i, 0])


# -- helpers -----------------------------------------------------------------------------------
def _eps(backend, dtype) -> float:
    return float(np.finfo(backend.dtype_name(dtype)).eps)


def _np():
    import backends as bk

    be = bk.get("numpy")

    class B:
        name, device, adapter, xp = "numpy", "cpu", be, be.xp

        def dtype(self, n):
            return be.dtype(n)

        def dtype_name(self, d):
            return be.dtype_name(d)

        def to_numpy(self, a):
            return np.asarray(a)

    return B()
