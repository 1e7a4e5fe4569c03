"""Bad-input sweep of refimpl.optim: the pure optimizers (factories, ``init``, ``update``),
the stateful classes (constructor, ``step``), the gradient transforms, the LMOs, the
projections, ``fw_step_size``, ``frank_wolfe_update`` and ``duality_gap``.

Every test runs on every backend of the ``backend`` fixture; the rule is the harness's
(tests/bad_input/harness.py).

NaN: a NaN gradient or parameter entry propagates to the result (the documented NaN rule of
``refimpl.optim.transforms``: ``sign(NaN) = NaN``, and top-q always keeps NaN), so the
tables mark NaN inputs ``finite=False``; infinite entries have well-defined limits and must
give finite results.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import refimpl.optim as ro
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
    numpy_ints,
    reject,
    sweep,
    wrong_kinds,
)

NAN_PROPAGATES = "a NaN entry propagates (the NaN rule of refimpl.optim.transforms)"
#: frank_wolfe and frank_wolfe_update take the direction itself (the documented FrankWolfe's
#: grads are the negative LMO): an infinite direction is an infinite step, as there
INF_DIRECTION = "an infinite direction moves the parameter to infinity, as in FrankWolfe"


def data(backend, shape=(3, 4), dtype="float32", seed=0, scale=1.0):
    """Standard normal entries of the backend, times ``scale``, clipped to the dtype's range
    (finite, however large ``scale``)."""
    top = float(np.finfo(dtype).max)
    a = np.clip(np.random.default_rng(seed).standard_normal(shape) * scale, -top, top)
    return backend.xp.asarray(a.tolist(), dtype=backend.dtype(dtype), device=backend.device)


def array_table(x):
    """``bad_arrays(x)`` with NaN marked as propagating."""
    table = bad_arrays(x)
    table["nan"] = Bad(table["nan"], finite=False, note=NAN_PROPAGATES)
    return table


def param_ndim_table():
    """Bad ``param_ndim`` values (an int in [-ndim, ndim] or None; -1 is the valid one)."""
    table = drop(bad_ints(-1), "None", "zero", "negative", *numpy_ints(-1))
    table["float"] = reject(-1.0)  # never truncated
    return {**table, "out-of-range": reject(99), "-out-of-range": reject(-99)}


def reals(*, zero_ok=True, negative_ok=False):
    """``bad_reals("float32")`` with the entries the argument accepts marked as such."""
    table = bad_reals("float32")
    if zero_ok:
        table["zero"] = accept(0.0)
    if negative_ok:
        table["negative"] = accept(-1.0)
    return table


def same_shape_as(name):
    def expect(out, kwargs):
        assert tuple(out.shape) == tuple(kwargs[name].shape), (
            f"result shape {tuple(out.shape)}, expected {tuple(kwargs[name].shape)}"
        )

    return expect


# -- the pure optimizers: factories -----------------------------------------------------------
FW_OPTIONS = {
    "lr": reals(),
    "use_default_lr_schedule": bad_bools(),
    "div_by_zero_eps": reals(),
}
BALL_OPTIONS = {**FW_OPTIONS, "epsilon": reals(), "param_ndim": param_ndim_table()}

FW_VALID = dict(lr=2.0, use_default_lr_schedule=True, div_by_zero_eps=1e-12)
BALL_VALID = dict(FW_VALID, epsilon=1.0, param_ndim=-1)

FACTORIES = {
    "frank_wolfe": (
        ro.frank_wolfe,
        dict(FW_VALID, lmo_scaling_factor=1.0),
        {**FW_OPTIONS, "lmo_scaling_factor": reals(negative_ok=True)},
    ),
    "l1_frank_wolfe": (ro.l1_frank_wolfe, BALL_VALID, BALL_OPTIONS),
    "l2_frank_wolfe": (ro.l2_frank_wolfe, BALL_VALID, BALL_OPTIONS),
    "linf_frank_wolfe": (ro.linf_frank_wolfe, BALL_VALID, BALL_OPTIONS),
    "l1q_frank_wolfe": (
        ro.l1q_frank_wolfe,
        dict(BALL_VALID, q=0.5, dq=0.2, rng=0),
        {
            **BALL_OPTIONS,
            "q": reals() | {"above-one": reject(1.5)},
            "dq": reals() | {"above-one": reject(1.5)},
            "rng": bad_rngs(),
        },
    ),
    "l2_projected": (
        ro.l2_projected,
        dict(epsilon=1.0, lr=0.5, param_ndim=-1, div_by_zero_eps=1e-12, margin=1e-7),
        {
            "epsilon": reals(),
            "lr": reals(),
            "param_ndim": param_ndim_table(),
            "div_by_zero_eps": reals(),
            "margin": reals(),
        },
    ),
    "linf_projected": (
        ro.linf_projected,
        dict(epsilon=1.0, lr=0.5, param_ndim=None),
        {"epsilon": reals(), "lr": reals(), "param_ndim": param_ndim_table() | {"None": None}},
    ),
}


def two_steps(opt, params, grads):
    """``init`` then two ``update`` calls; the new parameters."""
    state = opt.init(params)
    for g in grads:
        params, state = opt.update(g, state, params)
    return params


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_factory_sweep(backend, name):
    """Every option, built bad, is refused naming it, or the optimizer runs finite steps."""
    factory, valid, table = FACTORIES[name]
    x = data(backend)
    grads = [data(backend, seed=1), data(backend, seed=2)]
    sweep(lambda **options: two_steps(factory(**options), x, grads), valid, table)


# -- the pure optimizers: init and update -----------------------------------------------------
def params_table(x):
    """Bad ``params`` (an array or a sequence of arrays)."""
    table = array_table(x)
    table |= {"empty-list": reject([]), "list-with-None": reject([x, None])}
    table["list-of-str"] = reject(["x"])
    return table


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_init_sweep(backend, name):
    factory, options, _ = FACTORIES[name]
    x = data(backend)
    opt = factory(**options)
    table = {"params": drop(params_table(x), "nan", "inf", "-inf")}  # values unread by init
    sweep(lambda params: opt.init(params).step, {"params": x}, table, names=_PARAM_NAMES)


_PARAM_NAMES = {
    "params": ("params", "parameter 0", "parameter 1", "param_ndim"),
    "grads": ("grads", "gradient", "gradients"),
    "state": ("state",),
}


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_update_sweep(backend, name):
    """``update(grads, state, params)`` with one argument bad; a refused call changes
    nothing (the state is a NamedTuple: the caller's is never modified)."""
    factory, options, _ = FACTORIES[name]
    x, g = data(backend), data(backend, seed=1)
    opt = factory(**options)
    other = ro.l2_frank_wolfe(epsilon=1.0) if name != "l2_frank_wolfe" else ro.frank_wolfe()
    grads = array_table(g) | {
        "None": accept(None, "no gradient: the parameter is left alone, as torch skips it"),
        "list": reject([g, g]),
        "wrong-shape": reject(g[:1, ...]),
        "other-dtype": reject(data(backend, dtype="float64")),
    }
    states = {
        **drop(wrong_kinds(), "list"),
        "tuple": (0,),
        "other-optimizer": reject(other.init(x)),
        "two-parameters": reject(opt.init([x, x])),
    }
    if name == "frank_wolfe":
        for label in ("inf", "-inf"):
            grads[label] = Bad(grads[label], finite=False, note=INF_DIRECTION)
    params = params_table(x) | {"two-parameters": reject([x, x])}
    params["inf"] = Bad(params["inf"], finite=False, note="an infinite parameter stays so")
    params["-inf"] = Bad(params["-inf"], finite=False, note="an infinite parameter stays so")

    def valid():
        return {"grads": g, "state": opt.init(x), "params": x}

    def update(grads, state, params):
        return opt.update(grads, state, params)[0]

    table = {"grads": grads, "state": states, "params": params}
    sweep(update, valid, table, names=_PARAM_NAMES)


def test_param_ndim_accepts_numpy_integers(backend):
    x = data(backend)
    calls = {
        "l2_frank_wolfe": lambda n: two_steps(ro.l2_frank_wolfe(epsilon=1.0, param_ndim=n), x, [x]),
        "l2_projected": lambda n: two_steps(
            ro.l2_projected(epsilon=1.0, lr=0.5, param_ndim=n), x, [x]
        ),
        "normalize_gradient": lambda n: ro.normalize_gradient(x, 2, param_ndim=n),
        "project_l1_ball": lambda n: ro.project_l1_ball(x, 1.0, n),
    }
    for call in calls.values():
        for value in numpy_ints(-1).values():
            check_outcome(lambda c=call, v=value.value: c(v), names="param_ndim", outcome="accept")


# -- the stateful classes ---------------------------------------------------------------------
CLASSES = {
    "FrankWolfe": (ro.FrankWolfe, FACTORIES["frank_wolfe"][1]),
    "L1FrankWolfe": (ro.L1FrankWolfe, BALL_VALID),
    "L2FrankWolfe": (ro.L2FrankWolfe, BALL_VALID),
    "LinfFrankWolfe": (ro.LinfFrankWolfe, BALL_VALID),
    "L1qFrankWolfe": (ro.L1qFrankWolfe, FACTORIES["l1q_frank_wolfe"][1]),
    "L2ProjectedOptim": (
        ro.L2ProjectedOptim,
        dict(epsilon=1.0, lr=0.5, param_ndim=-1, div_by_zero_eps=1e-12),
    ),
    "LinfProjectedOptim": (ro.LinfProjectedOptim, FACTORIES["linf_projected"][1]),
}


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_class_constructor_sweep(backend, name):
    cls, options = CLASSES[name]
    x = data(backend)
    table = {
        "params": drop(params_table(x), "nan", "inf", "-inf")
        | {
            "group-without-params": reject([{"lr": 1.0}]),
            "group-unknown-option": reject([{"params": [x], "colour": 1}]),
            "mixed-groups": reject([x, {"params": [x]}]),
        }
    }
    opt_table = {k: v for k, v in FACTORIES[_factory_name(name)][2].items() if k in options}
    table |= opt_table

    def build(**kwargs):
        opt = cls(**kwargs)
        return [p for group in opt.param_groups for p in group["params"]]

    # an unknown option in a group is named itself ("unknown option(s) ['colour'] ...")
    names = _PARAM_NAMES | {"params": (*_PARAM_NAMES["params"], "unknown option")}
    sweep(build, {"params": [x], **options}, table, names=names)


def _factory_name(cls_name):
    return {
        "FrankWolfe": "frank_wolfe",
        "L1FrankWolfe": "l1_frank_wolfe",
        "L2FrankWolfe": "l2_frank_wolfe",
        "LinfFrankWolfe": "linf_frank_wolfe",
        "L1qFrankWolfe": "l1q_frank_wolfe",
        "L2ProjectedOptim": "l2_projected",
        "LinfProjectedOptim": "linf_projected",
    }[cls_name]


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_class_step_sweep(backend, name):
    """``step(grads)`` with bad gradients; a refused step leaves the optimizer unchanged."""
    cls, options = CLASSES[name]
    x, g = data(backend), data(backend, seed=1)
    table = {
        "grads": array_table(g)
        | {
            "empty-list": reject([]),
            "two": reject([g, g]),
            "wrong-shape": reject(g[:1, ...]),
        }
    }
    if name == "FrankWolfe":
        for label in ("inf", "-inf"):
            table["grads"][label] = Bad(table["grads"][label], finite=False, note=INF_DIRECTION)

    def step(opt, grads):
        before = (list(opt.param_groups[0]["params"]), opt.state)
        try:
            return opt.step(grads if isinstance(grads, list) else [grads])[0]
        except (TypeError, ValueError):
            after = (opt.param_groups[0]["params"], opt.state)
            assert after[1] == before[1], "a refused step changed the state"
            assert all(a is b for a, b in zip(after[0], before[0], strict=True)), (
                "a refused step changed the parameters"
            )
            raise

    def valid():  # a fresh optimizer for every case
        return {"opt": cls([x], **options), "grads": g}

    sweep(step, valid, table, names=_PARAM_NAMES)


# -- transforms -------------------------------------------------------------------------------
def test_sign_gradient_sweep(backend):
    g = data(backend)
    names = {"g": ("g", "gradient")}  # "the gradient must ..."
    sweep(ro.sign_gradient, {"g": g}, {"g": array_table(g)}, names=names, expect=same_shape_as("g"))


@pytest.mark.parametrize(
    "fn, valid, extra",
    [
        (ro.normalize_gradient, dict(ord=2, div_by_zero_eps=1e-12), "ord"),
        (ro.top_q_gradient, dict(q=0.5), "q"),
        (ro.l1q_gradient, dict(q=0.5, div_by_zero_eps=1e-12), "q"),
        (ro.l1_direction, {}, None),
        (ro.l2_direction, dict(div_by_zero_eps=1e-12), None),
        (ro.l1q_direction, dict(q=0.5), "q"),
    ],
    ids=lambda v: getattr(v, "__name__", None),
)
def test_row_transform_sweep(backend, fn, valid, extra):
    """The per-row transforms and directions: the gradient, ``param_ndim``, and their own
    number (``ord`` in {1, 2}, ``q`` in [0, 1], ``div_by_zero_eps >= 0``)."""
    g = data(backend)
    table = {"g": array_table(g), "param_ndim": param_ndim_table()}
    if fn is ro.top_q_gradient:  # top-q keeps the kept entries' values, infinite or not
        for label in ("inf", "-inf"):
            table["g"][label] = Bad(table["g"][label], finite=False, note="kept as it is")
    if extra == "ord":
        table["ord"] = {**wrong_kinds(), "bool": True, "three": reject(3), "inf": reject(math.inf)}
    elif extra == "q":
        table["q"] = reals() | {"above-one": reject(1.5)}
    if "div_by_zero_eps" in valid:
        table["div_by_zero_eps"] = reals()
    # a gradient named by its role: "the gradient must ..."
    names = {"g": ("g", "gradient", "param_ndim")}
    sweep(fn, {"g": g, "param_ndim": -1, **valid}, table, names=names, expect=same_shape_as("g"))


@pytest.mark.parametrize("fn", [ro.lmo_l1, ro.lmo_l2, ro.lmo_linf, ro.lmo_l1q])
def test_lmo_sweep(backend, fn):
    g = data(backend)
    valid = {"g": g, "epsilon": 1.0, "param_ndim": -1} | ({"q": 0.5} if fn is ro.lmo_l1q else {})
    table = {"g": array_table(g), "epsilon": reals(), "param_ndim": param_ndim_table()}
    if fn is ro.lmo_l1q:
        table["q"] = reals() | {"above-one": reject(1.5)}
    names = {"g": ("g", "gradient", "param_ndim")}
    sweep(fn, valid, table, names=names, expect=same_shape_as("g"))


def test_linf_direction_and_l1_rows_sweep(backend):
    g = data(backend)
    sweep(ro.linf_direction, {"g": g}, {"g": array_table(g)}, names={"g": ("g", "gradient")})
    rows = drop(array_table(g), "0-d", "empty") | {"no-columns": reject(g[:, :0])}
    sweep(ro.l1_direction_rows, {"rows": g}, {"rows": rows}, names={"rows": ("rows",)})


def test_clamp_sweep(backend):
    x = data(backend)
    bounds = drop(bad_reals("float32"), "None", "zero", "negative", "huge")
    table = {
        "x": array_table(x),
        # +-inf and huge bounds are allowed (capped to the dtype); NaN is refused
        "low": bounds | {"inf": reject(math.inf), "-inf": accept(-math.inf)},
        "high": bounds | {"-inf": reject(-math.inf), "inf": accept(math.inf)},
    }
    names = {"low": ("clamp_min",), "high": ("clamp_max",)}
    sweep(ro.clamp, {"x": x, "low": -0.5, "high": 2.0}, table, names=names)


def test_top_q_count_and_sample_q_sweep(backend):
    table = {"q": reals() | {"above-one": reject(1.5)}, "d": bad_ints(4)}
    sweep(ro.top_q_count, {"q": 0.5, "d": 4}, table)
    like = data(backend)
    table = {
        "q": reals() | {"above-one": reject(1.5)},
        "dq": reals() | {"above-one": reject(1.5)},
        "rng": bad_rngs(),
        "like": drop(bad_arrays(like), "nan", "inf", "-inf", "huge"),  # values unread
    }
    sweep(ro.sample_q, {"q": 0.5, "dq": 0.2, "rng": 0, "like": like}, table)


def test_top_q_drop_mask_sweep(backend):
    a = backend.xp.abs(data(backend))
    table = {
        "a": drop(array_table(a), "0-d", "empty") | {"1-d": reject(a[0, ...])},
        "k": drop(bad_ints(2), "zero", "negative") | {"zero": accept(0), "above-d": accept(9)},
    }
    sweep(ro.top_q_drop_mask, {"a": a, "k": 2}, table)


# -- projections ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "fn, extra",
    [
        (ro.project_l1_ball, {"method": "sort"}),
        (ro.project_l1_ball, {"method": "michelot"}),
        (ro.project_l2_ball, {"margin": 1e-7}),
        (ro.project_linf_ball, {}),
    ],
    ids=["l1-sort", "l1-michelot", "l2", "linf"],
)
def test_projection_sweep(backend, fn, extra):
    x = data(backend, scale=4.0)
    table = {
        "x": array_table(x),
        # huge radii are allowed (beyond the dtype, every finite point is inside the ball)
        "epsilon": reals() | {"huge": accept(1e39)},
        "param_ndim": param_ndim_table() | {"None": None},
    }
    if "method" in extra:
        table["method"] = {**drop(wrong_kinds(), "None"), "other": reject("condat")}
    if "margin" in extra:
        table["margin"] = reals()
    valid = {"x": x, "epsilon": 1.0, "param_ndim": -1, **extra}
    sweep(fn, valid, table, names={"x": ("x", "param_ndim")}, expect=same_shape_as("x"))


