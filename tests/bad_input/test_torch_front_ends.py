"""Bad-input sweep of the torch front ends (``refimpl.torch``): AdditivePerturbation and the
in-place ``uniform_like_*_n_ball_`` samplers; every ``rai_toolbox.optim`` class
(constructors with each documented option, parameter groups, ``add_param_group``,
``load_state_dict``, ``step`` with and without a closure); ``perturbed`` and
``FenchelYoungLoss`` (decorator forms, forward, backward); ``Saliency``, ``InputXGradient``,
``IntegratedGradients`` and ``NoiseTunnel`` (``captum_compatible`` too); ``Eigendistortion``
(constructor, ``synthesize``, ``to``, ``save``/``load``); ``as_model``.

Torch-only: parametrised over the ``torch_device`` fixture (CPU; CUDA skips without a GPU).
The rule is the harness's (tests/bad_input/harness.py). "Another device" is CUDA for a CPU
tensor where there is a GPU, else torch's ``meta`` device (shapes without values), which
the harness cannot read back: those cases run through :func:`raises_naming`.
"""

from __future__ import annotations

import functools
import json
import math
import pickle
import warnings
import zipfile

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.bad_input.harness import (
    Bad,
    accept,
    bad_arrays,
    bad_bools,
    bad_ints,
    bad_reals,
    check_outcome,
    drop,
    numpy_ints,
    reject,
    sweep,
    wrong_kinds,
)

torch = pytest.importorskip("torch")

import refimpl.torch as bt  # noqa: E402
import refimpl.torch.optim as bo  # noqa: E402

SAMPLERS = [bt.uniform_like_l1_n_ball_, bt.uniform_like_l2_n_ball_, bt.uniform_like_linf_n_ball_]


