"""refimpl.torch.optim: bit-identical to rai_toolbox 0.2.1 over 50 steps, torch.optim API
(parameter groups, validation on every entry, state dicts, sparse and empty gradients, on every
front end), bad input.

Torch-only: parametrised by the ``torch_device`` / ``torch_dtype`` fixtures (tests/conftest.py).
"""

from __future__ import annotations

import copy
import math
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

import refimpl.torch as bt  # noqa: E402
import refimpl.torch.optim as bo  # noqa: E402

#: every torch.optim front end of seed 001 with constructor keywords that make it step
SEVEN = {
    "L1FrankWolfe": dict(epsilon=1.0),
    "L2FrankWolfe": dict(epsilon=1.0),
    "LinfFrankWolfe": dict(epsilon=1.0),
    "L1qFrankWolfe": dict(q=0.3, epsilon=1.0),
    "FrankWolfe": dict(),
    "L2ProjectedOptim": dict(epsilon=1.0, lr=0.1),
    "LinfProjectedOptim": dict(epsilon=1.0, lr=0.1),
}
#: the rest of rai_toolbox.optim (tests/torch/test_transforming.py)
REST = {
    "SignedGradientOptim": dict(lr=0.1),
    "L1NormedGradientOptim": dict(lr=0.1),
    "L2NormedGradientOptim": dict(lr=0.1),
    "L1qNormedGradientOptim": dict(q=0.3, lr=0.1),
    "TopQGradientOptimizer": dict(q=0.3, lr=0.1),
    "ClampedGradientOptimizer": dict(clamp_min=-1.0, clamp_max=1.0, lr=0.1),
    "ClampedParameterOptimizer": dict(clamp_min=-1.0, clamp_max=1.0, lr=0.1),
    "ParamTransformingOptimizer": dict(lr=0.1),
}
ALL = {**SEVEN, **REST}


def rai_optim():
    rai = pytest.importorskip("rai_toolbox.optim")
    warnings.filterwarnings("ignore", message="TypedStorage is deprecated")
    return rai


def make(name, params, **extra):
    return getattr(bo, name)(params, **{**ALL[name], **extra})


def set_grads(params, seed=0):
    g = torch.Generator().manual_seed(seed)
    for p in params:
        p.grad = torch.randn(p.shape, generator=g, dtype=p.dtype).to(p.device)


CASES = [
    ("L1qFrankWolfe", (4, 30), dict(q=0.3, epsilon=2.0)),
    ("L1qFrankWolfe", (3, 4, 5), dict(q=0.45, dq=0.3, epsilon=1.5)),
    ("L1qFrankWolfe", (12,), dict(q=0.6, dq=0.5, epsilon=1.0, param_ndim=None, lr=1.0)),
    ("L1FrankWolfe", (4, 30), dict(epsilon=2.0)),
    (
        "L1FrankWolfe",
        (30,),
        dict(epsilon=2.0, param_ndim=None, lr=0.7, use_default_lr_schedule=False),
    ),
    ("L2FrankWolfe", (3, 4, 5), dict(epsilon=2.0)),
    ("LinfFrankWolfe", (4, 30), dict(epsilon=0.5, lr=3.0)),
    ("L2ProjectedOptim", (3, 4, 5), dict(epsilon=2.0, lr=0.3)),
    ("L2ProjectedOptim", (3, 10), dict(epsilon=1.0, lr=0.1, momentum=0.9, grad_scale=2.0)),
    ("LinfProjectedOptim", (4, 30), dict(epsilon=0.7, lr=0.2)),
]


