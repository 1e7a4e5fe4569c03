"""Bad-input sweep of refimpl.perturbations: AdditivePerturbation (constructor, forward,
jvp/vjp/jvp_delta/vjp_delta, the delta setter) and the three uniform_like_*_n_ball samplers.

Every file runs on every backend of the ``backend`` fixture; the rule is the harness's
(tests/bad_input/harness.py).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import backends
from refimpl.perturbations import (
    AdditivePerturbation,
    uniform_like_l1_n_ball,
    uniform_like_l2_n_ball,
    uniform_like_linf_n_ball,
)
from tests.bad_input.harness import (
    Bad,
    accept,
    bad_arrays,
    bad_ints,
    bad_reals,
    bad_rngs,
    check_outcome,
    drop,
    numpy_ints,
    reject,
    sweep,
    wrong_kinds,
)

SAMPLERS = [uniform_like_l1_n_ball, uniform_like_l2_n_ball, uniform_like_linf_n_ball]


def data(backend, shape=(3, 4), dtype="float32", seed=0):
    """Standard normal entries of the backend (from a list: see tests/test_perturbations)."""
    a = np.random.default_rng(seed).standard_normal(shape)
    return backend.xp.asarray(a.tolist(), dtype=backend.dtype(dtype), device=backend.device)


def same_shape_as(name):
    """``expect`` for sweep: the result has the shape of the argument ``name``."""

    def expect(out, kwargs):
        assert tuple(out.shape) == tuple(kwargs[name].shape), (
            f"result shape {tuple(out.shape)}, expected {tuple(kwargs[name].shape)}"
        )

    return expect


def param_ndim_table(valid):
    """Bad ``param_ndim`` values (an int in [-ndim, ndim] or None)."""
    table = drop(bad_ints(valid), "None", "zero", "negative", *numpy_ints(valid))
    table["float"] = reject(float(valid))  # never truncated
    # 0 and -1 are valid row selections; 99 is out of range for every array here
    return {**table, "out-of-range": reject(99), "-out-of-range": reject(-99)}


# -- samplers --------------------------------------------------------------------------------
@pytest.mark.parametrize("sampler", SAMPLERS, ids=lambda f: f.__name__)
def test_sampler_sweep(backend, sampler):
    x = data(backend)
    table = {
        "x": drop(bad_arrays(x), "nan", "inf", "-inf", "huge")  # a template: values unread
        | {"nan": accept(bad_arrays(x)["nan"], "x is a template: its values are not read")},
        "epsilon": drop(bad_reals("float32"), "zero")  # zero: the degenerate ball {0}
        | {"zero": accept(0.0)},
        "param_ndim": param_ndim_table(-1),
        "rng": bad_rngs(),
    }
    valid = dict(x=x, epsilon=1.0, param_ndim=-1, rng=0)
    # a 0-d x has no row for param_ndim=-1: the message names the pair (param_ndim and the
    # array's dimensions)
    names = {"x": ("x", "param_ndim")}
    sweep(sampler, valid, table, names=names, expect=same_shape_as("x"))


@pytest.mark.parametrize("sampler", SAMPLERS, ids=lambda f: f.__name__)
def test_param_ndim_and_delta_ndim_accept_numpy_integers(backend, sampler):
    x = data(backend)
    for value in numpy_ints(-1).values():
        check_outcome(
            lambda v=value.value: sampler(x, 1.0, v, rng=0), names="param_ndim", outcome="accept"
        )
        check_outcome(
            lambda v=value.value: AdditivePerturbation(x, sampler, delta_ndim=v).delta,
            names="delta_ndim",
            outcome="accept",
        )


@given(
    epsilon=st.one_of(
        st.floats(allow_nan=True, allow_infinity=True, width=64),
        st.sampled_from([1e39, 3.4e38, 1e-45, -0.0, 65504.0]),
    ),
    dtype=st.sampled_from(["float32", "float64"]),
)
@pytest.mark.parametrize("sampler", SAMPLERS, ids=lambda f: f.__name__)
def test_sampler_any_epsilon(backend, sampler, epsilon, dtype):
    """Any float radius: finite, in range and inside the ball, or a ValueError naming it."""
    x = data(backend, (2, 3), dtype)
    out = check_outcome(lambda: sampler(x, epsilon, rng=1), names="epsilon", ref=x)
    if isinstance(out, ValueError):
        return
    assert math.isfinite(epsilon) and epsilon >= 0
    with np.errstate(over="ignore"):  # epsilon rounded to dtype, one step up
        bound = np.nextafter(np.asarray(epsilon, dtype=dtype), np.inf)
    assert float(backend.xp.max(backend.xp.abs(out))) <= float(bound)


# -- AdditivePerturbation ----------------------------------------------------------------------
def test_constructor_sweep(backend):
    x = data(backend)
    table = {
        "data_or_shape": drop(bad_arrays(x), "None", "str", "list")
        | {k: v for k, v in wrong_kinds().items() if k != "list"}
        | {
            "shape-negative": reject((3, -1)),
            "shape-float": reject((3.0, 4)),
            "shape-bool": reject((True, 4)),
            "shape-np.int64": accept((np.int64(3), np.int64(4))),
        },
        "init_fn": {**drop(wrong_kinds(), "None"), "returns-None": lambda z, **k: None},
        "delta_ndim": param_ndim_table(-1),
        "dtype": {"str": "float", "int": "int32", "bool": "bool", "object": object()},
        "rng": bad_rngs(),
    }
    valid = dict(
        data_or_shape=x, init_fn=uniform_like_l2_n_ball, delta_ndim=None, dtype=None, rng=0
    )

    def build(**kwargs):
        with backends.use(backend.name, device=backend.device):  # for shape-only calls
            return AdditivePerturbation(**kwargs).delta

    # init_fn's own errors reach the caller unchanged: a 0-d delta has no row for the
    # sampler's default param_ndim=-1
    names = {
        "data_or_shape": ("data_or_shape", "param_ndim"),
        "init_fn": ("init_fn", "init_fn(...) result"),
    }
    sweep(build, valid, table, names=names)


def test_constructor_checks_the_init_result(backend):
    x = data(backend)

    def returning(value):
        return lambda zeros, **kwargs: value

    table = {label: returning(v) for label, v in drop(bad_arrays(x), "nan", "inf", "-inf").items()}
    # the initial delta may hold any value, as a parameter may (see the setter)
    table |= {k: Bad(returning(bad_arrays(x)[k]), finite=False) for k in ("nan", "inf", "-inf")}
    table["other-shape"] = reject(lambda zeros, **kwargs: zeros[:1, ...])

    def build(init_fn):
        return AdditivePerturbation(x, init_fn).delta

    names = {"init_fn": ("init_fn", "init_fn(...) result")}
    sweep(build, {"init_fn": returning(x)}, {"init_fn": table}, names=names)


def perturbation(backend, x, delta_ndim=-1):
    p = AdditivePerturbation(x, delta_ndim=delta_ndim)
    p.delta = data(backend, tuple(p.delta.shape), seed=1)
    return p


@pytest.mark.parametrize("method", ["__call__", "jvp", "vjp", "jvp_delta", "vjp_delta"])
def test_derivative_sweep(backend, method):
    x = data(backend)
    p = perturbation(backend, x)
    second = {"jvp": x, "vjp": p(x), "jvp_delta": p.delta, "vjp_delta": p(x)}
    valid = {"x": x}
    table = {"x": drop(bad_arrays(x), "nan", "inf", "-inf", "huge")}
    if method != "__call__":
        name = "u" if method.startswith("vjp") else "v"
        valid[name] = second[method]
        table[name] = drop(bad_arrays(second[method]), "nan", "inf", "-inf", "huge")
        table[name]["wrong-shape"] = reject(second[method][..., :1])
        # a complex (co)tangent of a real value: its imaginary part would be dropped
        table[name]["complex"] = reject(table[name]["complex"])
    # NaN/inf in the data or the (co)tangent pass through, as they do through autograd:
    # these linear maps are exact, and the result holds exactly the non-finite entries given
    for arg in list(table):
        for label in ("nan", "inf"):
            table[arg][label] = Bad(bad_arrays(valid[arg])[label], finite=False)
    # jvp: x's shape must match v's (the message names v, the pair's other member)
    names = {"x": ("x", "v")} if method == "jvp" else None
    sweep(getattr(p, method), valid, table, names=names)


def test_real_delta_of_complex_data_gets_the_real_cotangent(backend):
    """A real delta (dtype=float64) added to complex data: ``vjp_delta`` of a complex
    cotangent is its real part (autograd's gradient of a real parameter) on every backend."""
    x = data(backend, dtype="float64")
    z = x * (1 + 2j)
    p = AdditivePerturbation(z, delta_ndim=-1, dtype=backend.dtype("float64"))
    grad = check_outcome(lambda: p.vjp_delta(z, z), names="u", ref=p.delta, outcome="accept")
    np.testing.assert_allclose(backend.to_numpy(grad), backend.to_numpy(x).sum(axis=0))


def test_delta_setter_sweep(backend):
    x = data(backend)
    p = perturbation(backend, x)
    good = p.delta

    def assign(delta):
        q = perturbation(backend, x)
        q.delta = delta
        return q.delta

    table = {"delta": {**bad_arrays(good), "wrong-shape": reject(good[:1, ...])}}
    # a parameter may hold any value, as an nn.Parameter may: NaN/inf are kept, not refused
    for label in ("nan", "inf", "-inf"):
        table["delta"][label] = Bad(table["delta"][label], finite=False)
    sweep(assign, {"delta": good}, table)
    # a refused value leaves the old delta in place
    for value in drop(bad_arrays(good), "nan", "inf", "-inf", "huge").values():
        with pytest.raises((TypeError, ValueError)):
            p.delta = value
        assert p.delta is good