# -- helpers ---------------------------------------------------------------------------------
def tensor(device, shape=(3, 4), dtype=None, seed=0):
    """Standard normal entries (float32 unless ``dtype``) on ``device``."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=dtype or torch.float32).to(device)


def other_device(device):
    """A torch device other than ``device``: CUDA for CPU where there is a GPU, CPU for CUDA,
    else ``meta`` (shapes without values)."""
    if device.type != "cpu":
        return torch.device("cpu")
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("meta")


def raises_naming(call, names, exc=(TypeError, ValueError)):
    """``call()`` raises TypeError/ValueError naming one of ``names`` (for arguments the
    harness cannot snapshot, such as meta tensors)."""
    names = (names,) if isinstance(names, str) else tuple(names)
    with pytest.raises(exc) as info:
        call()
    assert any(n in str(info.value) for n in names), f"{info.value!r} names none of {names}"
    return info.value


def template(x):
    """``bad_arrays(x)`` for an argument whose values are not read (only its shape, dtype
    and device): NaN/inf entries are as good as any."""
    table = bad_arrays(x)
    for label in ("nan", "inf", "-inf", "huge"):
        table[label] = accept(table[label], "only the shape, dtype and device are read")
    return table


def passing_through(x):
    """``bad_arrays(x)`` for a linear map's input: NaN/inf entries pass through, as they do
    through autograd (the result holds exactly the non-finite entries given)."""
    table = bad_arrays(x)
    for label in ("nan", "inf", "-inf"):
        table[label] = Bad(table[label], finite=False)
    return table


def same_shape_as(name):
    """``expect`` for sweep: the result has the shape of the argument ``name``."""

    def expect(out, kwargs):
        assert tuple(out.shape) == tuple(kwargs[name].shape), (
            f"result shape {tuple(out.shape)}, expected {tuple(kwargs[name].shape)}"
        )

    return expect


def ndim_table(valid=-1):
    """Bad ``param_ndim``-like values (an int in [-ndim, ndim] or None; numpy integers are
    accepted)."""
    table = drop(bad_ints(valid), "None", "zero", "negative")
    return {**table, "out-of-range": reject(99), "-out-of-range": reject(-99)}


def generator_table():
    """Bad ``generator`` values: only a ``torch.Generator`` (or None: the default) is one."""
    return {
        **drop(wrong_kinds(), "None"),
        "int-seed": 3,
        "numpy-generator": np.random.default_rng(0),
        "bool": True,
    }


# -- the in-place samplers -------------------------------------------------------------------
def fill(sampler):
    """The sampler on a copy of ``x`` (it writes in place, by design), returning the copy."""

    def call(x, **kwargs):
        target = x.clone() if isinstance(x, torch.Tensor) else x
        assert sampler(target, **kwargs) is None
        return target

    call.__qualname__ = sampler.__name__
    return call


@pytest.mark.parametrize("sampler", SAMPLERS, ids=lambda f: f.__name__)
def test_sampler_sweep(torch_device, sampler):
    x = tensor(torch_device)
    table = {
        "x": template(x),
        "epsilon": drop(bad_reals("float32"), "zero") | {"zero": accept(0.0)},
        "param_ndim": ndim_table(-1),
        "generator": generator_table(),
    }
    if sampler is not bt.uniform_like_l1_n_ball_:  # complex x: drawn in the complex ball
        table["x"]["complex"] = accept(table["x"]["complex"])

    def valid():
        g = torch.Generator(device=torch_device).manual_seed(0)
        return dict(x=x, epsilon=1.0, param_ndim=-1, generator=g)

    # a 0-d x has no row for param_ndim=-1: the message names param_ndim
    names = {"x": ("x", "param_ndim")}
    sweep(fill(sampler), valid, table, names=names, expect=same_shape_as("x"))


@pytest.mark.parametrize("sampler", SAMPLERS, ids=lambda f: f.__name__)
def test_sampler_on_a_meta_tensor_is_a_no_op(sampler):
    """A tensor without values is filled with none, as ``torch.Tensor.uniform_`` does."""
    x = torch.empty(3, 4, device="meta")
    assert sampler(x, generator=torch.Generator()) is None
    assert x.device.type == "meta" and x.shape == (3, 4)


@given(
    epsilon=st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.sampled_from([1e39, 3.4e38, 65504.0, 1e5, -0.0, 5e-324]),
    ),
    dtype=st.sampled_from(["float16", "bfloat16", "float32", "float64"]),
    which=st.sampled_from(range(3)),
)
def test_sampler_any_epsilon_any_dtype(torch_device, epsilon, dtype, which):
    """Any float radius in any float dtype: a finite draw inside the ball, or a ValueError
    naming epsilon (a radius beyond the dtype's largest value would overflow)."""
    x = torch.zeros(2, 3, dtype=getattr(torch, dtype), device=torch_device)
    sampler = SAMPLERS[which]
    g = torch.Generator(device=torch_device).manual_seed(1)
    out = check_outcome(lambda: fill(sampler)(x, epsilon=epsilon, generator=g), names="epsilon")
    if isinstance(out, ValueError):
        return
    assert math.isfinite(epsilon) and epsilon >= 0
    assert out.dtype == x.dtype and out.device == x.device
    assert bool(torch.isfinite(out).all())
    assert float(out.abs().max()) <= float(torch.tensor(epsilon, dtype=x.dtype))


# -- AdditivePerturbation --------------------------------------------------------------------
def test_additive_perturbation_constructor_sweep(torch_device):
    x = tensor(torch_device)
    table = {
        "data_or_shape": drop(bad_arrays(x), "None", "str", "list", "nan", "inf", "-inf", "huge")
        | drop(wrong_kinds(), "list")
        | {
            "shape-negative": reject((3, -1)),
            "shape-float": reject((3.0, 4)),
            "shape-bool": reject((True, 4)),
            "shape-np.int64": accept((np.int64(3), np.int64(4))),
        },
        "init_fn": {**drop(wrong_kinds(), "None"), "returns-None": lambda d, **k: None},
        "device": {
            **drop(wrong_kinds(), "None"),
            "unknown": "nowhere",
            "index-out-of-range": "cpu:-1" if torch_device.type == "cpu" else "cuda:99",
            "no-such-accelerator": reject("cuda:0")
            if not torch.cuda.is_available()
            else accept("cuda:0"),
            "bool": True,
        },
        "dtype": {
            **drop(wrong_kinds(), "None"),
            "int": torch.int32,
            "bool": torch.bool,
            "name": "float32",
            "numpy-dtype": np.float32,
            "float16": accept(torch.float16),
            "bfloat16": accept(torch.bfloat16),
        },
        "delta_ndim": ndim_table(-1) | {"None": accept(None)},
        "epsilon": drop(bad_reals("float32"), "zero") | {"zero": accept(0.0)},
    }
    # the values of data_or_shape are not read (only its shape, dtype and device)
    for label in ("nan", "inf", "-inf", "huge"):
        table["data_or_shape"][label] = accept(bad_arrays(x)[label])

    def build(**kwargs):
        return bt.AdditivePerturbation(**kwargs).delta

    def valid():
        g = torch.Generator(device=torch_device).manual_seed(0)
        return dict(
            data_or_shape=x,
            init_fn=bt.uniform_like_l2_n_ball_,
            device=None,
            dtype=None,
            delta_ndim=-1,
            epsilon=1.0,
            generator=g,
        )

    # init_fn's own checks (a 0-d delta has no row for its param_ndim=-1) reach the caller
    names = {"data_or_shape": ("data_or_shape", "param_ndim", "delta_ndim")}
    sweep(build, valid, table, names=names)


def test_additive_perturbation_init_fn_errors_reach_the_caller(torch_device):
    """``init_fn`` is the caller's code: its exceptions propagate unchanged; what it
    returns is checked (None, or a tensor of delta's shape)."""
    x = tensor(torch_device)

    def broken(delta):
        raise ZeroDivisionError("the caller's own bug")

    with pytest.raises(ZeroDivisionError, match="the caller's own bug"):
        bt.AdditivePerturbation(x, broken)
    for value in ("a", x[:1], np.zeros((3, 4))):
        raises_naming(lambda v=value: bt.AdditivePerturbation(x, lambda d: v), "init_fn")


@pytest.mark.parametrize("method", ["forward", "vjp", "vjp_delta"])
def test_additive_perturbation_call_sweep(torch_device, method):
    x = tensor(torch_device)
    p = bt.AdditivePerturbation(x, bt.uniform_like_l1_n_ball_, generator=torch.Generator())
    if method == "forward":
        table = {"data": passing_through(x)}
        # delta (3, 4) broadcasts with data of shape (), (4,) or (1, 4): documented torch
        # broadcasting; an empty batch (0, 4) does not
        table["data"]["0-d"] = accept(table["data"]["0-d"])
        table["data"]["other-shape"] = reject(x[:, :2])
        for label in ("int", "bool", "float16", "bfloat16", "complex"):
            table["data"][label] = accept(table["data"][label], "torch's type promotion")
        sweep(p, {"data": x}, table, names={"data": ("data", "delta")})
        return
    u = tensor(torch_device, seed=1)
    table = {"x": template(x), "u": passing_through(u) | {"other-shape": reject(u[:, :2])}}
    sweep(getattr(p, method), {"x": x, "u": u}, table)


def test_additive_perturbation_on_another_device(torch_device):
    """Data on another device than delta: a ValueError naming both (torch's own error is a
    RuntimeError from inside the addition)."""
    x = tensor(torch_device)
    p = bt.AdditivePerturbation(x)
    elsewhere = torch.zeros(3, 4, device=other_device(torch_device))
    raises_naming(lambda: p(elsewhere), ("data", "device"), ValueError)
    raises_naming(lambda: p.vjp(x, elsewhere), "u", ValueError)
    raises_naming(lambda: p.vjp_delta(elsewhere, x), "x", ValueError)


# -- rai_toolbox.optim -----------------------------------------------------------------------
#: every class of rai_toolbox.optim with the required keywords (and an lr that steps)
OPTIMIZERS = {
    "FrankWolfe": dict(),
    "L1FrankWolfe": dict(epsilon=1.0),
    "L2FrankWolfe": dict(epsilon=1.0),
    "LinfFrankWolfe": dict(epsilon=1.0),
    "L1qFrankWolfe": dict(q=0.3, epsilon=1.0),
    "L2ProjectedOptim": dict(epsilon=1.0, lr=0.1),
    "LinfProjectedOptim": dict(epsilon=1.0, lr=0.1),
    "SignedGradientOptim": dict(lr=0.1),
    "L1NormedGradientOptim": dict(lr=0.1),
    "L2NormedGradientOptim": dict(lr=0.1),
    "L1qNormedGradientOptim": dict(q=0.3, lr=0.1),
    "TopQGradientOptimizer": dict(q=0.3, lr=0.1),
    "ClampedGradientOptimizer": dict(clamp_min=-1.0, clamp_max=1.0, lr=0.1),
    "ClampedParameterOptimizer": dict(clamp_min=-1.0, clamp_max=1.0, lr=0.1),
    "ParamTransformingOptimizer": dict(lr=0.1),
}


def real_option(*, zero=True, negative=False, huge="either", np_int=None):
    """Bad values of a real option: ``zero``/``negative`` say whether 0 and -1 are valid;
    ``huge`` (1e39: beyond float32, the parameters' dtype) the expected outcome; ``np_int``
    a numpy integer that must be accepted."""
    table = drop(bad_reals("float32"), "zero", "negative", "huge")
    table["zero"] = accept(0.0) if zero else reject(0.0)
    table["negative"] = accept(-1.0) if negative else reject(-1.0)
    table["huge"] = Bad(1e39, outcome=huge)
    if np_int is not None:
        table |= numpy_ints(np_int)
    return table


def unit_interval():
    """Bad values of ``q`` / ``dq`` (in [0, 1])."""
    return real_option() | {"above-one": reject(1.5), "huge": reject(1e39)}


#: bad values of each documented option (also as a parameter-group entry)
OPTION_TABLES = {
    # lr: refused when it would overflow the parameters (SGD multiplies by it); Frank-Wolfe
    # only divides by it (alpha = lr / (lr + k) <= 1)
    "lr": real_option(huge="raise", np_int=1),
    # the plain FrankWolfe scales its LMO by any finite factor (a ball's radius is >= 0)
    "lmo_scaling_factor": real_option(negative=True, huge="raise", np_int=1),
    "epsilon": real_option(np_int=1),  # the projections clip a huge radius to the dtype
    "q": unit_interval(),
    "dq": unit_interval(),
    "param_ndim": ndim_table(-1) | {"None": accept(None)},
    "grad_scale": real_option(negative=True, huge="raise", np_int=2),
    "grad_bias": real_option(negative=True, huge="raise", np_int=2),
    # guards a norm of the gradient (refused beyond the dtype) or, in Frank-Wolfe's
    # schedule, a Python float (any finite value works)
    "div_by_zero_eps": real_option(),
    "use_default_lr_schedule": bad_bools(),
    "clamp_min": drop(real_option(negative=True), "inf", "-inf")
    | {"inf": reject(math.inf, "above clamp_max"), "-inf": accept(-math.inf)},
    "clamp_max": drop(real_option(negative=True), "inf", "-inf", "zero", "negative")
    | {"inf": accept(math.inf), "-inf": reject(-math.inf), "below-min": reject(-2.0)},
}
#: options of the constructors only
CONSTRUCTOR_TABLES = {
    "generator": generator_table(),
    "defaults": {**drop(wrong_kinds(), "None", "dict"), "tensor": torch.zeros(0), "bool": True},
    "InnerOpt": {
        **drop(wrong_kinds(), "None"),
        "not-an-optimizer": dict,
        "bool": True,
        "None": None,
    },
    # an option of the inner torch.optim.SGD: its own refusals, re-raised naming InnerOpt
    "momentum": drop(real_option(), "huge")
    | {"tensor": torch.zeros(0), "above-one": accept(1.5, "torch accepts momentum > 1")},
}
#: the message may name the inner optimizer instead of its option
INNER_NAMES = {"momentum": ("momentum", "InnerOpt"), "lr": ("lr", "InnerOpt")}


def optimizer_class(name):
    return getattr(bo, name)


def valid_options(name):
    """Every keyword of the class's documented constructor, at its default (or the value of
    OPTIMIZERS), with ``momentum=0.0`` for the inner SGD where the class forwards keywords."""
    import inspect

    params = inspect.signature(optimizer_class(name).__init__).parameters
    options = {
        k: p.default
        for k, p in params.items()
        if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
        and k not in ("self", "params")
        and p.default is not p.empty
    }
    if any(p.kind is p.VAR_KEYWORD for p in params.values()) and name != "FrankWolfe":
        options["momentum"] = 0.0
    return {**options, **OPTIMIZERS[name]}


def parameter(device, seed=0, dtype=torch.float32):
    """A (3, 4) parameter on ``device`` with a gradient."""
    p = tensor(device, dtype=dtype, seed=seed).requires_grad_(True)
    p.grad = tensor(device, dtype=dtype, seed=seed + 1)
    return p


def stepper(name, device):
    """``fn(**options)``: the class built on a fresh parameter, one step, the parameter."""

    def step(**options):
        p = parameter(device)
        optimizer_class(name)([p], **options).step()
        return p.detach()

    step.__qualname__ = f"{name}(...).step"
    return step


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_optimizer_constructor_sweep(torch_device, name):
    valid = valid_options(name)
    tables = OPTION_TABLES | CONSTRUCTOR_TABLES
    table = {k: tables[k] for k in valid if k in tables}
    if "lr" in table and name.endswith("FrankWolfe"):  # Frank-Wolfe only divides by lr
        table["lr"] = table["lr"] | {"huge": accept(1e39)}
    sweep(stepper(name, torch_device), valid, table, names=INNER_NAMES)


def params_table(device):
    """Bad ``params`` values, each a factory (the harness snapshots arrays it is given, and an
    optimizer's step changes its parameters in place, by design)."""
    x = tensor(device)
    arrays = bad_arrays(x)

    def listed(a):
        def make():
            if isinstance(a, torch.Tensor) and a.is_floating_point():
                p = a.clone().requires_grad_(True)
                p.grad = torch.ones_like(p)
                return [p]
            return [a]

        return make

    table = {f"[{label}]": listed(a) for label, a in arrays.items()}
    for label in ("nan", "inf", "-inf"):  # NaN/inf parameters stay NaN/inf: nothing is hidden
        table[f"[{label}]"] = Bad(table[f"[{label}]"], finite=False)
    table["[huge]"] = Bad(table["[huge]"], finite=False)  # a step may overflow the largest value
    table |= {label: (lambda v=v: v) for label, v in wrong_kinds().items()}
    table |= {
        "empty-list": lambda: [],
        "a-set": lambda: {parameter(device)},
        "a-bare-tensor": lambda: parameter(device),
        "mixed-groups": lambda: [parameter(device), {"params": [parameter(device)]}],
        "group-without-params": lambda: [{"lr": 0.1}],
        "generator": accept(lambda: (parameter(device) for _ in range(2))),
        "groups": accept(lambda: [{"params": [parameter(device)]}, {"params": parameter(device)}]),
    }
    return table


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_optimizer_params_sweep(torch_device, name):
    def step(params):
        ps = params()
        opt = optimizer_class(name)(ps, **OPTIMIZERS[name])
        opt.step()
        return [p.detach() for g in opt.param_groups for p in g["params"]][:1]

    step.__qualname__ = f"{name}(params, ...).step"
    sweep(
        step, {"params": lambda: [parameter(torch_device)]}, {"params": params_table(torch_device)}
    )


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_optimizer_meta_parameters_are_refused(name):
    """A parameter on the meta device holds no values: a ValueError naming params before
    anything runs (the transforms need values: norms, top-q, the projections)."""
    p = torch.zeros(3, 4, device="meta", requires_grad=True)
    raises_naming(lambda: optimizer_class(name)([p], **OPTIMIZERS[name]), "params", ValueError)


def group_options(name):
    """The documented options of ``name`` that a parameter group may hold, with their valid
    values."""
    return {k: v for k, v in valid_options(name).items() if k in OPTION_TABLES}


ENTRIES = ["add_param_group", "edited-before-step", "load_state_dict"]


def grouped(name, device, entry):
    """``fn(**options)``: an optimizer of ``name`` on one parameter whose group options
    come in by ``entry``: a second group added with them, the first group's values edited in
    place, or a state dict holding them loaded; then one step."""

    def step(**options):
        p, q = parameter(device), parameter(device, seed=2)
        opt = optimizer_class(name)([p], **OPTIMIZERS[name])
        if entry == "add_param_group":
            opt.add_param_group({"params": [q], **options})
        elif entry == "edited-before-step":
            opt.param_groups[0].update(options)
        else:
            saved = opt.state_dict()
            saved["param_groups"][0].update(options)
            opt.load_state_dict(saved)
        opt.step()
        return p.detach(), q.detach()

    step.__qualname__ = f"{name}.{entry}"
    return step


@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_optimizer_group_options_sweep(torch_device, name, entry):
    valid = group_options(name)
    table = {k: OPTION_TABLES[k] for k in valid}
    if "lr" in table and name.endswith("FrankWolfe"):  # Frank-Wolfe only divides by lr
        table["lr"] = table["lr"] | {"huge": accept(1e39)}
    sweep(grouped(name, torch_device, entry), valid, table)


@pytest.mark.parametrize("name", ["L1qFrankWolfe", "L2ProjectedOptim", "ClampedParameterOptimizer"])
def test_optimizer_add_param_group_sweep(torch_device, name):
    def add(group):
        opt = optimizer_class(name)([parameter(torch_device)], **OPTIMIZERS[name])
        opt.add_param_group(group())
        opt.step()
        return opt.param_groups[-1]["params"][0].detach()

    bad_groups = {label: (lambda v=v: v) for label, v in wrong_kinds().items()}
    bad_groups |= {
        "no-params": lambda: {"lr": 0.1},
        "params-none": lambda: {"params": None},
        "params-str": lambda: {"params": "p"},
        "params-numpy": lambda: {"params": [np.zeros((3, 4))]},
        "params-int-tensor": lambda: {"params": [torch.zeros(3, 4, dtype=torch.int64)]},
        "params-bare-tensor": accept(lambda: {"params": parameter(torch_device)}),
    }
    names = {"group": ("group", "params")}
    sweep(
        add,
        {"group": lambda: {"params": [parameter(torch_device)]}},
        {"group": bad_groups},
        names=names,
    )


def damaged(saved, how):
    """A copy of the state dict ``saved`` damaged as ``how`` says."""
    import copy

    d = copy.deepcopy(saved)
    if how == "no-state":
        del d["state"]
    elif how == "state-not-a-dict":
        d["state"] = 3
    elif how == "per-parameter-state-not-a-dict":
        d["state"] = {0: "junk"}
    elif how == "groups-not-a-list":
        d["param_groups"] = 3
    elif how == "group-not-a-dict":
        d["param_groups"] = [3]
    elif how == "two-groups":
        d["param_groups"] = d["param_groups"] * 2
    elif how == "no-param-ids":
        del d["param_groups"][0]["params"]
    elif how == "param-ids-none":
        d["param_groups"][0]["params"] = None
    elif how == "too-many-param-ids":
        d["param_groups"][0]["params"] = [0, 1]
    elif how == "missing-option":
        d["param_groups"][0].pop(sorted(set(d["param_groups"][0]) - {"params"})[0])
    elif how == "step-not-an-int":
        d["state"] = {0: {"step": "junk"}}
    return d


DAMAGES = [
    "no-state",
    "state-not-a-dict",
    "per-parameter-state-not-a-dict",
    "groups-not-a-list",
    "group-not-a-dict",
    "two-groups",
    "no-param-ids",
    "param-ids-none",
    "too-many-param-ids",
    "missing-option",
]


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_optimizer_load_state_dict_sweep(torch_device, name):
    """Damaged state dicts (the "corrupted files" of an optimizer): a TypeError/ValueError
    naming state_dict before anything is loaded."""
    p = parameter(torch_device)
    opt = optimizer_class(name)([p], **OPTIMIZERS[name])
    opt.step()
    saved = opt.state_dict()
    before = {k: v for k, v in opt.param_groups[0].items() if k != "params"}

    def load(state_dict):
        opt.load_state_dict(state_dict)
        return p.detach()

    table = {"state_dict": {how: reject(damaged(saved, how)) for how in DAMAGES}}
    table["state_dict"] |= {label: reject(v) for label, v in wrong_kinds().items()}
    if name.endswith("FrankWolfe"):  # a Frank-Wolfe state holds the step count
        table["state_dict"]["step-not-an-int"] = reject(damaged(saved, "step-not-an-int"))
    sweep(load, {"state_dict": saved}, table)
    assert {k: v for k, v in opt.param_groups[0].items() if k != "params"} == before


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_optimizer_step_closure_sweep(torch_device, name):
    """``step(closure)``: None or a callable returning the loss (returned by step)."""

    def step(closure):
        p = parameter(torch_device)
        opt = optimizer_class(name)([p], **OPTIMIZERS[name])
        loss = opt.step(closure if not callable(closure) else functools.partial(closure, p))
        return p.detach(), loss

    def loss(p):
        p.grad = None
        value = (p**2).sum()
        value.backward()
        return value.detach()

    table = {"closure": {label: v for label, v in wrong_kinds().items() if label != "None"}}
    table["closure"] |= {"a-number": 1.0, "a-tensor": torch.zeros(())}
    sweep(step, {"closure": loss}, table)
    # a closure's own errors reach the caller unchanged, before the parameter changes
    p = parameter(torch_device)
    opt = optimizer_class(name)([p], **OPTIMIZERS[name])
    before = p.detach().clone()

    def broken():
        raise ZeroDivisionError("the caller's own bug")

    with pytest.raises(ZeroDivisionError, match="the caller's own bug"):
        opt.step(broken)
    assert torch.equal(p.detach(), before)


@given(
    name=st.sampled_from(sorted(OPTIMIZERS)),
    option=st.sampled_from(sorted(set(OPTION_TABLES) - {"param_ndim", "use_default_lr_schedule"})),
    value=st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.sampled_from([1e39, 3.4e38, 65504.0, 6e4, 1e5, 2**64, -(2**63) - 1]),
    ),
    dtype=st.sampled_from(["float16", "bfloat16", "float32", "float64"]),
)
def test_optimizer_any_real_option_any_dtype(torch_device, name, option, value, dtype):
    """Any number for any real option, on parameters of any float dtype: a step or a
    TypeError/ValueError naming the option (never torch's RuntimeError or OverflowError).
    Values beyond the dtype are refused; the step is finite for values well inside it (a
    representable lr of 6e4 times a gradient of 3 still overflows float16, as in torch:
    checking each result would cost a host synchronisation per step)."""
    options = {**OPTIMIZERS[name], option: value}
    if option not in valid_options(name):
        return
    if option == "clamp_min":
        options["clamp_max"] = math.inf
    p = parameter(torch_device, dtype=getattr(torch, dtype))

    def step():
        optimizer_class(name)([p], **options).step()
        return p.detach()

    inside = math.isfinite(value) and abs(value) <= torch.finfo(p.dtype).max / 100
    check_outcome(step, names=option, ref=tensor(torch_device), finite=inside)


