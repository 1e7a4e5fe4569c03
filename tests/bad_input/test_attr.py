"""Bad-input sweep of refimpl.attr: the constructors and ``attribute`` of ``Saliency``,
``InputXGradient``, ``IntegratedGradients`` and ``NoiseTunnel`` (every documented keyword,
the wrapped method's ones included), and ``quadrature``.

The model is ``tanh(x W^T)`` with ``sum |W| = 0.1`` on inputs of shape (2, 3) (4 outputs per
example): its gradients stay finite for any finite input. As in captum, a NaN or infinite
entry of an input (or baseline) array propagates to the attributions of its example; numbers
(``stdevs``, a scalar baseline) must be finite and fit the inputs' dtype. Every test runs on
every backend of the ``backend`` fixture with 4 samples and 4 steps per call; the rule is the
harness's (tests/bad_input/harness.py).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from refimpl import attr as ra
from refimpl import models as rm
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
    other_device,
    other_library,
    reject,
    sweep,
    wrong_kinds,
)

F32 = "float32"

#: NaN, inf and overflowing entries are what the sweep feeds in: numpy's warnings about them
pytestmark = pytest.mark.filterwarnings("ignore:(invalid value|overflow) encountered")
#: captum's behaviour, kept: a NaN or infinite input entry gives NaN attributions
PROPAGATES = "a NaN or infinite input entry propagates to its example's attributions (captum)"
#: inputs of another library or device than the model's weights are refused by the model's
#: own check, which names its input ``x`` ("x is a numpy.ndarray but this Linear's weights are
#: torch.Tensor; build the model with weights of x's library")
INPUTS = ("inputs", "x")
#: labels of bad_arrays that are never inputs of an attribution method
NOT_INPUTS = (
    "None",
    "str",
    "list",
    "0-d",
    "int",
    "bool",
    "complex",
    "other-library",
    "other-device",
)


def data(backend, shape=(2, 3), dtype=F32, seed=0):
    a = np.random.default_rng(seed).uniform(-1, 1, shape)
    return backend.xp.asarray(a.tolist(), dtype=backend.dtype(dtype), device=backend.device)


def model(backend, dtype=F32):
    """``tanh(x W^T)``, W (4, 3) with ``sum |W| = 0.1``."""
    w = np.random.default_rng(1).standard_normal((4, 3))
    w = backend.xp.asarray(
        (0.1 * w / np.abs(w).sum()).tolist(), dtype=backend.dtype(dtype), device=backend.device
    )
    return rm.Sequential(rm.Linear(w), rm.Pointwise("tanh"))


def marked(table, labels, mark):
    return {k: mark(v) if k in labels else v for k, v in table.items()}


def ints(backend, values):
    return backend.xp.asarray(values, dtype=backend.xp.int64, device=backend.device)


def same_shape(out, kwargs):
    x = kwargs["inputs"]
    out = out[0] if isinstance(out, tuple) and not isinstance(x, tuple) else out
    assert tuple(out.shape) == tuple(x.shape), f"shape {tuple(out.shape)}"


# -- tables ----------------------------------------------------------------------------------------
def inputs_table(x):
    """Bad ``inputs``: one floating array (B, ...) or a non-empty tuple of them."""
    table = marked(bad_arrays(x), NOT_INPUTS, reject)
    table = marked(table, ("float16", "bfloat16"), accept)  # the model casts its weights
    table = marked(table, ("nan", "inf", "-inf"), lambda v: Bad(v, finite=False, note=PROPAGATES))
    table["empty"] = accept(table["empty"], "no examples: empty attributions")
    table["huge"] = accept(table["huge"], "tanh saturates: a zero gradient")
    table["empty-tuple"] = reject(())
    table["tuple-with-None"] = reject((x, None))
    return table


def target_table(backend, x):
    """Bad ``target`` for 4 outputs per example and a batch of 2 (captum's rules)."""
    table = {
        **wrong_kinds(),  # None: 4 outputs per example, so a target is needed
        "bool": reject(True),
        "float": reject(1.0),
        "nan": reject(math.nan),
        "negative": accept(-1, "from the end, as a Python index (captum)"),
        "out-of-range": reject(4),
        "-out-of-range": reject(-5),
        "huge": reject(2**70),
        "np.int64": accept(np.int64(3)),
        "np.int32": accept(np.int32(3)),
        "tuple": accept((2,)),
        "tuple-too-long": reject((1, 0)),
        "list": accept([0, 3]),
        "list-of-np.int64": accept([np.int64(0), np.int64(1)]),
        "list-too-short": reject([0]),
        "list-bad-entry": reject([0, 1.5]),
        "list-of-bools": reject([True, False]),
        "int-array": accept(ints(backend, [0, 3])),
        "0-d-int-array": accept(ints(backend, 2)),
        "float-array": reject(x[:, 0]),
        "bool-array": reject(ints(backend, [0, 1]) > 0),
        "int-array-wrong-length": reject(ints(backend, [0, 1, 2])),
        "int-array-out-of-range": reject(ints(backend, [0, 9])),
        "int-array-2-d": reject(ints(backend, [[0, 1], [1, 0]])),
    }
    for label, make in (("other-library", other_library), ("other-device", other_device)):
        moved = make(x)
        if moved is not None:  # an int array of another library or device
            table[f"int-array-{label}"] = reject(make(ints(backend, [0, 3])))
    return table


def forward_args_table(x):
    """refimpl models take no ``additional_forward_args`` (None: none)."""
    return {**drop(wrong_kinds(), "None"), "array": reject(x), "tuple": reject((x,))}


def positive_ints(valid):
    """``bad_ints(valid)`` with 0 and negatives refused (counts >= 1)."""
    return drop(bad_ints(valid), "zero", "negative") | {"zero": reject(0), "negative": reject(-1)}


def optional(table, note="None: the default"):
    return drop(table, "None") | {"None": accept(None, note)}


def baselines_table(x):
    """Bad ``baselines`` of integrated gradients: None, a finite real number that fits the
    inputs' dtype, or a real array of the input's shape or ``(1, *shape[1:])``."""
    numbers = drop(bad_reals(F32), "None", "zero", "negative") | {
        "None": accept(None, "zeros"),
        "zero": accept(0.0),
        "negative": accept(-1.0),
        "int": accept(1),
        "np.int64": accept(np.int64(1)),
        "complex": reject(1j),
        "huge": reject(1e39, "beyond float32: the baseline would be infinite"),
    }
    arrays = {f"array-{k}": v for k, v in bad_arrays(x).items() if k not in ("None", "str", "list")}
    arrays = marked(
        arrays,
        ("array-complex", "array-other-library", "array-other-device", "array-empty"),
        reject,
    )
    arrays = marked(
        arrays,
        ("array-nan", "array-inf", "array--inf"),
        lambda v: Bad(v, finite=False, note=PROPAGATES),
    )
    # x - b with b at the dtype's largest value (x > 0 somewhere) leaves the dtype
    arrays["array-huge"] = Bad(arrays["array-huge"], finite=False, note="x - b beyond the dtype")
    arrays["array-0-d"] = accept(arrays["array-0-d"], "a 0-d array is a number")
    arrays["array-one-row"] = accept(x[:1, ...], "(1, *shape[1:]) broadcasts")
    arrays["array-wrong-shape"] = reject(x[:, :1])
    arrays["tuple-of-two"] = reject((0.0, 0.0))
    return numbers | arrays


# -- Saliency, InputXGradient ------------------------------------------------------------------
@pytest.mark.parametrize("method", [ra.Saliency, ra.InputXGradient])
def test_gradient_attribute_sweep(backend, method):
    x = data(backend)
    explainer = method(model(backend))
    table = {
        "inputs": inputs_table(x),
        "target": target_table(backend, x),
        "additional_forward_args": forward_args_table(x),
    }
    valid = dict(inputs=x, target=0, additional_forward_args=None)
    if method is ra.Saliency:
        table["abs"] = optional(bad_bools(), "None: the constructor's choice")
        valid["abs"] = None
    sweep(explainer.attribute, valid, table, names={"inputs": INPUTS}, expect=same_shape)


def test_gradient_constructor_sweep(backend):
    x, forward = data(backend), model(backend)

    def saliency(forward_func, abs):
        return ra.Saliency(forward_func, abs=abs).attribute(x, target=0)

    def input_x_gradient(forward_func):
        return ra.InputXGradient(forward_func).attribute(x, target=0)

    funcs = {
        **wrong_kinds(),
        "plain-function": reject(lambda a: a, "no derivatives: no jvp/vjp"),
        "an-array": reject(x),
    }
    names = {"forward_func": ("forward_func", "model")}
    sweep(
        saliency,
        dict(forward_func=forward, abs=True),
        {"forward_func": funcs, "abs": bad_bools()},
        names=names,
    )
    sweep(input_x_gradient, dict(forward_func=forward), {"forward_func": funcs}, names=names)


class TwoInputs:
    """A user's model of two inputs: ``tanh(x1 A^T + x2 B^T)``, with ``model.vjp(x, u)``
    returning one cotangent per input."""

    def __init__(self, backend):
        r = np.random.default_rng(2)
        self.xp = backend.xp
        self.a, self.b = (
            backend.xp.asarray(
                (0.05 * r.standard_normal((4, n))).tolist(),
                dtype=backend.dtype(F32),
                device=backend.device,
            )
            for n in (3, 5)
        )

    def _weights(self, xs):  # each input's weights in its dtype
        return [self.xp.astype(w, x.dtype) for w, x in zip((self.a, self.b), xs)]

    def __call__(self, xs):
        (x1, x2), (a, b) = xs, self._weights(xs)
        mt = self.xp.matrix_transpose
        return self.xp.tanh(x1 @ mt(a) + x2 @ mt(b))

    def vjp(self, xs, u):
        d = u * (1 - self(xs) ** 2)
        return tuple(self.xp.astype(d, w.dtype) @ w for w in self._weights(xs))


def test_tuple_inputs_sweep(backend):
    """Tuple inputs: each entry checked and named (``inputs[1]``); the batch sizes agree."""
    x1, x2 = data(backend), data(backend, (2, 5), seed=3)
    explainer = ra.Saliency(TwoInputs(backend))

    def call(first, second):
        return explainer.attribute((first, second), target=1)

    second = marked(bad_arrays(x2), NOT_INPUTS, reject)
    second = marked(second, ("nan", "inf", "-inf"), lambda v: Bad(v, finite=False, note=PROPAGATES))
    second = marked(second, ("float16", "bfloat16", "huge"), accept)
    second["empty"] = reject(second["empty"], "no examples, where inputs[0] has 2")
    second["other-batch"] = reject(x2[:1, ...])
    sweep(
        call,
        dict(first=x1, second=x2),
        {"second": second},
        names={"second": ("inputs[1]", "inputs")},
    )


# -- IntegratedGradients ----------------------------------------------------------------------------
def ig_table(backend, x):
    return {
        "inputs": inputs_table(x),
        "baselines": baselines_table(x),
        "target": target_table(backend, x),
        "additional_forward_args": forward_args_table(x),
        "n_steps": optional(positive_ints(4), "None: the constructor's n_steps"),
        "method": {
            **drop(wrong_kinds(), "None"),
            "None": accept(None, "the constructor's method"),
            "other": reject("simpson"),
            "upper-case": reject("Riemann_Left"),
            "riemann_trapezoid": accept("riemann_trapezoid"),
        },
        "internal_batch_size": optional(positive_ints(2), "None: all steps in one call")
        | {"huge": accept(2**70, "all steps in one call")},
        "return_convergence_delta": bad_bools(),
    }


def test_integrated_gradients_attribute_sweep(backend):
    x = data(backend)
    explainer = ra.IntegratedGradients(model(backend), n_steps=4)
    valid = dict(
        inputs=x, baselines=None, target=0, additional_forward_args=None, n_steps=4,
        method=None, internal_batch_size=None, return_convergence_delta=False,
    )  # fmt: skip
    sweep(
        explainer.attribute,
        valid,
        ig_table(backend, x),
        names={"inputs": INPUTS},
        expect=same_shape,
    )


def test_integrated_gradients_constructor_sweep(backend):
    x, forward = data(backend), model(backend)

    def call(forward_func, multiply_by_inputs, n_steps, method):
        ig = ra.IntegratedGradients(
            forward_func, multiply_by_inputs, n_steps=n_steps, method=method
        )
        return ig.attribute(x, target=0)

    table = {
        "forward_func": {**wrong_kinds(), "plain-function": reject(lambda a: a)},
        "multiply_by_inputs": bad_bools(),
        "n_steps": positive_ints(4),
        "method": {**wrong_kinds(), "other": reject("simpson")},
    }
    valid = dict(forward_func=forward, multiply_by_inputs=True, n_steps=4, method="gausslegendre")
    sweep(call, valid, table, names={"forward_func": ("forward_func", "model")})


@given(
    value=st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.sampled_from([3.4e38, 3.5e38, 1e39, -1e39]),
    ),
    dtype=st.sampled_from(["float32", "float64"]),
)
def test_scalar_baselines_any_float(backend, value, dtype):
    """Any float baseline: finite attributions, or a ValueError naming baselines exactly when
    it is NaN, infinite or beyond the inputs' dtype."""
    x = data(backend, dtype=dtype)
    ig = ra.IntegratedGradients(model(backend, dtype), n_steps=4)
    out = check_outcome(
        lambda: ig.attribute(x, baselines=value, target=1), names="baselines", ref=x
    )
    fits = math.isfinite(value) and abs(value) <= float(np.finfo(dtype).max)
    assert isinstance(out, ValueError) == (not fits)


