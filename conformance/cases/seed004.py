"""Seed 004: plenoptic's ``Eigendistortion`` (eigenvectors of a model's Fisher matrix).

Source: the plenoptic 2.1.1 documentation of ``plenoptic.synthesize.Eigendistortion`` (the
class and its docstrings); plenoptic 2.1.1's behaviour, doctest numbers and bugs from its
source (``plenoptic/_synthesize/eigendistortion.py``) and its tests
(``tests/test_eigendistortion.py``), verified by running the release.

Columns
    numpy, array_api_strict, torch: ``refimpl.eigendistortion`` on explicit models of
    ``refimpl.models`` with plenoptic's weights; on torch also the front end
    ``refimpl.torch.Eigendistortion`` on an equivalent torch callable.
    plenoptic: the documented library on its own models.

Test image: seeded 1/f ("pink") noise made in code, 24 x 24 in [0.1, 0.9]; model:
plenoptic's pretrained ``LinearNonlinear`` (softplus of a 31 x 31 centre-surround filter,
circular padding). The centre-surround filter sums to 0, so the constant image is in the null
space of F: the bottom of the spectrum is exactly 0, and degenerate.

Shared cases hold on every column. Where plenoptic's verified bugs make it disagree with its
own documentation ("eigenvalues ... in decreasing order", ``S: Size((n,))``, the smallest
eigenvectors from the shifted power method), a case checks the documented behaviour on this
project's columns, and a ``004.plenoptic.*`` ERRATUM case checks plenoptic's actual behaviour.
Bottom pairs are judged by Rayleigh quotients and residuals, never by eigenvector angles.
"""

from __future__ import annotations

import contextlib
import io
import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from conformance.registry import Context, case, erratum, exact, tolerance

SEED = "plenoptic 2.1.1 docs, plenoptic.synthesize.Eigendistortion"
SRC = "plenoptic 2.1.1 _synthesize/eigendistortion.py"
TESTS = "plenoptic 2.1.1 tests/test_eigendistortion.py"
COMPONENT = "refimpl.eigendistortion.Eigendistortion (+ refimpl.torch.Eigendistortion)"
N_IMG = 24
LN_CENTER, LN_SURROUND = 0.5339, 6.148  # plenoptic's pretrained LinearNonlinear (float32)
DOC_TOL = 1e-2  # plenoptic's test_method_accuracy tolerance (absolute)


# -- inputs made in code ----------------------------------------------------------------------
def pink_noise(n: int, seed: int = 0) -> np.ndarray:
    """Seeded 1/f noise rescaled to [0.1, 0.9], shape (1, 1, n, n)."""
    r = np.random.default_rng(seed)
    f = np.fft.fftfreq(n)
    radius = np.hypot(f[:, None], f[None, :])
    radius[0, 0] = 1.0
    x = np.real(np.fft.ifft2(np.fft.fft2(r.standard_normal((n, n))) / radius))
    return ((x - x.min()) / (x.max() - x.min()) * 0.8 + 0.1)[None, None]


def _f32(v: float) -> float:
    return float(np.float32(v))


def _ln_kernel() -> np.ndarray:
    """plenoptic's CenterSurround(31) with the pretrained stds: 1.25 (g_c - g_s)."""
    o = np.arange(31) - 15.0
    r2 = o[:, None] ** 2 + o[None, :] ** 2

    def g(s: float) -> np.ndarray:
        e = np.exp(-r2 / (2 * s**2))
        return e / e.sum()

    return 1.25 * (g(_f32(LN_CENTER)) - g(_f32(LN_SURROUND)))


def _gauss10_kernel() -> np.ndarray:
    """plenoptic's Gaussian(10, std=3): offsets 1..10 - 5.5 (even size: half-pixel centre)."""
    o = np.arange(1, 11) - 5.5
    g = np.exp(-(o[:, None] ** 2 + o[None, :] ** 2) / (2 * 3.0**2))
    return g / g.sum()


DIAG = np.linspace(1.0, 0.05, 20)  # F = diag(DIAG): plenoptic's bottom-order example


