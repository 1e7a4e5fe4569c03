"""refimpl.torch.as_model: any torch module through the derivative protocol, and refimpl
models against torch modules with the same weights."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from refimpl import models as rm  # noqa: E402
from refimpl.linops import FisherOperator, JacobianOperator, jacobian  # noqa: E402
from refimpl.torch.models import as_model  # noqa: E402


def small_convnet():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 3, 3, padding=1),
        torch.nn.Softplus(),
        torch.nn.Conv2d(3, 2, 3, stride=2),
        torch.nn.Tanh(),
        torch.nn.Flatten(),
        torch.nn.Linear(2 * 3 * 3, 4),
    )


class TwoOutputs(torch.nn.Module):
    """Returns a tuple: a blurred image and a nonlinear summary."""

    def __init__(self, as_dict=False):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 1, 3, padding=1, bias=False)
        self.as_dict = as_dict

    def forward(self, x):
        a, b = self.conv(x), torch.tanh(x).sum(dim=(-1, -2))
        return {"blur": a, "summary": b} if self.as_dict else (a, b)


class NoForwardAD(torch.autograd.Function):
    """sin(x) with a backward but no forward-mode rule: as_model must fall back to the
    double-backward JVP."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.sin(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * torch.cos(x)


def no_forward_ad(x):
    return NoForwardAD.apply(x) * 2


def plenoptic_models():
    po = pytest.importorskip("plenoptic")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # plenoptic's notes on cache_filt and deprecations
        return _plenoptic_models(po)


def _plenoptic_models(po):
    out = {
        "Gaussian": po.models.Gaussian(5, pad_mode="circular"),
        "CenterSurround": po.models.CenterSurround(5),
        "LuminanceGainControl": po.models.LuminanceGainControl(
            31, pretrained=True, cache_filt=True, pad_mode="circular"
        ),
        "OnOff": po.models.OnOff(31, pretrained=True, cache_filt=True),
    }
    for m in out.values():
        po.remove_grad(m) if hasattr(po, "remove_grad") else po.tools.remove_grad(m)
        m.eval()
    return out


CASES = ["convnet", "tuple", "dict", "no_forward_ad", "plenoptic"]


def make(case, device, dtype):
    """[(label, module, input shape)] for a case."""
    if case == "convnet":
        return [("convnet", small_convnet(), (2, 1, 7, 7))]
    if case in ("tuple", "dict"):
        torch.manual_seed(1)
        return [(case, TwoOutputs(case == "dict"), (1, 1, 5, 4))]
    if case == "no_forward_ad":
        return [(case, no_forward_ad, (3, 4))]
    return [(k, m, (1, 1, 32, 32)) for k, m in plenoptic_models().items()]


def moved(module, device, dtype):
    return module.to(device=device, dtype=dtype) if isinstance(module, torch.nn.Module) else module


def rel(a, b):
    return float((a - b).norm() / b.norm().clamp_min(1e-300))


@pytest.mark.parametrize("case", CASES)
def test_as_model_identities(torch_device, torch_dtype, case):
    """Adjoint identity, central differences (float64), batch = loop, dense Jacobian equal to
    stacked products, Fisher symmetric PSD; outputs on the module's device and dtype."""
    for label, module, shape in make(case, torch_device, torch_dtype):
        model = as_model(moved(module, torch_device, torch_dtype))
        g = torch.Generator(device="cpu").manual_seed(0)
        x = torch.rand(shape, generator=g, dtype=torch_dtype).to(torch_device) * 0.8 + 0.1
        lin = model.linearize(x)
        y = lin.y
        assert y.device == x.device and y.dtype == torch_dtype, label
        if case in ("tuple", "dict"):
            assert y.shape == (5 * 4 + 1,)
        k = 3
        V = torch.randn((k, *shape), generator=g, dtype=torch_dtype).to(torch_device)
        U = torch.randn((k, *y.shape), generator=g, dtype=torch_dtype).to(torch_device)
        JV, JTU = lin.jvp(V), lin.vjp(U)
        assert JV.shape == (k, *y.shape) and JTU.shape == (k, *shape)
        eps = torch.finfo(torch_dtype).eps
        for i in range(k):
            assert rel(lin.jvp(V[i]), JV[i]) < 100 * eps, label
            assert rel(lin.vjp(U[i]), JTU[i]) < 100 * eps, label
        lhs, rhs = (JV * U).sum(), (V * JTU).sum()
        assert abs(lhs - rhs) <= 100 * eps * JV.norm() * U.norm(), label
        if torch_dtype == torch.float64:
            h = 1e-6
            fd = (model(x + h * V[0]) - model(x - h * V[0])) / (2 * h)
            assert rel(JV[0], fd) < 1e-6, (label, rel(JV[0], fd))
        if x.numel() <= 256:
            J = jacobian(model, x)
            assert J.shape == (y.numel(), x.numel()) and J.device == x.device
            assert rel(J @ V[0].reshape(-1), JV[0].reshape(-1)) < 1e3 * eps
            Fop = FisherOperator(model, x)
            FV = Fop.matmat(V.reshape(k, -1).T)
            sym = V.reshape(k, -1) @ FV
            assert torch.allclose(sym, sym.T, rtol=1e-4, atol=1e-4 * sym.abs().max())
            assert torch.all(torch.diagonal(sym) >= -1e-5 * sym.abs().max())


