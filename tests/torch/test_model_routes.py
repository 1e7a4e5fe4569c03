"""The JVP routes of ``refimpl.torch.as_model``: forward mode, double backward on the graph
retained per linearization, and their batched forms, agree to rounding with each other, with
central differences and through the adjoint identity <J v, u> = <v, J^T u>; "auto" takes the
documented rule (double backward, forward mode where the backward is not differentiable)
and keeps one graph per linearization."""

from __future__ import annotations

import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")
F = torch.nn.functional

from refimpl.linops import FisherOperator  # noqa: E402
from refimpl.torch.models import as_model  # noqa: E402

ROUTES = ("forward", "double_backward", "auto")
#: relative agreement of two routes (different sums of the same terms)
RTOL = {torch.float32: 1e-5, torch.float64: 1e-12}


@pytest.fixture(autouse=True)
def ieee_float32(monkeypatch, torch_device):
    """Recent GPUs compute float32 convolutions in TF32 (a 10-bit mantissa) by default; two
    routes would then differ by ~1e-3, not by rounding. IEEE float32 for these tests."""
    if torch_device.type == "cuda":
        monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
        monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)


class DivisiveNormalization(torch.nn.Module):
    """A gain-control-like division: y = (w * x) / (sigma + sqrt(b * x^2)), b >= 0."""

    def __init__(self) -> None:
        super().__init__()
        self.center = torch.nn.Conv2d(1, 2, 3, padding=1, padding_mode="circular", bias=False)
        self.pool = torch.nn.Conv2d(1, 1, 5, padding=2, padding_mode="circular", bias=False)
        with torch.no_grad():
            self.pool.weight.abs_()
        self.sigma = 0.1

    def forward(self, x):
        return self.center(x) / (self.sigma + torch.sqrt(self.pool(x * x)))


def conv():
    return torch.nn.Conv2d(1, 3, 3, padding=1, padding_mode="circular")


def pointwise():
    return torch.nn.Sequential(torch.nn.Softplus(beta=2.0), torch.nn.Tanh())


def cascade():
    """conv, softplus, gain control: the shape of plenoptic's front-end models."""
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 1, 3, padding=1, padding_mode="reflect"),
        torch.nn.Softplus(),
        DivisiveNormalization(),
    )


MODULES = {
    "conv": conv,
    "pointwise": pointwise,
    "division": DivisiveNormalization,
    "cascade": cascade,
}


def build(name, device, dtype):
    torch.manual_seed(0)
    return MODULES[name]().to(device=device, dtype=dtype).eval().requires_grad_(False)


def image(shape, device, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=g, dtype=dtype) * 0.8 + 0.1).to(device)


def randn(shape, device, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=dtype).to(device)


def rel(a, b):
    return float((a - b).norm() / b.norm().clamp_min(torch.finfo(b.dtype).tiny))


def products(module, mode, x, V, U):
    """J v one by one and as a block, J^T u as a block, F v one by one and as a block."""
    model = as_model(module, jvp_mode=mode)
    lin = model.linearize(x)
    fisher = FisherOperator(model, x)
    flat = V.reshape(V.shape[0], -1)
    return model, {
        "Jv": torch.stack([lin.jvp(v) for v in V]),
        "JV": lin.jvp(V),
        "JtU": lin.vjp(U),
        "Fv": torch.stack([fisher.matvec(v) for v in flat]),
        "FV": fisher.matmat(flat.T).T,
    }


@pytest.mark.parametrize("name", sorted(MODULES))
def test_routes_agree(torch_device, torch_dtype, name):
    """Forward mode, double backward and "auto", single and batched, to rounding; "auto" is
    the double-backward route itself (bitwise on the CPU, where torch is deterministic)."""
    module = build(name, torch_device, torch_dtype)
    x = image((1, 1, 6, 7), torch_device, torch_dtype)
    y = as_model(module)(x)
    V = randn((3, *x.shape), torch_device, torch_dtype, 1)
    U = randn((3, *y.shape), torch_device, torch_dtype, 2)
    out = {mode: products(module, mode, x, V, U) for mode in ROUTES}
    ref = out["forward"][1]
    for mode, (model, got) in out.items():
        assert model.jvp_route == ("forward" if mode == "forward" else "double_backward")
        for key, value in got.items():
            assert value.device == x.device and value.dtype == torch_dtype
            for i in range(3):
                assert rel(value[i], ref[key][i]) < RTOL[torch_dtype], (mode, key, i)
    for key, value in out["auto"][1].items():
        same = out["double_backward"][1][key]
        if torch_device.type == "cpu":
            assert torch.equal(value, same), key
        else:
            assert rel(value, same) < RTOL[torch_dtype], key