def _null_weight(n: int = 64, m: int = 16) -> np.ndarray:
    """W (m, n) with singular values 1, 0.7, 0.5, 0.35, 0.3 .. 0.2: null space n - m."""
    r = np.random.default_rng(1)
    U, _ = np.linalg.qr(r.standard_normal((m, m)))
    V, _ = np.linalg.qr(r.standard_normal((n, m)))
    s = np.concatenate([[1.0, 0.7, 0.5, 0.35], np.linspace(0.3, 0.2, m - 4)])
    return (U * s) @ V.T


_WEIGHTS = {
    "diag": lambda: np.diag(np.sqrt(DIAG)),
    "diag2": lambda: np.diag(np.sqrt(DIAG[::-1])),  # another model, same input size
    "null": _null_weight,
}


# -- implementations ------------------------------------------------------------------------
class Run:
    """One implementation's Eigendistortion object, with plenoptic's attribute names."""

    def __init__(self, label: str, eig: Any, to_numpy: Any, original: bool) -> None:
        self.label, self.eig, self._np, self.original = label, eig, to_numpy, original

    def synthesize(self, method: str = "power", **kw: Any) -> Run:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if self.original:
                import plenoptic as po

                po.set_seed(kw.pop("seed", 0))
                sink = io.StringIO()  # plenoptic prints and draws tqdm bars unconditionally
                with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
                    self.eig.synthesize(method, **kw)
            else:
                self.eig.synthesize(method, rng=kw.pop("seed", 0), progress=False, **kw)
        return self

    def values(self) -> np.ndarray:
        return np.atleast_1d(np.asarray(self._np(self.eig.eigenvalues), dtype=np.float64))

    def vectors(self) -> np.ndarray:
        d = np.asarray(self._np(self.eig.eigendistortions), dtype=np.float64)
        return d.reshape(d.shape[0], -1)

    def index(self) -> list[int]:
        return [int(i) for i in np.asarray(self._np(self.eig.eigenindex)).ravel()]


