"""Bad-input sweep of refimpl.models and refimpl.linops.

Models: the constructors of ``Linear``, ``Conv2d`` (both methods, every padding mode),
``Pointwise``, ``LuminanceGainControl``, ``Flatten``, ``Sequential`` and the filters
``gaussian_kernel`` and ``center_surround``; the calls ``model(x)``, ``model.linearize(x)``,
``model.jvp(x, v)`` and ``model.vjp(x, u)`` of each. Linear operators: the constructors of
``JacobianOperator`` and ``FisherOperator``, their ``matvec``, ``matmat``, ``rmatvec``,
``rmatmat`` and ``apply``, ``jacobian`` and ``aslinearoperator``.

Weights are drawn with ``sum |w| = 0.1``, so every output and product of these models stays
below the largest entry of its input: an input entry at the dtype's largest value must give
a finite result (both correlation methods alike). Every test runs on every backend of the
``backend`` fixture; the rule is the harness's (tests/bad_input/harness.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refimpl import linops as rl
from refimpl import models as rm
from refimpl.models.conv import PAD_MODES
from tests.bad_input.harness import (
    Bad,
    accept,
    bad_arrays,
    bad_bools,
    bad_ints,
    bad_reals,
    check_outcome,
    drop,
    reject,
    sweep,
    wrong_kinds,
)

F32 = "float32"

#: NaN, inf and overflowing entries are what the sweep feeds in: numpy's warnings about them
pytestmark = pytest.mark.filterwarnings("ignore:(invalid value|overflow) encountered")

#: NaN and inf go through these models as through torch's (elementwise maps and matrix
#: products spread them; only the correlations refuse them: tests/test_models.py)
PROPAGATES = "a NaN or infinite entry propagates, as in torch.nn.Linear and its activations"
#: a linear map of a NaN or infinite tangent (cotangent) is NaN or infinite, as in autograd
LINEAR_MAP = "a linear map of a NaN or infinite direction"
#: labels of bad_arrays that are never an input of a model of floating arrays
NOT_INPUTS = ("None", "str", "list", "int", "bool", "complex", "other-library", "other-device")


def data(backend, shape, dtype=F32, low=0.1, high=0.9, seed=0):
    """Uniform entries in [low, high) as an array of the backend (from a list: see
    tests/test_perturbations.py)."""
    a = np.random.default_rng(seed).uniform(low, high, shape)
    return backend.xp.asarray(a.tolist(), dtype=backend.dtype(dtype), device=backend.device)


def small(backend, shape, dtype=F32, seed=1):
    """Random weights with ``sum |w| = 0.1``: outputs and products stay below ``max|input|``
    (a replicate or reflect adjoint adds at most 4 padded copies: 0.4)."""
    a = np.random.default_rng(seed).standard_normal(shape)
    a = 0.1 * a / np.abs(a).sum()
    return backend.xp.asarray(a.tolist(), dtype=backend.dtype(dtype), device=backend.device)


def where(backend):
    return dict(backend=backend.name, device=backend.device)


def marked(table, labels, mark):
    """``table`` with the entries ``labels`` (those present) wrapped by ``mark``."""
    return {k: mark(v) if k in labels else v for k, v in table.items()}


# -- the models under test ---------------------------------------------------------------------
@dataclass
class Case:
    """A model, a valid input, and what the rule expects of it.

    ``finite_only``: refuses NaN/inf pixels (the correlations, and what starts with one);
    ``elementwise``: takes a 0-d input; ``bounded``: outputs and products stay below the
    largest entry of their input (an entry at the dtype's largest value gives a finite
    result); ``weightless``: holds no array, so an input of another library or device is
    fine (the result follows it)."""

    model: Any
    x: Any
    finite_only: bool = False
    elementwise: bool = False
    bounded: bool = True
    weightless: bool = False


def _conv(backend, method, pad_mode, stride=1):
    weight = small(backend, (2, 1, 3, 3))
    bias = small(backend, (2,), seed=2)
    model = rm.Conv2d(weight, bias, pad_mode=pad_mode, stride=stride, method=method)
    return Case(model, data(backend, (1, 1, 6, 7)), finite_only=True)


def make_case(name, backend):
    if name == "linear":
        return Case(
            rm.Linear(small(backend, (4, 3)), small(backend, (4,), seed=2)), data(backend, (2, 3))
        )
    if name.startswith("conv-"):
        _, method, pad_mode, *stride = name.split("-")
        return _conv(backend, method, pad_mode, *(int(s) for s in stride))
    if name.startswith("pointwise-"):
        model = rm.Pointwise(name.split("-")[1])
        return Case(model, data(backend, (2, 3)), elementwise=True, weightless=True)
    if name == "flatten":
        return Case(rm.Flatten(2), data(backend, (2, 3, 4)), weightless=True)
    if name == "lgc":
        lgc = rm.LuminanceGainControl(5, pad_mode="reflect", dtype=F32, **where(backend))
        # C x overflows before the division by 1 + a G x: the model's formula (plenoptic's)
        # has no finite value to give at an input entry near the dtype's largest value
        return Case(lgc, data(backend, (1, 1, 8, 8)), finite_only=True, bounded=False)
    if name == "sequential":
        conv = rm.Conv2d(small(backend, (2, 1, 3, 3)), method="fft")
        tail = rm.Linear(small(backend, (3, 2 * 6 * 7)))
        model = rm.Sequential(conv, rm.Pointwise("softplus"), rm.Flatten(3), tail)
        return Case(model, data(backend, (1, 1, 6, 7)), finite_only=True)
    raise AssertionError(name)


MODELS = [
    "linear",
    *(f"conv-{m}-{p}" for m in ("direct", "fft") for p in PAD_MODES),
    "conv-fft-circular-2",
    "conv-direct-replicate-3",
    *(f"pointwise-{f}" for f in rm.ACTIVATIONS),
    "flatten",
    "lgc",
    "sequential",
]


def x_table(case):
    """Bad inputs of a model (see :class:`Case` for what each model accepts)."""
    table = marked(bad_arrays(case.x), NOT_INPUTS, reject)
    table["0-d"] = (accept if case.elementwise else reject)(table["0-d"])
    table["empty"] = accept(table["empty"], "an empty batch gives an empty result")
    table = marked(table, ("float16", "bfloat16"), accept)  # weights are cast to x's dtype
    if case.finite_only:
        table = marked(table, ("nan", "inf", "-inf"), reject)
    else:
        table = marked(
            table, ("nan", "inf", "-inf"), lambda v: Bad(v, finite=False, note=PROPAGATES)
        )
    table["huge"] = accept(table["huge"]) if case.bounded else Bad(table["huge"], finite=False)
    if case.weightless:
        table = marked(table, ("other-library", "other-device"), lambda b: accept(b.value))
    return table


def direction_table(a, bounded):
    """Bad tangents (cotangents) shaped like ``a``: anything but an array of ``a``'s library,
    device, dtype and shape (one leading batch axis allowed) is refused."""
    xp = _xp(a)
    table = bad_arrays(a)
    for label, value in list(table.items()):
        if label not in ("nan", "inf", "-inf", "huge"):
            table[label] = reject(value)
    table = marked(table, ("nan", "inf", "-inf"), lambda v: Bad(v, finite=False, note=LINEAR_MAP))
    table["huge"] = accept(table["huge"]) if bounded else Bad(table["huge"], finite=False)
    table["batch-of-2"] = accept(xp.stack([a, a]), "one leading batch axis of directions")
    table["batch-of-0"] = accept(xp.stack([a, a])[:0, ...], "no directions: an empty batch")
    table["two-batch-axes"] = reject(xp.stack([xp.stack([a, a])]))
    return table


def _xp(a):
    import backends

    return backends.namespace_and_device(a)[0]


def leads_to(shape_of):
    """``expect`` for a product: its shape is the direction's leading axes, then
    ``shape_of(kwargs)``."""

    def expect(out, kwargs):
        direction = kwargs.get("v", kwargs.get("u"))
        ref = shape_of(kwargs)
        lead = tuple(direction.shape[: direction.ndim - len(kwargs["x"].shape)])
        assert tuple(out.shape) == lead + tuple(ref), f"shape {tuple(out.shape)}"

    return expect


# -- model calls -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", MODELS)
def test_call_and_linearize_sweep(backend, name):
    """``model(x)`` and ``model.linearize(x)`` (its output and both products at x)."""
    case = make_case(name, backend)
    model = case.model

    def linearized(x):
        lin = model.linearize(x)
        return lin.y, lin.jvp(x), lin.vjp(lin.y)

    table = {"x": x_table(case)}
    sweep(model, {"x": case.x}, table)
    sweep(linearized, {"x": case.x}, table)


@pytest.mark.parametrize("name", MODELS)
def test_jvp_and_vjp_sweep(backend, name):
    case = make_case(name, backend)
    model, x = case.model, case.x
    y = model(x)
    sweep(
        model.jvp,
        {"x": x, "v": x},
        {"v": direction_table(x, case.bounded)},
        names={"v": "v (the tangent)"},
        expect=leads_to(lambda kw: y.shape),
    )

    def vjp(x, u):
        return model.vjp(x, u)

    sweep(
        vjp,
        {"x": x, "u": y},
        {"u": direction_table(y, case.bounded)},
        names={"u": "u (the cotangent)"},
        expect=lambda out, kw: _vjp_shape(out, kw, y),
    )


def _vjp_shape(out, kwargs, y):
    u = kwargs["u"]
    lead = tuple(u.shape[: u.ndim - y.ndim])
    assert tuple(out.shape) == lead + tuple(kwargs["x"].shape), f"shape {tuple(out.shape)}"


def test_conv_methods_agree_at_any_magnitude(backend):
    """An image (and a tangent, a cotangent) whose largest entry is anywhere in float32's
    range, up to its largest value: the FFT method gives the direct method's finite result
    (its spectra are kept in range), never NaN, in every padding mode."""
    top = float(np.finfo(np.float32).max)
    x0 = backend.xp.reshape(data(backend, (1, 1, 6, 7)), (-1,))
    w = small(backend, (2, 1, 3, 3))
    models = {
        mode: [rm.Conv2d(w, pad_mode=mode, method=m) for m in ("direct", "fft")]
        for mode in PAD_MODES
    }

    @settings(max_examples=25)
    @given(
        exponent=st.integers(-30, 38),
        mantissa=st.floats(1.0, 3.4),
        pick=st.integers(0, 41),
        pad_mode=st.sampled_from(PAD_MODES),
    )
    def check(exponent, mantissa, pick, pad_mode):
        peak = min(mantissa * 10.0**exponent, top)
        scale = [peak if i == pick else 1.0 for i in range(42)]
        scale = backend.xp.asarray(scale, dtype=x0.dtype, device=backend.device)
        x = backend.xp.reshape(x0 * scale, (1, 1, 6, 7))
        direct, fft = models[pad_mode]
        u = direct(x)
        for call in (lambda m: m(x), lambda m: m.jvp(x, x), lambda m: m.vjp(x, u)):
            a = backend.to_numpy(call(direct)).astype(np.float64)
            b = backend.to_numpy(check_outcome(lambda c=call: c(fft), names="x", ref=x))
            assert np.all(np.isfinite(a)) and np.all(np.isfinite(b))
            np.testing.assert_allclose(b, a, rtol=0, atol=1e-5 * np.abs(a).max())

    check()


@given(
    lead=st.lists(st.integers(0, 3), max_size=3),
    last=st.integers(0, 5),
)
def test_linear_any_input_shape(backend, lead, last):
    """Any leading axes (size 0 too) are a batch; the last axis must be n = 3."""
    model = rm.Linear(small(backend, (4, 3)))
    x = backend.xp.zeros((*lead, last), dtype=backend.dtype(F32), device=backend.device)
    out = check_outcome(lambda: model(x), names="x", ref=x)
    assert isinstance(out, ValueError) == (last != 3)
    if last == 3:
        assert tuple(out.shape) == (*lead, 4)


@given(
    hw=st.tuples(st.integers(1, 7), st.integers(1, 7)),
    kernel=st.tuples(st.integers(1, 9), st.integers(1, 9)),
    stride=st.integers(1, 4),
    pad_mode=st.sampled_from(PAD_MODES),
)
def test_conv_any_image_and_kernel_size(backend, hw, kernel, stride, pad_mode):
    """Both methods accept and refuse the same images (reflect needs a pad of at most H - 1,
    circular at most H), with the same output shape."""
    w = small(backend, (1, 1, *kernel))
    x = data(backend, (1, 1, *hw))
    outs = [
        check_outcome(
            lambda m=method: rm.Conv2d(w, pad_mode=pad_mode, stride=stride, method=m)(x),
            names="x",
            ref=x,
        )
        for method in ("direct", "fft")
    ]
    refused = [isinstance(o, ValueError) for o in outs]
    assert refused[0] == refused[1]
    room = {"reflect": (hw[0] - 1, hw[1] - 1), "circular": hw}.get(pad_mode, (99, 99))
    pads = (kernel[0] - 1 - (kernel[0] - 1) // 2, kernel[1] - 1 - (kernel[1] - 1) // 2)
    assert refused[0] == (pads[0] > room[0] or pads[1] > room[1])
    if not refused[0]:
        want = (1, 1, -(-hw[0] // stride), -(-hw[1] // stride))
        assert tuple(outs[0].shape) == tuple(outs[1].shape) == want


# -- model constructors --------------------------------------------------------------------------
def weight_table(w, *, empty_ok):
    """Bad weights: non-arrays, 0-d, non-floating and non-finite ones are refused; narrower
    floats are accepted (cast to the input's dtype on use); weights of another library or
    device are refused when the model meets x."""
    table = marked(bad_arrays(w), (*NOT_INPUTS, "0-d", "nan", "inf", "-inf"), reject)
    table = marked(table, ("float16", "bfloat16", "huge"), accept)
    table["empty"] = (accept if empty_ok else reject)(table["empty"])
    return table


def bias_table(b):
    """Bad biases: anything but a finite array of the weights' library, device, dtype and
    shape ``(C_out,)`` (None: no bias)."""
    table = marked(bad_arrays(b), tuple(bad_arrays(b)), reject)
    table["None"] = accept(None)
    table["huge"] = accept(table["huge"].value)
    table["wrong-length"] = reject(b[:1])
    return table


#: a model built from weights of another library or device says so when it meets x
WEIGHT_NAMES = ("weight", "weights", "bias")


def test_linear_constructor_sweep(backend):
    w, b, x = small(backend, (4, 3)), small(backend, (4,), seed=2), data(backend, (2, 3))

    def call(weight, bias):
        return rm.Linear(weight, bias)(x)

    wt = weight_table(w, empty_ok=True)  # (0, 3): a map to 0 outputs, as torch.nn.Linear(3, 0)
    wt["1-d"] = reject(w[0, ...])
    sweep(call, {"weight": w, "bias": None}, {"weight": wt}, names={"weight": WEIGHT_NAMES})
    sweep(call, {"weight": w, "bias": b}, {"bias": bias_table(b)})


@pytest.mark.parametrize("method", ["direct", "fft"])
def test_conv2d_constructor_sweep(backend, method):
    w, b, x = (
        small(backend, (2, 1, 3, 3)),
        small(backend, (2,), seed=2),
        data(backend, (1, 1, 6, 7)),
    )

    def call(weight, bias, pad_mode, stride, method):
        return rm.Conv2d(weight, bias, pad_mode=pad_mode, stride=stride, method=method)(x)

    wt = weight_table(w, empty_ok=False)  # (0, 1, 3, 3): a kernel needs non-zero sizes
    wt["2-d"] = accept(w[0, 0, ...], "a (kh, kw) kernel: one channel in and out")
    wt["3-d"] = reject(w[0, ...])
    ints = drop(bad_ints(2), "zero", "negative") | {
        "zero": reject(0),
        "negative": reject(-1),
        "huge": accept(10**6, "one output pixel"),
    }
    table = {
        "bias": bias_table(b),
        "pad_mode": {**wrong_kinds(), "other": reject("mirror"), "zeros": accept("zeros")},
        "stride": ints,
        "method": {**wrong_kinds(), "other": reject("winograd"), "auto": accept("auto")},
    }
    valid = dict(weight=w, bias=b, pad_mode="reflect", stride=1, method=method)
    sweep(call, valid | {"bias": None}, {"weight": wt}, names={"weight": WEIGHT_NAMES})
    sweep(call, valid, table)


def size_table(valid=5):
    """Bad kernel sizes: positive odd ints (numpy integers too)."""
    return drop(bad_ints(valid), "zero", "negative") | {
        "zero": reject(0),
        "negative": reject(-3),
        "even": reject(4),
    }


def std_table():
    """Bad standard deviations (finite, > 0; a huge one gives a flat kernel)."""
    return drop(bad_reals(F32), "zero", "negative", "huge") | {
        "zero": reject(0.0),
        "negative": reject(-1.0),
        "huge": accept(1e39, "a flat kernel: every offset is 0 standard deviations"),
        "tiny": accept(1e-300, "a delta kernel"),
    }


def place_table(backend):
    """Bad ``backend=``/``device=``/``dtype=`` (None is the current backend, its default
    device and float64: tests/test_models.py)."""
    dtypes = drop(wrong_kinds(), "None") | {
        "int": reject("int64"),
        "bool": reject("bool"),
        "complex": reject("complex64"),
        "float64": accept("float64"),
    }
    for name in ("float16", "bfloat16"):
        if getattr(backend.xp, name, None) is not None:
            dtypes[name] = accept(name)
    return {
        "backend": drop(wrong_kinds(), "None") | {"unknown": reject("nope")},
        "device": drop(wrong_kinds(), "None") | {"unknown": reject("nope")},
        "dtype": dtypes,
    }


def test_gaussian_kernel_sweep(backend):
    valid = dict(size=5, std=1.0, dtype=F32, **where(backend))
    table = {"size": size_table(), "std": std_table(), **place_table(backend)}
    sweep(rm.gaussian_kernel, valid, table, names={"size": "kernel size"})


@given(
    size=st.integers(-3, 9),
    std=st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.sampled_from([1e-300, 5e-324, 1e-45, 1e39, 1e308]),
    ),
    dtype=st.sampled_from(["float32", "float64"]),
)
def test_gaussian_kernel_any_size_and_std(backend, size, std, dtype):
    """Any size and std: a finite kernel summing to 1 (a delta for a std below the dtype's
    smallest number, flat for one beyond its largest), or a ValueError naming the argument
    exactly when the size is not a positive odd int or std is not a finite number > 0."""
    out = check_outcome(
        lambda: rm.gaussian_kernel(size, std, dtype=dtype, **where(backend)),
        names=("kernel size", "std"),
    )
    good = size >= 1 and size % 2 == 1 and math.isfinite(std) and std > 0
    assert isinstance(out, ValueError) == (not good)
    if good:
        g = backend.to_numpy(out).astype(np.float64)
        assert g.shape == (size, size) and np.all(np.isfinite(g)) and abs(g.sum() - 1) < 1e-5


def test_center_surround_sweep(backend):
    valid = dict(
        size=5, center_std=1.0, surround_std=2.0, amplitude_ratio=1.25, on_center=True,
        dtype=F32, **where(backend),
    )  # fmt: skip
    ratios = drop(bad_reals(F32), "zero", "negative", "huge") | {
        "zero": reject(0.0),
        "below-1": reject(0.5),
        "negative": reject(-1.0),
        "huge": reject(1e39, "beyond float32: the filter would be infinite"),
    }
    table = {
        "size": size_table(),
        "center_std": std_table(),
        "surround_std": std_table(),
        "amplitude_ratio": ratios,
        "on_center": bad_bools(),
        **place_table(backend),
    }
    sweep(rm.center_surround, valid, table, names={"size": "kernel size"})


def test_luminance_gain_control_sweep(backend):
    x = data(backend, (1, 1, 8, 8))
    valid = dict(
        kernel_size=5, center_std=1.0, surround_std=2.0, amplitude_ratio=1.25,
        on_center=True, luminance_std=2.0, luminance_scalar=14.95, pad_mode="reflect",
        activation="softplus", dtype=F32, method="auto", **where(backend),
    )  # fmt: skip

    def call(**kwargs):
        return rm.LuminanceGainControl(**kwargs)(x)

    scalars = drop(bad_reals(F32), "zero", "negative", "huge") | {
        "zero": accept(0.0, "no gain control"),
        "negative": reject(-1.0),
        "huge": reject(1e39, "beyond x's float32: 1 + a G x would be infinite"),
    }
    table = {
        "kernel_size": size_table(),
        "center_std": std_table(),
        "luminance_std": std_table(),
        "amplitude_ratio": {"below-1": reject(0.5), "nan": reject(math.nan)},
        "on_center": bad_bools(),
        "luminance_scalar": scalars,
        "pad_mode": {**wrong_kinds(), "other": reject("mirror"), "circular": accept("circular")},
        "activation": {
            **wrong_kinds(),
            "other": reject("swish"),
            "tanh": accept("tanh"),
            "model": accept(rm.Pointwise("sigmoid")),
        },
        "method": {**wrong_kinds(), "other": reject("winograd"), "fft": accept("fft")},
        **place_table(backend),
    }
    names = {"kernel_size": "kernel size"}
    sweep(call, valid, table, names=names)


def test_luminance_scalar_must_fit_the_input_dtype(backend):
    """``1 + a G x`` is computed in x's dtype: a luminance_scalar beyond it (1e5 for a float16
    image) is refused when the model meets x, naming luminance_scalar."""
    if getattr(backend.xp, "float16", None) is None:
        pytest.skip(f"{backend.name} has no float16")
    lgc = rm.LuminanceGainControl(5, luminance_scalar=1e5, dtype=F32, **where(backend))
    x = data(backend, (1, 1, 8, 8))
    check_outcome(lambda: lgc(x), names="luminance_scalar", ref=x, outcome="accept")
    half = backend.xp.astype(x, backend.xp.float16)
    for call in (lgc, lgc.linearize):
        check_outcome(lambda c=call: c(half), names="luminance_scalar", outcome="raise")


def test_pointwise_constructor_sweep(backend):
    x = data(backend, (2, 3))

    def call(f, fprime):
        return rm.Pointwise(f, fprime).linearize(x).vjp(x)

    def cube(a):
        return a * a * a

    fs = {
        **drop(wrong_kinds(), "str"),
        "unknown": reject("swish"),
        "callable-without-fprime": reject(cube),
        "returns-None": reject(lambda a: None),
        "returns-list": reject(lambda a: [1.0]),
        "changes-shape": reject(lambda a: a[:1, ...]),
    }
    fprimes = {
        **drop(wrong_kinds(), "None"),
        "with-a-built-in": reject(lambda a: 1 + 0 * a),
    }
    sweep(call, dict(f="tanh", fprime=None), {"f": fs, "fprime": fprimes})
    user = dict(f=cube, fprime=lambda a: 3 * a * a)
    bad_derivatives = {
        **drop(wrong_kinds(), "None"),
        "None": reject(None),
        "returns-None": reject(lambda a: None),
        "changes-dtype": reject(lambda a: backend.xp.astype(a, backend.xp.float64)),
    }
    sweep(call, user, {"fprime": bad_derivatives})


def test_flatten_sweep(backend):
    x = data(backend, (2, 3, 4))

    def call(ndim):
        return rm.Flatten(ndim).linearize(x).vjp(rm.Flatten(ndim)(x))

    ndims = drop(bad_ints(2), "zero", "negative") | {
        "zero": reject(0),
        "negative": reject(-1),
        "too-many": reject(4),
        "huge": reject(10**6),
    }
    sweep(call, {"ndim": 2}, {"ndim": ndims}, names={"ndim": ("ndim", "x")})


def test_sequential_sweep(backend):
    x = data(backend, (2, 3))
    first, second = rm.Linear(small(backend, (4, 3))), rm.Pointwise("tanh")

    def call(first, second):
        lin = rm.Sequential(first, second).linearize(x)
        return lin.y, lin.vjp(lin.y)

    class NoVjp:
        def __call__(self, a):
            return a

        def jvp(self, a, v):
            return v

    layers = {
        **wrong_kinds(),
        "plain-function": reject(lambda a: a),
        "no-vjp": reject(NoVjp()),
        "returns-list": reject(rm.Pointwise(lambda a: [1.0], lambda a: a)),
    }
    names = {"first": ("layer", "model", "f"), "second": ("layer", "model", "f", "x")}
    sweep(call, dict(first=first, second=second), {"first": layers, "second": layers}, names=names)


# -- linear operators -----------------------------------------------------------------------------
class Protocol:
    """A user's class with only the protocol: y = 2 x (``broken`` returns something else)."""

    def __init__(self, broken=None):
        self.broken = broken

    def __call__(self, x):
        return self.broken(x) if self.broken else 2 * x

    def jvp(self, x, v):
        return 2 * v

    def vjp(self, x, u):
        return 2 * u


