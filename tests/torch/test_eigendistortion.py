"""refimpl.torch.Eigendistortion: plenoptic's signature and behaviour on torch modules.

Equal to refimpl on explicit models with the same weights; plenoptic's image rules,
attributes, ``to()``, save/load; plenoptic's own models and documented values when plenoptic
is installed.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from refimpl import models as rm  # noqa: E402
from refimpl.eigendistortion import Eigendistortion as RefEigendistortion  # noqa: E402
from refimpl.torch import Eigendistortion  # noqa: E402


def quiet(eig, method, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        eig.synthesize(method, progress=False, **kw)
    return eig


def net(device, dtype, stride=1):
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(1, 2, 3, stride=stride, padding=1, padding_mode="reflect")
    return torch.nn.Sequential(conv, torch.nn.Softplus()).to(device, dtype).eval()


def explicit(module):
    """The same architecture and weights as a refimpl model (numpy float64)."""
    conv = module[0]
    w = conv.weight.detach().cpu().double().numpy()
    b = conv.bias.detach().cpu().double().numpy()
    return rm.Sequential(rm.Conv2d(w, b, stride=conv.stride[0]), rm.Pointwise("softplus"))


def image(device, dtype, N=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 1, N, N, generator=g, dtype=dtype).to(device)


@pytest.mark.parametrize("method", ["exact", "eigsh", "power"])
def test_equals_refimpl_with_the_same_weights(torch_device, torch_dtype, method):
    module = net(torch_device, torch_dtype, stride=2)
    x = image(torch_device, torch_dtype)
    ours = quiet(Eigendistortion(x, module), method, k=2, max_iter=200, rng=0)
    ref = quiet(RefEigendistortion(x.cpu().double().numpy(), explicit(module)), method, k=2,
                max_iter=200, rng=0)  # fmt: skip
    assert ours.eigenvalues.device == x.device and ours.eigenvalues.dtype == torch_dtype
    got = ours.eigenvalues.cpu().double().numpy()
    want = np.asarray(ref.eigenvalues)
    rtol = 1e-4 if torch_dtype == torch.float32 else 1e-9
    lam_max = want[0]
    if method == "exact":
        np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * lam_max)
        return
    if method == "power":  # 200 iterations: agree to within the reported residuals
        rtol = max(rtol, 2 * ours.convergence["top"]["max_residual"])
    np.testing.assert_allclose(got[:2], want[:2], rtol=rtol)
    # bottoms: degenerate (null space n/2); both Rayleigh quotients tiny
    assert max(got[2:].max(), want[2:].max()) <= 2e-4 * lam_max
    assert ours.eigendistortions.shape == (4, 1, 16, 16)


def test_plenoptic_image_rules(torch_device):
    module = net(torch_device, torch.float32)
    with pytest.raises(ValueError, match="input_tensor batch dimension must be 1"):
        Eigendistortion(torch.rand(2, 1, 8, 8, device=torch_device), module)
    with pytest.raises(TypeError, match="real floating dtype"):
        Eigendistortion(torch.zeros(1, 1, 8, 8, dtype=torch.int64, device=torch_device), module)
    with pytest.raises(TypeError, match="real floating dtype"):
        Eigendistortion(torch.zeros(1, 4, dtype=torch.complex64, device=torch_device), module)
    with pytest.warns(UserWarning, match="range is"):
        Eigendistortion(3 * torch.rand(1, 1, 8, 8, device=torch_device), module)
    with pytest.warns(UserWarning, match="4d inputs"):
        e = Eigendistortion(torch.rand(1, 8, 8, device=torch_device), lambda t: 2 * t)
    quiet(e, "eigsh", k=1)
    assert e.eigendistortions.shape == (2, 8, 8)
    with pytest.raises(ValueError, match="image contains NaN or infinite values"):
        Eigendistortion(torch.full((1, 1, 4, 4), float("nan"), device=torch_device), module)
    with pytest.raises(TypeError, match="module's parameters have torch.float32"):
        Eigendistortion(torch.rand(1, 1, 8, 8, dtype=torch.float64, device=torch_device), module)
    with pytest.warns(UserWarning, match="training mode"):
        Eigendistortion(torch.rand(1, 1, 8, 8, device=torch_device), module.train())


def test_one_dimensional_linear_model_tutorial(torch_device):
    """plenoptic's tutorial: nn.Linear(25, 10) on ones(25). J = W; 10 non-zero eigenvalues,
    15 zeros; the bottom eigendistortion lies in W's null space."""
    torch.manual_seed(0)
    lin = torch.nn.Linear(25, 10, bias=False).to(torch_device, torch.float64).eval()
    x = torch.ones(25, dtype=torch.float64, device=torch_device)
    with pytest.warns(UserWarning, match="4d inputs"):
        e = Eigendistortion(x, lin)
    quiet(e, "exact")
    W = lin.weight.detach()
    torch.testing.assert_close(e.jacobian, W)
    lam = torch.linalg.svdvals(W) ** 2
    torch.testing.assert_close(e.eigenvalues[:10], lam)
    assert e.eigenvalues[10:].abs().max() < 1e-14
    assert e.eigendistortions.shape == (25, 25)
    for method in ("power", "eigsh"):
        with pytest.warns(UserWarning, match="4d inputs"):
            e = Eigendistortion(x, lin)
        quiet(e, method, max_iter=2000)
        assert e.eigenindex.tolist() == [0, 24]
        assert torch.linalg.vector_norm(W @ e.eigendistortions[1]) < 1e-6  # null space
        torch.testing.assert_close(e.eigenvalues[0], lam[0])