# -- perturbed and FenchelYoungLoss --------------------------------------------------------------
def one_hot_argmax(x, *args, **kwargs):
    """The argmax of the last axis as a one-hot vector, in ``x``'s dtype."""
    return torch.nn.functional.one_hot(x.argmax(-1), x.shape[-1]).to(x.dtype)


#: bad values of the options of ``perturbed`` and ``FenchelYoungLoss``
PERTURBED_TABLES = {
    "func": {**drop(wrong_kinds(), "None"), "bool": True},
    # (10**30 samples would run for ever: no upper bound in PerturbedOptions, see the report)
    "num_samples": bad_ints(8),
    "sigma": drop(real_option(), "zero", "huge") | {"zero": reject(0.0), "huge": reject(1e39)},
    "noise": {**wrong_kinds(), "unknown": "cauchy", "upper-case": "Normal", "bool": True},
    "batched": bad_bools(),
    "device": {
        "str": accept(
            "nowhere", "the port's device is accepted and ignored: noise follows the input"
        ),
        "None": accept(None),
    },
    "generator": generator_table(),
    "chunk_size": bad_ints(4) | {"None": accept(None)},
    "sampling": {**wrong_kinds(), "unknown": "sobol", "bool": True},
    "baseline": bad_bools(),
    "progress": drop(bad_bools(), "None") | {"None": accept(None)},
    "maximize": bad_bools(),
}


