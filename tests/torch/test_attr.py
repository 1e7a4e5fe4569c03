"""refimpl.torch.attr: captum-style Saliency / InputXGradient / IntegratedGradients on
nn.Module (autograd) and NoiseTunnel, with parity against captum 0.9 where it is installed
(``captum_compatible=True`` reproduces its results bit for bit)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import refimpl.torch as bt  # noqa: E402
from refimpl import attr as ra  # noqa: E402
from refimpl.torch import attr as bta  # noqa: E402


def conv_net(device, dtype):
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(4 * 6 * 6, 5),
    )
    return net.to(device=device, dtype=dtype).eval()


class TwoArgs(torch.nn.Module):
    """forward(x1, x2, scale): tuple inputs plus an additional forward argument."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(4, 3)

    def forward(self, x1, x2, scale):
        return self.lin(x1) * scale + (x2**2).sum(dim=(1, 2))[:, None]


def images(device, dtype, b=3):
    return torch.randn(b, 3, 6, 6, generator=torch.Generator().manual_seed(1)).to(device, dtype)


def captum():
    ca = pytest.importorskip("captum.attr")
    warnings.filterwarnings("ignore", module="captum")
    return ca


# -- the attribution methods -------------------------------------------------------------------
def test_front_end_methods_match_refimpl_on_as_model(torch_device, torch_dtype):
    """autograd front end == refimpl methods on refimpl.torch.as_model (explicit protocol)."""
    net, x = conv_net(torch_device, torch_dtype), images(torch_device, torch_dtype)
    model = bt.as_model(net)
    pairs = [
        (bta.Saliency(net), ra.Saliency(model), {}),
        (bta.InputXGradient(net), ra.InputXGradient(model), {}),
        (bta.IntegratedGradients(net), ra.IntegratedGradients(model), {"n_steps": 9}),
    ]
    for ours, ref, kw in pairs:
        a = ours.attribute(x, target=[0, 3, 4], **kw)
        b = ref.attribute(x, target=[0, 3, 4], **kw)
        assert a.dtype == torch_dtype and a.device == x.device
        torch.testing.assert_close(a, b)


def test_front_end_matches_captum(torch_device, torch_dtype):
    ca = captum()
    net, x = conv_net(torch_device, torch_dtype), images(torch_device, torch_dtype)
    for cls in ("Saliency", "InputXGradient"):
        for target in (2, [0, 3, 4], torch.tensor([1, 1, 0], device=torch_device)):
            ours = getattr(bta, cls)(net).attribute(x, target=target)
            torch.testing.assert_close(ours, getattr(ca, cls)(net).attribute(x, target=target))
    for method in ("gausslegendre", "riemann_left", "riemann_right", "riemann_middle"):
        a, d = bta.IntegratedGradients(net).attribute(
            x, target=1, method=method, n_steps=12, return_convergence_delta=True
        )
        b, e = ca.IntegratedGradients(net).attribute(
            x, target=1, method=method, n_steps=12, return_convergence_delta=True
        )
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(d, e, rtol=1e-4, atol=1e-4)
    two, x1, x2 = TwoArgs().to(torch_device, torch_dtype), x[:, 0, 0, :4], x[:, 1, :2, :2]
    for cls in ("Saliency", "InputXGradient"):
        ours = getattr(bta, cls)(two).attribute((x1, x2), target=2, additional_forward_args=(2.0,))
        theirs = getattr(ca, cls)(two).attribute((x1, x2), target=2, additional_forward_args=(2.0,))
        assert isinstance(ours, tuple)
        for o, t in zip(ours, theirs):
            torch.testing.assert_close(o, t)


def test_trapezoid_weights_differ_from_captum(torch_device):
    """Linear model: our riemann_trapezoid IG is exact (weights sum to 1, delta 0); captum's
    weights sum to (n-1)/n, so its IG is (n-1)/n of the exact value."""
    ca = captum()
    lin = torch.nn.Linear(4, 2).to(torch_device, torch.float64)
    x = torch.randn(3, 4, dtype=torch.float64, device=torch_device)
    ours, delta = bta.IntegratedGradients(lin).attribute(
        x, target=1, method="riemann_trapezoid", n_steps=10, return_convergence_delta=True
    )
    exact = x * lin.weight[1].detach()
    torch.testing.assert_close(ours, exact)
    assert delta.abs().max() < 1e-12
    theirs = ca.IntegratedGradients(lin).attribute(
        x, target=1, method="riemann_trapezoid", n_steps=10
    )
    torch.testing.assert_close(theirs, exact * 9 / 10)


