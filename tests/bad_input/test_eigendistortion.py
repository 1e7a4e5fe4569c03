"""Bad-input sweep of refimpl.eigendistortion: the ``Eigendistortion`` constructor,
``synthesize`` (every argument), ``indexer``, the arguments of ``save`` and ``load`` (the
corpus of damaged files is tests/test_eigendistortion_files.py), and the figures
``display_eigendistortions`` and ``plot_eigenvalues``.

The image is (1, 1, 4, 4) (16 pixels: ``eigsh`` solves it densely, every method takes
milliseconds) and the model ``softplus(conv(x))`` with ``sum |w| = 0.1``. Every test runs on
every backend of the ``backend`` fixture; the rule is the harness's
(tests/bad_input/harness.py).
"""

from __future__ import annotations

import math
import os
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refimpl import models as rm
from refimpl.eigendistortion import Eigendistortion, display_eigendistortions, plot_eigenvalues
from tests.bad_input.harness import (
    Bad,
    accept,
    bad_arrays,
    bad_bools,
    bad_ints,
    bad_reals,
    bad_rngs,
    check_outcome,
    drop,
    reject,
    sweep,
    wrong_kinds,
)

F32 = "float32"
N = 16  # pixels

pytestmark = pytest.mark.filterwarnings("ignore:.*did not converge:UserWarning")


def data(backend, shape=(1, 1, 4, 4), dtype=F32, seed=0):
    a = np.random.default_rng(seed).uniform(0.1, 0.9, shape)
    return backend.xp.asarray(a.tolist(), dtype=backend.dtype(dtype), device=backend.device)


def model(backend):
    """``softplus(conv(x))`` with a 3x3 kernel, ``sum |w| = 0.1``: finite for any finite x."""
    w = np.random.default_rng(1).standard_normal((3, 3))
    w = (0.1 * w / np.abs(w).sum()).tolist()
    conv = rm.Conv2d(backend.xp.asarray(w, dtype=backend.dtype(F32), device=backend.device))
    return rm.Sequential(conv, rm.Pointwise("softplus"))


def synthesized(backend, k=2):
    eig = Eigendistortion(data(backend), model(backend))
    eig.synthesize("eigsh", k=k, rng=0, progress=False)  # eigenindex [0, 1, 14, 15] for k = 2
    return eig


def marked(table, labels, mark):
    return {k: mark(v) if k in labels else v for k, v in table.items()}


def positive_ints(valid):
    return drop(bad_ints(valid), "zero", "negative") | {"zero": reject(0), "negative": reject(-1)}


class Protocol:
    """A user's class with only the protocol, y = 2 x; ``broken`` replaces ``__call__``."""

    def __init__(self, broken=None):
        self.broken = broken

    def __call__(self, x):
        return self.broken(x) if self.broken else 2 * x

    def jvp(self, x, v):
        return 2 * v

    def vjp(self, x, u):
        return 2 * u


class NoJvp:
    def __call__(self, x):
        return x

    def vjp(self, x, u):
        return u


# -- the constructor -------------------------------------------------------------------------------
def test_constructor_sweep(backend):
    image = data(backend)

    def call(image, model):
        return Eigendistortion(image, model).representation

    images = marked(bad_arrays(image), tuple(bad_arrays(image)), reject)
    # one entry at the dtype's largest value: the model (sum |w| = 0.1) keeps it finite
    images["huge"] = accept(images["huge"].value)
    images["batch-of-2"] = reject(backend.xp.concat([image, image]))
    models = {
        **wrong_kinds(),
        "an-array": reject(image),
        "plain-function": reject(lambda x: x),
        "no-jvp": reject(NoJvp()),
        "returns-None": reject(Protocol(lambda x: None)),
        "returns-nan": reject(Protocol(lambda x: x * math.nan)),
        "returns-list": reject(Protocol(lambda x: [1.0])),
        "user-class": accept(Protocol()),
    }
    # an image of another library or device than the model's weights is refused by the
    # model's own check, which names its input x
    names = {"image": ("image", "x"), "model": "model"}
    sweep(
        call,
        dict(image=image, model=model(backend)),
        {"image": images, "model": models},
        names=names,
    )