# -- quadrature -------------------------------------------------------------------------------------
def test_quadrature_sweep():
    table = {
        "method": {
            **wrong_kinds(),
            "other": reject("simpson"),
            "riemann_middle": accept("riemann_middle"),
        },
        "n_steps": positive_ints(4),
    }

    def check(out):
        nodes, weights = out
        assert len(nodes) == len(weights) and math.isclose(sum(weights), 1.0)

    sweep(ra.quadrature, dict(method="gausslegendre", n_steps=4), table, check=check)
    trapezoid = {"one": reject(1, "the trapezoid rule needs both ends"), "zero": reject(0)}
    sweep(ra.quadrature, dict(method="riemann_trapezoid", n_steps=2), {"n_steps": trapezoid})


@given(n=st.integers(-3, 80), method=st.sampled_from(ra.METHODS))
def test_quadrature_any_number_of_steps(n, method):
    """Every rule: nodes in [0, 1], weights summing to 1, for every n >= 1 (>= 2 for the
    trapezoid); a ValueError naming n_steps otherwise."""
    out = check_outcome(lambda: ra.quadrature(method, n), names="n_steps")
    low = 2 if method == "riemann_trapezoid" else 1
    assert isinstance(out, ValueError) == (n < low)
    if n >= low:
        nodes, weights = out
        assert len(nodes) == n and all(0.0 <= a <= 1.0 for a in nodes)
        assert math.isclose(sum(weights), 1.0, rel_tol=1e-12)