@pytest.mark.parametrize("name, shape, kw", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_fifty_steps_bit_identical_to_rai_toolbox(torch_device, torch_dtype, name, shape, kw):
    import torch

    import refimpl.torch.optim as bo

    rai = rai_optim()
    if torch_device.type != "cpu" and kw.get("dq", 0) > 0:
        pytest.skip("the dq draws use a CPU generator here; compared on CPU")
    dtype = torch_dtype
    x0 = torch.randn(shape, generator=torch.Generator().manual_seed(0), dtype=dtype) * 3
    out, gens = [], []
    for cls in (getattr(bo, name), getattr(rai, name)):
        x = x0.clone().to(torch_device).requires_grad_(True)
        extra = {}
        if kw.get("dq", 0) > 0:
            gens.append(torch.Generator().manual_seed(123))
            extra["generator"] = gens[-1]
        opt = cls([x], **kw, **extra)
        gg = torch.Generator().manual_seed(7)
        for _ in range(50):
            # continuous draws: no ties at the top-q cut-off
            x.grad = torch.randn(shape, generator=gg, dtype=dtype).to(torch_device)
            opt.step()
        out.append((x.detach(), x.grad))
    assert torch.equal(out[0][0], out[1][0]), (out[0][0] - out[1][0]).abs().max()
    assert torch.equal(out[0][1], out[1][1]), "the LMO left in .grad differs"
    assert out[0][0].device.type == torch_device.type and out[0][0].dtype == dtype
    if gens:
        assert torch.equal(gens[0].get_state(), gens[1].get_state())


def test_matches_refimpl_pure_optimizer(torch_device, torch_dtype):
    import torch

    import refimpl.optim as ro
    import refimpl.torch.optim as bo

    dtype = torch_dtype
    x0 = torch.randn(3, 8, dtype=dtype).to(torch_device)
    pure = ro.l1q_frank_wolfe(q=0.5, epsilon=1.2)
    state = pure.init([x0])
    x_pure = [x0]
    x = x0.clone().requires_grad_(True)
    opt = bo.L1qFrankWolfe([x], q=0.5, epsilon=1.2)
    for i in range(5):
        g = torch.randn(3, 8, dtype=dtype, generator=torch.Generator().manual_seed(i))
        g = g.to(torch_device)
        x_pure, state = pure.update([g], state, x_pure)
        x.grad = g
        opt.step()
    assert torch.equal(x.detach(), x_pure[0])


def test_param_groups_epsilon_closure_state_dict(torch_device):
    import torch

    import refimpl.torch.optim as bo

    with torch_device:  # tensors below are created on it
        a = torch.ones(2, requires_grad=True)
        b = torch.ones(2, requires_grad=True)
        opt = bo.LinfFrankWolfe(
            [{"params": [a]}, {"params": [b], "epsilon": 0.5}], epsilon=2.0, param_ndim=None
        )

        def closure():
            opt.zero_grad()
            loss = (torch.tensor([1.0, -1.0]) * (a + b)).sum()
            loss.backward()
            return loss

        loss = opt.step(closure)
        assert float(loss.detach()) == 0.0
        assert torch.equal(a.detach(), torch.tensor([-2.0, 2.0]))  # the epsilon group key works
        assert torch.equal(b.detach(), torch.tensor([-0.5, 0.5]))
        sd = opt.state_dict()
        assert sd["state"][0]["step"] == 1 and sd["param_groups"][1]["epsilon"] == 0.5
        opt2 = bo.LinfFrankWolfe([{"params": [a]}, {"params": [b]}], epsilon=2.0, param_ndim=None)
        opt2.load_state_dict(sd)
        assert opt2.param_groups[1]["epsilon"] == 0.5 and opt2.state[b]["step"] == 1
        proj = bo.L2ProjectedOptim([a], epsilon=1.0, lr=0.1, momentum=0.9)
        a.grad = torch.ones(2)
        proj.step()
        sd = proj.state_dict()
        proj2 = bo.L2ProjectedOptim([a], epsilon=1.0, lr=0.1, momentum=0.9)
        proj2.load_state_dict(sd)
        assert torch.equal(proj2.state[a]["momentum_buffer"], proj.state[a]["momentum_buffer"])


def test_fixes_over_the_documented_library(torch_device):
    import torch

    import refimpl.torch.optim as bo

    with torch_device:  # tensors below are created on it
        # L1FrankWolfe on rows of more than one dimension
        x = torch.zeros(2, 2, 3, requires_grad=True)
        x.grad = torch.tensor(
            [[[1.0, -3.0, 2.0], [0.5, 0.0, 9.0]], [[-4.0, 1.0, 1.0], [0.0, 2.0, 3.0]]]
        )
        bo.L1FrankWolfe([x], epsilon=2.0).step()
        expected = torch.zeros(2, 2, 3)
        expected[0, 1, 2], expected[1, 0, 0] = -2.0, 2.0
        assert torch.equal(x.detach(), expected)
        # float16 zero gradient stays finite
        for cls, kw in ((bo.L2FrankWolfe, {}), (bo.L1qFrankWolfe, dict(q=0.0))):
            h = torch.ones(2, 3, dtype=torch.float16, requires_grad=True)
            h.grad = torch.zeros(2, 3, dtype=torch.float16)
            cls([h], epsilon=1.0, **kw).step()
            assert torch.isfinite(h).all()
        # lr = 0 with div_by_zero_eps = 0: no ZeroDivisionError
        z = torch.ones(2, requires_grad=True)
        z.grad = torch.ones(2)
        bo.LinfFrankWolfe([z], epsilon=1.0, lr=0.0, div_by_zero_eps=0.0, param_ndim=None).step()
        assert torch.equal(z.detach(), torch.ones(2))


@pytest.mark.parametrize(
    "make, exc, words",
    [
        (lambda bo, p: bo.L1qFrankWolfe([p], q=1.5, epsilon=1.0), ValueError, "q"),
        (lambda bo, p: bo.L1qFrankWolfe([p], q=0.5, dq=-0.5, epsilon=1.0), ValueError, "dq"),
        (lambda bo, p: bo.L1qFrankWolfe([p], q=0.5, epsilon=-1e-9), ValueError, "epsilon"),
        (lambda bo, p: bo.L1FrankWolfe([p], epsilon=-2.0), ValueError, "epsilon"),
        (lambda bo, p: bo.L2FrankWolfe([p], epsilon=1.0, lr=-1.0), ValueError, "lr"),
        (
            lambda bo, p: bo.LinfFrankWolfe(
                [p], epsilon=1.0, lr=2.0, use_default_lr_schedule=False
            ),
            ValueError,
            "lr",
        ),
        (lambda bo, p: bo.L1FrankWolfe([p], epsilon=1.0, param_ndim=3), ValueError, "param_ndim"),
        (
            lambda bo, p: bo.L2ProjectedOptim([p], epsilon=float("inf"), lr=0.1),
            ValueError,
            "epsilon",
        ),
        (
            lambda bo, p: bo.L1qFrankWolfe([p], q=0.5, epsilon=1.0, generator=3),
            TypeError,
            "generator",
        ),
        (lambda bo, p: bo.L1qFrankWolfe(p, q=0.5, epsilon=1.0), TypeError, "params"),
    ],
)
def test_bad_input(torch_device, make, exc, words):
    import torch

    import refimpl.torch.optim as bo

    p = torch.zeros(2, 3, device=torch_device, requires_grad=True)
    with pytest.raises(exc, match=words):
        make(bo, p)


def test_groups_added_later_are_validated(torch_device):
    import torch

    import refimpl.torch.optim as bo

    with torch_device:  # tensors below are created on it
        opt = bo.L1qFrankWolfe([torch.zeros(3, requires_grad=True)], q=0.5, epsilon=1.0)
        with pytest.raises(ValueError, match="epsilon"):
            opt.add_param_group({"params": [torch.zeros(3, requires_grad=True)], "epsilon": -1.0})
        with pytest.raises(ValueError, match="param_ndim"):
            opt.add_param_group({"params": [torch.zeros(3, requires_grad=True)], "param_ndim": 4})


# -- the torch.optim API on every front end (ALL) -----------------------------------------------
@pytest.mark.parametrize("name", sorted(ALL))
def test_generators_in_group_dicts_keep_every_parameter(torch_device, name):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2, device=torch_device)
    opt = make(name, [{"params": model.parameters()}])
    assert len(opt.param_groups) == 1 and len(opt.param_groups[0]["params"]) == 2
    extra = torch.nn.Linear(2, 2, device=torch_device)
    opt.add_param_group({"params": extra.parameters()})
    assert len(opt.param_groups[1]["params"]) == 2
    params = [*model.parameters(), *extra.parameters()]
    before = [p.detach().clone() for p in params]
    set_grads(params)
    opt.step()
    assert all(not torch.equal(b, p) for b, p in zip(before, params)), "a parameter did not move"