def perturbed_valid(device, *, loss=False):
    def make():
        g = torch.Generator(device=device).manual_seed(0)
        options = dict(
            func=one_hot_argmax,
            num_samples=8,
            sigma=0.5,
            noise="normal",
            batched=True,
            device=None,
            generator=g,
            chunk_size=None,
            sampling="mc",
            progress=None,
        )
        return options | (dict(maximize=True) if loss else dict(baseline=True))

    return make


def theta(device, dtype=torch.float32):
    return tensor(device, (2, 5), dtype=dtype).requires_grad_(True)


def forward_backward(fn, x, *args):
    """``fn(x, *args)`` and the gradient of its sum with respect to ``x``."""
    x = x.detach().requires_grad_(True)
    y = fn(x, *args)
    (g,) = torch.autograd.grad(y.sum(), x)
    return y.detach(), g


FORMS = ["function", "decorator-with-arguments"]


@pytest.mark.parametrize("form", FORMS)
def test_perturbed_options_sweep(torch_device, form):
    x = theta(torch_device)

    def build_and_run(func, **options):
        if form == "function":
            f = bt.perturbed(func, **options)
        else:
            f = bt.perturbed(**options)(func)
        return forward_backward(f, x)

    table = {k: v for k, v in PERTURBED_TABLES.items() if k in perturbed_valid(torch_device)()}
    if form == "decorator-with-arguments":  # func is given later, to the decorator
        table.pop("func")
    sweep(build_and_run, perturbed_valid(torch_device), table)


def test_perturbed_bare_decorator(torch_device):
    """``@perturbed`` without arguments: the documented defaults (1000 samples, sigma 0.05)."""
    f = bt.perturbed(one_hot_argmax)
    y, g = forward_backward(f, theta(torch_device))
    assert y.shape == (2, 5) and bool(torch.isfinite(g).all())
    for bad in ("a", 3, None):
        raises_naming(lambda b=bad: bt.perturbed(b)(theta(torch_device)), "func")


def test_perturbed_call_sweep(torch_device):
    f = bt.perturbed(one_hot_argmax, num_samples=8, sigma=0.5, generator=torch.Generator())
    x = theta(torch_device).detach()
    table = {"input_tensor": bad_arrays(x) | {"1-d": reject(x[0], "batched: (batch, ...)")}}
    table["input_tensor"]["nan"] = reject(table["input_tensor"]["nan"])
    table["input_tensor"]["huge"] = reject(table["input_tensor"]["huge"], "x + 40 sigma overflows")
    for label in ("float16", "bfloat16"):  # noise drawn in the input's dtype
        table["input_tensor"][label] = accept(table["input_tensor"][label])

    def run(input_tensor):
        if isinstance(input_tensor, torch.Tensor) and input_tensor.is_floating_point():
            return forward_backward(f, input_tensor)
        return f(input_tensor), None

    names = {"input_tensor": ("input_tensor", "theta")}
    sweep(run, {"input_tensor": x}, table, names=names)