# -- NoiseTunnel: parity with captum -----------------------------------------------------------
@pytest.mark.parametrize("nt_type", ra.NT_TYPES)
def test_captum_compatible_is_bitwise_captum(torch_device, nt_type):
    """Same torch seed: captum_compatible=True gives captum's exact result for every chunk size,
    around captum's Saliency and around ours."""
    ca = captum()
    net, x = conv_net(torch_device, torch.float32), images(torch_device, torch.float32)
    for bs in (None, 1, 3):
        kw = dict(nt_type=nt_type, nt_samples=7, nt_samples_batch_size=bs, stdevs=0.4)
        torch.manual_seed(3)
        ref = ca.NoiseTunnel(ca.Saliency(net)).attribute(x, target=[0, 1, 2], **kw)
        for method in (ca.Saliency(net), bta.Saliency(net)):
            torch.manual_seed(3)
            out = bta.NoiseTunnel(method, captum_compatible=True).attribute(
                x, target=[0, 1, 2], **kw
            )
            assert torch.equal(out, ref), (nt_type, bs, type(method))
        out = bta.NoiseTunnel(bta.Saliency(net), captum_compatible=True).attribute(
            x, target=[0, 1, 2], rng=torch.Generator(torch_device).manual_seed(3), **kw
        )
        assert torch.equal(out, ref)


@pytest.mark.parametrize("multiply_by_inputs", [True, False])
def test_integrated_gradients_internal_batch_size_is_bitwise_captum(
    torch_device, multiply_by_inputs
):
    """IG with internal_batch_size: each batch of steps is multiplied by (x - x') before the
    batches are added, as captum does, so attributions and deltas are captum's bit for bit
    (float32, Gauss-Legendre), alone and in NoiseTunnel(captum_compatible=True)."""
    ca = captum()
    net, x = conv_net(torch_device, torch.float32), images(torch_device, torch.float32)
    two = TwoArgs().to(torch_device)
    pair = (x[:, 0, 0, :4].contiguous(), x[:, 1, :2, :2].contiguous())
    for ibs in (None, 3, 7, 12):
        kw = dict(target=[1, 0, 3], n_steps=5, internal_batch_size=ibs)
        theirs = ca.IntegratedGradients(net, multiply_by_inputs)
        ours = bta.IntegratedGradients(net, multiply_by_inputs)
        a, d = theirs.attribute(x, return_convergence_delta=True, **kw)
        b, e = ours.attribute(x, return_convergence_delta=True, **kw)
        assert torch.equal(a, b) and torch.equal(d, e), ibs
        kw2 = dict(kw, baselines=(0.5, 0.0), additional_forward_args=(2.0,), target=[1, 0, 2])
        a, d = ca.IntegratedGradients(two, multiply_by_inputs).attribute(
            pair, return_convergence_delta=True, **kw2
        )
        b, e = bta.IntegratedGradients(two, multiply_by_inputs).attribute(
            pair, return_convergence_delta=True, **kw2
        )
        assert all(torch.equal(p, q) for p, q in zip(a, b)) and torch.equal(d, e), ibs
        for nt_type in ra.NT_TYPES:
            kw3 = dict(kw, nt_type=nt_type, nt_samples=5, nt_samples_batch_size=2, stdevs=0.1)
            torch.manual_seed(4)
            a, d = ca.NoiseTunnel(theirs).attribute(x, return_convergence_delta=True, **kw3)
            torch.manual_seed(4)
            b, e = bta.NoiseTunnel(ours, captum_compatible=True).attribute(
                x, return_convergence_delta=True, **kw3
            )
            assert torch.equal(a, b) and torch.equal(d, e), (ibs, nt_type)