def test_jvp_modes_agree(torch_device):
    module = small_convnet().to(device=torch_device, dtype=torch.float64)
    x = torch.rand(2, 1, 7, 7, dtype=torch.float64, device=torch_device)
    v = torch.randn(4, 2, 1, 7, 7, dtype=torch.float64, device=torch_device)
    outs = {}
    for mode in ("forward", "double_backward", "auto"):
        m = as_model(module, jvp_mode=mode)
        lin = m.linearize(x)
        outs[mode] = (lin.jvp(v), torch.stack([lin.jvp(v[i]) for i in range(4)]))
        assert m.n_jvp == 8
    ref = outs["forward"][1]
    for batch, loop in outs.values():
        assert torch.allclose(batch, ref, rtol=1e-12, atol=1e-14)
        assert torch.allclose(loop, ref, rtol=1e-12, atol=1e-14)


def test_a_module_without_forward_mode_takes_double_backward(torch_device):
    m = as_model(no_forward_ad)
    x = torch.linspace(-1, 1, 6, dtype=torch.float64, device=torch_device)
    v = torch.ones_like(x)
    assert torch.allclose(m.jvp(x, v), 2 * torch.cos(x))
    assert m.jvp_route == "double_backward"
    with pytest.raises((RuntimeError, NotImplementedError)):
        as_model(no_forward_ad, jvp_mode="forward").jvp(x, v)


def test_products_are_counted(torch_device):
    m = as_model(small_convnet().to(torch_device))
    x = torch.rand(2, 1, 7, 7, device=torch_device)
    J = JacobianOperator(m, x)
    J.matmat(torch.zeros(J.shape[1], 5, device=torch_device))
    J.rmatvec(torch.zeros(J.shape[0], device=torch_device))
    assert (m.n_jvp, m.n_vjp, J.n_products) == (5, 1, 6)


def test_constant_model_has_zero_derivatives(torch_device):
    m = as_model(lambda x: torch.ones(3, device=x.device, dtype=x.dtype))
    x = torch.rand(4, device=torch_device)
    assert torch.equal(m.jvp(x, torch.ones(2, 4, device=torch_device)), torch.zeros(2, 3))
    assert torch.equal(m.vjp(x, torch.ones(3, device=torch_device)), torch.zeros(4))


def test_bad_input(torch_device):
    m = as_model(small_convnet().to(torch_device))
    x = torch.rand(2, 1, 7, 7, device=torch_device)
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        m(np.zeros((2, 1, 7, 7), dtype=np.float32))
    with pytest.raises(TypeError, match="floating dtype"):
        m(torch.zeros(2, 1, 7, 7, dtype=torch.int64, device=torch_device))
    with pytest.raises(TypeError, match="module's parameters have torch.float32"):
        m(x.double())
    with pytest.raises(ValueError, match="must have the shape of x"):
        m.jvp(x, torch.zeros(2, 1, 7, 6, device=torch_device))
    with pytest.raises(TypeError, match="u .* must be a torch.Tensor"):
        m.vjp(x, np.zeros(8, dtype=np.float32))
    with pytest.raises(TypeError, match="dtype"):
        m.vjp(x, torch.zeros(2, 4, dtype=torch.float64, device=torch_device))
    with pytest.raises(ValueError, match="jvp_mode"):
        as_model(small_convnet(), jvp_mode="reverse")
    with pytest.raises(TypeError, match="module must be"):
        as_model(3)
    with pytest.raises(TypeError, match="must return a tensor"):
        as_model(lambda x: "y")(x)


