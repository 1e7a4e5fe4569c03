"""refimpl.torch.optim: bit-identical to rai_toolbox 0.2.1 over 50 steps, torch.optim API.

Torch-only: parametrised by the ``torch_device`` / ``torch_dtype`` fixtures (tests/conftest.py).
"""

from __future__ import annotations

import warnings

import pytest


def _rai():
    rai = pytest.importorskip("rai_toolbox.optim")
    warnings.filterwarnings("ignore", message="TypedStorage is deprecated")
    return rai


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

    rai = _rai()
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