def test_captum_api_convergence_delta_future_and_target_errors(torch_device):
    """captum's API around attribute: compute_convergence_delta (the delta attribute returns,
    and captum's own, bit for bit), attribute_future (NotImplementedError, as captum), and bad
    targets raising an error that is both captum's AssertionError and a ValueError."""
    ca = captum()
    net, x = conv_net(torch_device, torch.float32), images(torch_device, torch.float32)
    ig = bta.IntegratedGradients(net)
    for base in (None, 0.25, x.flip(0) * 0.5):
        attrs, delta = ig.attribute(x, base, [0, 4, 2], return_convergence_delta=True)
        ours = ig.compute_convergence_delta(attrs, base, x, target=[0, 4, 2])
        theirs = ca.IntegratedGradients(net).compute_convergence_delta(
            attrs, base, x, target=[0, 4, 2]
        )
        assert torch.equal(ours, delta) and torch.equal(ours, theirs)
        assert not ours.requires_grad
    sal = bta.Saliency(net, abs=False)
    g = sal.attribute(x, target=1)
    torch.testing.assert_close(
        sal.compute_convergence_delta(g, None, x, target=1),
        ca.Saliency(net).compute_convergence_delta(g, None, x, target=1),
    )
    two = TwoArgs().to(torch_device)
    pair = (x[:, 0, 0, :4].contiguous(), x[:, 1, :2, :2].contiguous())
    tig = bta.IntegratedGradients(two)
    attrs, delta = tig.attribute(
        pair, (0.5, 0.0), 1, additional_forward_args=3.0, return_convergence_delta=True
    )
    again = tig.compute_convergence_delta(attrs, (0.5, 0.0), pair, 1, additional_forward_args=3.0)
    assert torch.equal(again, delta)
    with pytest.raises(TypeError, match="end_point"):
        ig.compute_convergence_delta(attrs[0], None, [x], target=1)

    for cls in ("Saliency", "InputXGradient", "IntegratedGradients"):
        for lib in (ca, bta):
            with pytest.raises(NotImplementedError, match="attribute_future"):
                getattr(lib, cls)(net).attribute_future()
    for lib in (ca, bta):
        with pytest.raises(NotImplementedError, match="attribute_future"):
            lib.NoiseTunnel(lib.Saliency(net)).attribute_future()

    lin = torch.nn.Linear(3, 4).to(torch_device)
    z = torch.zeros(1, 3, device=torch_device)
    cases = [
        dict(),  # no target for a vector output (captum's test_simple_target_missing_error)
        dict(target=(1, 0)),  # a tuple for a 1-axis output (test_multi_target_error)
        dict(target=(9999,) * 20),  # captum's hook-removal test
        dict(target=[0, 1]),  # a list of the wrong length
    ]
    for kw in cases:
        for method in (bta.Saliency(lin), bta.InputXGradient(lin), bta.IntegratedGradients(lin)):
            for nt in (False, True):
                m = bta.NoiseTunnel(method) if nt else method
                with pytest.raises(ValueError) as info:
                    m.attribute(z, **kw)
                assert isinstance(info.value, AssertionError) and isinstance(
                    info.value, ra.TargetError
                ), (kw, type(method).__name__, nt)
        with pytest.raises(AssertionError):  # captum's type for the same call
            ca.IntegratedGradients(lin).attribute(z, **kw)
    with pytest.raises(TypeError) as info:
        bta.Saliency(lin).attribute(z, target=1.5)
    assert isinstance(info.value, AssertionError) and isinstance(info.value, ra.TargetTypeError)


def test_captum_compatible_deltas_and_drawn_baselines(torch_device):
    """IG deltas in captum's chunk-major order; baselines drawn with numpy's global RNG once
    for all full chunks (GradientShap's recipe): equal to captum's."""
    ca = captum()
    net, x = conv_net(torch_device, torch.float32), images(torch_device, torch.float32)
    kw = dict(nt_samples=5, nt_samples_batch_size=2, stdevs=0.1, target=1, n_steps=5)
    torch.manual_seed(4)
    a, d = ca.NoiseTunnel(ca.IntegratedGradients(net)).attribute(
        x, return_convergence_delta=True, **kw
    )
    torch.manual_seed(4)
    b, e = bta.NoiseTunnel(bta.IntegratedGradients(net), captum_compatible=True).attribute(
        x, return_convergence_delta=True, **kw
    )
    torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(e, d, rtol=1e-4, atol=1e-5)
    pool = torch.randn(6, 3, 6, 6, device=torch_device)
    kw = dict(nt_samples=5, nt_samples_batch_size=2, stdevs=0.2, target=2, baselines=pool)
    outs = []
    for nt_cls, extra in ((ca.NoiseTunnel, {}), (bta.NoiseTunnel, {"captum_compatible": True})):
        torch.manual_seed(5)
        np.random.seed(5)
        nt = nt_cls(ca.IntegratedGradients(net), **extra)
        outs.append(nt.attribute(x, draw_baseline_from_distrib=True, n_steps=3, **kw))
    torch.testing.assert_close(outs[1], outs[0], rtol=1e-5, atol=1e-6)


