"""Bad-input sweep of refimpl.perturbed: ``perturbed`` (its options and the calls of the
``Perturbed`` it returns), ``fenchel_young_loss`` (options, ``loss``, ``value_and_grad``) and
the solvers ``argmax_one_hot``, ``hard_or``, ``ranks``, ``top_k_one_hot``, ``shortest_path``.

Every test runs on every backend of the ``backend`` fixture with 8 samples per call; the
rule is the harness's (tests/bad_input/harness.py).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from refimpl.perturbed import (
    argmax_one_hot,
    fenchel_young_loss,
    hard_or,
    perturbed,
    ranks,
    shortest_path,
    top_k_one_hot,
)
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

#: the options of a fast valid call (8 samples)
OPTIONS = dict(
    num_samples=8,
    sigma=0.5,
    noise="normal",
    batched=True,
    rng=0,
    chunk_size=None,
    sampling="mc",
    progress=False,
)

#: a non-finite (co)tangent propagates through these linear maps, as through autograd
NAN_DIRECTION = "a NaN or infinite tangent or cotangent propagates (a linear map of it)"


def data(backend, shape=(2, 4), dtype="float32", seed=0):
    a = np.random.default_rng(seed).standard_normal(shape)
    return backend.xp.asarray(a.tolist(), dtype=backend.dtype(dtype), device=backend.device)


def option_table():
    """Bad values of every option of ``perturbed`` / ``fenchel_young_loss``."""
    positive_int = drop(bad_ints(8), "zero", "negative", "float") | {
        "zero": reject(0),
        "negative": reject(-1),
        "float": reject(8.0),
    }
    return {
        "num_samples": positive_int,
        "sigma": bad_reals("float32") | {"zero": reject(0.0)},
        "noise": {**wrong_kinds(), "other": reject("cauchy"), "gumbel": accept("gumbel")},
        "batched": bad_bools(),
        "rng": bad_rngs(),
        "chunk_size": drop(positive_int, "None") | {"None": accept(None)},
        "sampling": {**wrong_kinds(), "other": reject("sobol"), "qmc": accept("qmc")},
        "progress": drop(bad_bools(), "None") | {"None": accept(None)},
    }


# -- perturbed: options -----------------------------------------------------------------------
def test_perturbed_options_sweep(backend):
    theta = data(backend)
    # func=None is valid: perturbed(**options) is then a decorator (test below)
    funcs = drop(wrong_kinds(), "None") | {"returns-None": reject(lambda x: None)}
    table = option_table() | {"baseline": bad_bools(), "func": funcs}
    valid = dict(OPTIONS, baseline=True, func=argmax_one_hot)

    def call(func, **options):
        return perturbed(func, **options).jvp(theta, theta)

    sweep(call, valid, table)


def test_decorator_checks_options_when_decorating():
    for name, cases in option_table().items():
        for label, value in cases.items():
            bad = value if isinstance(value, Bad) else Bad(value)
            if bad.outcome == "accept":
                continue
            options = dict(OPTIONS, **{name: bad.value})
            out = check_outcome(lambda o=options: perturbed(**o), names=name)
            if bad.outcome == "raise":
                assert isinstance(out, TypeError | ValueError), (name, label)


# -- perturbed: the calls ---------------------------------------------------------------------
def theta_table(theta):
    """Bad thetas: NaN and inf are refused (check_finite); a huge entry leaves no room for
    the noise (check_noise_scale names sigma and theta)."""
    table = bad_arrays(theta) | {"1-d": reject(theta[0, ...])}
    for label in ("nan", "inf", "-inf", "huge", "0-d", "empty"):
        table[label] = reject(table[label])
    return table


def direction_table(a):
    table = bad_arrays(a) | {"wrong-shape": reject(a[:1, ...])}
    for label in ("nan", "inf", "-inf"):
        table[label] = Bad(table[label], finite=False, note=NAN_DIRECTION)
    # the dtype's largest value times |J| ~ 1/sigma is beyond the dtype: inf, as the exact
    # product rounds
    table["huge"] = Bad(table["huge"], finite=False, note="J v beyond the dtype")
    table["complex"] = reject(table["complex"])  # its imaginary part would be dropped
    return table


# An infinite or huge direction u/v given by the caller makes numpy's matmul warn, as
# np.dot does on the same input (the result is the inf/NaN the sweep expects).
@pytest.mark.filterwarnings("ignore:(overflow|invalid value) encountered in matmul:RuntimeWarning")
@pytest.mark.parametrize(
    "method", ["__call__", "jvp", "vjp", "value_and_vjp", "jacobian", "value_and_jacobian"]
)
def test_perturbed_call_sweep(backend, method):
    theta = data(backend)
    p = perturbed(argmax_one_hot, **OPTIONS)
    valid = {"theta": theta}
    table = {"theta": theta_table(theta)}
    if method in ("jvp", "vjp", "value_and_vjp"):
        name = "v" if method == "jvp" else "u"
        valid[name] = theta
        table[name] = direction_table(theta)
    # sigma is named with theta when theta's entries leave no room for the noise
    names = {"theta": ("theta", "sigma")}
    sweep(getattr(p, method), valid, table, names=names)


def test_estimate_and_replace_sweep(backend):
    """``p.estimate``'s own arguments, and ``p.replace`` with every bad option."""
    theta = data(backend)
    p = perturbed(argmax_one_hot, **OPTIONS)
    flags = drop(bad_bools(), "None")
    table = {
        "args": {"str": reject("ab"), "dict": reject({}), "int": reject(3), "None": reject(None)},
        "kwargs": {"str": reject("ab"), "list": reject([1]), "int": reject(3)},
        "jacobian": flags,
        "f_sigma": flags,
        "jacobian_limit": {
            **drop(wrong_kinds(), "None"),
            "one-int": reject(10),
            "negative": reject((-1, -1)),
            "floats": reject((1.0, 2.0)),
        },
    }
    valid = dict(args=(), kwargs={}, jacobian=True, f_sigma=True, jacobian_limit=(1000, 1000))
    sweep(lambda **kw: p.estimate(theta, **kw), valid, table)
    for name, cases in option_table().items():
        sweep(lambda **kw: p.replace(**kw)(theta), {name: OPTIONS[name]}, {name: cases})
    out = check_outcome(lambda: p.replace(colour=1), names="colour", outcome="raise")
    assert isinstance(out, TypeError)