def test_tuple_outputs_and_y_equals_3x(torch_device):
    """Outputs that are tuples are concatenated; for y = 3x every eigenvalue is 9."""
    x = torch.rand(1, 1, 5, 1, dtype=torch.float64, device=torch_device)
    e = quiet(Eigendistortion(x, lambda t: (3 * t, t[..., :2, :])), "exact")
    lam = e.eigenvalues.cpu().numpy()
    np.testing.assert_allclose(np.sort(lam), [9, 9, 9, 10, 10], rtol=1e-12)
    e = quiet(Eigendistortion(x, lambda t: 3 * t), "power", k=2, max_iter=5)
    np.testing.assert_allclose(np.sqrt(e.eigenvalues.cpu().numpy()), 3, rtol=1e-12)


def test_attributes_to_and_resume(torch_device):
    module = net(torch_device, torch.float32)
    x = image(torch_device, torch.float32)
    e = Eigendistortion(x, module)
    assert e.eigenvalues is None and e.jacobian is None and e.model is module
    assert repr(e).startswith("Eigendistortion(\n  image = torch.Size([1, 1, 16, 16])")
    quiet(e, "eigsh", k=2)
    e.to(torch.float64)
    assert e.image.dtype == torch.float64 and e.eigendistortions.dtype == torch.float64
    assert e.eigenindex.dtype == torch.int64 and module[0].weight.dtype == torch.float64
    quiet(e, "power", max_iter=5)  # synthesis resumes on the cast model
    assert e.eigenvalues.dtype == torch.float64 and e.method == "power"


# -- bad input ---------------------------------------------------------------------------------
def _state(e, module):
    """What a failed ``to()`` must leave as it was: the object's tensors, the module's."""
    tensors = [e.image, e.eigenvalues, e.eigendistortions, e.eigenindex, e.jacobian]
    tensors += list(module.parameters()) + list(module.buffers())
    return [(t, t.dtype, t.device, t.detach().clone()) for t in tensors if t is not None]


def _assert_unchanged(e, module, before):
    after = _state(e, module)
    assert len(after) == len(before)
    for (t0, dt0, dev0, v0), (t1, dt1, dev1, _) in zip(before, after):
        assert t1 is t0 and (dt1, dev1) == (dt0, dev0) and torch.equal(t1.detach(), v0)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "int64", "complex64", "bool"])
def test_to_refuses_other_dtypes_before_touching_the_model(torch_device, dtype):
    module = net(torch_device, torch.float32)
    x = image(torch_device, torch.float32, N=6)
    e = quiet(Eigendistortion(x, module), "exact")
    before = _state(e, module)
    dt = getattr(torch, dtype)
    with pytest.raises(TypeError, match=f"dtype must be torch.float32 or torch.float64, got {dt}"):
        e.to(dt)
    with pytest.raises(TypeError, match="dtype must be"):
        e.to(torch_device, dtype=dt)
    _assert_unchanged(e, module, before)
    assert Eigendistortion(x, module).eigenvalues is None  # plenoptic's bug: this failed