def test_perturbed_backward_gradients(torch_device):
    """The cotangent reaches the closed-form backward as autograd gives it: NaN/inf pass
    through (as in every torch backward); a wrong shape is autograd's own error."""
    f = bt.perturbed(one_hot_argmax, num_samples=8, sigma=0.5, generator=torch.Generator())
    x = theta(torch_device)
    y = f(x)
    dy = tensor(torch_device, (2, 5), seed=4)
    table = {"dy": passing_through(dy)}
    for label in ("float16", "bfloat16", "int", "bool", "complex", "0-d", "empty"):
        table["dy"].pop(label, None)  # autograd checks grad_outputs itself (RuntimeError)
    for label in ("None", "str", "list", "other-library"):
        table["dy"].pop(label, None)  # autograd's TypeError ("gradients can be ... Tensors")

    def backward(dy):
        (g,) = torch.autograd.grad(y, x, dy, retain_graph=True)
        return g

    sweep(backward, {"dy": dy}, table)


def test_fenchel_young_options_sweep(torch_device):
    x = theta(torch_device)
    y_true = one_hot_argmax(tensor(torch_device, (2, 5), seed=3))

    def build_and_run(**options):
        loss = bt.FenchelYoungLoss(**options)
        return forward_backward(lambda t: loss(t, y_true), x)

    table = {
        k: v for k, v in PERTURBED_TABLES.items() if k in perturbed_valid(torch_device, loss=True)()
    }
    sweep(build_and_run, perturbed_valid(torch_device, loss=True), table)


def test_fenchel_young_call_sweep(torch_device):
    loss = bt.FenchelYoungLoss(
        one_hot_argmax, num_samples=8, sigma=0.5, generator=torch.Generator()
    )
    x = theta(torch_device).detach()
    y_true = one_hot_argmax(tensor(torch_device, (2, 5), seed=3))
    table = {
        "input_tensor": bad_arrays(x) | {"1-d": reject(x[0], "batched: (batch, ...)")},
        "y_true": bad_arrays(y_true) | {"other-shape": reject(y_true[:, :2])},
    }
    table["input_tensor"]["nan"] = reject(table["input_tensor"]["nan"])
    table["input_tensor"]["huge"] = reject(table["input_tensor"]["huge"])
    for label in ("float16", "bfloat16"):
        table["input_tensor"][label] = accept(table["input_tensor"][label])
    # a target may be a one-hot of ints or bools (cast to the input's dtype), not complex;
    # NaN/inf in it pass into the loss (it is linear in y_true)
    for label in ("int", "bool", "float16", "bfloat16"):
        table["y_true"][label] = accept(table["y_true"][label])
    table["y_true"]["complex"] = reject(table["y_true"]["complex"])
    for label in ("nan", "inf", "-inf", "huge"):
        table["y_true"][label] = Bad(table["y_true"][label], finite=False)

    def run(input_tensor, y_true):
        if isinstance(input_tensor, torch.Tensor) and input_tensor.is_floating_point():
            return forward_backward(lambda t: loss(t, y_true), input_tensor)
        return loss(input_tensor, y_true), None

    names = {"input_tensor": ("input_tensor", "theta"), "y_true": ("y_true", "y")}
    sweep(run, {"input_tensor": x, "y_true": y_true}, table, names=names)


def test_perturbed_on_another_device(torch_device):
    """A target on another device is a ValueError naming it; a generator of another device
    draws there (torch generators are device-bound) and the noise follows the input."""
    elsewhere = other_device(torch_device)
    loss = bt.FenchelYoungLoss(one_hot_argmax, num_samples=8, sigma=0.5)
    x = theta(torch_device).detach()
    y_true = one_hot_argmax(tensor(elsewhere, (2, 5), seed=3))
    raises_naming(lambda: loss(x, y_true), ("y_true", "y"), ValueError)
    g = torch.Generator(device=elsewhere) if elsewhere.type != "meta" else None
    if g is not None:  # a generator of another device draws there, then moves the noise
        check_outcome(
            lambda: bt.perturbed(one_hot_argmax, num_samples=8, generator=g)(x),
            names="generator",
            ref=x,
        )


# -- attributions and the noise tunnel --------------------------------------------------------
class TwoInputs(torch.nn.Module):
    """``forward(x1, x2, scale)``: tuple inputs and an additional forward argument."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(4, 3)

    def forward(self, x1, x2, scale=1.0):
        return self.lin(x1) * scale + (x2**2).sum(dim=1)[:, None]


def linear_net(device, dtype=torch.float32):
    torch.manual_seed(0)
    return torch.nn.Linear(4, 3).to(device=device, dtype=dtype).eval()


def target_table(device):
    """Bad ``target`` values for an output of shape (2, 3): an int, a tuple, a list of one
    per example, or an integer tensor."""
    return {
        **drop(wrong_kinds(), "None", "list"),
        "None": reject(None, "three outputs per example: which one?"),
        "bool": True,
        "float": 1.0,
        "out-of-range": 3,
        "negative": accept(-1, "counted from the end, as torch indexing does"),
        **numpy_ints(1),
        "list-too-short": [1],
        "list-of-floats": [1.0, 2.0],
        "list-np-ints": accept([np.int64(0), np.int64(2)]),
        "tensor": accept(torch.tensor([0, 2], device=device)),
        "float-tensor": torch.tensor([0.0, 2.0], device=device),
        "tensor-too-long": torch.tensor([0, 1, 2], device=device),
        "tensor-out-of-range": torch.tensor([0, 5], device=device),
        "tuple-too-long": (1, 0),
        "numpy-array": np.array([0, 2]),
    }


def test_attribution_model_errors_propagate(torch_device):
    """The model is the caller's code: its own exceptions reach the caller unchanged (a
    float32 module given float16 inputs raises torch's RuntimeError, as in captum)."""
    net = linear_net(torch_device)
    x = tensor(torch_device, (2, 4), dtype=torch.float16)
    for name in METHODS:
        with pytest.raises(RuntimeError, match="dtype"):
            getattr(bt, name)(net).attribute(x, target=1)

    def broken(x):
        raise ZeroDivisionError("the caller's own bug")

    with pytest.raises(ZeroDivisionError, match="the caller's own bug"):
        bt.Saliency(broken).attribute(tensor(torch_device, (2, 4)), target=1)


def attribution_inputs_table(x):
    table = bad_arrays(x)
    # attributions of a linear model at NaN/inf inputs: its (constant) gradient, or the
    # input times it (InputXGradient, IntegratedGradients: NaN/inf pass through)
    for label in ("nan", "inf", "-inf", "huge"):
        table[label] = Bad(table[label], finite=False)
    for label in ("int", "bool", "complex"):
        table[label] = reject(table[label])
    # float16/bfloat16 inputs reach the float32 module, whose own RuntimeError propagates
    # (it is the caller's code, as in captum): test_attribution_model_errors_propagate
    table = drop(table, "float16", "bfloat16")
    table["tuple-with-a-str"] = reject((x, "a"))
    table["empty-tuple"] = reject(())
    return table


METHODS = ["Saliency", "InputXGradient", "IntegratedGradients"]


def attribution_valid(name, device):
    x = tensor(device, (2, 4))
    valid = dict(inputs=x, target=1, additional_forward_args=None)
    if name == "Saliency":
        valid["abs"] = True
    if name == "IntegratedGradients":
        valid |= dict(
            baselines=None,
            n_steps=4,
            method="gausslegendre",
            internal_batch_size=None,
            return_convergence_delta=False,
        )
    return valid


