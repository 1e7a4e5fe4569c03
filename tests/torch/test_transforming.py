"""Issue 11 item 20: the whole of ``rai_toolbox.optim`` as torch front ends, drop-in.

ParamTransformingOptimizer (and user subclasses written for rai_toolbox), the chain, and the
gradient transforms: bit-identical to rai_toolbox 0.2.1 step after step (parameters, the
transformed ``.grad`` and generator states) where the gradients have no ties at the top-q cut-off
and no NaN (the two documented differences), and the documented examples' values.
"""

from __future__ import annotations

import copy
import warnings
from functools import partial

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import refimpl.torch as bt  # noqa: E402
import refimpl.torch.optim as bo  # noqa: E402

SGD = torch.optim.SGD


@pytest.fixture
def rai():
    mod = pytest.importorskip("rai_toolbox.optim")
    warnings.filterwarnings("ignore", message="TypedStorage is deprecated")
    return mod


def test_every_documented_name_switches_by_an_import_change(rai):
    import rai_toolbox.perturbations as rp

    assert set(rai.__all__) <= set(bo.__all__)
    for name in rai.__all__:
        assert getattr(bt, name) is getattr(bo, name)
    for name in (
        "AdditivePerturbation",
        *(f"uniform_like_{k}_n_ball_" for k in ("l1", "l2", "linf")),
    ):
        assert name in rp.__all__ and callable(getattr(bt, name))


def _inner(name):
    return {
        "Adam": torch.optim.Adam,
        "AdamW": torch.optim.AdamW,
        "momentum": partial(SGD, momentum=0.9),
    }[name]


CASES = [
    ("SignedGradientOptim", (4, 6), dict(lr=0.1)),
    ("SignedGradientOptim", (4, 6), dict(InnerOpt="Adam", lr=0.01, param_ndim=-1)),
    ("L1NormedGradientOptim", (3, 4, 5), dict(lr=0.1, param_ndim=1)),
    (
        "L2NormedGradientOptim",
        (3, 10),
        dict(InnerOpt="momentum", lr=0.1, grad_scale=2.0, grad_bias=0.1),
    ),
    ("L1qNormedGradientOptim", (4, 30), dict(q=0.3, dq=0.2, lr=0.1)),
    ("L1qNormedGradientOptim", (2, 3, 8), dict(q=0.5, lr=0.2, grad_scale=1.8, param_ndim=None)),
    ("TopQGradientOptimizer", (4, 30), dict(q=0.6, dq=0.3, lr=0.1)),
    ("ClampedGradientOptimizer", (4, 6), dict(clamp_min=-0.5, clamp_max=0.7, lr=0.1)),
    ("ClampedParameterOptimizer", (4, 6), dict(clamp_max=0.3, lr=0.1, InnerOpt="Adam")),
    ("ParamTransformingOptimizer", (4, 6), dict(lr=0.1, InnerOpt="AdamW", grad_scale=0.5)),
    ("L2ProjectedOptim", (3, 4, 5), dict(epsilon=2.0, lr=0.3, InnerOpt="Adam")),
    ("LinfProjectedOptim", (4, 6), dict(epsilon=0.7, lr=0.2, InnerOpt="momentum", grad_bias=0.01)),
]