def _torch_model(name: str, device: Any, dtype: Any) -> Any:
    import torch
    import torch.nn.functional as F

    def t(a: np.ndarray) -> Any:
        return torch.as_tensor(a, dtype=dtype, device=device)

    if name in ("ln", "gauss10"):
        w = t(_ln_kernel() if name == "ln" else _gauss10_kernel())[None, None]
        k = w.shape[-1]
        pads = ((k - 1) // 2, k - 1 - (k - 1) // 2) * 2
        act = F.softplus if name == "ln" else (lambda y: y)
        return lambda x: act(F.conv2d(F.pad(x, pads, mode="circular"), w))
    W = t(_WEIGHTS[name]())
    return lambda x: W @ x


def _plenoptic_model(name: str, dtype: Any) -> Any:
    import plenoptic as po
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if name == "ln":
            m = po.models.LinearNonlinear(31, pretrained=True, pad_mode="circular")
        elif name == "gauss10":
            m = po.models.Gaussian(10, pad_mode="circular")
        else:
            W = _WEIGHTS[name]()
            m = torch.nn.Linear(W.shape[1], W.shape[0], bias=False)
            m.weight.data = torch.as_tensor(W)
    m = m.to(dtype).eval()
    po.remove_grad(m)
    return m


def _refimpl_model(name: str, target: Any, dtype: str) -> Any:
    from refimpl import models as rm

    if name == "ln":
        w = target.asarray(_ln_kernel(), dtype)
        return rm.Sequential(rm.Conv2d(w, pad_mode="circular"), rm.Pointwise("softplus"))
    if name == "gauss10":
        return rm.Conv2d(target.asarray(_gauss10_kernel(), dtype), pad_mode="circular")
    return rm.Linear(target.asarray(_WEIGHTS[name](), dtype))


@dataclass(frozen=True)
class Model:
    """A model of the cases by name, built for each implementation (the targets' builders)."""

    name: str

    def refimpl(self, target: Any, dtype: str) -> Any:
        return _refimpl_model(self.name, target, dtype)

    def torch(self, device: Any, dtype: Any) -> Any:
        return _torch_model(self.name, device, dtype)

    def plenoptic(self, dtype: Any) -> Any:
        return _plenoptic_model(self.name, dtype)


def _image(name: str) -> np.ndarray:
    if name in ("diag", "diag2"):
        return np.full(20, 0.5)
    if name == "null":
        return np.random.default_rng(2).uniform(0.1, 0.9, 64)
    return pink_noise(N_IMG)


def runs(ctx: Context, name: str, dtype: str = "float64", image: Any = None) -> list[Run]:
    """The model ``name`` at its image on each implementation of the column (target
    operation ``eigendistortion``): plenoptic itself, or refimpl (plus the torch front end
    on the torch column)."""
    x_np = _image(name) if image is None else image
    out = []
    for impl in ctx.implementations("eigendistortion"):
        e = impl.eigendistortion(x_np, Model(name), dtype)
        out.append(Run(e.label, e.eig, e.to_numpy, e.plenoptic))
    return out


PLENOPTIC = ("plenoptic",)


# -- shared cases: every column --------------------------------------------------------------
@case(
    "004.method.unknown",
    source=f"{SEED}, synthesize (Raises ValueError); {SRC}, synthesize",
    component=COMPONENT,
    check=exact(),
    originals=PLENOPTIC,
)
def method_unknown(ctx: Context) -> None:
    """synthesize(method="bogus") raises ValueError("method must be in [...]")"""
    for r in runs(ctx, "diag"):
        try:
            r.synthesize("bogus")
        except ValueError as exc:
            assert str(exc).startswith("method must be in "), f"{r.label}: {exc}"
        else:
            raise AssertionError(f"{r.label}: no ValueError for an unknown method")


@case(
    "004.exact.shape_index",
    source=f"{SEED}, eigendistortions / eigenindex; {TESTS} (test_method_exact)",
    component=COMPONENT,
    check=exact(),
    originals=PLENOPTIC,
)
def exact_shape(ctx: Context) -> None:
    """exact: n values, n distortions shaped (n, 1, 24, 24), eigenindex arange(n)"""
    n = N_IMG * N_IMG
    for r in runs(ctx, "ln"):
        r.synthesize("exact")
        shape = tuple(r.eig.eigendistortions.shape)
        assert shape == (n, 1, N_IMG, N_IMG), f"{r.label}: shape {shape}"
        assert len(r.values()) == n and r.index() == list(range(n)), r.label


@case(
    "004.power.shape_index",
    source=f"{SEED}, synthesize(method='power'); {TESTS} (test_orthog_iter)",
    component=COMPONENT,
    check=exact(),
    originals=PLENOPTIC,
)
def power_shape(ctx: Context) -> None:
    """power, k=2, max_iter=10: 4 distortions (4, 1, 24, 24), eigenindex [0, 1, n-2, n-1]"""
    n = N_IMG * N_IMG
    for r in runs(ctx, "ln"):
        r.synthesize("power", k=2, max_iter=10)
        shape = tuple(r.eig.eigendistortions.shape)
        assert shape == (4, 1, N_IMG, N_IMG), f"{r.label}: shape {shape}"
        assert r.index() == [0, 1, n - 2, n - 1], f"{r.label}: eigenindex {r.index()}"
        assert len(r.values()) == 4 and np.all(r.values() >= 0), r.label


@case(
    "004.randomized_svd.shape_index",
    source=f"{SEED}, synthesize(method='randomized_svd'); {TESTS}",
    component=COMPONENT,
    check=exact(),
    originals=PLENOPTIC,
)
def rsvd_shape(ctx: Context) -> None:
    """randomized_svd, k=3: 3 distortions, eigenindex arange(3), top block only"""
    for r in runs(ctx, "ln"):
        r.synthesize("randomized_svd", k=3)
        shape = tuple(r.eig.eigendistortions.shape)
        assert shape == (3, 1, N_IMG, N_IMG), f"{r.label}: shape {shape}"
        assert r.index() == [0, 1, 2] and len(r.values()) == 3, r.label


@case(
    "004.methods.agree",
    source=f"{TESTS} (test_method_accuracy: atol 1e-2)",
    component=COMPONENT,
    check=tolerance(rtol=0.0, atol=DOC_TOL),
    originals=PLENOPTIC,
)
def methods_agree(ctx: Context) -> None:
    """power (max_iter=2500) top and bottom, randomized_svd (k=75) top, and eigsh (this
    project) agree with exact within plenoptic's test tolerance; the Rayleigh quotient of
    every bottom vector is at least exact's smallest eigenvalue (interlacing)"""
    for r in runs(ctx, "ln"):
        lam = r.synthesize("exact").values()
        lam_min = float(np.min(lam))
        make = runs(ctx, "ln")
        p = next(x for x in make if x.label == r.label).synthesize("power", max_iter=2500)
        pv = p.values()
        ctx.assert_close(pv[0], lam[0], f"{r.label} power top")
        ctx.assert_close(pv[-1], lam_min, f"{r.label} power bottom")
        assert pv[-1] >= lam_min - 1e-9, f"{r.label}: power bottom below the spectrum"
        s = next(x for x in runs(ctx, "ln") if x.label == r.label)
        ctx.assert_close(s.synthesize("randomized_svd", k=75).values()[0], lam[0], r.label)
        if not r.original:  # eigsh is this project's
            e = next(x for x in runs(ctx, "ln") if x.label == r.label).synthesize("eigsh")
            ev = e.values()
            ctx.assert_close(ev[0], lam[0], f"{r.label} eigsh top", rtol=1e-9, atol=0)
            assert lam_min - 1e-12 <= ev[-1] <= lam_min + 1e-6 * lam[0], (r.label, ev, lam_min)


@case(
    "004.exact.large_jacobian_warning",
    source=f"{SEED}, synthesize (Warns: Jacobian size greater than 1e6)",
    component=COMPONENT,
    check=exact(),
    originals=PLENOPTIC,
)
def large_jacobian(ctx: Context) -> None:
    """exact on a 32 x 32 blur (J has 1024^2 > 1e6 entries) warns 'Jacobian > 1e6 elements'"""
    x = pink_noise(32, seed=3)
    for r in runs(ctx, "gauss10", "float32", image=x):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            sink = io.StringIO()
            with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
                r.eig.synthesize("exact")
        msgs = [str(w.message) for w in caught]
        assert any("Jacobian > 1e6 elements" in m for m in msgs), f"{r.label}: {msgs}"


DOC_IMAGE = "blur_downsample(einstein(), n_scales=3), 32 x 32 float32 (plenoptic's data)"


def _doc_image(ctx: Context) -> np.ndarray:
    try:
        import plenoptic as po
        from plenoptic.process import blur_downsample
    except ImportError:
        ctx.skip("the documented image comes with plenoptic (not installed)")
    return blur_downsample(po.data.einstein(), n_scales=3).numpy()


@case(
    "004.doctest.converged_values",
    source=f"{SEED}, Eigendistortion docstring examples (doctest numbers)",
    component=COMPONENT,
    check=tolerance(rtol=0.0, atol=5e-5),
    originals=PLENOPTIC,
)
def doctest_values(ctx: Context) -> None:
    """Gaussian(10, circular) on the documented image: exact top 1.0000, 1024 values,
    jacobian (1024, 1024) with J[0, 0] = 0.0210; randomized_svd(p=20, q=10) 1.0000;
    power(max_iter=100) top 1.0000 (the RNG-free and converged outputs)"""
    img = _doc_image(ctx)
    for r in runs(ctx, "gauss10", "float32", image=img):
        v = r.synthesize("exact").values()
        J = np.asarray(r._np(r.eig.jacobian))
        assert len(v) == 1024 and J.shape == (1024, 1024), r.label
        ctx.assert_close(float(v[0]), 1.0, f"{r.label} exact top")
        ctx.assert_close(float(J[0, 0]), 0.0210, f"{r.label} jacobian[0, 0]")
    for method, kw in (("randomized_svd", dict(p=20, q=10)), ("power", dict(max_iter=100))):
        for r in runs(ctx, "gauss10", "float32", image=img):
            top = float(r.synthesize(method, **kw).values()[0])
            ctx.assert_close(top, 1.0, f"{r.label} {method}")


@case(
    "004.save_load.refuses_other_inputs",
    source=f"{SEED}, load (Raises ValueError: different image / model behaviour); {SRC}, load",
    component=COMPONENT,
    check=exact(),
    originals=PLENOPTIC,
)
def save_load(ctx: Context) -> None:
    """save after power; load into a fresh object gives the same eigenvalues; a fresh object
    on another image or another model refuses the file"""
    import os
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "eig.npz")
        for r in runs(ctx, "diag"):
            r.synthesize("power", k=2, max_iter=50).eig.save(path)
            fresh = next(x for x in runs(ctx, "diag") if x.label == r.label)
            fresh.eig.load(path)
            assert np.array_equal(fresh.values(), r.values()), r.label
            other = np.linspace(0.1, 0.9, 20)
            wrong = next(x for x in runs(ctx, "diag", image=other) if x.label == r.label)
            _refuses(wrong, path, "image have different values")
            wrong = next(x for x in runs(ctx, "diag2") if x.label == r.label)
            _refuses(wrong, path, "model output have different values")