# -- NoiseTunnel ----------------------------------------------------------------------------------
#: the options of a fast valid call (4 samples, no bar)
NT = dict(
    nt_type="smoothgrad", nt_samples=4, nt_samples_batch_size=None, stdevs=0.5,
    draw_baseline_from_distrib=False, rng=0, relative=False, progress=False,
)  # fmt: skip


def nt_option_table():
    """Bad values of every option of ``NoiseTunnel.attribute``."""
    return {
        "nt_type": {
            **wrong_kinds(),
            "other": reject("smoothgrad_squared"),
            "upper-case": reject("SmoothGrad"),
            "vargrad": accept("vargrad"),
        },
        "nt_samples": positive_ints(4),
        "nt_samples_batch_size": optional(positive_ints(2), "None: all samples in one call")
        | {"huge": accept(2**70, "all samples in one call")},
        "stdevs": drop(bad_reals(F32), "zero", "list")
        | {
            "zero": accept(0.0, "no noise"),
            "int": accept(1),
            "list": accept([0.5], "one per input, as a tuple"),
            "tuple": accept((0.5,)),
            "tuple-too-long": reject((0.5, 0.5)),
            "tuple-with-nan": reject((math.nan,)),
            "empty-tuple": reject(()),
        },
        "draw_baseline_from_distrib": bad_bools(),
        "rng": bad_rngs(),
        "relative": bad_bools(),
        "progress": optional(bad_bools(), "None: a bar for long runs only"),
    }


