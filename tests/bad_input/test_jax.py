"""Bad-input sweep of the JAX backend: the adapter (``backends.get("jax")``: devices,
``asarray``), ``as_rng`` with JAX keys and seeds, and one call of each refimpl method on jax
arrays with bad inputs (samplers, AdditivePerturbation, the Frank-Wolfe optimizers, perturbed
optimizers and the Fenchel-Young loss, the attributions and the noise tunnel, the models and
linear operators, eigendistortions).

Runs whenever jax is installed (the suite's jax column is opt-in, see tests/conftest.py).
XLA compiles every operation once per new shape and dtype, so every call here uses the same
few shapes ((2, 4) and its rows) and float32; the tables keep one bad array of each class.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

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

jax = pytest.importorskip("jax")

import backends  # noqa: E402

B = backends.get("jax")
xp = B.xp


def arr(values, dtype="float32"):
    return B.asarray(np.asarray(values, dtype=np.float64), dtype=dtype)


def data(shape=(2, 4), seed=0):
    return arr(np.random.default_rng(seed).standard_normal(shape))


def jax_rngs():
    """Bad ``rng`` values for jax arrays, and the keys that must be accepted."""
    key = jax.random.key(0)
    return {
        **drop(wrong_kinds(), "None"),
        "bool": True,
        "float": 1.0,
        "nan": math.nan,
        "negative": -1,
        "huge": 2**64,
        **numpy_ints(7),
        "largest-seed": accept(2**64 - 1, "seeds up to 2**64 - 1 on every backend"),
        "key": accept(key),
        "legacy-key": accept(jax.random.PRNGKey(0)),
        "numpy-generator": accept(np.random.default_rng(0), "draws on the host, then copies"),
        "batch-of-keys": reject(jax.random.split(key)),
        "uint32-of-shape-3": reject(arr(np.zeros(3), dtype="uint32")),
        "float-key-data": reject(arr(np.zeros(2))),
        "numpy-key-data": reject(np.zeros(2, dtype=np.uint32)),
    }


def place(out):
    """The result is a jax array on the default device (the inputs' place)."""
    xs = out if isinstance(out, tuple) else (out,)
    for a in xs:
        assert backends.backend_of(a) is B, f"result of {type(a).__name__}"
        assert a.device == B.default_device


# -- the adapter -----------------------------------------------------------------------------
def test_device_sweep():
    table = {
        "spec": {
            **drop(wrong_kinds(), "None"),
            "bool": True,
            "float": 0.0,
            "empty": "",
            "upper-case": "CPU",
            "unknown": "tpu-or-nothing",
            "index-out-of-range": "cpu:7",
            "bad-index": "cpu:x",
            "int-out-of-range": 7,
            "negative": -1,
            **numpy_ints(0),
            "None": accept(None, "the default device"),
            "a-device": accept(B.default_device),
            "cpu": accept("cpu"),
            "int": accept(0),
        }
    }
    if not any(d.platform == "gpu" for d in B.devices()):
        table["spec"] |= {"gpu": reject("gpu"), "cuda:0": reject("cuda:0")}

    def device(spec):
        d = B.device(spec)
        assert d in B.devices()
        return B.asarray([1.0], device=d)

    sweep(device, {"spec": "cpu"}, table, names={"spec": ("device", "JAX")})


def test_devices_are_jax_devices():
    devices = B.devices()
    assert devices and B.default_device in devices
    assert all(isinstance(d, jax.Device) for d in devices)


def test_asarray_sweep():
    table = {
        "obj": {
            "str": "a",
            "None": None,
            "dict": {},
            "object": object(),
            "ragged": [[1.0], [2.0, 3.0]],
            "np.float64": accept(np.float64(1.0)),
            "nested-list": accept([[1.0, 2.0]]),
        },
        "dtype": {
            "unknown-name": "float8",
            "int": 3,
            "object": object(),
            "list": [1.0],
            "bfloat16": accept("bfloat16"),
            "numpy-dtype": accept(np.float32),
            "jax-dtype": accept(xp.float16),
            "None": accept(None),
        },
        "device": {**drop(wrong_kinds(), "None"), "unknown": "tpu-or-nothing", "bool": True},
    }
    out = sweep(B.asarray, {"obj": [1.0, 2.0], "dtype": "float32", "device": "cpu"}, table)
    place(out)
    place(B.asarray(np.zeros(3), dtype="float32"))  # a numpy array becomes a jax one


# -- random numbers ----------------------------------------------------------------------------
def test_as_rng_sweep():
    x = data()

    def draw(rng):
        r = backends.as_rng(rng, like=x)
        return r.normal((2, 4), dtype=xp.float32), r.uniform((2, 4), dtype=xp.float32)

    sweep(draw, {"rng": 0}, {"rng": jax_rngs()})


def test_keys_of_jax_for_other_libraries_and_others_for_jax():
    x = data()
    for other in (np.zeros(2),):
        with pytest.raises(TypeError, match="rng is a JAX key"):
            backends.as_rng(jax.random.key(0), like=other)
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match="rng is a torch.Generator"):
        backends.as_rng(torch.Generator(), like=x)