def _refuses(r: Run, path: str, text: str) -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r.eig.load(path)
    except ValueError as exc:
        assert text in str(exc), f"{r.label}: {exc}"
    else:
        raise AssertionError(f"{r.label}: loaded a file made from other inputs")


# -- documented behaviour plenoptic misses: this project's columns, then plenoptic's errata ----
@case(
    "004.exact.decreasing",
    source=f"{SEED}, eigenvalues ('in decreasing order'); {SRC} (exact: abs after eigh)",
    component=COMPONENT,
    check=exact(),
)
def exact_decreasing(ctx: Context) -> None:
    """exact on W (16 x 64: 48 zero eigenvalues) in float32: eigenvalues decreasing and
    non-negative (clip at 0), the last one 0 to rounding"""
    for r in runs(ctx, "null", "float32"):
        v = r.synthesize("exact").values()
        assert np.all(np.diff(v) <= 0) and np.all(v >= 0), f"{r.label}: not sorted / negative"
        assert v[-1] <= 1e-6 * v[0], f"{r.label}: smallest {v[-1]}"


@case(
    "004.plenoptic.exact_abs_unsorts_tail",
    source=f"{SRC}, synthesize (exact: abs after eigh; PR #130)",
    component="plenoptic.Eigendistortion",
    check=erratum(
        "documented: eigenvalues 'in decreasing order'. plenoptic takes abs() of eigh's "
        "flipped eigenvalues to hide tiny negatives (PR #130), which reorders the tail of a "
        "rank-deficient spectrum. Checked on W (16 x 64, float32): its exact eigenvalues are "
        "non-negative but not sorted; this project clips at 0 (004.exact.decreasing)"
    ),
    originals=PLENOPTIC,
    backends=(),
)
def plenoptic_exact_unsorted(ctx: Context) -> None:
    """plenoptic exact on W (16 x 64) in float32 (its default): non-negative, not sorted"""
    (r,) = runs(ctx, "null", "float32")
    v = r.synthesize("exact").values()
    assert np.all(v >= 0) and np.any(np.diff(v) > 0), "plenoptic's tail is sorted after all"