@given(
    epsilon=st.floats(0, 1e39, allow_subnormal=True),
    scale=st.sampled_from([1e-30, 1.0, 1e30, 3e38]),
    ord=st.sampled_from(["l1", "l2", "linf"]),
)
def test_projection_of_extreme_values_lands_in_the_ball(backend, epsilon, scale, ord):
    """Any radius and any magnitude of float32 entries: a finite point inside the ball."""
    fn = {"l1": ro.project_l1_ball, "l2": ro.project_l2_ball, "linf": ro.project_linf_ball}[ord]
    x = data(backend, (2, 5), scale=scale)
    out = check_outcome(lambda: fn(x, epsilon, -1), names="epsilon", ref=x, outcome="accept")
    norms = np.linalg.norm(
        backend.to_numpy(out).astype(np.float64),
        ord={"l1": 1, "l2": 2, "linf": np.inf}[ord],
        axis=1,
    )
    assert np.all(norms <= epsilon * (1 + 1e-6) + 1e-45), (norms, epsilon)


# -- step sizes, the update, the duality gap --------------------------------------------------
def test_fw_step_size_sweep():
    table = {
        "lr": reals(),
        "k": bad_ints(3) | {"zero": accept(0)},
        "use_default_lr_schedule": bad_bools(),
        "div_by_zero_eps": reals(),
    }
    valid = dict(lr=2.0, k=3, use_default_lr_schedule=True, div_by_zero_eps=1e-12)

    def check(alpha):
        assert isinstance(alpha, float) and 0.0 <= alpha <= 1.0, alpha

    sweep(ro.fw_step_size, valid, table, check=check)