def test_as_rng_like_and_backend():
    """``like=`` must be an array; ``backend="jax"`` with a device spec works as asarray's."""
    # (like=None is the default: the current backend of the switch, numpy here)
    table = {"like": {**drop(wrong_kinds(), "None"), "number": 1.0}}
    sweep(
        lambda like: backends.as_rng(0, like=like).normal((2,), dtype=xp.float32),
        {"like": data()},
        table,
    )
    out = backends.as_rng(0, backend="jax", device=np.int64(0)).normal((2,), dtype=xp.float32)
    place(out)
    with pytest.raises(ValueError, match="device"):
        backends.as_rng(0, backend="jax", device="cpu:7")


# -- one call of each refimpl method ---------------------------------------------------------------
def test_sampler_on_jax():
    from refimpl.perturbations import uniform_like_l2_n_ball

    x = data()
    table = {
        "x": bad_arrays(x),
        "epsilon": drop(bad_reals("float32"), "zero") | {"zero": accept(0.0)},
        "rng": jax_rngs(),
    }
    for label in ("nan", "inf", "-inf", "huge"):  # x is a template: its values are not read
        table["x"][label] = accept(table["x"][label])
    table["x"]["complex"] = accept(table["x"]["complex"], "drawn in the complex ball")
    sweep(uniform_like_l2_n_ball, {"x": x, "epsilon": 1.0, "rng": 0}, table,
          names={"x": ("x", "param_ndim")})  # fmt: skip


def test_additive_perturbation_on_jax():
    from refimpl.perturbations import AdditivePerturbation, uniform_like_l1_n_ball

    x = data()
    p = AdditivePerturbation(x, init_fn=uniform_like_l1_n_ball, rng=jax.random.key(1))
    table = {"data": bad_arrays(x)}
    for label in ("nan", "inf", "-inf"):  # x + delta: NaN/inf pass through
        table["data"][label] = Bad(table["data"][label], finite=False)
    table["data"].pop("empty")  # test_additive_perturbation_names_a_data_that_does_not_fit
    sweep(lambda data: p(data), {"data": x}, table, names={"data": ("data", "x", "delta")})


def test_additive_perturbation_names_a_data_that_does_not_fit():
    from refimpl.perturbations import AdditivePerturbation

    p = AdditivePerturbation(data())
    check_outcome(lambda: p(data()[:0]), names="x", outcome="raise")


def test_frank_wolfe_on_jax():
    from refimpl.optim import L1qFrankWolfe

    x, g = data(), data(seed=1)

    def step(grad, q, epsilon, rng):
        opt = L1qFrankWolfe([x], q=q, epsilon=epsilon, dq=0.1, rng=rng)
        (new,) = opt.step([grad])
        return new

    table = {
        "grad": bad_arrays(g),
        "q": drop(bad_reals("float32"), "zero", "huge")
        | {"zero": accept(0.0), "huge": reject(2.0)},
        "epsilon": drop(bad_reals("float32"), "zero") | {"zero": accept(0.0)},
        "rng": jax_rngs(),
    }
    for label in ("nan", "inf", "-inf"):  # NaN gradients propagate (never silently zeroed)
        table["grad"][label] = Bad(table["grad"][label], finite=False)
    names = {"grad": ("grad", "grads", "gradient")}
    sweep(step, {"grad": g, "q": 0.5, "epsilon": 1.0, "rng": 0}, table, names=names)


def test_perturbed_on_jax():
    from refimpl.perturbed import argmax_one_hot, fenchel_young_loss, perturbed

    theta = data()
    y = argmax_one_hot(data(seed=2))

    def run(theta, y, sigma, num_samples, rng):
        p = perturbed(argmax_one_hot, num_samples=num_samples, sigma=sigma, rng=rng)
        loss = fenchel_young_loss(argmax_one_hot, num_samples=num_samples, sigma=sigma, rng=rng)
        return p(theta), loss(theta, y)

    table = {
        "theta": bad_arrays(theta),
        "y": {
            **drop(
                bad_arrays(y), "int", "bool", "float16", "bfloat16", "nan", "inf", "-inf", "huge"
            )
        },
        "sigma": drop(bad_reals("float32"), "zero", "negative") | {"zero": reject(0.0)},
        "num_samples": bad_ints(8),
        "rng": jax_rngs(),
    }
    table["theta"]["huge"] = reject(table["theta"]["huge"], "theta + 40 sigma overflows")
    # 16-bit thetas are accepted on every backend (tests/bad_input/test_perturbed): not
    # compiled again here
    table["theta"] = drop(table["theta"], "float16", "bfloat16")
    valid = dict(theta=theta, y=y, sigma=0.5, num_samples=8, rng=0)
    sweep(run, valid, table)


