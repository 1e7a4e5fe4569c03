"""refimpl.models: every model's hand-written JVP and VJP on every backend and dtype.

Identities checked for each model: the adjoint identity <J v, u> = <v, J^T u>; central finite
differences; a tangent (cotangent) batch equals the loop over its vectors; a linearization
gives the model's own products; outputs keep the input's namespace, device and dtype; the
float32 result matches a float64 numpy reference.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import backends
from refimpl import models as rm
from refimpl.models.conv import PAD_MODES, fft_size
from tests.conftest import as64, has_dtype, tol

RNG = np.random.default_rng


def arr(backend, a, dtype):
    return backend.xp.asarray(np.asarray(a).tolist(), dtype=dtype, device=backend.device)


def where(backend):
    return dict(backend=backend.name, device=backend.device)


def build(name: str, backend, wdtype="float64"):
    """(model, input shape, input low, input high) for a named model, weights on backend."""
    r = RNG(7)
    w = lambda a: arr(backend, a, backend.dtype(wdtype))  # noqa: E731
    if name == "linear":
        return rm.Linear(w(r.standard_normal((5, 7))), w(r.standard_normal(5))), (3, 7), -1, 1
    if name == "conv-reflect-direct-2ch":
        m = rm.Conv2d(w(r.standard_normal((2, 3, 3, 3))), w(r.standard_normal(2)), method="direct")
        return m, (2, 3, 8, 9), -1, 1
    if name == "conv-circular-fft-stride2":
        m = rm.Conv2d(
            w(r.standard_normal((2, 1, 7, 5))), pad_mode="circular", stride=2, method="fft"
        )
        return m, (1, 1, 10, 12), -1, 1
    if name == "conv-replicate-fft":
        m = rm.Conv2d(w(r.standard_normal((1, 2, 4, 6))), pad_mode="replicate", method="fft")
        return m, (2, 9, 7), -1, 1
    if name == "conv-constant-direct-stride3":
        m = rm.Conv2d(w(r.standard_normal((3, 3))), pad_mode="zeros", stride=3, method="direct")
        return m, (1, 1, 10, 8), -1, 1
    if name == "gaussian":
        g = rm.gaussian_kernel(5, 1.5, **where(backend), dtype=wdtype)
        return rm.Conv2d(g, pad_mode="reflect"), (1, 1, 9, 9), 0, 1
    if name.startswith("pointwise-"):
        return rm.Pointwise(name.split("-", 1)[1]), (4, 6), -3, 3
    if name == "user-cube":
        return rm.Pointwise(lambda x: x * x * x, lambda x: 3 * x * x), (3, 4), -2, 2
    if name == "lgc":
        m = rm.LuminanceGainControl(9, pad_mode="circular", **where(backend), dtype=wdtype)
        return m, (1, 1, 11, 10), 0.1, 0.9
    if name == "sequential":
        conv = rm.Conv2d(w(r.standard_normal((2, 1, 3, 3))), w(r.standard_normal(2)))
        lin = rm.Linear(w(r.standard_normal((4, 2 * 6 * 5)) / 5))
        m = rm.Sequential(conv, rm.Pointwise("tanh"), rm.Flatten(3), lin, rm.Pointwise("sigmoid"))
        return m, (2, 1, 6, 5), -1, 1
    raise KeyError(name)


MODELS = [
    "linear",
    "conv-reflect-direct-2ch",
    "conv-circular-fft-stride2",
    "conv-replicate-fft",
    "conv-constant-direct-stride3",
    "gaussian",
    "pointwise-softplus",
    "pointwise-sigmoid",
    "pointwise-tanh",
    "pointwise-relu",
    "user-cube",
    "lgc",
    "sequential",
]


def inputs(backend, dtype, shape, lo, hi, seed=0):
    a = RNG(seed).uniform(lo, hi, shape)
    return a, arr(backend, a, dtype)


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


@pytest.mark.parametrize("name", MODELS)
def test_adjoint_identity_and_placement(backend, dtype, name):
    model, shape, lo, hi = build(name, backend)
    _, x = inputs(backend, dtype, shape, lo, hi)
    y = model(x)
    backend.assert_same_place(y, dtype)
    v = arr(backend, RNG(1).standard_normal(shape), dtype)
    u = arr(backend, RNG(2).standard_normal(tuple(y.shape)), dtype)
    jv, jtu = model.jvp(x, v), model.vjp(x, u)
    backend.assert_same_place(jv, dtype)
    backend.assert_same_place(jtu, dtype)
    assert tuple(jv.shape) == tuple(y.shape) and tuple(jtu.shape) == shape
    lhs = float(np.sum(backend.to_numpy(jv).astype(np.float64) * backend.to_numpy(u)))
    rhs = float(np.sum(backend.to_numpy(v).astype(np.float64) * backend.to_numpy(jtu)))
    scale = np.linalg.norm(backend.to_numpy(jv)) * np.linalg.norm(backend.to_numpy(u))
    eps = float(np.finfo(backend.dtype_name(dtype)).eps)
    assert abs(lhs - rhs) <= 50 * eps * max(scale, 1e-30), (lhs, rhs)


@pytest.mark.parametrize("name", MODELS)
def test_jvp_matches_central_differences(backend, dtype, name):
    """(f(x + h v) - f(x - h v)) / 2h, evaluated in float64 on the same backend (truncation
    O(h^2) and rounding O(eps/h) both about 1e-10 relative), against J v computed in the test
    dtype: float64 to 1e-7, float32 to 1e-4 (float32 rounding of the product)."""
    model, shape, lo, hi = build(name, backend)
    a, x = inputs(backend, dtype, shape, lo, hi)
    if name == "pointwise-relu":  # keep every entry away from the kink at 0
        a = np.where(np.abs(a) < 0.2, 0.5, a)
        x = arr(backend, a, dtype)
    v = RNG(3).standard_normal(shape)
    f64 = backend.dtype("float64")
    h = 1e-5 * (hi - lo)
    up = backend.to_numpy(model(arr(backend, a + h * v, f64)))
    down = backend.to_numpy(model(arr(backend, a - h * v, f64)))
    fd = (up - down) / (2 * h)
    jv = backend.to_numpy(model.jvp(x, arr(backend, v, dtype))).astype(np.float64)
    bound = 1e-4 if backend.dtype_name(dtype) == "float32" else 1e-7
    assert rel_err(jv, fd) <= bound, rel_err(jv, fd)


@pytest.mark.parametrize("name", MODELS)
def test_batched_products_equal_the_loop(backend, dtype, name):
    model, shape, lo, hi = build(name, backend)
    _, x = inputs(backend, dtype, shape, lo, hi)
    lin = model.linearize(x)
    k = 3
    V = arr(backend, RNG(4).standard_normal((k, *shape)), dtype)
    U = arr(backend, RNG(5).standard_normal((k, *lin.y.shape)), dtype)
    JV, JTU = lin.jvp(V), lin.vjp(U)
    assert tuple(JV.shape) == (k, *lin.y.shape) and tuple(JTU.shape) == (k, *shape)
    backend.assert_same_place(JV, dtype)
    t = tol(backend.dtype_name(dtype))
    for i in range(k):
        np.testing.assert_allclose(
            backend.to_numpy(JV[i, ...]), backend.to_numpy(model.jvp(x, V[i, ...])), **t
        )
        np.testing.assert_allclose(
            backend.to_numpy(JTU[i, ...]), backend.to_numpy(model.vjp(x, U[i, ...])), **t
        )


@pytest.mark.parametrize("name", MODELS)
def test_float32_matches_float64_numpy_reference(backend, name):
    """Weights in float64, input in float32: the model computes in float32 and agrees with
    numpy float64 to float32 accuracy."""
    model, shape, lo, hi = build(name, backend)
    ref_model, *_ = build(name, _numpy_backend())
    a = RNG(0).uniform(lo, hi, shape)
    x32 = arr(backend, a, backend.dtype("float32"))
    y = backend.to_numpy(model(x32))
    y_ref = np.asarray(ref_model(a))
    assert y.dtype == np.float32
    assert rel_err(y, y_ref) < 2e-5
    v = RNG(1).standard_normal(shape)
    jv = backend.to_numpy(model.jvp(x32, arr(backend, v, backend.dtype("float32"))))
    assert rel_err(jv, np.asarray(ref_model.jvp(a, v))) < 2e-5


def _numpy_backend():
    class NB:
        name, device = "numpy", "cpu"
        adapter = backends.get("numpy")
        xp = adapter.xp

        def dtype(self, n):
            return self.adapter.dtype(n)

    return NB()


# -- model-specific values --------------------------------------------------------------------
def test_gaussian_kernel_values(backend):
    g = backend.to_numpy(rm.gaussian_kernel(5, 1.5, **where(backend)))
    o = np.arange(5) - 2.0
    ref = np.exp(-(o[:, None] ** 2 + o[None, :] ** 2) / (2 * 1.5**2))
    np.testing.assert_allclose(g, ref / ref.sum(), rtol=1e-14)
    assert g.dtype == np.float64


def test_center_surround_sums_to_zero_and_flips_sign(backend):
    on = backend.to_numpy(rm.center_surround(9, 1.0, 3.0, 1.25, True, **where(backend)))
    off = backend.to_numpy(rm.center_surround(9, 1.0, 3.0, 1.25, False, **where(backend)))
    assert abs(on.sum()) < 1e-15 and on[4, 4] > 0
    np.testing.assert_array_equal(off, -on)


def test_gaussian_blur_keeps_a_constant_image(backend, dtype):
    """A normalised kernel with circular padding maps a constant image to itself (and so,
    with the adjoint, J^T 1 = 1: the kernel is symmetric)."""
    model = rm.Conv2d(rm.gaussian_kernel(7, 2.0, **where(backend)), pad_mode="circular")
    x = arr(backend, np.full((1, 1, 8, 8), 0.3), dtype)
    np.testing.assert_allclose(backend.to_numpy(model(x)), 0.3, rtol=1e-6)
    np.testing.assert_allclose(backend.to_numpy(model.vjp(x, x)), 0.3, rtol=1e-6)


def test_direct_and_fft_agree(backend, dtype):
    r = RNG(11)
    wt = arr(backend, r.standard_normal((2, 3, 6, 5)), dtype)
    _, x = inputs(backend, dtype, (2, 3, 9, 11), -1, 1)
    u = arr(backend, r.standard_normal((2, 2, 5, 6)), dtype)
    outs = []
    for method in ("direct", "fft"):
        m = rm.Conv2d(wt, pad_mode="reflect", stride=2, method=method)
        outs.append((backend.to_numpy(m(x)), backend.to_numpy(m.vjp(x, u))))
    t = dict(rtol=1e-4, atol=1e-5) if backend.dtype_name(dtype) == "float32" else dict(rtol=1e-10)
    np.testing.assert_allclose(outs[0][0], outs[1][0], **t)
    np.testing.assert_allclose(outs[0][1], outs[1][1], **t)


def test_softplus_is_finite_for_large_inputs(backend, dtype):
    x = arr(backend, [-1000.0, -30.0, 0.0, 30.0, 1000.0], dtype)
    m = rm.Pointwise("softplus")
    y, d = backend.to_numpy(m(x)), backend.to_numpy(m.vjp(x, backend.xp.ones_like(x)))
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(d))
    np.testing.assert_allclose(y[[2, 3, 4]], [np.log(2), 30.0, 1000.0], rtol=1e-6)
    np.testing.assert_allclose(
        d, [0, 1 / (1 + np.exp(30)), 0.5, 1 / (1 + np.exp(-30)), 1], atol=1e-7
    )


@pytest.mark.parametrize("method", ["direct", "fft"])
def test_half_precision_input_keeps_its_dtype(backend, method):
    """float16 in, float16 out (the FFT runs in float32: numpy's and torch's CPU FFTs take
    nothing narrower), within float16 rounding of the float64 result."""
    try:
        half = backend.dtype("float16")
    except ValueError:
        pytest.skip(f"{backend.name} has no float16")
    model = rm.Conv2d(rm.gaussian_kernel(5, 1.0, **where(backend)), method=method)
    a, x = inputs(backend, half, (1, 1, 8, 8), 0, 1)
    y, g = model(x), model.vjp(x, x)
    backend.assert_same_place(y, half)
    backend.assert_same_place(g, half)
    np.testing.assert_allclose(backend.to_numpy(y), np.asarray(build_ref(a, method)), atol=3e-3)


def build_ref(a, method):
    return rm.Conv2d(rm.gaussian_kernel(5, 1.0, backend="numpy"), method=method)(a)


def test_extreme_gaussian_widths_stay_finite(backend):
    narrow = backend.to_numpy(rm.gaussian_kernel(5, 1e-300, **where(backend)))
    np.testing.assert_array_equal(narrow, np.outer([0, 0, 1, 0, 0], [0, 0, 1, 0, 0]))
    wide = backend.to_numpy(rm.gaussian_kernel(3, 1e300, **where(backend)))
    np.testing.assert_allclose(wide, 1 / 9)


# -- bad input ----------------------------------------------------------------------------------
def test_tangent_of_wrong_shape_is_rejected(backend, dtype):
    model, shape, lo, hi = build("lgc", backend)
    _, x = inputs(backend, dtype, shape, lo, hi)
    with pytest.raises(ValueError, match=r"v \(the tangent\) must have the shape of x"):
        model.jvp(x, arr(backend, np.zeros((1, 1, 10, 11)), dtype))
    with pytest.raises(ValueError, match=r"u \(the cotangent\)"):
        model.vjp(x, arr(backend, np.zeros((2, 2, *shape)), dtype))
    other = backend.dtype("float64" if backend.dtype_name(dtype) == "float32" else "float32")
    with pytest.raises(TypeError, match="dtype"):
        model.jvp(x, arr(backend, np.zeros(shape), other))


def test_tangent_of_another_library_or_device_is_rejected(backend, dtype):
    model, shape, lo, hi = build("conv-reflect-direct-2ch", backend)
    _, x = inputs(backend, dtype, shape, lo, hi)
    if backend.name != "numpy":
        with pytest.raises(TypeError, match="use arrays of one library"):
            model.jvp(x, np.zeros(shape, dtype=backend.dtype_name(dtype)))
    if backend.name == "array_api_strict":
        xp = backend.xp
        v = xp.zeros(shape, dtype=dtype, device=xp.Device("CPU_DEVICE"))
        with pytest.raises(ValueError, match="different devices"):
            model.jvp(x, v)
        with pytest.raises(ValueError, match="different devices"):
            model(xp.zeros(shape, dtype=dtype, device=xp.Device("CPU_DEVICE")))


def test_non_floating_input_is_rejected(backend):
    model = rm.Pointwise("tanh")
    x = backend.xp.asarray([1, 2, 3], device=backend.device)
    with pytest.raises(TypeError, match="x must have a real (or complex )?floating dtype"):
        model(x)
    with pytest.raises(TypeError, match="x must be an array"):
        model([1.0, 2.0])


@pytest.mark.parametrize("size", [0, -3, 4, 10])
def test_even_or_non_positive_kernel_size_is_rejected(backend, size):
    with pytest.raises(ValueError, match="positive odd int"):
        rm.gaussian_kernel(size, 1.0, **where(backend))
    with pytest.raises(ValueError, match="positive odd int"):
        rm.LuminanceGainControl(size, **where(backend))
    with pytest.raises(TypeError, match="must be an int"):
        rm.gaussian_kernel(3.0, 1.0, **where(backend))


def test_bad_filter_parameters_are_rejected(backend):
    for std in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="std must be a finite number > 0"):
            rm.gaussian_kernel(3, std, **where(backend))
    with pytest.raises(ValueError, match="amplitude_ratio"):
        rm.center_surround(5, amplitude_ratio=0.5, **where(backend))
    with pytest.raises(ValueError, match="luminance_scalar"):
        rm.LuminanceGainControl(5, luminance_scalar=-1.0, **where(backend))


def test_nan_weights_are_rejected(backend, dtype):
    w = np.ones((3, 3))
    w[1, 1] = np.nan
    with pytest.raises(ValueError, match="weight contains NaN"):
        rm.Conv2d(arr(backend, w, dtype))
    with pytest.raises(ValueError, match="weight contains NaN"):
        rm.Linear(arr(backend, w, dtype))
    with pytest.raises(ValueError, match="bias contains NaN"):
        rm.Linear(arr(backend, np.ones((2, 3)), dtype), arr(backend, [0.0, np.inf], dtype))


def test_conv_shape_and_option_errors(backend, dtype):
    wt = arr(backend, np.ones((2, 3, 3, 3)), dtype)
    with pytest.raises(ValueError, match="pad_mode"):
        rm.Conv2d(wt, pad_mode="mirror")
    with pytest.raises(ValueError, match="stride"):
        rm.Conv2d(wt, stride=0)
    with pytest.raises(ValueError, match="method"):
        rm.Conv2d(wt, method="winograd")
    with pytest.raises(ValueError, match=r"bias must have shape \(2,\)"):
        rm.Conv2d(wt, arr(backend, np.ones(3), dtype))
    m = rm.Conv2d(wt)
    with pytest.raises(ValueError, match=r"x must have shape \(\.\.\., 3, H, W\)"):
        m(arr(backend, np.ones((1, 2, 5, 5)), dtype))
    big = rm.Conv2d(arr(backend, np.ones((1, 3, 9, 9)), dtype))
    with pytest.raises(ValueError, match="too small"):
        big(arr(backend, np.ones((3, 4, 4)), dtype))


def test_linear_and_pointwise_errors(backend, dtype):
    lin = rm.Linear(arr(backend, np.ones((2, 3)), dtype))
    with pytest.raises(ValueError, match=r"x must have shape \(\.\.\., 3\)"):
        lin(arr(backend, np.ones(4), dtype))
    with pytest.raises(ValueError, match="f must be one of"):
        rm.Pointwise("swish")
    with pytest.raises(TypeError, match="fprime"):
        rm.Pointwise(lambda x: x)
    bad = rm.Pointwise(lambda x: x[:1], lambda x: x)
    with pytest.raises(TypeError, match="f must return an array of the input's shape"):
        bad(arr(backend, np.ones(3), dtype))
    with pytest.raises(ValueError, match="at least one layer"):
        rm.Sequential()


def test_model_weights_of_another_library_are_rejected(backend, dtype):
    if backend.name == "numpy":
        pytest.skip("needs a second library")
    m = rm.Conv2d(np.ones((3, 3)))
    with pytest.raises(TypeError, match="build the model with weights of x's library"):
        m(arr(backend, np.ones((1, 1, 5, 5)), dtype))


# -- bad input: empty arrays, non-finite images, dtypes, integer-like options --------------------
CONV_OPTIONS = dict(
    pad_mode=st.sampled_from(PAD_MODES),
    kernel=st.tuples(st.integers(1, 6), st.integers(1, 6)),
    stride=st.integers(1, 3),
)


@settings(max_examples=20)
@given(**CONV_OPTIONS, hw=st.tuples(st.integers(6, 9), st.integers(6, 9)), batch=st.integers(0, 2))
def test_empty_batches_give_empty_results(backend, pad_mode, kernel, stride, hw, batch):
    """A leading axis of size 0 gives the empty result of the right shape, from both methods
    and every padding mode, for the output and both products; so does Flatten."""
    f64 = backend.dtype("float64")
    w = arr(backend, RNG(0).standard_normal((2, 3, *kernel)), f64)
    shape = (0, batch, 3, *hw)
    x = backend.xp.zeros(shape, dtype=f64, device=backend.device)
    out = (0, batch, 2, -(-hw[0] // stride), -(-hw[1] // stride))
    for method in ("direct", "fft"):
        m = rm.Conv2d(w, pad_mode=pad_mode, stride=stride, method=method)
        y, lin = m(x), m.linearize(x)
        assert tuple(y.shape) == tuple(lin.y.shape) == out
        backend.assert_same_place(y, f64)
        assert tuple(lin.jvp(x).shape) == out
        assert (
            tuple(lin.vjp(backend.xp.zeros(out, dtype=f64, device=backend.device)).shape) == shape
        )
    flat = rm.Flatten(3)
    assert tuple(flat(x).shape) == (0, batch, 3 * hw[0] * hw[1])
    assert tuple(flat.vjp(x, flat(x)).shape) == shape
    no_rows = backend.xp.zeros((0, 3, 4), dtype=f64, device=backend.device)
    assert tuple(rm.Flatten(2)(no_rows).shape) == (0, 12)


@settings(max_examples=20)
@given(**CONV_OPTIONS, hw=st.sampled_from([(0, 4), (4, 0), (0, 0), (0, 9)]))
def test_images_without_pixels_are_rejected_by_both_methods(backend, pad_mode, kernel, stride, hw):
    """H = 0 or W = 0: one ValueError from both methods and every padding mode (same padding
    has nothing to pad from; torch refuses such an image too)."""
    f64 = backend.dtype("float64")
    w = arr(backend, np.ones((1, 1, *kernel)), f64)
    x = backend.xp.zeros((1, 1, *hw), dtype=f64, device=backend.device)
    for method in ("direct", "fft"):
        m = rm.Conv2d(w, pad_mode=pad_mode, stride=stride, method=method)
        for call in (m, m.linearize):
            with pytest.raises(ValueError, match=r"x must have H >= 1 and W >= 1, got shape"):
                call(x)


@given(n=st.integers(0, 2000))
def test_fft_size_is_the_next_5_smooth_length(n):
    """fft_size terminates for every n >= 0 (0 and 1 give 1) with the smallest 2-3-5 length."""
    size = fft_size(n)

    def smooth(m):
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        return m == 1

    assert size >= max(n, 1) and smooth(size)
    assert not any(smooth(m) for m in range(max(n, 1), size))


@settings(max_examples=15)
@given(
    pixels=st.lists(st.tuples(st.integers(0, 8), st.integers(0, 8)), min_size=1, max_size=4),
    value=st.sampled_from([np.inf, -np.inf, np.nan]),
    kernel=st.sampled_from([(3, 3), (7, 5)]),
)
def test_non_finite_images_are_rejected_by_both_methods(backend, dtype, pixels, value, kernel):
    """An inf or NaN pixel would poison every FFT output pixel but only the direct method's
    neighbours: both methods refuse such an image with one ValueError, as LuminanceGainControl
    (FFT for its 31 x 31 kernels) does."""
    a = RNG(0).uniform(0, 1, (1, 1, 9, 9))
    for i, j in pixels:
        a[0, 0, i, j] = value
    x = arr(backend, a, dtype)
    w = arr(backend, np.ones((1, 1, *kernel)), dtype)
    models = [rm.Conv2d(w, method=method) for method in ("direct", "fft")]
    models.append(rm.LuminanceGainControl(5, pad_mode="circular", method="fft", **where(backend)))
    for m in models:
        for call in (m, m.linearize):
            with pytest.raises(ValueError, match="x contains NaN or infinite values"):
                call(x)


def _floats(backend):
    return [n for n in ("float16", "bfloat16", "float32", "float64") if has_dtype(backend, n)]


def test_filters_accept_every_floating_dtype_of_the_backend(backend):
    """bfloat16 (torch, jax) and float16 (where the backend has it) as names or dtype objects:
    the kernel comes in that dtype, whether or not jax (which registers bfloat16 with numpy)
    has been imported."""
    for name in _floats(backend):
        dt = backend.dtype(name) if name != "bfloat16" else backend.xp.bfloat16
        for spec in (name, dt):
            g = rm.gaussian_kernel(5, 1.0, **where(backend), dtype=spec)
            backend.assert_same_place(g, dt)
            np.testing.assert_allclose(as64(backend, g).sum(), 1.0, rtol=1e-2)
            cs = rm.center_surround(5, **where(backend), dtype=spec)
            backend.assert_same_place(cs, dt)
        lgc = rm.LuminanceGainControl(5, **where(backend), dtype=name)
        assert lgc.filters.weight.dtype == dt


@pytest.mark.parametrize("spec", ["int64", "int32", "bool", "uint8", "complex128", "bfloat16"])
def test_filters_refuse_non_floating_dtypes(backend, spec):
    """Integer, bool and complex dtypes (and bfloat16 where the backend has none) raise
    TypeError naming the floating dtypes the backend has, never a silent float64."""
    if spec in _floats(backend):
        pytest.skip(f"{backend.name} has {spec}")
    makers = (
        lambda **kw: rm.gaussian_kernel(5, 1.0, **kw),
        lambda **kw: rm.center_surround(5, **kw),
        lambda **kw: rm.LuminanceGainControl(5, **kw),
    )
    for make in makers:
        with pytest.raises(TypeError, match=r"dtype must be a real floating dtype of backend"):
            make(**where(backend), dtype=spec)
    with pytest.raises(TypeError, match=r"dtype must be a real floating dtype"):
        rm.gaussian_kernel(5, 1.0, **where(backend), dtype="not-a-dtype")


@pytest.mark.parametrize("make", [int, np.int64, np.int32, np.uint8])
def test_integral_stride_and_ndim_are_accepted(backend, dtype, make):
    """Any integral number (numpy integers included; not bool) is a stride or an ndim."""
    w = arr(backend, RNG(1).standard_normal((3, 3)), dtype)
    x = arr(backend, RNG(2).standard_normal((1, 1, 7, 8)), dtype)
    conv = rm.Conv2d(w, stride=make(2))
    assert conv.stride == 2 and type(conv.stride) is int
    ref = backend.to_numpy(rm.Conv2d(w, stride=2)(x))
    np.testing.assert_array_equal(backend.to_numpy(conv(x)), ref)
    flat = rm.Flatten(make(2))
    assert flat.ndim == 2 and tuple(flat(x).shape) == (1, 1, 56)


def test_non_integral_stride_and_ndim_are_refused(backend, dtype):
    w = arr(backend, np.ones((3, 3)), dtype)
    for bad in (2.0, True, "2", None):
        with pytest.raises(TypeError, match="stride must be an int >= 1"):
            rm.Conv2d(w, stride=bad)
        with pytest.raises(TypeError, match="ndim must be an int >= 1"):
            rm.Flatten(bad)
    with pytest.raises(ValueError, match="stride must be an int >= 1, got 0"):
        rm.Conv2d(w, stride=np.int64(0))
    with pytest.raises(ValueError, match="ndim must be an int >= 1, got 0"):
        rm.Flatten(0)


def test_additional_forward_args_are_refused_clearly(backend, dtype):
    """A model of this package takes x only: extra forward arguments (captum's
    additional_forward_args) raise a TypeError naming the model, before any work, however
    the model is reached (refimpl.attr refuses them up front too: tests/test_attr_methods.py);
    a user's model of the protocol gets them passed on by ``linearize``."""
    model = rm.Sequential(rm.Linear(arr(backend, RNG(0).standard_normal((2, 3)), dtype)))
    x = arr(backend, RNG(1).standard_normal((4, 3)), dtype)
    msg = r"Sequential\(Linear\(3 -> 2\)\) takes no additional forward arguments .*got 1 more"
    with pytest.raises(TypeError, match=msg):
        model(x, 2.0)
    with pytest.raises(TypeError, match=msg):
        model.linearize(x, 2.0)
    with pytest.raises(TypeError, match=msg):
        rm.linearize(model, x, 2.0)

    class Scaled:  # y = c x, c an extra forward argument
        def __call__(self, x, c):
            return c * x

        def jvp(self, x, v, c):
            return c * v

        def vjp(self, x, u, c):
            return c * u

    lin = rm.linearize(Scaled(), x, 3.0)
    np.testing.assert_allclose(backend.to_numpy(lin.y), 3 * backend.to_numpy(x), rtol=1e-6)
    np.testing.assert_allclose(backend.to_numpy(lin.vjp(x)), 3 * backend.to_numpy(x), rtol=1e-6)