def test_training_mode_with_dropout_warns():
    net = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Dropout(0.5))
    with pytest.warns(UserWarning, match="training mode"):
        as_model(net)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        as_model(net.eval())


# -- refimpl models against torch modules with the same weights ----------------------------------
def _torch_conv(x, w, b, mode, stride):
    kh, kw = w.shape[-2:]
    pads = [(kw - 1) // 2, kw - 1 - (kw - 1) // 2, (kh - 1) // 2, kh - 1 - (kh - 1) // 2]
    return F.conv2d(F.pad(x, pads, mode=mode), w, b, stride=stride)


@pytest.mark.parametrize("mode", ["reflect", "circular", "constant", "replicate"])
@pytest.mark.parametrize("method", ["direct", "fft"])
def test_refimpl_conv2d_equals_torch(torch_device, torch_dtype, mode, method):
    g = torch.Generator().manual_seed(0)
    w = torch.randn(3, 2, 5, 4, generator=g, dtype=torch_dtype).to(torch_device)
    b = torch.randn(3, generator=g, dtype=torch_dtype).to(torch_device)
    x = torch.randn(2, 2, 9, 10, generator=g, dtype=torch_dtype).to(torch_device)
    ref = lambda t: _torch_conv(t, w, b, mode, 2)  # noqa: E731
    ours = rm.Conv2d(w, b, pad_mode=mode, stride=2, method=method)
    _compare(ours, as_model(ref), x, torch_dtype)


def test_refimpl_linear_and_pointwise_equal_torch(torch_device, torch_dtype):
    torch.manual_seed(0)
    lin = torch.nn.Linear(6, 4).to(torch_device, torch_dtype)
    ours = rm.Linear(lin.weight.detach(), lin.bias.detach())
    x = torch.randn(3, 6, dtype=torch_dtype, device=torch_device)
    _compare(ours, as_model(lin), x, torch_dtype)
    for name, fn in [
        ("softplus", F.softplus),
        ("sigmoid", torch.sigmoid),
        ("tanh", torch.tanh),
        ("relu", torch.relu),
    ]:
        _compare(rm.Pointwise(name), as_model(fn), x * 3, torch_dtype)


def test_refimpl_lgc_equals_plenoptic(torch_device, torch_dtype):
    po = pytest.importorskip("plenoptic")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pm = po.models.LuminanceGainControl(
            31, pretrained=True, cache_filt=True, pad_mode="circular"
        )
    pm = pm.to(torch_device, torch_dtype).eval()
    f32 = lambda v: float(np.float32(v))  # noqa: E731  (plenoptic stores float32 constants)
    ours = rm.LuminanceGainControl(
        31,
        center_std=f32(1.962),
        surround_std=f32(4.235),
        luminance_std=f32(4.235),
        luminance_scalar=f32(14.95),
        pad_mode="circular",
        backend="torch",
        device=torch_device,
    )
    x = torch.rand(1, 1, 40, 40, dtype=torch_dtype, generator=torch.Generator().manual_seed(3))
    _compare(ours, as_model(pm), x.to(torch_device), torch_dtype)


def _compare(ours, theirs, x, dtype):
    rtol = 1e-5 if dtype == torch.float32 else 1e-10
    y = ours(x)
    yt = theirs(x)
    assert rel(y, yt) < rtol
    g = torch.Generator().manual_seed(9)
    v = torch.randn((2, *x.shape), generator=g, dtype=dtype).to(x.device)
    u = torch.randn((2, *y.shape), generator=g, dtype=dtype).to(x.device)
    assert rel(ours.jvp(x, v), theirs.jvp(x, v)) < rtol
    assert rel(ours.vjp(x, u), theirs.vjp(x, u)) < rtol