def model_table():
    """Bad models: anything without the derivative protocol, or whose output is not an
    array of x's library and device."""
    return {
        **wrong_kinds(),
        "plain-function": reject(lambda a: a),
        "returns-None": reject(Protocol(lambda a: None)),
        "returns-list": reject(Protocol(lambda a: [1.0])),
    }


def operator_case(backend):
    """A bounded Linear model (sum |W| = 0.1) at x of shape (2, 3): J is 8 x 6."""
    return rm.Linear(small(backend, (4, 3))), data(backend, (2, 3))


def x_table_for_operators(x):
    table = x_table(Case(None, x))
    table["0-d"] = reject(table["0-d"].value)
    return table


@pytest.mark.parametrize("kind", [rl.JacobianOperator, rl.FisherOperator])
def test_operator_constructor_sweep(backend, kind):
    model, x = operator_case(backend)

    def call(model, x):
        op = kind(model, x)
        return op.y

    table = {"model": model_table(), "x": x_table_for_operators(x)}
    sweep(call, dict(model=model, x=x), table, names={"model": ("model", "f")})


def flat_table(v, *, block):
    """Bad flat vectors ``(n,)`` (``block``: blocks ``(n, k)``)."""
    xp = _xp(v)
    table = marked(
        bad_arrays(v), ("nan", "inf", "-inf"), lambda a: Bad(a, finite=False, note=LINEAR_MAP)
    )
    for label, value in list(table.items()):
        if label not in ("nan", "inf", "-inf", "huge"):
            table[label] = reject(value)
    table["huge"] = accept(table["huge"])
    table["wrong-length"] = reject(v[1:, ...])
    if block:
        table["no-columns"] = accept(v[:, :0], "k = 0 columns: the empty block")
        table["1-d"] = reject(v[:, 0])
    else:
        table["2-d"] = reject(xp.reshape(v, (-1, 1)))
    return table