@pytest.mark.parametrize("name", sorted(ALL))
def test_hyper_parameters_validated_on_every_entry(torch_device, name):
    p = torch.ones(2, 3, device=torch_device, requires_grad=True)
    key = "epsilon" if "epsilon" in ALL[name] else "lr"
    with pytest.raises(ValueError, match=key):
        make(name, [p], **{key: math.nan})
    opt = make(name, [p])
    with pytest.raises(ValueError, match=key):
        opt.add_param_group({"params": [torch.ones(2, device=torch_device)], key: -1.0})
    sd = opt.state_dict()
    sd["param_groups"][0][key] = math.nan
    with pytest.raises(ValueError, match=key):
        make(name, [p]).load_state_dict(sd)
    opt.param_groups[0][key] = math.nan  # edited in place: caught at step, before any change
    set_grads([p])
    before = p.detach().clone()
    with pytest.raises(ValueError, match=key):
        opt.step()
    assert torch.equal(p.detach(), before)


@pytest.mark.parametrize("name", sorted(ALL))
def test_empty_rows_step(torch_device, name):
    """``nn.Linear(0, 5).weight`` has rows of length 0 (rai: IndexError in the L1 paths)."""
    with warnings.catch_warnings():  # torch warns that initialising an empty weight is a no-op
        warnings.simplefilter("ignore", UserWarning)
        layer = torch.nn.Linear(0, 5, device=torch_device)
    opt = make(name, layer.parameters())
    (layer(torch.ones(2, 0, device=torch_device)) ** 2).sum().backward()
    assert layer.weight.grad.shape == (5, 0)
    opt.step()
    assert layer.weight.shape == (5, 0) and torch.isfinite(layer.bias).all()


