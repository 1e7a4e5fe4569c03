"""refimpl.optim Frank-Wolfe and projected optimizers: pure init/update, wrappers, theory."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import refimpl.optim as ro
from refimpl.perturbations import (
    uniform_like_l1_n_ball,
    uniform_like_l2_n_ball,
    uniform_like_linf_n_ball,
)
from tests.conftest import arr, as64, tol

OPTS = {
    "l1": lambda eps, **kw: ro.l1_frank_wolfe(epsilon=eps, **kw),
    "l2": lambda eps, **kw: ro.l2_frank_wolfe(epsilon=eps, **kw),
    "linf": lambda eps, **kw: ro.linf_frank_wolfe(epsilon=eps, **kw),
    "l1q": lambda eps, **kw: ro.l1q_frank_wolfe(q=0.4, epsilon=eps, **kw),
    "l1q_dq": lambda eps, **kw: ro.l1q_frank_wolfe(q=0.4, dq=0.3, epsilon=eps, rng=0, **kw),
}
NORM = {"l1": 1, "l1q": 1, "l1q_dq": 1, "l2": 2, "linf": np.inf}
SAMPLERS = {
    "l1": uniform_like_l1_n_ball,
    "l2": uniform_like_l2_n_ball,
    "linf": uniform_like_linf_n_ball,
}


@pytest.mark.parametrize("kind", sorted(OPTS))
@given(seed=st.integers(0, 2**16), eps=st.floats(0.1, 10), lr=st.sampled_from([0.5, 2.0, 3.0]))
def test_iterates_stay_in_the_ball(backend, kind, seed, eps, lr):
    rng = np.random.default_rng(seed)
    opt = OPTS[kind](eps, lr=lr, param_ndim=-1)
    x = backend.asarray(rng.standard_normal((3, 5)) * 10, dtype="float64")
    state = opt.init(x)
    for _ in range(6):
        g = backend.asarray(rng.standard_normal((3, 5)), dtype="float64")
        x, state = opt.update(g, state, x)
        norms = np.linalg.norm(backend.to_numpy(x), ord=NORM[kind], axis=1)
        assert np.all(norms <= eps * (1 + 1e-9)), norms
    backend.assert_same_place(x, backend.dtype("float64"))
    assert state.step == (6,)


def _quadratic_run(backend, dtype, eps, b, steps, **kw):
    """FW on f(x) = 0.5 ||x - b||^2 over the L1 ball; returns primal errors and gaps."""
    opt = ro.l1_frank_wolfe(epsilon=eps, param_ndim=None, **kw)
    x = backend.asarray(np.zeros_like(b), dtype=dtype)
    bb = backend.asarray(b, dtype=dtype)
    state = opt.init(x)
    p = ro.project_l1_ball(bb, eps)
    fstar = 0.5 * float(np.sum((backend.to_numpy(p) - b) ** 2))
    errs, gaps = [], []
    for _ in range(steps):
        g = x - bb
        gaps.append(ro.duality_gap(g, x, ro.lmo_l1(g, eps, param_ndim=None)))
        x, state = opt.update(g, state, x)
        errs.append(0.5 * float(np.sum((backend.to_numpy(x) - b) ** 2)) - fstar)
    return np.array(errs), np.array(gaps)


def test_duality_gap_falls_like_one_over_k(backend, dtype):
    """Jaggi (2013): with alpha_k = 2/(k+2), f(x_k) - f* <= 2 C_f / (k + 2) and
    min_{i<=k} gap_i <= (27/4) C_f / (k + 2), C_f <= L diam^2 = (2 eps)^2 (L = 1)."""
    b = np.random.default_rng(0).standard_normal(30)  # the solution has several non-zeros
    eps, steps = 2.0, 200
    cf = (2 * eps) ** 2
    k = np.arange(1, steps + 1)
    errs, gaps = _quadratic_run(backend, dtype, eps, b, steps)
    slack = 1e-4 if backend.dtype_name(dtype) == "float32" else 1e-10
    assert np.all(errs <= 2 * cf / (k + 2) + slack)
    assert np.all(np.minimum.accumulate(gaps) <= 27 / 4 * cf / (np.arange(steps) + 2) + slack)
    # the gap at x_k bounds its primal error (gaps[k] is taken at x_k, errs[k - 1] is x_k's)
    assert np.all(gaps[1:] >= errs[:-1] - slack)
    # negative control: a broken step size (constant 0.01 instead of 2/(k+2)) breaks the bound
    errs, _ = _quadratic_run(backend, dtype, eps, b, steps, lr=0.01, use_default_lr_schedule=False)
    assert np.any(errs > 2 * cf / (k + 2))


def test_schedule_and_update_arithmetic(backend, dtype):
    assert [ro.fw_step_size(2.0, k) for k in range(4)] == [1.0, 2 / 3, 0.5, 0.4]
    assert ro.fw_step_size(0.3, 7, use_default_lr_schedule=False) == 0.3
    assert ro.fw_step_size(0.0, 0, div_by_zero_eps=0.0) == 0.0  # no ZeroDivisionError
    p = np.array([0.5, -1.0, 2.0])
    v = np.array([1.0, 0.0, -1.0])
    out = ro.frank_wolfe_update(
        backend.asarray(p, dtype=dtype), backend.asarray(v, dtype=dtype), 0.25, 2.0
    )
    backend.assert_same_place(out, dtype)
    np.testing.assert_allclose(
        backend.to_numpy(out), 0.75 * p - 0.5 * v, **tol(backend.dtype_name(dtype))
    )


def test_docstring_example_and_structures(backend, dtype):
    x = backend.asarray([1.0, 1.0, 1.0], dtype=dtype)
    g = backend.asarray([0.0, 1.0, 2.0], dtype=dtype)
    opt = ro.L1qFrankWolfe([x], q=0.30, epsilon=1.8, param_ndim=None)
    (new,) = opt.step([g])
    backend.assert_same_place(new, dtype)
    np.testing.assert_allclose(
        backend.to_numpy(new), [0, -0.9, -0.9], **tol(backend.dtype_name(dtype))
    )
    assert opt.params[0] is new
    np.testing.assert_array_equal(backend.to_numpy(x), [1.0, 1.0, 1.0])  # input untouched
    single = ro.L1qFrankWolfe(x, q=0.30, epsilon=1.8, param_ndim=None).step(g)
    np.testing.assert_array_equal(backend.to_numpy(single), backend.to_numpy(new))
    # functional form, tuple in -> tuple out
    f = ro.l1q_frank_wolfe(q=0.3, epsilon=1.8, param_ndim=None)
    out, state = f.update((g,), f.init((x,)), (x,))
    assert isinstance(out, tuple) and state.step == (1,)


def test_none_gradient_skips_parameter(backend):
    a = backend.asarray([1.0, 1.0], dtype="float64")
    b = backend.asarray([0.5, 0.5], dtype="float64")
    opt = ro.l2_frank_wolfe(epsilon=1.0, param_ndim=None)
    (na, nb), state = opt.update(
        [None, backend.asarray([1.0, 0.0], dtype="float64")], opt.init([a, b]), [a, b]
    )
    assert na is a and state.step == (0, 1)
    np.testing.assert_allclose(backend.to_numpy(nb), [-1.0, 0.0])


def test_epsilon_per_group(backend):
    """Fix: the documented library ignores an ``epsilon`` key in a parameter group."""
    a = backend.asarray([1.0, 1.0], dtype="float64")
    b = backend.asarray([1.0, 1.0], dtype="float64")
    opt = ro.LinfFrankWolfe(
        [{"params": [a]}, {"params": [b], "epsilon": 0.5}], epsilon=2.0, param_ndim=None
    )
    g = backend.asarray([1.0, -1.0], dtype="float64")
    (na,), (nb,) = opt.step([g, g])
    np.testing.assert_allclose(backend.to_numpy(na), [-2.0, 2.0])
    np.testing.assert_allclose(backend.to_numpy(nb), [-0.5, 0.5])


def test_single_group_gradients_in_the_structure_of_params(backend):
    a = arr(backend, [1.0, 1.0])
    b = arr(backend, [2.0, 0.0])
    opt = ro.LinfFrankWolfe([{"params": [a, b]}], epsilon=1.0, param_ndim=None)
    g = arr(backend, [1.0, -1.0])
    grads = [[g, g]]  # the structure of opt.params
    assert len(opt.params) == 1 and len(opt.params[0]) == 2
    out = opt.step(grads)
    np.testing.assert_allclose(as64(backend, out[0][0]), [-1.0, 1.0])
    np.testing.assert_allclose(as64(backend, out[0][1]), [-1.0, 1.0])


def test_dq_draws_are_reproducible(backend):
    x = backend.asarray(np.ones((2, 6)), dtype="float32")
    grads = [
        backend.asarray(np.random.default_rng(i).standard_normal((2, 6)), dtype="float32")
        for i in range(5)
    ]
    runs = []
    for _ in range(2):
        opt = ro.L1qFrankWolfe([x], q=0.5, dq=0.5, epsilon=1.0, rng=11)
        for g in grads:
            (out,) = opt.step([g])
        runs.append(backend.to_numpy(out))
    np.testing.assert_array_equal(runs[0], runs[1])


def test_projected_optimizers(backend, dtype):
    x = backend.asarray([[3.0, 4.0], [0.1, 0.0]], dtype=dtype)
    g = backend.asarray([[1.0, 0.0], [0.0, -2.0]], dtype=dtype)
    t = tol(backend.dtype_name(dtype))
    new = ro.L2ProjectedOptim([x], epsilon=1.0, lr=0.5).step([g])[0]
    backend.assert_same_place(new, dtype)
    step = np.array([[2.5, 4.0], [0.1, 0.5]])
    ref = step / np.maximum(1.0, np.linalg.norm(step, axis=1, keepdims=True) + 1e-7)
    ref[1] = step[1]
    np.testing.assert_allclose(backend.to_numpy(new), ref, **t)
    new = ro.LinfProjectedOptim([x], epsilon=1.0, lr=0.5).step([g])[0]
    np.testing.assert_allclose(backend.to_numpy(new), [[1.0, 1.0], [0.1, 0.5]], **t)
    # parameters without gradient are still projected (documented behaviour)
    new = ro.LinfProjectedOptim([x], epsilon=1.0, lr=0.5).step([None])[0]
    np.testing.assert_allclose(backend.to_numpy(new), [[1.0, 1.0], [0.1, 0.0]], **t)


# -- epsilon = 0 is the degenerate ball {0}: projections, LMOs, optimizers, samplers -----------
def test_epsilon_zero_is_the_ball_of_zero(backend, dtype):
    x = backend.asarray([[3.0, -4.0], [0.5, 0.0]], dtype=dtype)
    zeros = np.zeros((2, 2))
    for out in (
        ro.project_l1_ball(x, 0.0, param_ndim=-1),
        ro.project_l1_ball(x, 0.0, param_ndim=-1, method="michelot"),
        ro.project_l2_ball(x, 0.0, param_ndim=-1),
        ro.project_linf_ball(x, 0.0),
        ro.lmo_l1(x, 0.0),
        ro.lmo_l2(x, 0.0),
        ro.lmo_linf(x, 0.0),
        ro.lmo_l1q(x, 0.0, 0.5),
        ro.L2ProjectedOptim([x], epsilon=0.0, lr=0.1).step([x])[0],
        ro.LinfProjectedOptim([x], epsilon=0.0, lr=0.1).step([x])[0],
        ro.L1qFrankWolfe([x], q=0.5, epsilon=0.0).step([x])[0],  # alpha = 1: onto {0}
        *(SAMPLERS[k](x, 0.0, rng=0) for k in sorted(SAMPLERS)),
    ):
        backend.assert_same_place(out, dtype)
        np.testing.assert_array_equal(np.abs(as64(backend, out)), zeros)
    half = ro.L1FrankWolfe([x], epsilon=0.0, lr=0.5, use_default_lr_schedule=False).step([x])[0]
    np.testing.assert_allclose(as64(backend, half), 0.5 * as64(backend, x))
    for bad in (-1.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="epsilon"):
            ro.project_l1_ball(x, bad)
        with pytest.raises(ValueError, match="epsilon"):
            ro.l1_frank_wolfe(epsilon=bad)
        with pytest.raises(ValueError, match="epsilon"):
            uniform_like_l1_n_ball(x, bad)


@pytest.mark.parametrize(
    "make, exc, words",
    [
        (lambda: ro.l1q_frank_wolfe(q=1.2, epsilon=1.0), ValueError, "q"),
        (lambda: ro.l1q_frank_wolfe(q=-0.2, epsilon=1.0), ValueError, "q"),
        (lambda: ro.l1q_frank_wolfe(q=0.5, dq=-0.1, epsilon=1.0), ValueError, "dq"),
        (lambda: ro.l1q_frank_wolfe(q=0.5, epsilon=-0.5), ValueError, "epsilon"),
        (lambda: ro.l1_frank_wolfe(epsilon=-1.0), ValueError, "epsilon"),
        (lambda: ro.l2_frank_wolfe(epsilon=float("nan")), ValueError, "epsilon"),
        (lambda: ro.linf_frank_wolfe(epsilon=1.0, lr=-0.1), ValueError, "lr"),
        (
            lambda: ro.linf_frank_wolfe(epsilon=1.0, lr=1.5, use_default_lr_schedule=False),
            ValueError,
            "lr",
        ),
        (
            lambda: ro.linf_frank_wolfe(epsilon=1.0, use_default_lr_schedule=1),
            TypeError,
            "use_default",
        ),
        (lambda: ro.l1_frank_wolfe(epsilon=1.0, param_ndim=1.5), TypeError, "param_ndim"),
        (
            lambda: ro.l1_frank_wolfe(epsilon=1.0, div_by_zero_eps=-1.0),
            ValueError,
            "div_by_zero_eps",
        ),
        (lambda: ro.l2_projected(epsilon=float("inf"), lr=1.0), ValueError, "epsilon"),
        (lambda: ro.linf_projected(epsilon=1.0, lr=-1.0), ValueError, "lr"),
    ],
)
def test_bad_options(make, exc, words, backend):
    with pytest.raises(exc, match=words):
        make()


def test_step_size_top_q_count_and_duality_gap_bad_input(backend):
    with pytest.raises(ValueError, match="k"):
        ro.fw_step_size(2.0, -2)
    with pytest.raises(ValueError, match="lr"):
        ro.fw_step_size(-1.0, 0)
    with pytest.raises(ValueError, match="q"):
        ro.top_q_count(2.0, 5)
    with pytest.raises(ValueError, match="d"):
        ro.top_q_count(0.5, -1)
    g, p = arr(backend, [[1.0, 2.0]]), arr(backend, [[1.0], [2.0]])
    with pytest.raises(ValueError, match="shape"):
        ro.duality_gap(g, p, g)


def test_bad_arrays(backend):
    x = backend.asarray(np.ones((2, 3)), dtype="float64")
    opt = ro.l1_frank_wolfe(epsilon=1.0, param_ndim=-1)
    state = opt.init([x])
    with pytest.raises(ValueError, match="param_ndim"):
        ro.l1_frank_wolfe(epsilon=1.0, param_ndim=3).init([x])
    with pytest.raises(ValueError, match="shape"):
        opt.update([backend.asarray(np.ones((3, 2)), dtype="float64")], state, [x])
    with pytest.raises(ValueError, match="gradients"):
        opt.update([x, x], state, [x])
    with pytest.raises(TypeError, match="dtype"):
        opt.update([backend.asarray(np.ones((2, 3)), dtype="float32")], state, [x])
    with pytest.raises(TypeError, match="floating"):
        opt.init([backend.asarray(np.ones(3, dtype=np.int64))])
    other = np.ones((2, 3)) if backend.name != "numpy" else _torch_or_skip()
    with pytest.raises(TypeError, match="of one library"):
        opt.update([other], state, [x])


@given(
    shapes=st.sampled_from(
        [((3,), (2, 3)), ((2, 3), (3,)), ((2, 1), (2, 3)), ((), (2,)), ((2, 3), ())]
    )
)
def test_frank_wolfe_update_refuses_mismatched_shapes(backend, shapes):
    """``param`` and ``direction`` must have one shape: no silent broadcasting."""
    param = backend.asarray(np.ones(shapes[0]), dtype="float64")
    direction = backend.asarray(np.ones(shapes[1]), dtype="float64")
    with pytest.raises(ValueError, match=r"direction must have the shape of param"):
        ro.frank_wolfe_update(param, direction, 0.5, 1.0)
    with pytest.raises(TypeError, match=r"direction has dtype"):
        ro.frank_wolfe_update(param, backend.asarray(np.ones(shapes[0]), dtype="float32"), 0.5, 1)
    with pytest.raises(TypeError, match=r"alpha must be a real number"):
        ro.frank_wolfe_update(param, param, "0.5", 1.0)


def test_l1q_with_dq_refuses_a_state_of_another_optimizer(backend):
    """With dq > 0 the draws come from the state's Rng: a state without one (dq = 0, another
    optimizer, or built by hand) or made by another optimizer is refused, not silently
    replaced by fresh entropy."""
    x = arr(backend, [[1.0, -2.0, 3.0]])
    opt = ro.l1q_frank_wolfe(q=0.5, dq=0.3, epsilon=1.0, rng=0)
    others = {
        r"l1q_frank_wolfe draws from the state's rng \(a backends.Rng\), but state.rng is None": [
            ro.l1q_frank_wolfe(q=0.5, epsilon=1.0).init([x]),
            ro.OptimizerState(step=(0,)),
        ],
        "state was made by l2_frank_wolfe's init, not l1q_frank_wolfe's": [
            ro.l2_frank_wolfe(epsilon=1.0).init([x])
        ],
        "state was made by l2_projected's init, not l1q_frank_wolfe's": [
            ro.l2_projected(epsilon=1.0, lr=0.1).init([x])
        ],
    }
    for words, states in others.items():
        for state in states:
            with pytest.raises(ValueError, match=words):
                opt.update([x], state, [x])
    with pytest.raises(ValueError, match="made by l1q_frank_wolfe's init, not l1_frank_wolfe's"):
        ro.l1_frank_wolfe(epsilon=1.0).update([x], opt.init([x]), [x])
    own = opt.init([x])
    assert own.made_by == "l1q_frank_wolfe"
    ro.l1q_frank_wolfe(q=0.2, dq=0.1, epsilon=2.0).update([x], own, [x])  # same optimizer kind
    ro.l1q_frank_wolfe(q=0.2, epsilon=2.0).update([x], own, [x])  # dq = 0: rng unused
    ro.l1_frank_wolfe(epsilon=1.0).update([x], ro.OptimizerState(step=(3,)), [x])  # by hand


def _torch_or_skip():
    torch = pytest.importorskip("torch")
    return torch.ones((2, 3), dtype=torch.float64)


@pytest.mark.parametrize("param_ndim", [None, -1, 1, 0])
def test_sparse_l1_update_equals_dense_update(backend, dtype, param_ndim):
    """L1FrankWolfe's vertex-only update rounds exactly like the dense
    ``frank_wolfe_update(p, l1_direction(g))`` (up to the sign of zero)."""
    from refimpl.optim.frank_wolfe import frank_wolfe_update, l1_frank_wolfe_update
    from refimpl.optim.lmo import l1_direction

    rng = np.random.default_rng(5)
    p = backend.asarray(rng.standard_normal((3, 2, 4)), dtype=dtype)
    g = backend.asarray(rng.standard_normal((3, 2, 4)), dtype=dtype)
    for alpha in (1.0, 2 / 3, 0.1):
        sparse = l1_frank_wolfe_update(p, g, alpha, 1.7, param_ndim=param_ndim)
        dense = frank_wolfe_update(p, l1_direction(g, param_ndim=param_ndim), alpha, 1.7)
        backend.assert_same_place(sparse, dtype)
        np.testing.assert_array_equal(backend.to_numpy(sparse), backend.to_numpy(dense))