@pytest.mark.parametrize("name", METHODS)
def test_attribution_sweep(torch_device, name):
    net = linear_net(torch_device)
    method = getattr(bt, name)(net)
    valid = attribution_valid(name, torch_device)
    x = valid["inputs"]
    table = {
        "inputs": attribution_inputs_table(x),
        "target": target_table(torch_device),
        "additional_forward_args": {
            "an-extra-argument": reject((2.0,), "torch.nn.Linear takes one argument"),
            "str": reject("a"),
        },
    }
    if name == "Saliency":
        table["abs"] = drop(bad_bools(), "None") | {"None": accept(None, "the constructor's")}
    if name == "IntegratedGradients":
        table |= {
            "baselines": {
                **drop(wrong_kinds(), "None", "list"),
                "number": accept(0.5),
                "np.float64": accept(np.float64(0.5)),
                "nan": Bad(math.nan, finite=False),  # NaN passes through, as NaN arrays
                "other-shape": reject(x[:, :2]),
                "one-row": accept(x[:1]),
                "complex": reject(x.to(torch.complex64)),
                "int": accept(torch.zeros(2, 4, dtype=torch.int64, device=torch_device)),
                "numpy": reject(np.zeros((2, 4))),
                "nan-array": Bad(bad_arrays(x)["nan"], finite=False),
            },
            "n_steps": bad_ints(4),
            "method": {**wrong_kinds(), "unknown": "simpson", "bool": True},
            "internal_batch_size": bad_ints(4) | {"None": accept(None)},
            "return_convergence_delta": bad_bools(),
        }
    names = {"inputs": ("inputs", "x", "dtype")}
    sweep(method.attribute, valid, table, names=names, expect=lambda out, kw: None)


def test_attribution_constructors(torch_device):
    net = linear_net(torch_device)
    for name in METHODS:
        for bad in ("a", 3, None, [net]):
            raises_naming(lambda n=name, b=bad: getattr(bt, n)(b), "forward_func", TypeError)
    for bad in ("a", 1, None):
        raises_naming(lambda b=bad: bt.IntegratedGradients(net, b), "multiply_by_inputs")
    check_outcome(lambda: bt.IntegratedGradients(net, False), names=(), outcome="accept")


def test_attribution_tuple_inputs_and_extra_arguments(torch_device):
    """Tuple inputs and additional forward arguments, as captum: a tuple with a non-tensor
    or tensors of other batch sizes or devices is refused naming inputs."""
    model = TwoInputs().to(torch_device).eval()
    x1, x2 = tensor(torch_device, (2, 4)), tensor(torch_device, (2, 5), seed=1)
    x2_elsewhere = x2.to(other_device(torch_device))
    for name in METHODS:
        method = getattr(bt, name)(model)
        out = method.attribute((x1, x2), target=0, additional_forward_args=(2.0,))
        assert isinstance(out, tuple) and out[0].shape == x1.shape and out[1].shape == x2.shape
        for bad in ((x1, x2[:1]), (x1, "a"), (x1, np.zeros((2, 5)))):
            check_outcome(
                lambda m=method, b=bad: m.attribute(b, target=0, additional_forward_args=(2.0,)),
                names=("inputs", "batch"),
                outcome="raise",
            )
        raises_naming(
            lambda m=method: m.attribute(
                (x1, x2_elsewhere), target=0, additional_forward_args=(2.0,)
            ),
            ("inputs", "device"),
            ValueError,
        )


TUNNEL_TABLES = {
    "nt_type": {**wrong_kinds(), "unknown": "smoothgrad_cube", "bool": True},
    "nt_samples": bad_ints(4),
    "nt_samples_batch_size": bad_ints(2) | {"None": accept(None), "above-nt_samples": accept(9)},
    "stdevs": drop(real_option(), "huge", "list")
    | {
        "huge": reject(1e39),
        "list": accept([1.0], "one per input: there is one input"),
        "tuple": accept((0.5,)),
        "tuple-too-long": reject((0.5, 0.5)),
    },
    "draw_baseline_from_distrib": bad_bools(),
    "rng": {
        **drop(wrong_kinds(), "None"),
        "bool": True,
        "float": 1.0,
        "negative": -1,
        "huge": 2**64,
        **numpy_ints(7),
        "torch-generator": accept(torch.Generator()),
    },
    "relative": bad_bools(),
    "progress": drop(bad_bools(), "None") | {"None": accept(None)},
}


@pytest.mark.parametrize("captum_compatible", [False, True], ids=["refimpl", "captum_compatible"])
@pytest.mark.parametrize("name", METHODS)
def test_noise_tunnel_sweep(torch_device, name, captum_compatible):
    net = linear_net(torch_device)
    nt = bt.NoiseTunnel(getattr(bt, name)(net), captum_compatible=captum_compatible)
    x = tensor(torch_device, (2, 4))
    valid = dict(
        inputs=x,
        nt_type="smoothgrad",
        nt_samples=4,
        nt_samples_batch_size=None,
        stdevs=0.5,
        draw_baseline_from_distrib=False,
        rng=0,
        relative=False,
        progress=None,
        target=1,
    )
    if name == "IntegratedGradients":
        valid["n_steps"] = 4
    table = {k: dict(v) for k, v in TUNNEL_TABLES.items()}
    # NaN/inf inputs pass through (attribution_inputs_table); the largest finite value is
    # refused: x + 40 stdevs would overflow
    table["inputs"] = attribution_inputs_table(x)
    table["inputs"]["huge"] = reject(table["inputs"]["huge"].value, "x + 40 stdevs overflows")
    table["target"] = target_table(torch_device)
    if captum_compatible:  # captum draws with torch.randn: only torch generators (or seeds)
        table["rng"]["numpy-generator"] = reject(np.random.default_rng(0))
    names = {"inputs": ("inputs", "x", "dtype")}
    sweep(nt.attribute, valid, table, names=names)


def test_noise_tunnel_constructor(torch_device):
    net = linear_net(torch_device)
    for bad in ("a", 1, None, np.bool_(True)):
        raises_naming(
            lambda b=bad: bt.NoiseTunnel(bt.Saliency(net), captum_compatible=b), "captum_compatible"
        )
    for bad in ("a", 3, None, net):
        raises_naming(lambda b=bad: bt.NoiseTunnel(b), "attribution_method")


@given(
    stdevs=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([1e39, 3e38])),
    nt_type=st.sampled_from(["smoothgrad", "smoothgrad_sq", "vargrad"]),
    captum_compatible=st.booleans(),
)
def test_noise_tunnel_any_stdev(torch_device, stdevs, nt_type, captum_compatible):
    """Any float stdev: a finite attribution, or a ValueError naming stdevs."""
    net = linear_net(torch_device)
    nt = bt.NoiseTunnel(bt.Saliency(net), captum_compatible=captum_compatible)
    x = tensor(torch_device, (2, 4))
    out = check_outcome(
        lambda: nt.attribute(x, nt_type=nt_type, nt_samples=3, stdevs=stdevs, rng=0, target=1),
        names="stdevs",
        ref=x,
    )
    if not isinstance(out, ValueError):
        assert math.isfinite(stdevs) and stdevs >= 0 and out.shape == x.shape


# -- Eigendistortion -------------------------------------------------------------------------
def eig_model(device, dtype=torch.float32):
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(1, 2, 3, padding=1)
    return torch.nn.Sequential(conv, torch.nn.Softplus()).to(device, dtype).eval()


def eig_image(device, dtype=torch.float32):
    g = torch.Generator().manual_seed(0)
    return torch.rand(1, 1, 4, 4, generator=g, dtype=dtype).to(device)


def quietly(fn):
    """``fn`` with plenoptic's warnings (image range, training mode, unconverged) off."""

    @functools.wraps(fn)
    def call(*args, **kwargs):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn(*args, **kwargs)

    return call