@pytest.mark.parametrize("name", sorted(ALL))
def test_sparse_gradients_raise_a_clear_type_error(torch_device, name):
    emb = torch.nn.Embedding(5, 3, sparse=True, device=torch_device)
    opt = make(name, emb.parameters())
    emb(torch.tensor([1, 2], device=torch_device)).sum().backward()
    before = emb.weight.detach().clone()
    with pytest.raises(TypeError, match="sparse"):
        opt.step()
    assert torch.equal(emb.weight.detach(), before)


def test_foreign_state_dict_is_refused(torch_device):
    p = torch.ones(3, device=torch_device, requires_grad=True)
    fw = bo.LinfFrankWolfe([p], epsilon=1.0)
    p.grad = torch.ones(3, device=torch_device)
    fw.step()
    with pytest.raises(ValueError, match="L2ProjectedOptim"):
        bo.L2ProjectedOptim([p], epsilon=1.0, lr=0.1).load_state_dict(fw.state_dict())
    sgd = torch.optim.SGD([p], lr=0.1)
    with pytest.raises(ValueError, match="epsilon"):
        bo.L1qFrankWolfe([p], q=0.5, epsilon=1.0).load_state_dict(sgd.state_dict())
    bad = copy.deepcopy(fw.state_dict())  # state_dict() shares the live per-parameter state
    bad["state"][0]["step"] = -1
    with pytest.raises(ValueError, match="step"):
        bo.LinfFrankWolfe([p], epsilon=1.0).load_state_dict(bad)
    # a matching state dict still loads (and a scheduler's extra keys are fine)
    sd = fw.state_dict()
    sd["param_groups"][0]["initial_lr"] = 2.0
    again = bo.LinfFrankWolfe([p], epsilon=1.0)
    again.load_state_dict(sd)
    assert again.state[p]["step"] == 1


BALL_FRANK_WOLFE = ("L1FrankWolfe", "L2FrankWolfe", "LinfFrankWolfe", "L1qFrankWolfe")