def test_attributions_on_jax():
    from refimpl import attr as ra
    from refimpl import models as rm

    W = arr(np.random.default_rng(0).standard_normal((3, 4)))
    x = data()

    def run(inputs, stdevs, nt_samples, target, rng):
        nt = ra.NoiseTunnel(ra.Saliency(rm.Linear(W), abs=False))
        out = nt.attribute(inputs, nt_samples=nt_samples, stdevs=stdevs, target=target, rng=rng)
        return out, ra.IntegratedGradients(rm.Linear(W)).attribute(inputs, target=target, n_steps=4)

    table = {
        "inputs": drop(bad_arrays(x), "float16", "bfloat16"),  # the model's weights: float32
        "stdevs": drop(bad_reals("float32"), "zero") | {"zero": accept(0.0)},
        "nt_samples": bad_ints(3),
        "target": {
            **drop(wrong_kinds(), "None", "list"),
            "None": reject(None, "three outputs per example"),
            "out-of-range": 3,
            "float": 1.0,
            "list": accept([0, 2]),
            "jax-indices": accept(B.asarray([0, 2])),
            "numpy-indices": np.array([0, 2]),
        },
        "rng": jax_rngs(),
    }
    for label in ("nan", "inf", "-inf"):  # NaN inputs of a linear model: NaN in IG only
        table["inputs"][label] = Bad(table["inputs"][label], finite=False)
    table["inputs"]["huge"] = reject(table["inputs"]["huge"], "x + 40 stdevs overflows")
    valid = dict(inputs=x, stdevs=0.5, nt_samples=3, target=1, rng=0)
    sweep(run, valid, table, names={"inputs": ("inputs", "x", "the model")})


def test_models_and_operators_on_jax():
    from refimpl import linops
    from refimpl import models as rm

    W = arr(np.random.default_rng(0).standard_normal((3, 4)))
    model = rm.Sequential(rm.Linear(W), rm.Pointwise("softplus"))
    x, v = data((4,)), data((4,), seed=1)

    def run(x, v):
        op = linops.FisherOperator(model, x)
        return model(x), model.jvp(x, v), op.matvec(v)

    table = {"x": bad_arrays(x), "v": bad_arrays(v)}
    for label in ("nan", "inf", "-inf", "huge"):
        table["x"][label] = Bad(table["x"][label], finite=False)
        table["v"][label] = Bad(table["v"][label], finite=False)
    sweep(run, {"x": x, "v": v}, table, names={"x": ("x",), "v": ("v", "x")})


def test_eigendistortion_on_jax():
    from refimpl import models as rm
    from refimpl.eigendistortion import Eigendistortion

    W = arr(np.random.default_rng(0).standard_normal((3, 4)))
    model = rm.Sequential(rm.Linear(W), rm.Pointwise("softplus"))
    image = arr(np.random.default_rng(1).uniform(size=(4,)))

    def run(image, method, k, rng):
        e = Eigendistortion(image, model)
        e.synthesize(method, k=k, max_iter=3, rng=rng, progress=False)
        return e.eigenvalues

    table = {
        "image": bad_arrays(image),
        "method": {**wrong_kinds(), "unknown": "lanczos"},
        "k": bad_ints(1) | {"above-n": reject(5)},
        "rng": jax_rngs(),
    }
    for label in ("nan", "inf", "-inf"):
        table["image"][label] = reject(table["image"][label])
    table["image"]["huge"] = Bad(table["image"]["huge"], finite=False)
    import warnings

    def quiet(**kwargs):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return run(**kwargs)

    # the model's own check names its input x (see the sweep's report)
    names = {"image": ("image", "x")}
    sweep(quiet, dict(image=image, method="power", k=1, rng=0), table, names=names)
    check_outcome(lambda: quiet(image=image, method="exact", k=1, rng=0), names=(),
                  outcome="accept")  # fmt: skip


@pytest.mark.parametrize("value", list(bad_bools().items()), ids=lambda kv: kv[0])
def test_boolean_options_on_jax(value):
    """A bool option (``batched``) of a method on jax arrays: only True or False."""
    from refimpl.perturbed import argmax_one_hot, perturbed

    label, v = value
    check_outcome(
        lambda: perturbed(argmax_one_hot, num_samples=8, batched=v, rng=0)(data()),
        names="batched",
        outcome="raise",
    )