@given(
    sigma=st.one_of(st.floats(1e-30, 1e38), st.sampled_from([8.5e36, 8.6e36, 1e37])),
    scale=st.sampled_from([1.0, 1e30, 1e38]),
)
def test_perturbed_any_sigma_and_theta_scale(backend, sigma, scale):
    """Any sigma with any magnitude of theta: a finite value, or a ValueError naming sigma
    exactly when ``max|theta| + 40 sigma`` is beyond float32."""
    theta = data(backend) * scale
    p = perturbed(argmax_one_hot, **dict(OPTIONS, sigma=sigma))
    out = check_outcome(lambda: p(theta), names="sigma", ref=theta)
    peak = float(np.max(np.abs(backend.to_numpy(theta))))
    assert isinstance(out, ValueError) == (peak + 40 * sigma > float(np.finfo(np.float32).max))


def test_solver_output_sweep(backend):
    """What ``func`` returns is checked: one result per row, of theta's library and device."""
    theta = data(backend)

    def returning(make):
        return lambda x: make(x)

    funcs = {
        "None": reject(lambda x: None),
        "float": reject(lambda x: 1.0),
        "list": reject(lambda x: [1.0]),
        "scalar": reject(lambda x: x[0, 0]),
        "wrong-rows": reject(lambda x: x[:1, ...]),
        "complex": reject(lambda x: x * (1 + 1j)),
        "int": accept(lambda x: backend.xp.astype(x > 0, backend.xp.int64)),
        "bool": accept(lambda x: x > 0),
        "numpy-or-torch": reject(lambda x: bad_arrays(x)["other-library"]),
    }

    def call(func):
        return perturbed(func, **OPTIONS)(theta)

    sweep(call, {"func": argmax_one_hot}, {"func": funcs})


# -- the Fenchel-Young loss -------------------------------------------------------------------
def test_fenchel_young_options_sweep(backend):
    theta, y = data(backend), argmax_one_hot(data(backend, seed=1))
    table = option_table() | {
        "maximize": bad_bools(),
        "func": {**wrong_kinds(), "not-shaped-like-theta": reject(hard_or)},
    }
    valid = dict(OPTIONS, maximize=True, func=argmax_one_hot)

    def call(func, **options):
        return fenchel_young_loss(func, **options).value_and_grad(theta, y)

    sweep(call, valid, table)