def test_default_mode_is_chunk_independent_where_captum_is_not(torch_device):
    """f = sum x^2 (gradient 2(x + e)): our maps agree for every batch size, captum's differ
    by O(sigma / sqrt(n)) (its noise is drawn per chunk, example-major)."""
    ca = captum()
    x = images(torch_device, torch.float64)

    def f(t):
        return (t**2).sum(dim=(1, 2, 3))

    ours = [
        bta.NoiseTunnel(bta.Saliency(f)).attribute(x, "vargrad", 6, bs, stdevs=0.3, rng=0)
        for bs in (None, 2, 4)
    ]
    theirs = []
    for bs in (None, 2, 4):
        torch.manual_seed(0)
        nt = ca.NoiseTunnel(ca.Saliency(f))
        theirs.append(nt.attribute(x, nt_type="vargrad", nt_samples=6, nt_samples_batch_size=bs,
                                   stdevs=0.3))  # fmt: skip
    for o in ours[1:]:
        torch.testing.assert_close(o, ours[0], rtol=1e-12, atol=1e-14)
    assert all((t - theirs[0]).abs().max() > 1e-2 for t in theirs[1:])


# -- NoiseTunnel: torch behaviour --------------------------------------------------------------
def test_seeding_generator_and_grad_state(torch_device, torch_dtype):
    """rng=None follows torch.manual_seed; the caller's tensor keeps requires_grad and no .grad;
    the result carries no graph; captum's gradient methods get no 'did not require gradients'
    warning (the noisy inputs require grad, as in captum)."""
    net, x = conv_net(torch_device, torch_dtype), images(torch_device, torch_dtype)
    x.requires_grad_(True)
    nt = bta.NoiseTunnel(bta.Saliency(net))
    torch.manual_seed(1)
    a = nt.attribute(x, nt_samples=4, target=0)
    torch.manual_seed(1)
    b = nt.attribute(x, nt_samples=4, target=0)
    assert torch.equal(a, b) and not a.requires_grad and x.grad is None and x.requires_grad
    assert a.dtype == torch_dtype and a.device == x.device
    assert torch.equal(nt.attribute(x, nt_samples=4, target=0, rng=9),
                       nt.attribute(x, nt_samples=4, target=0, rng=9))  # fmt: skip
    ca = captum()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = bta.NoiseTunnel(ca.Saliency(net)).attribute(x, nt_samples=4, target=0, rng=2)
    assert out.shape == x.shape and x.grad is None


def test_keyed_tunnel_pickles_for_the_workers(torch_device):
    """A cluster's workers receive the tunnel by cloudpickle (as dask sends it): a
    NoiseTunnel over Saliency or IntegratedGradients on an nn.Module comes back as a working
    copy whose keyed result is the original's bit for bit."""
    cloudpickle = pytest.importorskip("cloudpickle")
    net, x = conv_net(torch_device, torch.float32), images(torch_device, torch.float32)
    for method in (bta.Saliency(net), bta.IntegratedGradients(net)):
        nt = bta.NoiseTunnel(method)
        copy = cloudpickle.loads(cloudpickle.dumps(nt))
        assert type(copy) is bta.NoiseTunnel and copy.forward_func is not net
        kw = dict(nt_type="vargrad", nt_samples=5, nt_samples_batch_size=2, target=1)
        key = np.random.SeedSequence(0)
        assert torch.equal(copy.attribute(x, rng=key, **kw), nt.attribute(x, rng=key, **kw))


def test_noise_keeps_half_precision(torch_device):
    """float16 inputs get float16 noise (captum upcasts to float32, which breaks half models)."""
    seen = []

    class Probe:
        def attribute(self, inputs, **kw):
            seen.append(inputs.dtype)
            return inputs

    x = torch.randn(2, 8, device=torch_device).half()
    out = bta.NoiseTunnel(Probe()).attribute(x, nt_samples=3, stdevs=0.1, rng=0)
    assert seen == [torch.float16] and out.dtype == torch.float16
    out = bta.NoiseTunnel(Probe(), captum_compatible=True).attribute(x, nt_samples=3, stdevs=0.1)
    assert seen[-1] == torch.float16 and out.dtype == torch.float16