@case(
    "004.power.bottom_order",
    source=f"{SEED}, eigenvalues ('in decreasing order') / eigenindex; {SRC}, synthesize",
    component=COMPONENT,
    check=tolerance(rtol=1e-4, atol=0.0),
)
def power_bottom_order(ctx: Context) -> None:
    """F = diag(linspace(1, .05, 20)), k=3: power and eigsh give [1, .95, .9, .15, .10, .05]
    with eigenindex [0, 1, 2, 17, 18, 19]: index 19 (-1) is the smallest"""
    for method in ("power", "eigsh"):
        for r in runs(ctx, "diag"):
            v = r.synthesize(method, k=3, max_iter=1000).values()
            ctx.assert_close(v, [1, 0.95, 0.9, 0.15, 0.10, 0.05], f"{r.label} {method}")
            assert r.index() == [0, 1, 2, 17, 18, 19], r.label


@case(
    "004.plenoptic.power_bottom_ascending",
    source=f"{SRC}, synthesize (power: bottom-block ordering bug, verified)",
    component="plenoptic.Eigendistortion",
    check=erratum(
        "documented: eigenvalues in decreasing order, eigenindex the position in the spectrum. "
        "plenoptic's shifted QR iteration puts the smallest eigenvalue first, so the bottom "
        "block is ascending while labelled n-k..n-1: eigenindex 19 (what eigenindex=-1 "
        "selects) is the third-smallest. Checked on F = diag(linspace(1, .05, 20)), k=3: "
        "[1, .95, .9, .05, .10, .15] with eigenindex [0, 1, 2, 17, 18, 19]",
        rtol=1e-4,
    ),
    originals=PLENOPTIC,
    backends=(),
)
def plenoptic_power_ascending(ctx: Context) -> None:
    """plenoptic power on diag(linspace(1, .05, 20)), k=3: bottom block ascending"""
    (r,) = runs(ctx, "diag")
    v = r.synthesize("power", k=3, max_iter=1000).values()
    ctx.assert_close(v, [1, 0.95, 0.9, 0.05, 0.10, 0.15], "plenoptic power")
    assert r.index() == [0, 1, 2, 17, 18, 19]