@pytest.mark.parametrize("target", BALL_FRANK_WOLFE)
def test_a_frank_wolfe_class_refuses_other_classes_state_dicts(torch_device, target):
    """A state dict loads when it holds every option of the class, or when it is a
    rai_toolbox checkpoint of it (lacking exactly the options rai keeps elsewhere, and holding
    rai's ``lmo_scaling_factor``). Every other class's is refused, however its options
    overlap: ``L2ProjectedOptim``'s lacks only ``use_default_lr_schedule``,
    ``SignedGradientOptim``'s lacks exactly what a rai checkpoint lacks."""
    p = torch.ones(2, 3, device=torch_device, requires_grad=True)
    for source in sorted(set(ALL) - set(BALL_FRANK_WOLFE)):
        sd = make(source, [p]).state_dict()
        with pytest.raises(ValueError, match=f"state_dict was not saved by a {target}"):
            make(target, [p]).load_state_dict(sd)
    for source in BALL_FRANK_WOLFE:  # one kind of state: the step counts
        if set(ALL[target]) <= set(ALL[source]):
            make(target, [p]).load_state_dict(make(source, [p]).state_dict())


@pytest.mark.parametrize("name", sorted(ALL))
def test_step_refuses_a_bad_closure_and_non_tensor_params(torch_device, name):
    """``step(closure=5)`` and a numpy array put into a group's params after construction
    raise a TypeError naming the argument before any parameter changes (not torch's
    ``is_floating_point(): argument 'input'`` nor Python's "'int' object is not callable")."""
    p = torch.ones(2, 3, device=torch_device, requires_grad=True)
    opt = make(name, [p])
    set_grads([p])
    before = p.detach().clone()
    for bad in (5, "closure"):
        with pytest.raises(TypeError, match="closure must be callable or None"):
            opt.step(closure=bad)
    opt.param_groups[0]["params"].append(np.zeros(3))
    with pytest.raises(TypeError, match="params must contain torch.Tensors, got numpy.ndarray"):
        opt.step()
    assert torch.equal(p.detach(), before)


def test_errors_name_the_bad_argument(torch_device):
    p = torch.ones(3, device=torch_device, requires_grad=True)
    with pytest.raises(TypeError, match="InnerOpt"):
        bo.L2ProjectedOptim([p], InnerOpt="SGD", epsilon=1.0, lr=0.1)
    with pytest.raises(TypeError, match="InnerOpt"):
        bo.SignedGradientOptim([p], InnerOpt=len, lr=0.1)
    opt = bo.L1FrankWolfe([p], epsilon=1.0)
    with pytest.raises(ValueError, match="params"):
        opt.add_param_group({"lr": 1.0})
    for name in sorted(ALL):
        with pytest.raises(TypeError, match="params"):
            make(name, [np.zeros(3)])
    with pytest.raises(TypeError, match="data_or_shape"):
        bt.AdditivePerturbation(np.ones(3))
    pm = bt.AdditivePerturbation(torch.zeros(3, device=torch_device))
    with pytest.raises(TypeError, match="data"):
        pm(np.ones(3))


# -- a bound beyond float16, epsilon = 0 --------------------------------------------------------
def test_large_epsilon_in_float16_clips_without_overflow(torch_device):
    from refimpl.optim import project_linf_ball

    x = torch.tensor([-3e4, 1.0, float("inf")], dtype=torch.float16, device=torch_device)
    y = project_linf_ball(x, 1e5)
    assert y.dtype == torch.float16
    assert torch.equal(y[:2], x[:2]) and y[2] == 65504
    p = torch.full((3,), 100.0, dtype=torch.float16, device=torch_device, requires_grad=True)
    opt = bo.LinfProjectedOptim([p], epsilon=1e5, lr=1.0)  # rai: clamp raises (overflow)
    p.grad = torch.ones_like(p)
    opt.step()
    assert torch.equal(p.detach(), torch.full_like(p, 99.0).detach())