def test_front_end_bad_input(torch_device):
    net, x = conv_net(torch_device, torch.float32), images(torch_device, torch.float32)
    nt = bta.NoiseTunnel(bta.Saliency(net))
    with pytest.raises(ValueError, match="nt_type must be one of"):
        nt.attribute(x, nt_type="foo", target=0)
    with pytest.raises(ValueError, match="target is a list of 2 items"):
        nt.attribute(x, target=[0, 1])
    with pytest.raises(TypeError, match="captum_compatible must be True or False"):
        bta.NoiseTunnel(bta.Saliency(net), captum_compatible="yes")
    with pytest.raises(TypeError, match="forward_func must return a tensor"):
        bta.Saliency(lambda t: t.sum().item()).attribute(x)
    with pytest.raises(TypeError, match=r"inputs\[1\] must be a torch.Tensor, got numpy"):
        nt.attribute((x, x.cpu().numpy()), target=0)


def test_front_ends_refuse_other_libraries_inputs(torch_device):
    """numpy inputs: a TypeError naming the argument, not an AttributeError on .detach()."""
    net = torch.nn.Linear(5, 3).double().to(torch_device)
    x = np.ones((2, 5))
    pair = (torch.ones(2, 5, dtype=torch.float64, device=torch_device), x)
    single = r"inputs must be a torch.Tensor or a tuple of them, got numpy.ndarray"
    for method in (bta.Saliency(net), bta.InputXGradient(net), bta.IntegratedGradients(net)):
        with pytest.raises(TypeError, match=single):
            method.attribute(x, target=0)
        with pytest.raises(TypeError, match=r"inputs\[1\] must be a torch.Tensor, got numpy"):
            method.attribute(pair, target=0)
    probe = []

    class Probe:
        def attribute(self, inputs, **kw):
            probe.append(inputs)
            return inputs

    for captum_compatible in (False, True):
        nt = bta.NoiseTunnel(Probe(), captum_compatible=captum_compatible)
        with pytest.raises(TypeError, match=single):
            nt.attribute(x)
    assert probe == []


def test_captum_compatible_needs_a_torch_generator(torch_device):
    """captum_compatible=True draws with torch.randn as captum does: rng must be None, an int
    seed, a torch.Generator or a backends.Rng holding one; a numpy generator is a TypeError
    before any call (it used to fail inside torch.randn)."""
    from backends import as_rng

    x = torch.randn(3, 4, device=torch_device)
    seen = []

    class Probe:
        def attribute(self, inputs, **kw):
            seen.append(inputs)
            return inputs

    nt = bta.NoiseTunnel(Probe(), captum_compatible=True)
    numpy_rng = as_rng(np.random.default_rng(0), like=np.zeros(1))
    for rng in (np.random.default_rng(0), numpy_rng, "0"):
        with pytest.raises(TypeError, match="captum_compatible=True draws its noise with torch"):
            nt.attribute(x, nt_samples=2, rng=rng)
    assert seen == []
    generator = torch.Generator(torch_device).manual_seed(5)
    seeded = [nt.attribute(x, nt_samples=2, rng=r) for r in (5, generator)]
    assert torch.equal(seeded[0], seeded[1])
    with pytest.raises(ValueError, match="rng seed must be a non-negative integer"):
        nt.attribute(x, nt_samples=2, rng=-1)


def test_front_end_empty_batch(torch_device):
    """No examples: empty attributions and deltas (integrated gradients divided by zero rows)."""
    net = torch.nn.Linear(5, 3).double().to(torch_device)
    x = torch.ones(0, 5, dtype=torch.float64, device=torch_device)
    ig, delta = bta.IntegratedGradients(net).attribute(
        x, target=0, internal_batch_size=4, return_convergence_delta=True
    )
    assert ig.shape == (0, 5) and delta.shape == (0,)
    for method in (bta.Saliency(net), bta.InputXGradient(net)):
        assert method.attribute(x, target=0).shape == (0, 5)
    for captum_compatible in (False, True):
        nt = bta.NoiseTunnel(bta.Saliency(net), captum_compatible=captum_compatible)
        assert nt.attribute(x, nt_samples=3, target=0, rng=0).shape == (0, 5)


def test_as_model_takes_no_additional_forward_args(torch_device):
    """refimpl.attr on bt.as_model(module): extra forward arguments are a TypeError before any
    work (the front end's forward_func takes them)."""
    net = torch.nn.Linear(5, 3).double().to(torch_device)
    x = torch.ones(2, 5, dtype=torch.float64, device=torch_device)
    with pytest.raises(TypeError, match="TorchModel takes none: refimpl models take no"):
        ra.Saliency(bt.as_model(net)).attribute(x, target=0, additional_forward_args=(1.0,))
    out = bta.Saliency(lambda t, s: net(t) * s).attribute(x, target=0, additional_forward_args=2.0)
    assert out.shape == (2, 5)