@case(
    "004.randomized_svd.k1_is_1d",
    source=f"{SEED}, _synthesize_randomized_svd (Returns S: Size((n,)))",
    component=COMPONENT,
    check=exact(),
)
def rsvd_k1(ctx: Context) -> None:
    """randomized_svd with k=1: eigenvalues shaped (1,), like eigenindex"""
    for r in runs(ctx, "ln"):
        r.synthesize("randomized_svd")
        shape = tuple(r.eig.eigenvalues.shape)
        assert shape == (1,) and len(r.index()) == 1, f"{r.label}: eigenvalues shape {shape}"


@case(
    "004.plenoptic.randomized_svd_0d",
    source=f"{SRC}, synthesize (randomized_svd: eigenvalues = S.squeeze())",
    component="plenoptic.Eigendistortion",
    check=erratum(
        "documented: S has Size((n,)). plenoptic stores S.squeeze(), a 0-d tensor for k=1 "
        "(len() raises; the docstring prints tensor(0.9799)). Checked: shape ()"
    ),
    originals=PLENOPTIC,
    backends=(),
)
def plenoptic_rsvd_0d(ctx: Context) -> None:
    """plenoptic randomized_svd with k=1: a 0-d eigenvalue tensor"""
    (r,) = runs(ctx, "ln")
    shape = tuple(r.synthesize("randomized_svd").eig.eigenvalues.shape)
    assert shape == (), f"plenoptic eigenvalues shape {shape}"


@case(
    "004.power.bottom_keeps_null_space",
    source=f"{SEED}, _synthesize_power (shift = top eigenvalue); {SRC}, _synthesize_power",
    component=COMPONENT,
    check=exact(),
)
def power_null_space(ctx: Context) -> None:
    """W (16 x 64), null space of dimension 48; power with max_iter=3: every step is on the
    shifted operator, so the bottom vector keeps (and grows) the start's null-space share
    (75% in expectation)"""
    W = _null_weight()
    _, _, Vt = np.linalg.svd(W)
    for r in runs(ctx, "null"):
        v = r.synthesize("power", max_iter=3, seed=1).vectors()[-1]
        share = 1 - np.sum((Vt[:16] @ v) ** 2) / np.sum(v**2)
        assert share > 0.75, f"{r.label}: null-space energy {share:.3g}"


@case(
    "004.plenoptic.power_bottom_loses_null_space",
    source=f"{SRC}, _synthesize_power (v = Fv / ||Fv|| before the shifted loop, verified)",
    component="plenoptic.Eigendistortion",
    check=erratum(
        "documented: the shifted power method estimates the smallest eigenvectors. plenoptic "
        "first sets v = Fv/||Fv|| with the unshifted F, even for the bottom run, which removes "
        "every null-space component of the start: they regrow only from rounding. Checked: "
        "on W (16 x 64) with a 48-dimensional null space, after 3 iterations the bottom "
        "vector has null-space energy < 1e-6 (this project: > 0.75)"
    ),
    originals=PLENOPTIC,
    backends=(),
)
def plenoptic_power_null_space(ctx: Context) -> None:
    """plenoptic power, max_iter=3, on W with a 48-dim null space: bottom vector out of it"""
    W = _null_weight()
    _, _, Vt = np.linalg.svd(W)
    (r,) = runs(ctx, "null")
    v = r.synthesize("power", max_iter=3, seed=1).vectors()[-1]
    share = 1 - np.sum((Vt[:16] @ v) ** 2) / np.sum(v**2)
    assert share < 1e-6, f"plenoptic null-space energy {share:.3g}"