def test_to_an_unreachable_device_leaves_everything(torch_device):
    module = net(torch_device, torch.float32)
    x = image(torch_device, torch.float32, N=6)
    e = quiet(Eigendistortion(x, module), "exact")
    before = _state(e, module)
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    for device in (f"cuda:{count}", "bogus", "meta"):
        with pytest.raises(ValueError, match="to: (cannot move the image|the device 'meta')"):
            e.to(device)
        _assert_unchanged(e, module, before)


class Overflowing(torch.nn.Module):
    """Finite in float64, infinite in float32 (the buffer 1e50 overflows)."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(16, 3, dtype=torch.float64)
        self.register_buffer("scale", torch.tensor(1e50, dtype=torch.float64))

    def forward(self, x):
        return self.lin(x.reshape(1, -1)) * self.scale


def test_to_puts_the_model_back_when_it_fails_on_the_moved_image(torch_device):
    torch.manual_seed(0)
    module = Overflowing().to(torch_device).eval()
    x = image(torch_device, torch.float64, N=4)
    e = quiet(Eigendistortion(x, module), "exact")
    module.lin.weight.grad = torch.ones_like(module.lin.weight)
    weight = module.lin.weight
    before = _state(e, module)
    with pytest.raises(ValueError, match=r"model\(image\) contains NaN or infinite values"):
        e.to(torch.float32)
    _assert_unchanged(e, module, before)  # float64 weights, not float32-rounded ones
    assert module.lin.weight is weight and module.lin.weight.grad.dtype == torch.float64
    quiet(e, "power", max_iter=3)  # the object still works
    assert e.eigenvalues.dtype == torch.float64


def test_load_refuses_bad_tolerances_before_reading(torch_device, tmp_path):
    module = net(torch_device, torch.float64)
    x = image(torch_device, torch.float64)
    quiet(Eigendistortion(x, module), "exact").save(tmp_path / "e.npz")
    f = Eigendistortion(x, module)
    for name in ("tensor_equality_atol", "tensor_equality_rtol"):
        for value in (-1.0, float("nan"), float("inf")):
            with pytest.raises(ValueError, match=f"{name} must be a finite number >= 0"):
                f.load(tmp_path / "e.npz", **{name: value})
    with pytest.raises(TypeError, match="raise_on_checks must be True or False"):
        f.load(tmp_path / "e.npz", raise_on_checks="yes")
    f.load(tmp_path / "e.npz")
    assert f.method == "exact"


def test_default_rng_is_torch_global_generator(torch_device):
    module = net(torch_device, torch.float64)
    x = image(torch_device, torch.float64)
    runs = []
    for _ in range(2):
        torch.manual_seed(5)
        runs.append(quiet(Eigendistortion(x, module), "power", max_iter=3).eigenvalues)
    torch.testing.assert_close(runs[0], runs[1], rtol=0, atol=0)


def test_save_load(torch_device, tmp_path):
    module = net(torch_device, torch.float32)
    x = image(torch_device, torch.float32)
    e = quiet(Eigendistortion(x, module), "eigsh", k=1, rng=0)
    e.save(tmp_path / "e.pt")
    f = Eigendistortion(x, module)
    f.load(tmp_path / "e.pt", map_location=str(torch_device))
    assert torch.equal(f.eigenvalues, e.eigenvalues) and f.eigenvalues.device == x.device
    with pytest.raises(ValueError, match="model output have different values"):
        Eigendistortion(x, torch.nn.Sequential(module, torch.nn.Softplus()).eval()).load(
            tmp_path / "e.pt"
        )
    with pytest.raises(ValueError, match="attribute image have different values"):
        Eigendistortion(image(torch_device, torch.float32, seed=1), module).load(tmp_path / "e.pt")
    with pytest.raises(TypeError, match="not a pickle"):
        Eigendistortion(x, module).load(tmp_path / "e.pt", weights_only=True)
    with pytest.raises(ValueError, match="just-initialized"):
        f.load(tmp_path / "e.pt")


# -- plenoptic's models and documented values (plenoptic installed) ---------------------------
def _po():
    po = pytest.importorskip("plenoptic")
    warnings.simplefilter("ignore")
    return po


def test_plenoptic_lgc_equals_refimpl_explicit_model(torch_device):
    po = _po()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pm = po.models.LuminanceGainControl(
            31, pad_mode="circular", pretrained=True, cache_filt=True
        )
    pm = pm.to(torch_device, torch.float64).eval()
    po.remove_grad(pm)
    f32 = lambda v: float(np.float32(v))  # noqa: E731
    ours = rm.LuminanceGainControl(
        31, center_std=f32(1.962), surround_std=f32(4.235), luminance_std=f32(4.235),
        luminance_scalar=f32(14.95), pad_mode="circular", backend="numpy",
    )  # fmt: skip
    x = image(torch_device, torch.float64)
    a = quiet(Eigendistortion(x, pm), "eigsh", k=2, rng=0)
    b = quiet(RefEigendistortion(x.cpu().numpy(), ours), "eigsh", k=2, rng=0)
    np.testing.assert_allclose(a.eigenvalues.cpu().numpy()[:2], b.eigenvalues[:2], rtol=1e-6)
    assert a.convergence["bottom"]["converged"] and b.convergence["bottom"]["converged"]


def test_plenoptic_documented_exact_values():
    """Docstring of plenoptic's Eigendistortion: Gaussian(10, circular) on
    blur_downsample(einstein(), 3) (32 x 32): exact top eigenvalue 1.0000, 1024 values,
    jacobian (1024, 1024) with first entry 0.0210."""
    po = _po()
    from plenoptic.process import blur_downsample

    img = blur_downsample(po.data.einstein(), n_scales=3)
    model = po.models.Gaussian(10, pad_mode="circular").eval()
    po.remove_grad(model)
    e = quiet(Eigendistortion(img, model), "exact")
    assert len(e.eigenvalues) == 1024 and e.jacobian.shape == (1024, 1024)
    assert round(e.eigenvalues[0].item(), 4) == 1.0
    assert round(e.jacobian[0, 0].item(), 4) == 0.0210
    e = quiet(Eigendistortion(img, model), "randomized_svd", p=20, q=10, rng=0)
    assert round(e.eigenvalues[0].item(), 4) == 1.0 and e.eigenvalues.shape == (1,)


# -- drop-in parity with plenoptic: silence, criterion, autograd view, repr, wording ----------
def test_unconverged_solves_are_silent_unless_asked_and_recorded(torch_device):
    """plenoptic returns silently at max_iter (its tests run with warnings as errors); the
    record is in ``convergence``, and ``warn_unconverged=True`` asks for the warning."""
    module = net(torch_device, torch.float32)
    x = image(torch_device, torch.float32)
    for method in ("power", "randomized_svd"):
        e = Eigendistortion(x, module)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            e.synthesize(method, max_iter=2, q=0, p=0, rng=0, progress=False)
        assert not e.convergence["top"]["converged"], method
    e = Eigendistortion(x, module)
    with pytest.warns(UserWarning, match=r"did not converge.*stop_criterion 1e-07 \(clamped"):
        e.synthesize("power", max_iter=2, rng=0, progress=False, warn_unconverged=True)
    with pytest.raises(TypeError, match="warn_unconverged"):
        e.synthesize("power", max_iter=2, progress=False, warn_unconverged="yes")


def test_stop_criterion_is_taken_as_given_and_a_clamp_is_recorded(torch_device):
    module = net(torch_device, torch.float64)
    x = image(torch_device, torch.float64)
    e = quiet(Eigendistortion(x, module), "power", k=1, max_iter=3, rng=0, stop_criterion=1e-9)
    for block in ("top", "bottom"):
        info = e.convergence[block]
        assert info["stop_criterion"] == info["tolerance"] == 1e-9 and not info["clamped"]
    x32, m32 = image(torch_device, torch.float32), net(torch_device, torch.float32)
    e = quiet(Eigendistortion(x32, m32), "power", max_iter=3, rng=0)  # default 1e-7
    info = e.convergence["top"]
    eps = float(torch.finfo(torch.float32).eps)
    assert info["stop_criterion"] == 1e-7 and info["clamped"]
    assert info["tolerance"] == pytest.approx(100 * eps)
    # a criterion above the floor is used as it is: a loose one stops a solve early
    loose = quiet(Eigendistortion(x32, m32), "power", max_iter=1000, rng=0, stop_criterion=1e-2)
    assert loose.convergence["top"]["tolerance"] == 1e-2
    assert loose.convergence["top"]["converged"] and loose.convergence["top"]["iterations"] < 1000


def test_image_flat_and_representation_flat_are_plenoptics_autograd_pair(torch_device):
    module = net(torch_device, torch.float64)
    x = image(torch_device, torch.float64, N=6)
    e = Eigendistortion(x, module)
    xf, yf = e._image_flat, e._representation_flat
    assert xf.shape == (36, 1) and yf.shape == (2 * 36, 1)
    assert xf.requires_grad and yf.requires_grad and not x.requires_grad
    torch.testing.assert_close(xf.detach().view(x.shape), x)
    torch.testing.assert_close(yf.detach().view(1, 2, 6, 6), module(x).detach())
    # the pair is connected: its Jacobian is the dense one
    J = torch.stack(
        [torch.autograd.grad(yf[i, 0], xf, retain_graph=True)[0][:, 0] for i in range(72)]
    )
    torch.testing.assert_close(J, e.compute_jacobian())
    assert e._image_flat is xf  # made once
    e.to(torch.float32)
    assert e._image_flat.dtype == torch.float32 and e._representation_flat.dtype == torch.float32


def test_repr_and_load_wording_are_plenoptics(tmp_path):
    po = _po()
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 1, 3), torch.nn.Softplus()).eval()
    po.remove_grad(model)
    x = image("cpu", torch.float32, N=8)
    assert repr(Eigendistortion(x, model)) == repr(po.Eigendistortion(x, model))

    def gauss(v):  # a model with a __name__ (plenoptic prints the name)
        return v * 2

    assert repr(Eigendistortion(x, gauss)).endswith("  model = gauss,\n)")
    e = quiet(Eigendistortion(x, model), "power", max_iter=2, rng=0)
    e.save(tmp_path / "e.npz")
    other = torch.nn.Sequential(model, torch.nn.Softplus()).eval()
    with pytest.raises(
        ValueError, match="^Saved and initialized model output have different values"
    ):
        Eigendistortion(x, other).load(tmp_path / "e.npz")
    with pytest.raises(
        ValueError, match="^Saved and initialized attribute image have different values"
    ):
        Eigendistortion(image("cpu", torch.float32, N=8, seed=3), model).load(tmp_path / "e.npz")
    with pytest.raises(
        ValueError, match="^Saved and initialized attribute image have different dtype"
    ):
        Eigendistortion(x.double(), model.double()).load(tmp_path / "e.npz")


def test_a_model_changing_precision_is_refused_and_a_grad_image_is_read_silently():
    """plenoptic's validate_model rule (TypeError "model changes precision"); an image that
    requires grad raises no warning (plenoptic's tests run with warnings as errors)."""
    x = image("cpu", torch.float32, N=4)
    with pytest.raises(TypeError, match="model changes precision of input"):
        Eigendistortion(x, lambda v: v.double() * 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        e = Eigendistortion(x.clone().requires_grad_(), lambda v: v * 2)
        e.synthesize("power", max_iter=3, progress=False)
    assert not e.image.requires_grad


class _Executes:
    """Unpickling this would run code: torch.load(weights_only=True) refuses it."""

    def __reduce__(self):
        return (print, ("executed",))


def test_load_reads_plenoptics_pt_files_safely(tmp_path, capsys):
    po = _po()
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3, padding=1), torch.nn.Softplus()).eval()
    po.remove_grad(model)
    x = image("cpu", torch.float32, N=8)
    for method, k in (("power", 2), ("randomized_svd", 1), ("exact", 1)):
        theirs = po.Eigendistortion(x, model)
        torch.manual_seed(0)
        theirs.synthesize(method, k=k, max_iter=20)
        theirs.save(tmp_path / f"{method}.pt")
        ours = Eigendistortion(x, model)
        ours.load(tmp_path / f"{method}.pt")
        assert ours.method == method and ours.eigenvalues.ndim == 1
        lam = theirs.eigenvalues.reshape(-1)
        torch.testing.assert_close(ours.eigenvalues, lam.sort(descending=True).values)
        assert bool((ours.eigenvalues[:-1] >= ours.eigenvalues[1:]).all())
        torch.testing.assert_close(
            torch.sort(ours.eigenindex).values, torch.sort(theirs.eigenindex.reshape(-1)).values
        )
        pos = int((lam == lam.max()).nonzero()[0, 0])  # the top pair, as plenoptic stored it
        torch.testing.assert_close(ours.eigendistortions[0], theirs.eigendistortions[pos])
    with pytest.raises(ValueError, match="^Saved and initialized attribute image have different"):
        Eigendistortion(image("cpu", torch.float32, N=8, seed=4), model).load(tmp_path / "power.pt")
    other = torch.nn.Sequential(model, torch.nn.Softplus()).eval()
    with pytest.raises(ValueError, match="^Saved and initialized model output have different"):
        Eigendistortion(x, other).load(tmp_path / "power.pt")
    with pytest.warns(UserWarning, match="model output have different values"):
        Eigendistortion(x, other).load(tmp_path / "power.pt", raise_on_checks=False)
    torch.save({"save_metadata": _Executes()}, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match="weights_only=True"):
        Eigendistortion(x, model).load(tmp_path / "evil.pt")
    assert "executed" not in capsys.readouterr().out
    torch.save({"save_metadata": {"synthesis_object": "plenoptic.Metamer"}}, tmp_path / "m.pt")
    with pytest.raises(ValueError, match="Saved object was a plenoptic.Metamer"):
        Eigendistortion(x, model).load(tmp_path / "m.pt")