@pytest.mark.parametrize(
    "name", ["L2ProjectedOptim", "LinfProjectedOptim", "L1qFrankWolfe", "L2FrankWolfe"]
)
def test_epsilon_zero_like_rai(torch_device, torch_dtype, name):
    rai = rai_optim()
    x0 = torch.randn(4, 5, dtype=torch_dtype, generator=torch.Generator().manual_seed(0))
    out = []
    for mod in (bo, rai):
        x = x0.clone().to(torch_device).requires_grad_(True)
        opt = getattr(mod, name)([x], **{**ALL[name], "epsilon": 0.0})
        for i in range(3):
            set_grads([x], seed=i)
            opt.step()
        out.append(x.detach())
    assert torch.equal(out[0], out[1]) and not out[0].abs().any()


@pytest.mark.parametrize("name", ["L2ProjectedOptim", "LinfProjectedOptim"])
def test_omitted_epsilon_says_what_rai_defaulted_to(torch_device, torch_dtype, name):
    """Omitting epsilon is a TypeError whose message gives rai-toolbox's silent default
    (0.001: its REQUIRED marker is SGD's default lr); following its advice reproduces rai
    bit for bit, and epsilon in ``defaults`` counts as given (as in rai)."""
    x0 = torch.randn(4, 5, dtype=torch_dtype, generator=torch.Generator().manual_seed(0))
    x = x0.clone().to(torch_device).requires_grad_(True)
    with pytest.raises(
        TypeError, match=r"epsilon.*rai-toolbox 0\.2\.1 defaulted to epsilon=0\.001"
    ):
        getattr(bo, name)([x], lr=0.1)
    assert bo.lp_space.RAI_EPSILON_DEFAULT == 0.001
    assert getattr(bo, name)([x], lr=0.1, defaults={"epsilon": 2.0}).defaults["epsilon"] == 2.0
    rai = pytest.importorskip("rai_toolbox.optim")
    out = []
    for opt_of in (
        lambda p: getattr(bo, name)([p], lr=0.1, epsilon=0.001),
        lambda p: getattr(rai, name)([p], lr=0.1),  # rai's silent default
    ):
        x = x0.clone().to(torch_device).requires_grad_(True)
        opt = opt_of(x)
        for i in range(3):
            set_grads([x], seed=i)
            opt.step()
        out.append(x.detach())
    assert torch.equal(out[0], out[1])


# -- the projected optimizers are ParamTransformingOptimizers ------------------------------------
@pytest.mark.parametrize("name", ["L2ProjectedOptim", "LinfProjectedOptim"])
def test_projected_optimizers_are_param_transforming(torch_device, name):
    p = torch.full((2, 3), 5.0, device=torch_device, requires_grad=True)
    opt = make(name, [p], momentum=0.5)
    assert isinstance(opt, bo.ParamTransformingOptimizer)
    assert opt.defaults["lr"] == 0.1 and opt.defaults["momentum"] == 0.5
    assert opt.defaults is opt.inner_opt.defaults
    assert opt.param_groups is opt.inner_opt.param_groups and opt.state is opt.inner_opt.state
    assert "[SGD]" in repr(opt)
    opt._apply_post_step_transform_()  # projects without a step
    ball = {"L2ProjectedOptim": 2, "LinfProjectedOptim": math.inf}[name]
    assert float(torch.linalg.vector_norm(p[0].detach(), ord=ball)) <= 1.0 + 1e-6
    with pytest.warns(FutureWarning, match="_apply_post_step_transform_"):
        opt.project()
    if name == "L2ProjectedOptim":
        assert opt.p == 2 and bo.L1NormedGradientOptim([p], lr=0.1).p == 1


def test_projected_optimizer_defaults_and_groups_match_rai(torch_device):
    rai = rai_optim()
    p = torch.ones(3, requires_grad=True)
    ours = bo.LinfProjectedOptim([p], epsilon=0.5, lr=0.1, momentum=0.9)
    theirs = rai.LinfProjectedOptim([p], epsilon=0.5, lr=0.1, momentum=0.9)
    assert ours.defaults == theirs.defaults
    assert {k: v for k, v in ours.param_groups[0].items() if k != "params"} == {
        k: v for k, v in theirs.param_groups[0].items() if k != "params"
    }


# -- the in-place transforms: bit for bit the array-API functions ------------------------------
DTYPES = ["float16", "bfloat16", "float32", "float64"]
SPECIAL = st.sampled_from([None, None, None, 0.0, math.inf, -math.inf, math.nan])


