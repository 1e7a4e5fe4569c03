"""Bad-input sweep of the random numbers: ``backends.as_rng`` and the draws of an ``Rng``
(``uniform``, ``normal``, ``exponential``, ``gumbel``, ``integers``).

Every test runs on every backend of the ``backend`` fixture; the rule is the harness's
(tests/bad_input/harness.py). The draws' results must be arrays of the backend, on the
requested device, of the requested shape, and finite.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import backends
from tests.bad_input.harness import (
    accept,
    bad_ints,
    bad_reals,
    bad_rngs,
    check_outcome,
    drop,
    reject,
    sweep,
    wrong_kinds,
)


def template(backend):
    return backend.xp.zeros((2, 3), dtype=backend.dtype("float32"), device=backend.device)


# -- as_rng -----------------------------------------------------------------------------------
def test_as_rng_sweep(backend):
    x = template(backend)

    def draw(**kwargs):
        return backends.as_rng(**kwargs).uniform((2,), dtype="float32")

    other = {"numpy": "torch"}.get(backend.name, "numpy")
    # with like=: the generator follows the array; a backend or device that disagrees with
    # it is refused rather than ignored
    like_table = {
        "rng": bad_rngs(),
        "like": {**drop(wrong_kinds(), "None"), "bool": True, "float": 1.0},
        "backend": {"other": reject(other), "unknown": reject("nope"), "int": reject(3)},
    }
    valid = {"rng": 0, "like": x, "backend": None}
    sweep(draw, valid, like_table, names={"like": ("like",)})
    # with backend= and device=: the adapter's names and devices
    named_table = {
        "rng": bad_rngs(),
        "backend": {**drop(wrong_kinds(), "None"), "unknown": reject("nope"), "int": reject(3)},
        "device": {"unknown": reject("nope"), "int": reject(-7), "object": reject(object())},
    }
    valid = {"rng": 0, "backend": backend.name, "device": backend.device}
    sweep(draw, valid, named_table)


def test_generator_of_another_library_is_refused(backend):
    import torch

    foreign = np.random.default_rng(0) if backend.name == "torch" else torch.Generator()
    if backend.name != "torch":  # a numpy Generator is every backend's host generator
        out = check_outcome(lambda: backends.as_rng(foreign, like=template(backend)), names="rng")
        assert isinstance(out, TypeError)


# -- the draws --------------------------------------------------------------------------------
def shape_table():
    """Bad shapes (an int or a sequence of non-negative ints)."""
    return {
        **drop(wrong_kinds(), "list"),
        "bool": reject(True),
        "float": reject((2.0,)),
        "negative": reject((-1,)),
        "nan": reject(math.nan),
        "np.int64": accept((np.int64(2), np.int64(3))),
        "int": accept(3),
        "empty": accept(()),
        "zero-size": accept((0, 3)),
    }


def dtype_table(backend):
    table = {
        "None": reject(None),
        "int": reject("int32"),
        "bool": reject("bool"),
        "complex": reject("complex64"),
        "unknown": reject("float33"),
        "float": accept("float", "numpy's name for float64"),
        "object": reject(object()),
        "np.dtype": accept(np.dtype("float64")),
        "float16": accept("float16") if backend.name != "array_api_strict" else reject("float16"),
    }
    has_bf16 = getattr(backend.xp, "bfloat16", None) is not None
    table["bfloat16"] = accept("bfloat16") if has_bf16 else reject("bfloat16")
    return table


def device_table(backend):
    return {"unknown": reject("nope"), "object": reject(object()), "int": reject(-7)}


def expect_shape(out, kwargs):
    shape = kwargs["shape"]
    want = (shape,) if isinstance(shape, int) else tuple(int(s) for s in shape)
    assert tuple(out.shape) == want, (tuple(out.shape), want)


def checked_place(backend):
    def check(out):
        backend.assert_same_place(out)

    return check


DRAWS = {
    "uniform": dict(low=-1.0, high=1.0),
    "normal": dict(loc=0.0, scale=1.0),
    "exponential": dict(scale=1.0),
    "gumbel": dict(loc=0.0, scale=1.0),
}


@pytest.mark.parametrize("kind", sorted(DRAWS))
def test_draw_sweep(backend, kind):
    rng = backends.as_rng(0, like=template(backend))
    params = DRAWS[kind]
    table = {
        "shape": shape_table(),
        "dtype": dtype_table(backend),
        "device": device_table(backend),
    }
    for name in params:
        table[name] = bad_reals("float32")
        if name in ("loc", "low", "high"):
            table[name] |= {"negative": accept(-1.0 if name != "high" else -0.5)}
        if name == "scale":
            table[name] |= {"zero": accept(0.0), "negative": reject(-1.0)}
    if kind == "uniform":  # low < high
        table["low"]["np.float64"] = accept(np.float64(-0.5))
        table["low"]["zero"] = accept(0.0)
        table["high"]["zero"] = accept(0.0)
        table["high"]["equal"] = reject(-1.0)
    valid = dict(shape=(2, 3), dtype="float32", device=backend.device, **params)
    sweep(
        getattr(rng, kind),
        valid,
        table,
        check=checked_place(backend),
        expect=expect_shape,
    )


def test_integers_sweep(backend):
    rng = backends.as_rng(0, like=template(backend))
    table = {
        "low": drop(bad_ints(0), "zero", "negative")
        | {"too-small": reject(-(2**63) - 1), "equal": reject(5)},
        "high": drop(bad_ints(5), "zero", "negative")
        | {"too-large": reject(2**63), "below-low": reject(-1)},
        "shape": shape_table(),
        "device": device_table(backend),
    }
    valid = dict(low=0, high=5, shape=(2, 3), device=backend.device)
    sweep(rng.integers, valid, table, check=checked_place(backend), expect=expect_shape)


@given(
    kind=st.sampled_from(["normal", "gumbel", "exponential"]),
    loc=st.floats(-1e39, 1e39),
    scale=st.floats(0, 1e39),
    dtype=st.sampled_from(["float32", "float64"]),
)
def test_draws_of_any_location_and_scale_are_finite(backend, kind, loc, scale, dtype):
    """Any location and scale: finite draws of the dtype, or a ValueError naming them."""
    rng = backends.as_rng(1, like=template(backend))
    params = dict(scale=scale) if kind == "exponential" else dict(loc=loc, scale=scale)
    out = check_outcome(
        lambda: getattr(rng, kind)((64,), dtype=dtype, **params), names=("loc", "scale")
    )
    if isinstance(out, ValueError):
        top = float(np.finfo(dtype).max)
        assert abs(params.get("loc", 0.0)) + 40 * scale > top
        return
    values = backend.to_numpy(out)
    assert np.all(np.isfinite(values)), (kind, params, values)


@given(
    low=st.floats(-1e39, 1e39),
    width=st.floats(0, 1e39),
    dtype=st.sampled_from(["float16", "float32", "float64"]),
)
def test_uniform_of_any_interval_is_finite_and_inside(backend, low, width, dtype):
    if dtype == "float16" and backend.name == "array_api_strict":
        return  # no float16 there (the dtype sweep checks that it is refused)
    rng = backends.as_rng(2, like=template(backend))
    high = low + width
    out = check_outcome(
        lambda: rng.uniform((32,), dtype=dtype, low=low, high=high), names=("low", "high")
    )
    if isinstance(out, ValueError):
        return
    values = backend.to_numpy(out).astype(np.float64)
    assert np.all(np.isfinite(values))
    assert np.all(values >= float(np.asarray(low, dtype=dtype)))
    assert np.all(values <= float(np.asarray(high, dtype=dtype)))