@case(
    "004.power.max_iter_warns",
    source=f"{SEED}, stop_criterion ('we terminate synthesis' when met); {SRC}, _synthesize_power",
    component=COMPONENT,
    check=exact(),
)
def power_warns(ctx: Context) -> None:
    """power stopped by max_iter=5 before convergence warns and reports the residual"""
    for r in runs(ctx, "ln"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            # the torch front end is silent by default, like plenoptic: the warning is asked for
            r.eig.synthesize("power", max_iter=5, rng=0, progress=False, warn_unconverged=True)
        msgs = [str(w.message) for w in caught if "did not converge" in str(w.message)]
        assert msgs and "residual" in msgs[0], f"{r.label}: {msgs}"
        info = r.eig.convergence["bottom"]
        assert not info["converged"] and math.isfinite(info["max_residual"]), r.label


@case(
    "004.plenoptic.power_silent_at_max_iter",
    source=f"{SRC}, _synthesize_power (hitting max_iter returns silently)",
    component="plenoptic.Eigendistortion",
    check=erratum(
        "documented: synthesis terminates when the eigenvalues change by less than "
        "stop_criterion. plenoptic also stops at max_iter and returns the unconverged result "
        "silently (no warning, only the missing stdout message). Checked: max_iter=5 emits "
        "no warning and prints no 'Stop criterion ... reached'"
    ),
    originals=PLENOPTIC,
    backends=(),
)
def plenoptic_silent(ctx: Context) -> None:
    """plenoptic power with max_iter=5: no warning, no convergence message"""
    (r,) = runs(ctx, "ln")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            r.eig.synthesize("power", max_iter=5)
    assert not caught and "reached" not in out.getvalue(), [str(w.message) for w in caught]


@case(
    "004.plenoptic.docstring_sequence",
    source=f"{SEED}, Eigendistortion docstring (po.set_seed(0), sequential calls)",
    component="plenoptic.Eigendistortion",
    check=erratum(
        "the docstring's own printed outputs contradict 'eigenvalues in decreasing order' "
        "(max_iter=5, k=3 prints [.9256, .8508, .7679, .1576, .1425, .1576]), print an "
        "unconverged bottom eigenvalue as the result (0.0039 where the true value is 0) and "
        "a 0-d tensor for randomized_svd. Checked: plenoptic reproduces every printed digit "
        "(RNG-dependent: one model, po.set_seed(0) once, a new Eigendistortion per example, "
        "whose validate_model draws torch.rand four times)",
        atol=5e-5,
    ),
    originals=PLENOPTIC,
    backends=(),
)
def plenoptic_docstring(ctx: Context) -> None:
    """the docstring's sequence of synthesize calls and printed eigenvalues"""
    import plenoptic as po
    import torch

    img = torch.as_tensor(_doc_image(ctx))
    expected = [
        (dict(max_iter=5), [0.8080, 0.1384]),
        (dict(method="randomized_svd"), [0.9799]),
        (dict(max_iter=100), [1.0000, 0.0039]),
        (dict(method="randomized_svd", p=20, q=10), [1.0000]),
        (dict(method="exact"), [1.0000]),
        (dict(max_iter=5, k=3), [0.9256, 0.8508, 0.7679, 0.1576, 0.1425, 0.1576]),
        (dict(max_iter=5, stop_criterion=0.1), [0.6565, 0.1321]),
    ]
    sink = io.StringIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        po.set_seed(0)
        model = po.models.Gaussian(10, pad_mode="circular").eval()
        po.remove_grad(model)
        for kw, doc in expected:  # each example makes a new object (4 torch.rand draws)
            eig = po.Eigendistortion(img, model)
            with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
                eig.synthesize(**kw)
            got = eig.eigenvalues.reshape(-1).numpy()[: len(doc)]
            ctx.assert_close(got, doc, f"plenoptic synthesize({kw})")