def test_eigendistortion_constructor_sweep(torch_device):
    x = eig_image(torch_device)
    table = {
        "image": bad_arrays(x)
        | {
            "a-batch-of-two": reject(torch.cat([x, x])),
            "float16": reject(x.half(), "the eigensolvers need single precision"),
            "float64": reject(x.double(), "the model's parameters are float32"),
        },
        "model": {
            **drop(wrong_kinds(), "list"),
            "bool": True,
            "returns-a-str": reject(lambda t: "a"),
            "another-dtype": reject(eig_model(torch_device, torch.float64)),
        },
    }
    table["image"].pop("bfloat16", None)  # torch has it: refused as float16 is
    table["image"]["bfloat16"] = reject(x.to(torch.bfloat16))
    # NaN/inf pixels: the model's output and its Jacobian would be NaN
    for label in ("nan", "inf", "-inf"):
        table["image"][label] = reject(table["image"][label])
    table["image"]["huge"] = Bad(table["image"]["huge"], finite=False)  # softplus(3e38) = 3e38

    def build(image, model):
        return quietly(bt.Eigendistortion)(image, model).image

    names = {"image": ("image", "input_tensor", "x"), "model": ("model", "module", "output")}
    sweep(build, {"image": x, "model": eig_model(torch_device)}, table, names=names)


SYNTHESIS_TABLES = {
    "method": {**wrong_kinds(), "unknown": "lanczos", "upper-case": "Power", "bool": True},
    "k": bad_ints(1) | {"above-n": reject(17, "the image has 16 pixels")},
    "max_iter": bad_ints(2),
    "p": drop(bad_ints(1), "zero") | {"zero": accept(0)},
    "q": drop(bad_ints(1), "zero") | {"zero": accept(0)},
    # 0 is refused (the residual test needs a tolerance > 0; plenoptic's own test of the
    # change of lambda accepts it), a huge one stops at once
    "stop_criterion": drop(real_option(), "huge", "zero")
    | {"zero": reject(0.0), "huge": accept(1e39, "stops at once")},
    "rng": TUNNEL_TABLES["rng"],
    "progress": drop(bad_bools(), "None") | {"None": reject(None)},
    "lanczos": {**wrong_kinds(), "unknown": "lobpcg", "bool": True},
}


@pytest.mark.parametrize("method", ["power", "randomized_svd", "eigsh", "exact"])
def test_eigendistortion_synthesize_sweep(torch_device, method):
    e = quietly(bt.Eigendistortion)(eig_image(torch_device), eig_model(torch_device))
    valid = dict(  # small: every Fisher product is a vmapped backward (~8 ms)
        method=method,
        k=1,
        max_iter=2,
        p=1,
        q=1,
        stop_criterion=1e-7,
        rng=0,
        progress=False,
        lanczos="auto",
    )
    table = {k: dict(v) for k, v in SYNTHESIS_TABLES.items()}
    table.pop("method" if method != "power" else "lanczos")

    def synthesize(**kwargs):
        quietly(e.synthesize)(**kwargs)
        return e.eigenvalues, e.eigendistortions

    sweep(synthesize, valid, table)


def test_eigendistortion_to_sweep(torch_device):
    def moved(*args, **kwargs):
        e = quietly(bt.Eigendistortion)(eig_image(torch_device), eig_model(torch_device))
        quietly(e.synthesize)("exact", progress=False)
        e.to(*args, **kwargs)
        return e.image, e.eigenvalues

    table = {
        "dtype": {
            **drop(wrong_kinds(), "None"),
            "int": torch.int64,
            "float16": reject(torch.float16, "the eigensolvers need single precision"),
            "bfloat16": reject(torch.bfloat16),
            "complex": reject(torch.complex64),
            "float64": accept(torch.float64),
        },
        "device": {
            **drop(wrong_kinds(), "None"),
            "unknown": "nowhere",
            "meta": reject("meta", "holds no values"),
            "no-such-accelerator": reject("cuda:0")
            if not torch.cuda.is_available()
            else accept("cuda:0"),
        },
    }
    names = {"dtype": ("dtype", "to"), "device": ("device", "to")}
    sweep(moved, {"dtype": torch.float32, "device": torch_device}, table, names=names)


def test_eigendistortion_to_failure_leaves_the_object(torch_device):
    e = quietly(bt.Eigendistortion)(eig_image(torch_device), eig_model(torch_device))
    quietly(e.synthesize)("exact", progress=False)
    before = (e.image.clone(), e.eigenvalues.clone(), e.model[0].weight.detach().clone())
    for args in ((torch.float16,), ("nowhere",), ("meta",), ("a", "b")):
        with pytest.raises((TypeError, ValueError)):
            e.to(*args)
        after = (e.image, e.eigenvalues, e.model[0].weight.detach())
        assert all(torch.equal(a, b) for a, b in zip(before, after))


def saved_file(tmp_path, device):
    e = quietly(bt.Eigendistortion)(eig_image(device), eig_model(device))
    quietly(e.synthesize)("exact", progress=False)
    path = tmp_path / "eig.npz"
    e.save(str(path))
    return path