@pytest.mark.parametrize("mode", ROUTES)
@pytest.mark.parametrize("name", sorted(MODULES))
def test_routes_match_central_differences(torch_device, name, mode):
    """J v = (f(x + h v) - f(x - h v)) / 2h + O(h^2) in float64 (h = 1e-5: error ~1e-10)."""
    module = build(name, torch_device, torch.float64)
    model = as_model(module, jvp_mode=mode)
    x = image((1, 1, 5, 6), torch_device, torch.float64)
    V = randn((2, *x.shape), torch_device, torch.float64, 3)
    JV = model.linearize(x).jvp(V)
    h = 1e-5
    for v, jv in zip(V, JV):
        fd = (model(x + h * v) - model(x - h * v)) / (2 * h)
        assert rel(jv, fd) < 1e-7, (mode, rel(jv, fd))


@pytest.mark.parametrize("mode", ROUTES)
@pytest.mark.parametrize("name", sorted(MODULES))
def test_routes_are_adjoint_to_the_vjp(torch_device, torch_dtype, name, mode):
    """<J v, u> = <v, J^T u> for every route, to a few ulps of |J v| |u|."""
    module = build(name, torch_device, torch_dtype)
    lin = as_model(module, jvp_mode=mode).linearize(image((2, 1, 6, 5), torch_device, torch_dtype))
    V = randn((4, *lin.x.shape), torch_device, torch_dtype, 4)
    U = randn((4, *lin.y.shape), torch_device, torch_dtype, 5)
    JV, JtU = lin.jvp(V), lin.vjp(U)
    eps = torch.finfo(torch_dtype).eps
    for jv, u, v, jtu in zip(JV, U, V, JtU):
        lhs, rhs = (jv * u).sum(), (v * jtu).sum()
        assert abs(lhs - rhs) <= 100 * eps * jv.norm() * u.norm(), (mode, float(lhs - rhs))


@settings(max_examples=15)
@given(
    height=st.integers(3, 9),
    width=st.integers(3, 9),
    k=st.integers(1, 4),
    seed=st.integers(0, 2**16),
)
def test_routes_agree_on_any_image(torch_device, height, width, k, seed):
    """Gain control at random images and tangents (float64): the routes agree, single and
    batched, and the Fisher products v^T F v are the squared norms |J v|^2 >= 0."""
    module = build("cascade", torch_device, torch.float64)
    x = image((1, 1, height, width), torch_device, torch.float64, seed)
    V = randn((k, *x.shape), torch_device, torch.float64, seed + 1)
    lins = {mode: as_model(module, jvp_mode=mode).linearize(x) for mode in ROUTES}
    ref = torch.stack([lins["forward"].jvp(v) for v in V])
    for mode, lin in lins.items():
        assert rel(lin.jvp(V), ref) < 1e-12, mode
        FV = lin.vjp(lin.jvp(V))
        quad = (V * FV).flatten(1).sum(1)
        assert torch.allclose(quad, (ref * ref).flatten(1).sum(1), rtol=1e-12, atol=0), mode