def test_frank_wolfe_update_sweep(backend):
    x, d = data(backend), data(backend, seed=1)
    table = {
        "param": drop(array_table(x), "inf", "-inf"),
        "direction": array_table(d) | {"wrong-shape": reject(d[:1, ...])},
        "alpha": reals() | {"one": accept(1.0), "above-one": reject(1.5)},
        "scale": reals(negative_ok=True),
    }
    for label in ("inf", "-inf"):
        table["direction"][label] = Bad(table["direction"][label], finite=False, note=INF_DIRECTION)
    valid = {"param": x, "direction": d, "alpha": 0.5, "scale": 1.0}
    sweep(ro.frank_wolfe_update, valid, table, expect=same_shape_as("param"))


def test_duality_gap_sweep(backend):
    g, x = data(backend), data(backend, seed=1)
    s = ro.lmo_l1(g, 1.0)
    table = {
        name: array_table(a) | {"wrong-shape": reject(a[:1, ...])}
        for name, a in (("grad", g), ("param", x), ("lmo", s))
    }
    for arg in table:  # an infinite entry has an infinite gap: the true value
        for label in ("inf", "-inf"):
            table[arg][label] = Bad(table[arg][label], finite=False, note="an infinite gap")

    def check(gap):
        assert isinstance(gap, float), gap

    valid = {"grad": g, "param": x, "lmo": s}
    names = {n: (n, "grad, param and lmo") for n in valid}
    sweep(ro.duality_gap, valid, table, names=names, check=check)