# -- synthesize ----------------------------------------------------------------------------------
def synthesize_table():
    return {
        "method": {
            **wrong_kinds(),
            "other": reject("lanczos"),
            "upper-case": reject("Power"),
            **{m: accept(m) for m in ("power", "exact", "randomized_svd")},
        },
        "k": positive_ints(2)
        | {"too-large": reject(N + 1), "huge": reject(2**70), "all": accept(N // 4)},
        "max_iter": positive_ints(50) | {"huge": accept(2**70, "stops when converged")},
        "p": drop(bad_ints(2), "zero") | {"zero": accept(0), "huge": accept(2**70, "at most n")},
        "q": drop(bad_ints(2), "zero") | {"zero": accept(0)},
        "stop_criterion": drop(bad_reals(F32), "zero", "negative", "huge")
        | {
            "zero": reject(0.0),
            "negative": reject(-1e-7),
            "huge": accept(1e39, "any positive tolerance (plenoptic's): a loose one stops at once"),
        },
        "rng": bad_rngs(),
        "progress": bad_bools(),
        "warn_unconverged": bad_bools(),
        "lanczos": {
            **wrong_kinds(),
            "other": reject("lobpcg"),
            "krylov_schur": accept("krylov_schur"),
            "arpack": accept("arpack", "16 pixels: solved densely, whatever the route"),
        },
    }


@pytest.mark.parametrize("method", ["eigsh", "randomized_svd"])
def test_synthesize_sweep(backend, method):
    image, forward = data(backend), model(backend)

    def call(**kwargs):
        eig = Eigendistortion(image, forward)
        eig.synthesize(**kwargs)
        return eig.eigendistortions, eig.eigenvalues, eig.eigenindex

    table = synthesize_table()
    if method != "eigsh":
        table = drop(table, "method", "lanczos")
    valid = dict(
        method=method, k=2, max_iter=50, p=2, q=2, stop_criterion=1e-7, rng=0,
        progress=False, lanczos="auto", warn_unconverged=True,
    )  # fmt: skip
    sweep(call, valid, table)


def test_synthesize_fails_before_any_state_change(backend):
    """A refused call leaves an earlier result in place."""
    eig = synthesized(backend)
    before = eig.result
    for name, cases in synthesize_table().items():
        for label, value in cases.items():
            bad = value if isinstance(value, Bad) else Bad(value)
            if bad.outcome == "accept":
                continue
            kwargs = dict(dict(method="eigsh", rng=0, progress=False), **{name: bad.value})
            check_outcome(lambda kw=kwargs: eig.synthesize(**kw), names=name, outcome=bad.outcome)
            assert eig.result is before, (name, label)


def test_arpack_without_a_route_is_refused_naming_lanczos(backend):
    """``lanczos="arpack"`` on arrays no Lanczos library takes (array_api_strict, jax):
    ValueError naming lanczos, before any Fisher product (numpy and CPU torch go to scipy)."""
    image = data(backend, (1, 1, 9, 9))  # 81 pixels: beyond the dense route
    eig = Eigendistortion(image, model(backend))
    outcome = "raise" if backend.name in ("array_api_strict", "jax") else "accept"
    check_outcome(
        lambda: eig.synthesize("eigsh", rng=0, progress=False, lanczos="arpack"),
        names="lanczos",
        outcome=outcome,
    )


@settings(max_examples=20)  # 21 values of k x 4 methods, each a solve
@given(
    k=st.integers(-2, N + 2), method=st.sampled_from(["power", "exact", "randomized_svd", "eigsh"])
)
def test_any_int_k(backend, k, method):
    """Any k: the k top (and bottom) pairs, or a ValueError naming k exactly when k is
    outside [1, n]."""
    eig = Eigendistortion(data(backend), model(backend))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unconverged power runs
        out = check_outcome(
            lambda: eig.synthesize(method, k=k, max_iter=20, rng=0, progress=False), names="k"
        )
    assert isinstance(out, ValueError) == (not 1 <= k <= N)
    if 1 <= k <= N:
        count = {"exact": N, "randomized_svd": k}.get(method, 2 * k)
        assert tuple(eig.eigenvalues.shape) == (count,)
        assert bool(backend.xp.all(backend.xp.isfinite(eig.eigenvalues)))


# -- indexer -------------------------------------------------------------------------------------
def test_indexer_sweep(backend):
    eig = synthesized(backend)
    table = drop(bad_ints(14), "zero", "negative") | {
        "zero": accept(0),
        "negative": accept(-1, "the smallest: index n - 1"),
        "not-synthesized": reject(5),
        "out-of-range": reject(N),
        "-out-of-range": reject(-N - 1),
        "huge": reject(2**70),
        "0-d-int-array": accept(
            backend.xp.asarray(1, dtype=backend.xp.int64, device=backend.device)
        ),
    }

    def check(out):
        assert isinstance(out, int) and 0 <= out < 4

    # plenoptic's wording names the spectrum ("eigenindex must be the index of one of the
    # vectors"), after the argument
    sweep(eig.indexer, {"idx": 15}, {"idx": table}, check=check)
    fresh = Eigendistortion(data(backend), model(backend))
    check_outcome(lambda: fresh.indexer(0), names="synthesized", outcome="raise")


# -- save and load ---------------------------------------------------------------------------------
def path_table(tmp_path, name):
    """Bad paths (a str or an os.PathLike naming a file): not paths, empty, a directory."""
    return {
        **drop(wrong_kinds(), "str"),
        "int": reject(3),
        "bytes": accept(os.fsencode(tmp_path / name), "os.PathLike and bytes, as open()"),
        "pathlib": accept(tmp_path / name),
        "empty": reject(""),
        "directory": reject(tmp_path),
        "trailing-separator": reject(str(tmp_path / "sub") + os.sep),
    }


def test_save_sweep(backend, tmp_path):
    eig = synthesized(backend)

    def call(path):
        eig.save(path)
        return os.path.getsize(path)

    sweep(
        call,
        {"path": str(tmp_path / "eig.npz")},
        {"path": path_table(tmp_path, "eig.npz")},
        names={"path": ("path", "save")},
    )
    assert sorted(os.listdir(tmp_path)) == ["eig.npz"]  # nothing else written, no temporary


def test_load_sweep(backend, tmp_path):
    image, forward = data(backend), model(backend)
    saved = tmp_path / "eig.npz"
    synthesized(backend).save(saved)
    (tmp_path / "text.npz").write_text("not an archive")

    def fresh():
        return dict(path=str(saved), method=None, raise_on_checks=True, atol=1e-8, rtol=1e-5)

    def call(path, **kwargs):
        eig = Eigendistortion(image, forward)
        eig.load(path, **kwargs)
        return eig.eigendistortions, eig.eigenvalues, eig.eigenindex

    paths = path_table(tmp_path, "eig.npz") | {"not-an-archive": reject(str(tmp_path / "text.npz"))}
    tolerances = drop(bad_reals(F32), "zero", "huge") | {
        "zero": accept(0.0, "the saved image and output match exactly"),
        "huge": accept(1e39, "any finite tolerance"),
    }
    table = {
        "path": paths,
        "method": {
            **drop(wrong_kinds(), "None"),
            "None": accept(None, "any method"),
            "other": reject("lobpcg"),
            "the-file's": accept("eigsh"),
            "another-method": reject("exact"),
        },
        "raise_on_checks": bad_bools(),
        "atol": tolerances,
        "rtol": tolerances,
    }
    # a damaged file is named by its path: "cannot load '/tmp/.../text.npz': not an .npz ..."
    sweep(call, fresh, table, names={"path": ("path", "load")})


def test_missing_files_and_directories_raise_file_not_found(backend, tmp_path):
    """A path in a directory that does not exist (save) or a file that does not exist (load):
    FileNotFoundError, as ``open`` and ``torch.save``/``torch.load`` raise (an OSError kept on
    purpose, not a ValueError), naming the path; nothing is written."""
    eig = synthesized(backend)
    missing = tmp_path / "no-such-directory" / "eig.npz"
    with pytest.raises(FileNotFoundError, match="no-such-directory"):
        eig.save(missing)
    with pytest.raises(FileNotFoundError, match="no-such-file"):
        Eigendistortion(data(backend), model(backend)).load(tmp_path / "no-such-file.npz")
    assert os.listdir(tmp_path) == []


def test_load_into_a_used_object_is_refused(backend, tmp_path):
    eig = synthesized(backend)
    eig.save(tmp_path / "eig.npz")
    before = eig.result
    check_outcome(lambda: eig.load(tmp_path / "eig.npz"), names="load", outcome="raise")
    assert eig.result is before


# -- figures ---------------------------------------------------------------------------------------
@pytest.fixture
def pyplot():
    mpl = pytest.importorskip("matplotlib")
    mpl.use("Agg")
    import matplotlib.pyplot as plt

    yield plt
    plt.close("all")


def finite_pictures(fig):
    """``check`` for a figure: every picture it shows is finite."""
    for ax in getattr(fig, "axes", [fig]):
        for im in ax.get_images():
            assert np.all(np.isfinite(np.ma.getdata(im.get_array()))), "a picture holds NaN/inf"


def test_display_eigendistortions_sweep(backend, pyplot):
    eig = synthesized(backend)
    unsynthesized = Eigendistortion(data(backend), model(backend))
    scales = drop(bad_reals(F32), "zero", "negative", "huge", "list") | {
        "zero": accept(0.0),
        "negative": accept(-2.0),
        "huge": accept(1e39, "beyond float32, drawn in float64"),
        "list": accept([1.0, 2.0]),
        "list-too-short": reject([1.0]),
        "list-with-nan": reject([1.0, math.nan]),
    }
    table = {
        "eig": {
            **wrong_kinds(),
            "not-synthesized": reject(unsynthesized),
            "an-array": reject(eig.image),
        },
        "eigenindex": {
            **drop(wrong_kinds(), "list"),
            "bool": reject(True),
            "float": reject(0.0),
            "list-of-floats": reject([0.0]),
            "empty-list": reject([]),
            "not-synthesized": reject(5),
            "out-of-range": reject(N),
            "np.int64": accept(np.int64(-1)),
            "list": accept([0, -1]),
            "range": accept(range(2)),
        },
        "distortion_scale": scales,
        "process_image": {
            **drop(wrong_kinds(), "None"),
            "returns-None": reject(lambda a: None),
            "returns-str": reject(lambda a: "image"),
            "returns-a-number": reject(lambda a: 1.0),
            "clip": accept(lambda a: a.clip(0, 1)),
        },
        "suptitle": {"None": accept(None), "number": accept(1.0, "matplotlib shows str(value)")},
        "cmap": {**drop(wrong_kinds(), "None"), "None": accept(None, "matplotlib's default")},
    }
    valid = dict(
        eig=eig, eigenindex=[0, -1], distortion_scale=5.0, process_image=None,
        suptitle="Eigendistortions", cmap="gray",
    )  # fmt: skip
    names = {"eig": ("eig", "synthesize"), "eigenindex": ("eigenindex", "idx")}
    sweep(display_eigendistortions, valid, table, names=names, check=finite_pictures)


def test_plot_eigenvalues_sweep(backend, pyplot):
    eig = synthesized(backend)
    unsynthesized = Eigendistortion(data(backend), model(backend))
    _, own = pyplot.subplots()
    table = {
        "eig": {**wrong_kinds(), "not-synthesized": reject(unsynthesized)},
        "ax": {**drop(wrong_kinds(), "None"), "None": accept(None), "a-figure": reject(own.figure)},
        "logy": bad_bools(),
    }
    sweep(
        plot_eigenvalues,
        dict(eig=eig, ax=own, logy=True),
        table,
        names={"eig": ("eig", "synthesize")},
    )