@pytest.mark.parametrize("method", [ra.Saliency, ra.InputXGradient])
def test_noise_tunnel_attribute_sweep(backend, method):
    x = data(backend)
    tunnel = ra.NoiseTunnel(method(model(backend)))
    inputs = inputs_table(x)
    # the dtype's largest value leaves no room for the noise: stdevs is named with inputs
    inputs["huge"] = reject(inputs["huge"].value)
    table = {
        **nt_option_table(),
        "inputs": inputs,
        "target": target_table(backend, x),
        "additional_forward_args": forward_args_table(x),
        "return_convergence_delta": {**bad_bools(), "True": reject(True, "no delta")},
    }
    valid = dict(
        NT, inputs=x, target=0, additional_forward_args=None, return_convergence_delta=False
    )
    names = {"inputs": (*INPUTS, "stdevs")}
    sweep(tunnel.attribute, valid, table, names=names, expect=same_shape)


def test_noise_tunnel_integrated_gradients_sweep(backend):
    """The wrapped method's keywords: baselines (drawn from their distribution too), the
    convergence delta and the quadrature, each checked before any noise is drawn."""
    x = data(backend)
    tunnel = ra.NoiseTunnel(ra.IntegratedGradients(model(backend), n_steps=4))
    table = drop(ig_table(backend, x), "inputs", "additional_forward_args")
    valid = dict(
        NT, inputs=x, baselines=None, target=0, n_steps=4, method=None,
        internal_batch_size=None, return_convergence_delta=False,
    )  # fmt: skip
    sweep(tunnel.attribute, valid, table, expect=same_shape)
    drawn = {
        "one-row": accept(x[:1, ...]),
        "three-rows": accept(backend.xp.concat([x, x[:1, ...]])),
        "no-rows": reject(x[:0, ...]),
        "wrong-shape": reject(x[:, :2]),
        "number": accept(0.0, "a scalar baseline: nothing to draw"),
    }
    valid = dict(valid, draw_baseline_from_distrib=True, baselines=x)
    sweep(tunnel.attribute, valid, {"baselines": drawn}, expect=same_shape)