# -- the per-row scalars and their rules (for callers that transform in place) ----------------
def _divided(rows, ord, div_by_zero_eps, norms):
    """What a caller of ``normalize_divisor`` computes: ``rows / divisor``, and the function
    itself on the flagged rows."""
    divisor, flag = ro.normalize_divisor(rows, ord, div_by_zero_eps=div_by_zero_eps, norms=norms)
    out = rows / divisor
    if flag is None:
        return out
    return backends_xp(rows).where(
        flag, ro.normalize_gradient(rows, ord, div_by_zero_eps=div_by_zero_eps), out
    )


def _scaled(rows, epsilon, margin, norms):
    """What a caller of ``l2_ball_factor`` computes: ``rows * f``, and the projection itself
    on the flagged rows."""
    f, flag = ro.l2_ball_factor(rows, epsilon, margin=margin, norms=norms)
    out = rows if f is None else rows * f
    if flag is None:
        return out
    return backends_xp(rows).where(flag, ro.project_l2_ball(rows, epsilon, -1, margin=margin), out)


def backends_xp(x):
    from backends import namespace_and_device

    return namespace_and_device(x)[0]


def _norms_table(rows, ord):
    """Bad ``norms``: another shape, dtype, library or device, non-arrays; None is valid."""
    from backends import ops

    norms = ops.vector_norm(rows, ord=ord, axis=1, keepdims=True)
    table = drop(bad_arrays(norms), "nan", "inf", "-inf", "huge", "None")
    table["transposed"] = reject(backends_xp(norms).reshape(norms, (1, -1)))
    table["None"] = accept(None)
    return {**table, "0-d": reject(table["0-d"]), "empty": reject(table["empty"])}