def corrupted_files(tmp_path, path):
    """Damaged copies of the saved ``path`` (the corrupted files of the sweep): truncated,
    emptied, random bytes, a pickle, archives with missing, broken or crafted metadata and
    members, one saved from another image; a directory; a missing file."""
    data = path.read_bytes()
    files = {}

    def write(name, content):
        p = tmp_path / name
        p.write_bytes(content)
        files[name] = str(p)

    write("truncated.npz", data[: len(data) // 2])
    write("empty.npz", b"")
    write("random.npz", np.random.default_rng(0).bytes(len(data)))
    write("pickle.npz", pickle.dumps({"eigenvalues": [1.0]}))
    with zipfile.ZipFile(path) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    meta = json.loads(members["metadata.json"])

    def archive(name, changed):
        p = tmp_path / name
        with zipfile.ZipFile(p, "w") as zf:
            for member, content in {**members, **changed}.items():
                if content is not None:
                    zf.writestr(member, content)
        files[name] = str(p)

    archive("no-metadata.npz", {"metadata.json": None})
    archive("bad-json.npz", {"metadata.json": members["metadata.json"][:-2]})
    archive("metadata-a-list.npz", {"metadata.json": b"[1, 2]"})
    archive("no-eigenvalues.npz", {"eigenvalues.npy": None})
    archive("unknown-method.npz", {"metadata.json": json.dumps({**meta, "method": "x"})})
    archive("future-version.npz", {"metadata.json": json.dumps({**meta, "version": 99})})
    archive("extra-member.npz", {"extra.npy": members["eigenvalues.npy"]})
    archive(
        "swapped-arrays.npz",
        {
            "eigenvalues.npy": members["eigenindex.npy"],
            "eigenindex.npy": members["eigenvalues.npy"],
        },
    )
    other = tmp_path / "other-image.npz"
    e = quietly(bt.Eigendistortion)(eig_image(torch.device("cpu")) * 0.5, eig_model("cpu"))
    quietly(e.synthesize)("exact", progress=False)
    e.save(str(other))
    files["other-image.npz"] = str(other)
    files["a-directory"] = str(tmp_path)
    return files


def test_eigendistortion_load_sweep(torch_device, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a str file_path such as "1" is relative: read nothing else
    path = saved_file(tmp_path, torch_device)

    def load(file_path, **kwargs):
        e = quietly(bt.Eigendistortion)(eig_image(torch_device), eig_model(torch_device))
        quietly(e.load)(file_path, **kwargs)
        return e.eigenvalues

    table = {
        "file_path": {
            **{name: reject(p) for name, p in corrupted_files(tmp_path, path).items()},
            **drop(wrong_kinds(), "str"),
            "int": 3,
            "bool": True,
            "pathlib": accept(path),
        },
        "map_location": {
            **drop(wrong_kinds(), "None"),
            "unknown": "nowhere",
            "meta": "meta",
            "same": accept(str(torch_device)),
        },
        "raise_on_checks": bad_bools(),
        "tensor_equality_atol": real_option(),  # a huge tolerance: every check passes
        "tensor_equality_rtol": real_option(),
    }
    valid = dict(
        file_path=str(path),
        map_location=None,
        raise_on_checks=True,
        tensor_equality_atol=1e-8,
        tensor_equality_rtol=1e-5,
    )
    names = {"file_path": ("file_path", "path", str(tmp_path)), "map_location": "map_location"}
    sweep(load, valid, table, names=names)
    e = quietly(bt.Eigendistortion)(eig_image(torch_device), eig_model(torch_device))
    raises_naming(lambda: e.load(str(path), weights_only=True), "pickle", TypeError)


def test_eigendistortion_save_sweep(torch_device, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a str file_path such as "1" is relative: write here
    e = quietly(bt.Eigendistortion)(eig_image(torch_device), eig_model(torch_device))
    quietly(e.synthesize)("exact", progress=False)

    def save(file_path):
        e.save(file_path)
        return e.eigenvalues

    table = {
        "file_path": {
            **wrong_kinds(),
            "int": 3,
            "a-directory": reject(str(tmp_path)),
        }
    }
    names = {"file_path": ("file_path", "path", str(tmp_path))}
    sweep(save, {"file_path": str(tmp_path / "ok.npz")}, table, names=names)


def test_eigendistortion_missing_paths_are_os_errors(torch_device, tmp_path):
    """A path that does not exist is no bad value but a missing file: FileNotFoundError
    naming it, as ``open`` (and plenoptic's ``torch.load``) raise; kept deliberately."""
    e = quietly(bt.Eigendistortion)(eig_image(torch_device), eig_model(torch_device))
    for call, path in (
        (e.save, tmp_path / "missing" / "eig.npz"),
        (e.load, tmp_path / "missing.npz"),
    ):
        with pytest.raises(FileNotFoundError, match="missing"):
            call(str(path))


# -- as_model ----------------------------------------------------------------------------------
def test_as_model_constructor_sweep(torch_device):
    x = tensor(torch_device, (2, 4))

    def build(module, jvp_mode):
        return bt.as_model(module, jvp_mode=jvp_mode)(x)

    table = {
        "module": {**drop(wrong_kinds(), "object"), "int": 3, "bool": True, "a-tensor": x},
        "jvp_mode": {**wrong_kinds(), "unknown": "reverse", "bool": True},
    }
    sweep(build, {"module": linear_net(torch_device), "jvp_mode": "auto"}, table)


@pytest.mark.parametrize("method", ["__call__", "jvp", "vjp", "linearize"])
def test_as_model_call_sweep(torch_device, method):
    model = bt.as_model(linear_net(torch_device))
    x = tensor(torch_device, (2, 4))
    # a 0-d x reaches the module, whose own error (nn.Linear: a RuntimeError) propagates:
    # the module is the caller's code (test_attribution_model_errors_propagate)
    valid, table = {"x": x}, {"x": drop(bad_arrays(x), "0-d")}
    for label in ("float16", "bfloat16"):  # the module's parameters are float32
        table["x"][label] = reject(table["x"][label])
    # a linear map: NaN/inf inputs give NaN/inf outputs, as the module does
    for label in ("nan", "inf", "-inf", "huge"):
        table["x"][label] = Bad(table["x"][label], finite=False)
    if method in ("jvp", "vjp"):
        second = tensor(torch_device, (2, 4) if method == "jvp" else (2, 3), seed=1)
        name = "v" if method == "jvp" else "u"
        valid[name] = second
        table[name] = passing_through(second) | {
            "other-shape": reject(second[:, :2]),
            "batch-of-two": accept(torch.stack([second, second])),
        }
        table[name]["float64"] = reject(second.double())
    fn = getattr(model, method)
    if method == "linearize":

        def fn(x):
            lin = model.linearize(x)
            return lin.y, lin.jvp(x), lin.vjp(lin.y)

    # an x of another shape than u's makes them disagree: the message names u
    names = {"x": ("x", "u"), "v": ("v",), "u": ("u",)}
    sweep(fn, valid, table, names=names)


def test_as_model_other_devices(torch_device):
    model = bt.as_model(linear_net(torch_device))
    x = tensor(torch_device, (2, 4))
    elsewhere = other_device(torch_device)
    raises_naming(lambda: model(x.to(elsewhere)), "x", ValueError)
    raises_naming(lambda: model.jvp(x, x.to(elsewhere)), "v", ValueError)
    raises_naming(lambda: model.vjp(x, torch.zeros(2, 3, device=elsewhere)), "u", ValueError)


# -- tensors without values (the meta device) ---------------------------------------------------
def test_front_ends_that_read_values_refuse_meta_tensors():
    """perturbed, FenchelYoungLoss, NoiseTunnel, Eigendistortion and the optimizers read
    values (finiteness checks, noise scales, norms, convergence tests): a meta tensor is a
    ValueError naming the argument, never torch's RuntimeError from ``Tensor.item()``."""
    m = torch.zeros(2, 5, device="meta")
    net = torch.nn.Linear(5, 3).to("meta")
    calls = {
        "input_tensor": [
            lambda: bt.perturbed(one_hot_argmax, num_samples=8)(m),
            lambda: bt.FenchelYoungLoss(one_hot_argmax, num_samples=8)(m, m),
        ],
        "inputs": [
            lambda: bt.NoiseTunnel(bt.Saliency(net)).attribute(m, target=1, nt_samples=2),
            lambda: bt.NoiseTunnel(bt.Saliency(net), captum_compatible=True).attribute(
                m, target=1, nt_samples=2
            ),
            lambda: bt.NoiseTunnel(bt.Saliency(net)).attribute((m, m), target=1, nt_samples=2),
        ],
        "image": [
            lambda: bt.Eigendistortion(
                torch.zeros(1, 1, 4, 4, device="meta"), eig_model("cpu").to("meta")
            )
        ],
    }
    for name, fns in calls.items():
        for fn in fns:
            raises_naming(quietly(fn), name, ValueError)


def test_front_ends_that_read_shapes_accept_meta_tensors():
    """What needs no values runs on meta tensors, as torch does: AdditivePerturbation, the
    in-place samplers, the gradient attributions on a meta module, as_model."""
    m = torch.zeros(2, 4, device="meta")
    net = torch.nn.Linear(4, 3).to("meta")
    for out in (
        bt.AdditivePerturbation(m)(m),
        bt.Saliency(net).attribute(m, target=1),
        bt.IntegratedGradients(net).attribute(m, target=1, n_steps=3),
        bt.as_model(net)(m),
        bt.as_model(net).vjp(m, torch.zeros(2, 3, device="meta")),
    ):
        assert out.device.type == "meta"


@pytest.mark.parametrize("method", ["Saliency", "InputXGradient", "IntegratedGradients"])
def test_noise_tunnel_around_captum_methods_sweep(torch_device, method):
    """NoiseTunnel wrapping captum's own attribution objects: the same options and checks."""
    ca = pytest.importorskip("captum.attr")
    warnings.filterwarnings("ignore", module="captum")
    net = linear_net(torch_device)
    x = tensor(torch_device, (2, 4))
    valid = dict(inputs=x, nt_samples=3, stdevs=0.5, rng=0, target=1)
    table = {k: TUNNEL_TABLES[k] for k in ("nt_samples", "stdevs", "rng")}
    # float16/bfloat16 inputs meet the module's own dtype error, an empty batch captum's own
    # IndexError: the wrapped method is the caller's (captum's) code, its errors propagate
    table["inputs"] = drop(attribution_inputs_table(x), "empty")
    table["inputs"]["huge"] = reject(table["inputs"]["huge"].value, "x + 40 stdevs overflows")
    if method == "IntegratedGradients":
        valid["n_steps"] = 4
    for captum_compatible in (False, True):
        nt = bt.NoiseTunnel(getattr(ca, method)(net), captum_compatible=captum_compatible)
        sweep(quietly(nt.attribute), valid, table, names={"inputs": ("inputs", "x", "dtype")})