class Counted(torch.nn.Module):
    """Counts its forward passes (primal or dual)."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.calls = inner, 0

    def forward(self, x):
        self.calls += 1
        return self.inner(x)


@pytest.mark.parametrize("mode", ROUTES)
def test_one_graph_per_linearization(torch_device, mode):
    """Double backward runs the module once per linearization, whatever the number of
    products; forward mode runs it again for every tangent."""
    module = Counted(build("cascade", torch_device, torch.float32))
    model = as_model(module, jvp_mode=mode)
    x = image((1, 1, 8, 8), torch_device, torch.float32)
    fisher = FisherOperator(model, x)
    assert module.calls == 1
    V = randn((4, x.numel()), torch_device, torch.float32, 6)
    for v in V:
        fisher.matvec(v)
    fisher.matmat(V.T)
    assert (model.n_jvp, model.n_vjp) == (8, 8)
    assert module.calls == (1 + 8 if mode == "forward" else 1)


class OnceDifferentiable(torch.autograd.Function):
    """exp(x) whose backward cannot be differentiated, with a forward-mode rule."""

    @staticmethod
    def forward(ctx, x):
        y = torch.exp(x)
        ctx.save_for_backward(y)
        ctx.save_for_forward(y)
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return g * y

    @staticmethod
    def jvp(ctx, t):
        (y,) = ctx.saved_tensors
        return t * y


class DetachedBackward(torch.autograd.Function):
    """exp(x) whose backward detaches its cotangent: the graph of J^T d never reaches d (a
    double backward would read zero where J v is not)."""

    @staticmethod
    def forward(ctx, x):
        y = torch.exp(x)
        ctx.save_for_backward(x)
        ctx.save_for_forward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g.detach() * torch.exp(x)

    @staticmethod
    def jvp(ctx, t):
        (y,) = ctx.saved_tensors
        return t * y


class NoRoute(torch.autograd.Function):
    """exp(x) with a once-differentiable backward and no forward-mode rule."""

    @staticmethod
    def forward(ctx, x):
        y = torch.exp(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return g * y


@pytest.mark.parametrize("fn", [OnceDifferentiable, DetachedBackward], ids=lambda f: f.__name__)
def test_auto_falls_back_to_forward_mode(torch_device, fn):
    """A backward that cannot be differentiated: "auto" makes the product again by forward
    mode (never a silent zero) and keeps that route; "double_backward" raises."""
    x = torch.linspace(-1, 1, 6, dtype=torch.float64, device=torch_device)
    V = torch.stack([torch.ones_like(x), x])
    model = as_model(fn.apply)
    assert model.jvp_route == "double_backward"
    lin = model.linearize(x)
    assert torch.allclose(lin.jvp(V[0]), torch.exp(x), rtol=1e-15, atol=0)
    assert model.jvp_route == "forward"
    assert torch.allclose(lin.jvp(V), V * torch.exp(x), rtol=1e-15, atol=0)
    assert torch.allclose(model.linearize(x).jvp(V), V * torch.exp(x), rtol=1e-15, atol=0)
    assert model.n_jvp == 5
    block = as_model(fn.apply)  # the block route finds out too
    assert torch.allclose(block.jvp(x, V), V * torch.exp(x), rtol=1e-15, atol=0)
    assert block.jvp_route == "forward"
    with pytest.raises(RuntimeError, match="cannot be differentiated.*jvp_mode='auto'"):
        as_model(fn.apply, jvp_mode="double_backward").jvp(x, V[0])


def test_no_route_is_an_error_naming_both(torch_device):
    x = torch.linspace(-1, 1, 6, dtype=torch.float64, device=torch_device)
    with pytest.raises(RuntimeError, match="no JVP route works") as info:
        as_model(NoRoute.apply).jvp(x, torch.ones_like(x))
    assert "backward pass cannot be differentiated" in str(info.value)
    assert "no forward mode" in str(info.value)


def test_zero_jacobian_on_every_route(torch_device):
    """An output that depends on a parameter but not on x: J = 0 on every route."""
    w = torch.ones(3, dtype=torch.float64, device=torch_device, requires_grad=True)
    x = torch.rand(4, dtype=torch.float64, device=torch_device)
    for mode in ROUTES:
        model = as_model(lambda t: w * 2.0, jvp_mode=mode)
        assert torch.equal(
            model.jvp(x, torch.ones(2, 4, dtype=x.dtype, device=x.device)),
            torch.zeros(2, 3, dtype=x.dtype, device=x.device),
        )


def _plenoptic_models(po):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # plenoptic's notes on cache_filt and deprecations
        models = {
            "Gaussian(3)": po.models.Gaussian(3),
            "CenterSurround(31)": po.models.CenterSurround(31),
            "LuminanceGainControl(31)": po.models.LuminanceGainControl(31, pretrained=True),
            "OnOff(31)": po.models.OnOff(31, pretrained=True),
        }
    for m in models.values():
        po.remove_grad(m)
        m.eval()
    return models


def test_fisher_products_equal_plenoptics(torch_device, torch_dtype):
    """On plenoptic's models, F v through as_model ("auto": double backward on the retained
    graph) equals plenoptic's own product on its graph, to rounding."""
    po = pytest.importorskip("plenoptic")
    from plenoptic._synthesize.autodiff import _fisher_info_matrix_vector_product

    x = image((1, 1, 16, 16), torch_device, torch_dtype)
    V = randn((2, x.numel()), torch_device, torch_dtype, 7)
    for label, module in _plenoptic_models(po).items():
        module = module.to(device=torch_device, dtype=torch_dtype)
        model = as_model(module)
        ours = FisherOperator(model, x).matmat(V.T)
        assert model.jvp_route == "double_backward", label
        x_flat = x.flatten().unsqueeze(1).requires_grad_(True)
        y = module(x_flat.view(x.shape)).flatten().unsqueeze(1)
        dummy = torch.ones_like(y, requires_grad=True)
        theirs = _fisher_info_matrix_vector_product(y, x_flat, V.T, dummy)
        assert rel(ours, theirs) < RTOL[torch_dtype] * 10, (label, rel(ours, theirs))