def _same(a, b) -> bool:
    """Equal entries (``torch.equal``: -0 == 0) and NaN in the same places."""
    nan = a.isnan()
    return torch.equal(nan, b.isnan()) and torch.equal(a[~nan], b[~nan])


@st.composite
def hard_rows(draw, dtype_name):
    """Rows of magnitudes 10^k across the dtype's range (subnormal to overflowing sums),
    some rows zero, some entries 0, +-inf or NaN."""
    n, d = draw(st.integers(1, 4)), draw(st.integers(1, 6))
    info = torch.finfo(getattr(torch, dtype_name))
    lo, hi = math.floor(math.log10(info.smallest_normal)) - 3, math.floor(math.log10(info.max))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    rows = []
    for _ in range(n):
        k = draw(st.integers(lo, hi) | st.just(None))
        rows.append(np.zeros(d) if k is None else rng.standard_normal(d) * 10.0**k)
    x = np.clip(np.stack(rows), -info.max, info.max)
    for i in range(n):
        for j in range(d):
            special = draw(SPECIAL)
            if special is not None:
                x[i, j] = special
    return torch.tensor(x, dtype=torch.float64).to(getattr(torch, dtype_name))


@pytest.mark.parametrize("dtype_name", DTYPES)
@given(data=st.data(), epsilon=st.sampled_from([0.0, 1e-40, 0.5, 3.0, 1e39]))
def test_in_place_transforms_equal_the_array_api_functions(torch_device, dtype_name, data, epsilon):
    """sign_, normalize_ (L1, L2), project_l2_ (margins 0 and torch.renorm's) and clamp_ leave
    in the tensor what the array-API functions return, on rows with every kind of extreme
    entry, through the plain fast paths and the flagged rows alike; also on views whose rows
    are not contiguous (x[:, ::2]) and on 3-d batch views."""
    from refimpl.optim import (
        clamp,
        normalize_gradient,
        project_l2_ball,
        sign_gradient,
    )
    from refimpl.torch.optim import inplace

    x = data.draw(hard_rows(dtype_name)).to(torch_device)
    cases = [
        (inplace.sign_, (), lambda t: sign_gradient(t)),
        (inplace.normalize_, (1, 1e-38), lambda t: normalize_gradient(t, 1, div_by_zero_eps=1e-38)),
        (inplace.normalize_, (2, 0.0), lambda t: normalize_gradient(t, 2, div_by_zero_eps=0.0)),
        (inplace.project_l2_, (epsilon, 0.0), lambda t: project_l2_ball(t, epsilon, -1)),
        (
            inplace.project_l2_,
            (epsilon, 1e-7),
            lambda t: project_l2_ball(t, epsilon, -1, margin=1e-7),
        ),
        (inplace.clamp_, (-epsilon, epsilon), lambda t: clamp(t, -epsilon, epsilon)),
    ]
    wide = torch.cat([x, x], dim=1)
    for kernel, args, function in cases:
        for make in (
            x.clone,
            lambda: wide.clone()[:, ::2],
            lambda: x.clone().reshape(len(x), 1, -1),
        ):
            got = make()
            want = function(got.contiguous())
            kernel(got, *args)
            assert _same(got, want), (kernel.__name__, args, tuple(got.shape), got, want)