@pytest.mark.parametrize("kind", [rl.JacobianOperator, rl.FisherOperator])
@pytest.mark.parametrize("method", ["matvec", "matmat", "rmatvec", "rmatmat"])
def test_operator_product_sweep(backend, kind, method):
    model, x = operator_case(backend)
    op = kind(model, x)
    xp = backend.xp
    rows = op.shape[1] if method in ("matvec", "matmat") else op.shape[0]
    block = method.endswith("mat")
    column = data(backend, (rows,), seed=3)
    valid = xp.stack([column, 2 * column], axis=1) if block else column
    name = {"matvec": "v", "matmat": "V", "rmatvec": "u", "rmatmat": "U"}[method]
    if kind is rl.FisherOperator:  # F is symmetric: rmatvec is matvec
        name = name.replace("u", "v").replace("U", "V")

    def call(**kwargs):
        return getattr(op, method)(kwargs[name])

    def expect(out, kwargs):
        a = kwargs[name]
        other = op.shape[0] if method in ("matvec", "matmat") else op.shape[1]
        assert tuple(out.shape) == ((other, a.shape[1]) if block else (other,))

    sweep(call, {name: valid}, {name: flat_table(valid, block=block)}, expect=expect)


def test_fisher_apply_sweep(backend):
    model, x = operator_case(backend)
    op = rl.FisherOperator(model, x)
    table = direction_table(x, bounded=True)
    sweep(op.apply, {"v": x}, {"v": table}, expect=lambda out, kw: _same_shape(out, kw["v"]))