def test_noise_tunnel_constructor_sweep(backend):
    x = data(backend)

    class NoAttribute:
        forward_func = None

    def call(attribution_method):
        return ra.NoiseTunnel(attribution_method).attribute(x, **NT, target=0)

    methods = {
        **wrong_kinds(),
        "no-attribute": reject(NoAttribute()),
        "a-model": reject(model(backend)),
    }
    sweep(
        call, dict(attribution_method=ra.Saliency(model(backend))), {"attribution_method": methods}
    )


@given(
    stdevs=st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.sampled_from([8.5e36, 8.6e36, 1e37, 1e39, 4.2e306, 5e306]),
    ),
    dtype=st.sampled_from(["float32", "float64"]),
    relative=st.booleans(),
)
def test_noise_tunnel_any_stdevs(backend, stdevs, dtype, relative):
    """Any float stdevs: finite attributions, or a ValueError naming stdevs exactly when it is
    negative, NaN, infinite, or ``max|x| + 40 sigma`` leaves the inputs' dtype (sigma =
    stdevs, or stdevs times each example's range with ``relative``)."""
    x = data(backend, dtype=dtype)
    tunnel = ra.NoiseTunnel(ra.Saliency(model(backend, dtype)))
    options = dict(NT, stdevs=stdevs, relative=relative)
    out = check_outcome(lambda: tunnel.attribute(x, **options, target=0), names="stdevs", ref=x)
    host = backend.to_numpy(x).astype(np.float64)
    span = float(np.max(host.max(axis=1) - host.min(axis=1))) if relative else 1.0
    if not (math.isfinite(stdevs) and stdevs >= 0):
        assert isinstance(out, ValueError), out
        return
    peak, top = np.abs(host).max() + 40 * stdevs * span, float(np.finfo(dtype).max)
    if peak <= top * (1 - 1e-6) or peak >= top * (1 + 1e-6):  # rounding decides in between
        assert isinstance(out, ValueError) == (peak > top), out


@given(target=st.integers(-10, 10), wrap=st.sampled_from(["int", "tuple", "list", "array"]))
def test_any_int_target(backend, target, wrap):
    """Any index, however given: the attribution of that output, or a ValueError naming the
    target exactly when it is outside [-4, 4)."""
    x = data(backend)
    value = {
        "int": target,
        "tuple": (target,),
        "list": [target, target],
        "array": ints(backend, [target, target]),
    }[wrap]
    saliency = ra.Saliency(model(backend), abs=False)
    out = check_outcome(lambda: saliency.attribute(x, target=value), names="target", ref=x)
    assert isinstance(out, ValueError) == (not -4 <= target < 4)
    if -4 <= target < 4:
        ref = saliency.attribute(x, target=target % 4)
        np.testing.assert_array_equal(backend.to_numpy(out), backend.to_numpy(ref))