@pytest.mark.parametrize("method", ["__call__", "value_and_grad", "grad"])
def test_fenchel_young_call_sweep(backend, method):
    theta, y = data(backend), argmax_one_hot(data(backend, seed=1))
    loss = fenchel_young_loss(argmax_one_hot, **OPTIONS)
    ys = bad_arrays(y) | {
        "wrong-shape": reject(y[:1, ...]),
        "int": accept(bad_arrays(y)["int"], "an integer target is cast"),
        "bool": accept(bad_arrays(y)["bool"], "a bool target is cast"),
        "complex": reject(bad_arrays(y)["complex"]),
    }
    for label in ("nan", "inf", "-inf"):  # a target is data: a NaN target gives a NaN loss
        ys[label] = Bad(ys[label], finite=False, note="the loss is linear in y")
    table = {"theta": theta_table(theta), "y": ys}
    names = {"theta": ("theta", "sigma")}
    sweep(getattr(loss, method), {"theta": theta, "y": y}, table, names=names)


# -- solvers ----------------------------------------------------------------------------------
def x_table(x):
    table = bad_arrays(x)
    table["0-d"] = reject(table["0-d"])
    return table


def axis_table(ndim):
    table = drop(bad_ints(-1), "zero", "negative")  # 0 and -1 are valid axes
    return table | {"out-of-range": reject(ndim), "-out-of-range": reject(-ndim - 1)}


@pytest.mark.parametrize("solver", [argmax_one_hot, ranks], ids=lambda f: f.__name__)
def test_axis_solver_sweep(backend, solver):
    x = data(backend)
    table = {"x": x_table(x), "axis": axis_table(x.ndim)}
    if solver is argmax_one_hot:
        table["x"]["empty-axis"] = reject(x[:, :0])
    sweep(solver, {"x": x, "axis": -1}, table, names={"x": ("x", "axis")})


def test_hard_or_sweep(backend):
    x = data(backend)
    sweep(hard_or, {"x": x}, {"x": x_table(x)}, names={"x": ("x", "axis")})


def test_top_k_one_hot_sweep(backend):
    x = data(backend)
    table = {
        "x": x_table(x),
        "k": drop(bad_ints(2), "zero") | {"zero": accept(0), "too-many": reject(5)},
        "axis": axis_table(x.ndim),
    }
    # k is checked against the axis length: a short x is named through k
    names = {"x": ("x", "axis", "k")}
    sweep(top_k_one_hot, {"x": x, "k": 2, "axis": -1}, table, names=names)


def test_shortest_path_sweep(backend):
    w = backend.xp.abs(data(backend, (2, 4, 4))) + 1.0
    nodes = drop(bad_ints(0), "zero", "negative", "float") | {
        "float": reject(1.0),
        "out-of-range": reject(4),
        "-out-of-range": reject(-5),
    }
    table = {
        "weights": bad_arrays(w) | {"not-square": reject(w[..., :3]), "1-d": reject(w[0, 0, ...])},
        "source": nodes,
        "target": nodes,
        "symmetrize": bad_bools(),
    }
    # an infinite cost is a missing edge: the path avoids it (or there is none: zeros)
    valid = {"weights": w, "source": 0, "target": -1, "symmetrize": True}
    sweep(shortest_path, valid, table)


@given(value=st.floats(allow_nan=True, allow_infinity=True, width=32))
def test_solvers_of_any_entry_return_vertices(backend, value):
    """One entry of any value (NaN, +-inf, huge, tiny): every solver returns a finite vertex
    of its set (one-hot, +-1, a permutation, k-hot, a path indicator)."""
    x = data(backend)
    x = backend.xp.where(
        backend.xp.asarray([[True, False, False, False], [False] * 4], device=backend.device),
        backend.xp.asarray(value, dtype=x.dtype, device=backend.device),
        x,
    )
    for solver in (argmax_one_hot, hard_or, ranks, lambda x: top_k_one_hot(x, 2)):
        out = backend.to_numpy(check_outcome(lambda s=solver: s(x), names="x", outcome="accept"))
        assert np.all(np.isfinite(out)), (solver, value, out)
    one_hot = backend.to_numpy(argmax_one_hot(x))
    assert np.all(one_hot.sum(axis=-1) == 1)
    assert math.isfinite(float(backend.to_numpy(ranks(x)).sum()))