@pytest.mark.parametrize(
    "name, kw",
    [
        ("L2ProjectedOptim", dict(epsilon=2.0, lr=0.3)),
        ("L2NormedGradientOptim", dict(lr=0.3)),
        ("L1NormedGradientOptim", dict(lr=0.3)),
        ("SignedGradientOptim", dict(lr=0.3)),
        ("LinfProjectedOptim", dict(epsilon=0.5, lr=0.3)),
        ("L2FrankWolfe", dict(epsilon=2.0)),
    ],
)
def test_steps_with_extreme_gradients_follow_the_array_api_functions(
    torch_device, torch_dtype, name, kw
):
    """Gradients with zero rows, rows whose norm overflows or underflows, infinite and NaN
    entries: one step of the front end is the array-API transform, the inner SGD (or
    Frank-Wolfe) arithmetic, and the array-API projection, bit for bit."""
    from refimpl.optim import (
        RENORM_MARGIN,
        normalize_gradient,
        project_l2_ball,
        project_linf_ball,
        sign_gradient,
    )

    info = torch.finfo(torch_dtype)
    g = torch.tensor(
        [
            [3.0, -4.0, 1.0],
            [0.0, 0.0, 0.0],
            [1e-160, -2e-160, 0.0] if torch_dtype == torch.float64 else [1e-30, -2e-30, 0.0],
            [info.max / 2, info.max / 2, 1.0],
            [math.inf, 1.0, -2.0],
            [math.nan, 1.0, 0.5],
        ],
        dtype=torch_dtype,
    ).to(torch_device)
    x0 = torch.linspace(-3, 3, g.numel(), dtype=torch_dtype).reshape(g.shape).to(torch_device)
    x = x0.clone().requires_grad_(True)
    x.grad = g.clone()
    getattr(bo, name)([x], **kw).step()
    if name in ("SignedGradientOptim", "LinfProjectedOptim"):
        v = sign_gradient(g)
    elif name == "L1NormedGradientOptim":
        v = normalize_gradient(g, 1)
    else:
        v = normalize_gradient(g, 2)
    if name == "L2FrankWolfe":  # alpha = 1 at the first step: x <- -epsilon v
        want = x0 * 0.0 + v * (-kw["epsilon"])
    else:  # SGD's update, as torch.optim.SGD computes it
        want = x0.clone().add_(v, alpha=-kw["lr"])
    if name == "L2ProjectedOptim":
        want = project_l2_ball(want, kw["epsilon"], -1, margin=RENORM_MARGIN)
    if name == "LinfProjectedOptim":
        want = project_linf_ball(want, kw["epsilon"])
    assert _same(x.grad, v)
    assert _same(x.detach(), want), (x, want)


# -- options are validated again whenever a group changes --------------------------------------
@pytest.mark.parametrize("name", sorted(ALL))
def test_options_edited_after_a_step_are_caught_at_the_next(torch_device, name):
    """A step remembers the groups it validated; an option edited in place afterwards (a
    reassigned entry), a parameter of another dtype, or a tensor ``lr`` changed in place is
    caught at the next step, before any parameter changes."""
    p = torch.ones(2, 3, device=torch_device, requires_grad=True)
    opt = make(name, [p])
    set_grads([p])
    opt.step()
    key = "epsilon" if "epsilon" in ALL[name] else "lr"
    opt.param_groups[0][key] = math.nan
    set_grads([p])
    before = p.detach().clone()
    with pytest.raises(ValueError, match=key):
        opt.step()
    assert torch.equal(p.detach(), before)
    opt.param_groups[0][key] = ALL[name].get(key, 2.0 if name.endswith("FrankWolfe") else 0.1)
    opt.step()  # valid again
    # a scale applied to the tensors (Frank-Wolfe's radius; lr of SGD), fine for float32 ...
    scale = "lr" if not name.endswith("FrankWolfe") else "epsilon"
    scale = "lmo_scaling_factor" if name == "FrankWolfe" else scale
    opt.param_groups[0][scale] = 1e5
    opt.step()
    p.data = p.data.to(torch.float16)  # ... not for float16 parameters: checked again
    p.grad = torch.ones_like(p)
    before = p.detach().clone()
    with pytest.raises(ValueError, match=scale):
        opt.step()
    assert torch.equal(p.detach(), before)


def test_a_tensor_lr_is_validated_at_every_step(torch_device):
    p = torch.ones(2, 3, device=torch_device, requires_grad=True)
    lr = torch.tensor(0.1)
    opt = bo.L2ProjectedOptim([p], epsilon=1.0, lr=lr)
    set_grads([p])
    opt.step()
    lr.fill_(math.nan)  # the same object: only a check at every step sees it
    set_grads([p])
    before = p.detach().clone()
    with pytest.raises(ValueError, match="lr"):
        opt.step()
    assert torch.equal(p.detach(), before)