def test_save_pt_writes_plenoptics_format_and_refuses_other_suffixes(tmp_path, capsys):
    po = _po()
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 1, 3, padding=1), torch.nn.Softplus()).eval()
    po.remove_grad(model)
    x = image("cpu", torch.float32, N=8)
    for method in ("eigsh", "exact", "randomized_svd"):
        ours = quiet(Eigendistortion(x, model), method, k=2, rng=0)
        ours.save(tmp_path / "e.pt")
        back = Eigendistortion(x, model)
        back.load(tmp_path / "e.pt")  # method kept in the metadata
        assert back.method == method and torch.equal(back.eigenvalues, ours.eigenvalues)
        theirs = po.Eigendistortion(x, model)
        theirs.load(tmp_path / "e.pt")
        assert torch.equal(theirs.eigenvalues, ours.eigenvalues)
        assert torch.equal(theirs.eigendistortions, ours.eigendistortions)
    saved = torch.load(tmp_path / "e.pt", weights_only=True)
    assert saved["save_metadata"]["synthesis_object"] == "plenoptic.Eigendistortion"
    po.io.examine_saved_synthesis(tmp_path / "e.pt")
    assert "plenoptic.Eigendistortion" in capsys.readouterr().out
    with pytest.raises(ValueError, match="Saved object was a plenoptic.Eigendistortion"):
        po.Metamer(x, model).load(tmp_path / "e.pt")
    renamed = torch.nn.Sequential(*model).eval()  # same output, same class name: loads
    Eigendistortion(x, renamed).load(tmp_path / "e.pt")
    with pytest.raises(ValueError, match="^Saved and initialized model have different names"):
        Eigendistortion(x, lambda v: model(v)).load(tmp_path / "e.pt")
    # nothing synthesized yet: both sides load an empty object
    Eigendistortion(x, model).save(tmp_path / "empty.pt")
    empty = Eigendistortion(x, model)
    empty.load(tmp_path / "empty.pt")
    assert empty.eigenvalues is None
    # other suffixes: refused, nothing written; no suffix: the .npz archive
    for name in ("e.pkl", "e.pth", "e.txt"):
        with pytest.raises(ValueError, match="nothing was written"):
            ours.save(tmp_path / name)
        assert not (tmp_path / name).exists()
    ours.save(tmp_path / "plain")
    back = Eigendistortion(x, model)
    back.load(tmp_path / "plain")
    assert back.method == "randomized_svd"