@pytest.mark.parametrize("ord", [1, 2])
def test_normalize_divisor_sweep(backend, ord):
    rows = data(backend)
    table = {
        "rows": drop(array_table(rows), "0-d", "empty") | {"1-d": reject(rows[0, ...])},
        "ord": {**wrong_kinds(), "bool": True, "three": reject(3), "inf": reject(math.inf)},
        "div_by_zero_eps": reals(),
        "norms": _norms_table(rows, ord),
    }
    valid = {"rows": rows, "ord": ord, "div_by_zero_eps": 1e-12, "norms": None}
    sweep(_divided, valid, table, expect=same_shape_as("rows"))


def test_l2_ball_factor_sweep(backend):
    rows = data(backend, scale=4.0)
    table = {
        "rows": drop(array_table(rows), "0-d", "empty") | {"1-d": reject(rows[0, ...])},
        "epsilon": reals() | {"huge": accept(1e39)},
        "margin": reals(),
        "norms": _norms_table(rows, 2),
    }
    valid = {"rows": rows, "epsilon": 1.0, "margin": 1e-7, "norms": None}
    sweep(_scaled, valid, table, expect=same_shape_as("rows"))


def test_rule_and_bounds_sweeps(backend):
    """The host rules and ``clamp_bounds``: validated once, when made (``d``, ``ord``, the
    radius or eps, ``finfo``)."""
    finfo = backend.xp.finfo(backend.dtype("float32"))
    finfos = {**drop(wrong_kinds(), "None"), "None": None, "a-dtype": backend.dtype("float32")}

    def normalization(d, ord, finfo, div_by_zero_eps):
        return ro.normalization_rule(d, ord=ord, finfo=finfo, div_by_zero_eps=div_by_zero_eps)(
            1.0, 2.0
        )

    table = {
        "d": drop(bad_ints(4), "zero") | {"zero": accept(0)},
        "ord": {**wrong_kinds(), "bool": True, "three": reject(3)},
        "finfo": finfos,
        "div_by_zero_eps": reals(),
    }
    sweep(normalization, {"d": 4, "ord": 2, "finfo": finfo, "div_by_zero_eps": 1e-12}, table)

    def ball(d, epsilon, finfo):
        return ro.l2_ball_rule(d, epsilon=epsilon, finfo=finfo)(1.0, 2.0)

    table = {
        "d": drop(bad_ints(4), "zero") | {"zero": accept(0)},
        "epsilon": reals() | {"huge": accept(1e39)},
        "finfo": finfos,
    }
    sweep(ball, {"d": 4, "epsilon": 1.0, "finfo": finfo}, table)

    x = data(backend)

    def clamped(low, high, finfo):
        return backend.xp.clip(x, *ro.clamp_bounds(low, high, finfo=finfo))

    bounds = drop(bad_reals("float32"), "None", "zero", "negative", "huge")
    table = {
        "low": bounds | {"inf": reject(math.inf), "-inf": accept(-math.inf)},
        "high": bounds | {"-inf": reject(-math.inf), "inf": accept(math.inf)},
        "finfo": finfos,
    }
    names = {"low": ("clamp_min",), "high": ("clamp_max",)}
    sweep(clamped, {"low": -0.5, "high": 2.0, "finfo": finfo}, table, names=names)