def _same_shape(out, ref):
    assert tuple(out.shape) == tuple(ref.shape), f"shape {tuple(out.shape)}"


def test_jacobian_sweep(backend):
    model, x = operator_case(backend)
    chunks = drop(bad_ints(2), "None", "zero", "negative") | {
        "None": accept(None, "as many as fit in 64 MiB"),
        "zero": reject(0),
        "negative": reject(-1),
        "huge": accept(2**70, "all vectors in one call"),
    }
    table = {"model": model_table(), "x": x_table_for_operators(x), "chunk_size": chunks}

    def expect(out, kwargs):  # (m, n): 4 outputs per row of x, n = x.size
        n = math.prod(kwargs["x"].shape)
        assert tuple(out.shape) == (4 * n // 3, n), f"shape {tuple(out.shape)}"

    sweep(rl.jacobian, dict(model=model, x=x, chunk_size=None), table, expect=expect)


def test_aslinearoperator_sweep(backend):
    model, x = operator_case(backend)
    op = rl.JacobianOperator(model, x)
    if backend.name == "array_api_strict":  # scipy sees host numpy arrays only, never a copy
        check_outcome(
            lambda: rl.aslinearoperator(op), names=("op", "LinearOperator"), outcome="raise"
        )
        return
    table = {"op": {**wrong_kinds(), "a-model": reject(model), "an-array": reject(x)}}

    def check(out):
        assert tuple(out.shape) == op.shape

    sweep(rl.aslinearoperator, {"op": op}, table, check=check)