@pytest.mark.parametrize("name, shape, kw", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_thirty_steps_bit_identical_to_rai(rai, torch_device, torch_dtype, name, shape, kw):
    if torch_device.type != "cpu" and "dq" in kw:
        pytest.skip("the documented TopQ draws on the generator's device: compared on CPU")
    x0 = torch.randn(shape, generator=torch.Generator().manual_seed(0), dtype=torch_dtype) * 3
    out, gens = [], []
    for mod in (bo, rai):
        x = x0.clone().to(torch_device).requires_grad_(True)
        extra = dict(kw)
        if "InnerOpt" in extra:
            extra["InnerOpt"] = _inner(extra["InnerOpt"])
        if kw.get("dq", 0) > 0:
            gens.append(torch.Generator().manual_seed(123))
            extra["generator"] = gens[-1]
        opt = getattr(mod, name)([x], **extra)
        gg = torch.Generator().manual_seed(7)
        for _ in range(30):
            x.grad = torch.randn(shape, generator=gg, dtype=torch_dtype).to(torch_device)
            opt.step()
        out.append((x.detach(), x.grad))
    (xa, ga), (xb, gb) = out
    assert torch.equal(xa, xb), (xa - xb).abs().max()
    assert torch.equal(ga, gb), "the transformed gradient left in .grad differs"
    if gens:
        assert torch.equal(gens[0].get_state(), gens[1].get_state())


def test_fused_l1q_equals_the_literal_chain(torch_device):
    """L1qNormedGradientOptim's one-pass pre-step is the chain TopQ -> Signed -> L1Normed."""
    g = torch.Generator().manual_seed(3)
    grads = [torch.randint(-3, 4, (5, 12), generator=g).double() for _ in range(5)]  # ties
    out = []
    for make in (
        lambda p: bo.L1qNormedGradientOptim([p], q=0.4, lr=0.1),
        lambda p: bo.ChainedParamTransformingOptimizer(
            partial(bo.TopQGradientOptimizer, q=0.4),
            bo.SignedGradientOptim,
            bo.L1NormedGradientOptim,
            params=[p],
            lr=0.1,
        ),
    ):
        p = torch.zeros(5, 12, dtype=torch.float64, device=torch_device, requires_grad=True)
        opt = make(p)
        for gr in grads:
            p.grad = gr.to(torch_device)
            opt.step()
        out.append(p.detach())
    assert torch.equal(out[0], out[1])


def test_documented_chain_example(rai, torch_device):
    """rai_toolbox's ChainedParamTransformingOptimizer docstring, with its documented values."""
    reprs = []
    for mod in (bo, rai):
        x1 = torch.ones(3, device=torch_device, requires_grad=True)
        opt = mod.ChainedParamTransformingOptimizer(
            partial(mod.TopQGradientOptimizer, q=0.33),
            partial(mod.ClampedGradientOptimizer, clamp_max=2.8),
            params=[x1],
            lr=1.0,
            param_ndim=None,
        )
        reprs.append(repr(opt).splitlines()[0])
        (torch.tensor([1.0, 2.0, 3.0], device=torch_device) * x1).sum().backward()
        opt.step()
        assert x1.grad.tolist() == pytest.approx([0.0, 2.0, 2.8])
        assert x1.detach().tolist() == pytest.approx([1.0, -1.0, -1.8])
        x2 = torch.ones(2, 3, device=torch_device, requires_grad=True)
        opt.add_param_group(dict(params=x2, param_ndim=1, q=0.64))
        opt.zero_grad()
        (torch.tensor([1.0, 2.0, 3.0], device=torch_device) * (x1 + x2)).sum().backward()
        opt.step()
        assert x1.grad.tolist() == pytest.approx([0.0, 2.8, 2.8])
        np.testing.assert_allclose(x2.grad.tolist(), [[0.0, 0.0, 2.8], [0.0, 0.0, 2.8]])
        assert opt.param_groups[1]["q"] == 0.64 and opt.param_groups[1]["clamp_max"] == 2.8
    assert reprs[0] == reprs[1] == "ClampedGradientOptimizer ○ TopQGradientOptimizer [SGD]("


def test_chain_members_must_be_param_transforming(torch_device):
    p = torch.ones(3, device=torch_device, requires_grad=True)
    with pytest.raises(TypeError, match="transforming_optimizers"):
        bo.ChainedParamTransformingOptimizer(torch.optim.SGD, params=[p], lr=0.1)
    with pytest.raises(TypeError, match="transforming_optimizers"):
        bo.ChainedParamTransformingOptimizer(partial(len), params=[p], lr=0.1)


def _user_optimizers(base):
    """The three ParamTransformingOptimizer subclasses of rai_toolbox's docstring."""

    class UserSigned(base):
        def _pre_step_transform_(self, param, **_):
            torch.sign(param.grad, out=param.grad)

    class MaxNormed(base):
        def _pre_step_transform_(self, param, **_):
            g = param.grad.flatten(1)
            m = torch.max(torch.abs(g), dim=1).values
            param.grad /= torch.clamp(m, min=1e-20).view(-1, *[1] * (param.ndim - 1))

    class ClampedParam(base):
        def _post_step_transform_(self, param, optim_group):
            param.clamp_(min=-1.0, max=1.0)

    return UserSigned, MaxNormed, ClampedParam


def test_user_subclasses_written_for_rai_run_unchanged(rai, torch_device):
    results = []
    for base in (bo.ParamTransformingOptimizer, rai.ParamTransformingOptimizer):
        UserSigned, MaxNormed, ClampedParam = _user_optimizers(base)
        x = torch.tensor([-10.0, 10.0], device=torch_device, requires_grad=True)
        opt = UserSigned([x], InnerOpt=torch.optim.AdamW, lr=0.1)
        (10_000 * x).sum().backward()
        opt.step()
        row = [x.detach().clone()]
        y = torch.tensor([[1.0, 2.0], [20.0, 10.0]], device=torch_device, requires_grad=True)
        for param_ndim in (0, 1, 2):
            opt = MaxNormed([y], param_ndim=param_ndim, InnerOpt=SGD, lr=0.0)
            (y * y).sum().backward()
            opt.step()
            row.append(y.grad.clone())
            opt.zero_grad()
        z = torch.tensor([-10.0, 1.0], device=torch_device, requires_grad=True)
        opt = ClampedParam([z], lr=0.1)
        z.backward(gradient=torch.tensor([-1.0, 1.0], device=torch_device))
        opt.step()
        row.append(z.detach().clone())
        results.append(row)
    for a, b in zip(*results):
        assert torch.equal(a, b)
    documented = [
        [-10.09, 9.89],  # the value 0.2.1 gives (the page prints AdamW with lr=1.0)
        [[1.0, 1.0], [1.0, 1.0]],
        [[0.5, 1.0], [1.0, 0.5]],
        [[0.05, 0.1], [1.0, 0.5]],
        [-1.0, 0.9],
    ]
    for got, want in zip(results[0], documented):
        np.testing.assert_allclose(got.tolist(), want, atol=1e-4)


def test_a_transform_that_replaces_the_gradient_is_refused(torch_device):
    class Replacing(bo.ParamTransformingOptimizer):
        def _pre_step_transform_(self, param, **_):
            param.grad = torch.zeros_like(param.grad)

    x = torch.ones(3, device=torch_device, requires_grad=True)
    opt = Replacing([x], lr=0.1)
    x.grad = torch.ones(3, device=torch_device)
    with pytest.raises(ValueError, match="in-place"):
        opt.step()


def test_inner_optimizer_instance_and_closure_like_rai(rai, torch_device):
    out = []
    for mod in (bo, rai):
        x = torch.tensor([1.0, -2.0, 3.0], device=torch_device, requires_grad=True)
        inner = torch.optim.Adam([x], lr=0.05)
        opt = mod.L2NormedGradientOptim([x], InnerOpt=inner, param_ndim=None)
        assert opt.inner_opt is inner and opt.param_groups is inner.param_groups

        def closure(x=x, opt=opt):
            opt.zero_grad()
            loss = (x**3).sum()
            loss.backward()
            return loss

        losses = [float(opt.step(closure).detach()) for _ in range(4)]
        out.append((x.detach().clone(), losses))
    assert torch.equal(out[0][0], out[1][0]) and out[0][1] == out[1][1]
    y = torch.ones(2, device=torch_device, requires_grad=True)
    with pytest.raises(ValueError, match="params"):
        bo.SignedGradientOptim([y], InnerOpt=torch.optim.SGD([torch.ones(2)], lr=0.1))


def test_frank_wolfe_classes_mirror_rais_hierarchy(rai, torch_device):
    p = torch.ones(3, device=torch_device, requires_grad=True)
    pairs = [
        ("L1qFrankWolfe", dict(q=0.3, epsilon=1.0), "L1qNormedGradientOptim"),
        ("L2FrankWolfe", dict(epsilon=1.0), "L2NormedGradientOptim"),
        ("LinfFrankWolfe", dict(epsilon=1.0), "SignedGradientOptim"),
        ("L1FrankWolfe", dict(epsilon=1.0), "ParamTransformingOptimizer"),
    ]
    for name, kw, parent in pairs:
        ours, theirs = getattr(bo, name)([p], **kw), getattr(rai, name)([p], **kw)
        assert isinstance(ours, getattr(bo, parent)) and isinstance(theirs, getattr(rai, parent))
        assert repr(ours).splitlines()[0] == repr(theirs).splitlines()[0]
        assert isinstance(ours.inner_opt, bo.FrankWolfe)
    assert bo.L2FrankWolfe([p], epsilon=1.0).p == 2


def test_documented_transform_examples(torch_device):
    """Values of rai_toolbox's docstring examples (lp_space.py, misc.py)."""

    def run(make, x0, grad):
        x = torch.tensor(x0, device=torch_device, requires_grad=True)
        opt = make(x)
        x.backward(gradient=torch.tensor(grad, device=torch_device))
        opt.step()
        return x.grad.tolist(), x.detach().tolist()

    g, x = run(lambda x: bo.SignedGradientOptim([x], lr=1.0), [-1.5, 1.5], [-2.0, 20.0])
    assert g == [-1.0, 1.0] and x == [-0.5, 0.5]
    g, x = run(
        lambda x: bo.L1NormedGradientOptim([x], param_ndim=None, lr=1.0), [-1.0, 1.0], [2.0, 2.0]
    )
    assert g == [0.5, 0.5] and x == [-1.5, 0.5]
    g, x = run(
        lambda x: bo.L2NormedGradientOptim([x], param_ndim=None, lr=1.0), [-1.0, 1.0], [2.0, 2.0]
    )
    assert g == pytest.approx([0.7071, 0.7071], abs=1e-4) and x == pytest.approx(
        [-1.7071, 0.2929], abs=1e-4
    )
    g, x = run(
        lambda x: bo.L1qNormedGradientOptim([x], q=0.30, grad_scale=1.8, lr=1.0, param_ndim=None),
        [1.0, 1.0, 1.0],
        [0.0, 1.0, 2.0],
    )
    assert g == pytest.approx([0.0, 0.9, 0.9]) and x == pytest.approx([1.0, 0.1, 0.1])
    g, x = run(
        lambda x: bo.L2ProjectedOptim([x], param_ndim=None, lr=1.0, epsilon=0.8),
        [-1.0, 1.0],
        [2.0, 2.0],
    )
    assert x == pytest.approx([-0.7885, 0.1353], abs=1e-4)
    g, x = run(lambda x: bo.LinfProjectedOptim([x], epsilon=1.8, lr=1.0), [-1.0, 0.5], [2.0, -2.0])
    assert g == [1.0, -1.0] and x == pytest.approx([-1.8, 1.5])
    g, x = run(
        lambda x: bo.ClampedGradientOptimizer(params=[x], lr=1.0, clamp_min=-1.0, clamp_max=3.0),
        [1.0, 1.0],
        [-0.5, 10.0],
    )
    assert g == [-0.5, 3.0] and x == [1.5, -2.0]
    g, x = run(
        lambda x: bo.ClampedParameterOptimizer(params=[x], lr=1.0, clamp_min=-1.0, clamp_max=3.0),
        [1.0, 1.0],
        [0.5, -10.0],
    )
    assert x == [0.5, 3.0]
    grad = [[0.5, 1.0], [-2.5, 0.30]]
    for q, kept in [(0.0, 4), (0.25, 3), (0.5, 2), (0.75, 1), (1.0, 0)]:
        g, x = run(
            lambda x, q=q: bo.TopQGradientOptimizer(params=[x], lr=1.0, q=q, param_ndim=None),
            [[1.0, 1.0], [1.0, 1.0]],
            grad,
        )
        assert sum(v != 0 for row in g for v in row) == kept


@pytest.mark.parametrize(
    "make, exc, words",
    [
        (lambda p: bo.ClampedGradientOptimizer([p], lr=0.1), ValueError, "clamp_min"),
        (
            lambda p: bo.ClampedParameterOptimizer([p], clamp_min=1.0, clamp_max=0.0, lr=0.1),
            ValueError,
            "clamp_min",
        ),
        (lambda p: bo.TopQGradientOptimizer([p], q=1.5, lr=0.1), ValueError, "q"),
        (
            lambda p: bo.TopQGradientOptimizer([p], q=0.5, generator=3, lr=0.1),
            TypeError,
            "generator",
        ),
        (
            lambda p: bo.L2NormedGradientOptim([p], div_by_zero_eps=-1.0, lr=0.1),
            ValueError,
            "div_by_zero_eps",
        ),
        (lambda p: bo.SignedGradientOptim([p], grad_scale="2", lr=0.1), TypeError, "grad_scale"),
        (lambda p: bo.SignedGradientOptim([p], param_ndim=1.0, lr=0.1), TypeError, "param_ndim"),
        (lambda p: bo.L1NormedGradientOptim([p], param_ndim=3, lr=0.1), ValueError, "param_ndim"),
        (lambda p: bo.ParamTransformingOptimizer(None, lr=0.1), TypeError, "params"),
    ],
)
def test_bad_input(torch_device, make, exc, words):
    p = torch.zeros(2, 3, device=torch_device, requires_grad=True)
    with pytest.raises(exc, match=words):
        make(p)


@pytest.mark.parametrize(
    "name, kw",
    [
        ("L2ProjectedOptim", dict(epsilon=1.0, lr=0.1, momentum=0.9)),
        ("L1qNormedGradientOptim", dict(q=0.3, lr=0.1, InnerOpt="Adam")),
        ("L1qFrankWolfe", dict(q=0.3, epsilon=1.5)),
        ("LinfFrankWolfe", dict(epsilon=2.0, lr=1.0)),
    ],
)
def test_a_rai_checkpoint_resumes_here(rai, torch_device, name, kw):
    """A state dict saved by rai_toolbox's class loads into the class of the same name (the
    options rai does not keep per group come from the new optimizer) and the run continues
    bit for bit."""
    if "InnerOpt" in kw:
        kw = {**kw, "InnerOpt": _inner(kw["InnerOpt"])}
    g = torch.Generator().manual_seed(1)
    grads = [torch.randn(3, 8, generator=g).to(torch_device) for _ in range(8)]
    x = torch.randn(3, 8, generator=g).to(torch_device).requires_grad_(True)
    theirs = getattr(rai, name)([x], **kw)
    for gr in grads[:4]:
        x.grad = gr.clone()
        theirs.step()
    saved = copy.deepcopy(theirs.state_dict())  # as from a file: no tensor shared with rai's
    y = x.detach().clone().requires_grad_(True)
    ours = getattr(bo, name)([y], **kw)
    ours.load_state_dict(saved)
    for gr in grads[4:]:
        x.grad, y.grad = gr.clone(), gr.clone()
        theirs.step()
        ours.step()
    assert torch.equal(x.detach(), y.detach())


@pytest.mark.parametrize("name", ["SignedGradientOptim", "L2ProjectedOptim", "L1FrankWolfe"])
def test_a_parameter_without_a_batch_view_is_transformed_on_a_copy(torch_device, name):
    """A transposed parameter with param_ndim=0 has no (N, 1) view (rai: RuntimeError from
    ``view``): the transforms run on a copy written back, as on a contiguous clone."""
    kw = {"SignedGradientOptim": dict(lr=0.1), "L2ProjectedOptim": dict(epsilon=0.5, lr=0.1)}
    kw = kw.get(name, dict(epsilon=0.5))
    base = torch.randn(4, 3, generator=torch.Generator().manual_seed(0)).to(torch_device)
    grad = torch.randn(3, 4, generator=torch.Generator().manual_seed(1)).to(torch_device)
    out = []
    for p in (base.t().requires_grad_(True), base.t().contiguous().requires_grad_(True)):
        opt = getattr(bo, name)([p], param_ndim=0, **kw)
        p.grad = grad.clone()
        opt.step()
        out.append((p.detach(), p.grad))
    assert not out[0][0].is_contiguous()
    assert torch.equal(out[0][0], out[1][0]) and torch.equal(out[0][1], out[1][1])
