"""refimpl.torch.perturbed and FenchelYoungLoss: the documented signature, autograd with the
closed-form backward (same numbers as refimpl on the same noise), noise on the input's
device and dtype, extra arguments, generators, and bad input. CPU, and CUDA when present."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

import importlib  # noqa: E402

import refimpl.torch as bt  # noqa: E402
from refimpl.perturbed import argmax_one_hot, hard_or, perturbed  # noqa: E402

# the module (refimpl.torch.perturbed is also the name of the function it exports)
btp = importlib.import_module("refimpl.torch.perturbed")
THETA_BATCH = [[-0.6, 1.9, -0.2, 1.1, -1.0], [-0.6, 1.0, -0.2, 1.8, -1.0]]


def seed_argmax(x, axis=-1):
    """The seed's argmax."""
    return F.one_hot(torch.argmax(x, dim=axis), list(x.shape)[axis]).float()


def gen(device, seed=0):
    return torch.Generator(device=device).manual_seed(seed)


def theta_on(device, dtype, requires_grad=True):
    return torch.tensor(THETA_BATCH, device=device, dtype=dtype, requires_grad=requires_grad)


def test_signature_is_the_documented_one():
    import inspect

    params = list(inspect.signature(bt.perturbed).parameters)
    assert params[:6] == ["func", "num_samples", "sigma", "noise", "batched", "device"]
    p = bt.perturbed(seed_argmax).perturbed
    assert (p.num_samples, p.sigma, p.noise.name, p.batched) == (1000, 0.05, "normal", True)
    fy = list(inspect.signature(bt.FenchelYoungLoss).parameters)
    assert fy[:7] == ["func", "num_samples", "sigma", "noise", "batched", "maximize", "device"]


def test_forward_backward_match_refimpl_on_the_same_noise(torch_device, torch_dtype):
    """The autograd backward equals refimpl's vjp for the same generator state."""
    theta = theta_on(torch_device, torch_dtype)
    front = bt.perturbed(argmax_one_hot, num_samples=500, sigma=0.5, noise="gumbel",
                         generator=gen(torch_device, 3))  # fmt: skip
    y = front(theta)
    assert y.device == theta.device and y.dtype == torch_dtype
    u = torch.arange(10.0, device=torch_device, dtype=torch_dtype).reshape(2, 5)
    (y * u).sum().backward()
    ref = perturbed(
        argmax_one_hot, num_samples=500, sigma=0.5, noise="gumbel", rng=gen(torch_device, 3)
    )
    value, g = ref.value_and_vjp(theta.detach(), u)
    tol = (
        dict(rtol=1e-5, atol=1e-5) if torch_dtype == torch.float32 else dict(rtol=1e-12, atol=1e-12)
    )
    torch.testing.assert_close(y.detach(), value, **tol)
    torch.testing.assert_close(theta.grad, g, **tol)


def test_replayed_backward_equals_the_jacobian_backward(torch_device, monkeypatch):
    """Above JACOBIAN_VALUES the backward replays the forward's noise: same gradient."""
    grads = []
    for limit in (btp.JACOBIAN_VALUES, 0):
        monkeypatch.setattr(btp, "JACOBIAN_VALUES", limit)
        theta = theta_on(torch_device, torch.float64)
        g = gen(torch_device, 1)
        front = bt.perturbed(seed_argmax, num_samples=300, sigma=0.5, noise="gumbel", generator=g)
        torch.linalg.norm(front(theta)).backward()
        grads.append(theta.grad)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-6, atol=1e-8)


def test_large_per_example_jacobians_are_replayed(torch_device, monkeypatch):
    """argmax over 100 entries: a 100 x 100 Jacobian per example is more than
    JACOBIAN_PER_EXAMPLE, so the backward replays the noise; over 5 entries it is kept."""
    replays = []
    original = btp._replay
    monkeypatch.setattr(btp, "_replay", lambda g, s: replays.append(1) or original(g, s))
    for d, expected in ((5, 0), (100, 1)):
        replays.clear()
        theta = torch.randn(2, d, device=torch_device, requires_grad=True)
        front = bt.perturbed(seed_argmax, num_samples=20, sigma=0.5, generator=gen(torch_device))
        front(theta).sum().backward()
        assert len(replays) == expected


def test_backward_does_not_advance_the_generator(torch_device, monkeypatch):
    for limit in (btp.JACOBIAN_VALUES, 0):
        monkeypatch.setattr(btp, "JACOBIAN_VALUES", limit)
        g = gen(torch_device, 2)
        front = bt.perturbed(seed_argmax, num_samples=64, sigma=0.5, generator=g)
        y = front(theta_on(torch_device, torch.float32))
        after_forward = g.get_state().clone()
        y.sum().backward()
        assert torch.equal(g.get_state(), after_forward)


def test_global_seed_makes_runs_reproducible(torch_device):
    """generator=None: the default generator of the input's device (torch.manual_seed)."""
    front = bt.perturbed(seed_argmax, num_samples=100, sigma=0.5, noise="gumbel")
    outs = []
    for _ in range(2):
        torch.manual_seed(0)
        theta = theta_on(torch_device, torch.float32)
        outs.append((front(theta), theta))
        torch.linalg.norm(outs[-1][0]).backward()
    assert torch.equal(outs[0][0], outs[1][0]) and torch.equal(outs[0][1].grad, outs[1][1].grad)
    assert not torch.equal(front(theta_on(torch_device, torch.float32)), outs[0][0])


def test_device_argument_is_accepted_and_noise_follows_the_input(torch_device):
    front = bt.perturbed(seed_argmax, num_samples=50, sigma=0.5, device="cpu")
    theta = theta_on(torch_device, torch.float64)
    y = front(theta)
    assert y.device == theta.device and y.dtype == torch.float64
    y.sum().backward()
    assert theta.grad.device == theta.device


def test_extra_args_and_kwargs_work_in_backward(torch_device):
    """The port's backward raises 'returned an incorrect number of gradients' on any extra
    argument, and its forward rejects keyword arguments."""

    def argmax_axis(x, axis=-1, *, scale=1.0):
        return seed_argmax(x * scale, axis)

    front = bt.perturbed(
        argmax_axis, num_samples=200, sigma=0.5, noise="gumbel", generator=gen(torch_device)
    )
    theta = theta_on(torch_device, torch.float32)
    w = torch.ones(1, device=torch_device, requires_grad=True)  # a tensor argument: no gradient
    y = front(theta, -1, scale=w)
    torch.linalg.norm(y).backward()
    assert theta.grad is not None and torch.isfinite(theta.grad).all()
    assert w.grad is None


@pytest.mark.parametrize("form", ["bare", "with_args", "function"])
def test_decorator_forms(torch_device, form):
    if form == "bare":

        @bt.perturbed
        def f(x):
            return seed_argmax(x)

    elif form == "with_args":

        @bt.perturbed(num_samples=50, sigma=0.5, noise="gumbel", batched=True, device=torch_device)
        def f(x):
            return seed_argmax(x)

    else:
        f = bt.perturbed(seed_argmax, 50, 0.5, "gumbel", True)
    y = f(theta_on(torch_device, torch.float32))
    assert y.shape == (2, 5) and f.__name__ in ("f", "seed_argmax")


def test_unbatched_and_integer_outputs(torch_device):
    theta = torch.tensor([-0.6, 1.9, -0.2], device=torch_device, requires_grad=True)
    index = bt.perturbed(lambda x: torch.argmax(x, dim=-1), num_samples=100, sigma=1.0,
                         batched=False, generator=gen(torch_device))  # fmt: skip
    y = index(theta)
    assert y.shape == () and y.dtype == torch.float32
    y.backward()
    assert theta.grad.shape == (3,)


def test_gumbel_argmax_gradient_is_the_softmax_gradient(torch_device):
    """The seed's gradient example with N 2e5: per entry |err| <= 5 sqrt(2 / (sigma^2 N))
    (|<y - b, u>| <= sqrt 2, E[g^2] = 1; false-failure < 1e-5)."""
    n, sigma = 200_000, 0.5
    theta = theta_on(torch_device, torch.float64)
    front = bt.perturbed(
        seed_argmax, num_samples=n, sigma=sigma, noise="gumbel", generator=gen(torch_device, 5)
    )
    y = front(theta)
    torch.linalg.norm(y).backward()
    ref = theta.detach().clone().requires_grad_(True)
    # the softmax gradient at the cotangent the forward produced: J^T (y / |y|)
    soft = F.softmax(ref / sigma, dim=-1)
    (soft * (y.detach() / torch.linalg.norm(y.detach()))).sum().backward()
    assert (theta.grad - ref.grad).abs().max() < 5 * math.sqrt(2 / (sigma**2 * n))


def test_fenchel_young_module(torch_device):
    theta = theta_on(torch_device, torch.float64)
    y = F.one_hot(torch.tensor([1, 0], device=torch_device), 5).double()
    loss_fn = bt.FenchelYoungLoss(seed_argmax, num_samples=400, sigma=0.5, noise="gumbel",
                                  generator=gen(torch_device, 7))  # fmt: skip
    assert isinstance(loss_fn, torch.nn.Module) and "num_samples=400" in repr(loss_fn)
    loss = loss_fn(theta, y)
    assert loss.shape == (2,)
    loss.sum().backward()
    y_sigma = bt.perturbed(seed_argmax, num_samples=400, sigma=0.5, noise="gumbel",
                           generator=gen(torch_device, 7))(theta.detach())  # fmt: skip
    torch.testing.assert_close(theta.grad, (y_sigma - y).to(theta.dtype))


def test_fenchel_young_port_value(torch_device):
    """value="port" returns the port's number, sum((y_sigma - y)**2) per example, from the
    same samples (y_sigma: perturbed's forward with the same generator state); the theta
    gradient is y_sigma - y for both values (the port's), the y_true gradient that of the
    reported value. For Gumbel noise y_sigma = softmax(theta / sigma) (closed form), while
    the default value is sigma * cross-entropy + sigma * gamma."""
    theta = theta_on(torch_device, torch.float64)
    y = F.one_hot(torch.tensor([1, 0], device=torch_device), 5).double().requires_grad_(True)
    kw = dict(num_samples=4000, sigma=0.5, noise="gumbel")
    loss_fn = bt.FenchelYoungLoss(seed_argmax, **kw, generator=gen(torch_device, 7), value="port")
    assert "value='port'" in repr(loss_fn)
    loss = loss_fn(theta, y)
    loss.sum().backward()
    y_sigma = bt.perturbed(seed_argmax, **kw, generator=gen(torch_device, 7))(theta.detach())
    diff = (y_sigma - y).detach()
    torch.testing.assert_close(loss.detach(), (diff**2).sum(-1))
    torch.testing.assert_close(theta.grad, diff)
    torch.testing.assert_close(y.grad, -2 * diff)
    soft = torch.softmax(theta.detach() / 0.5, -1)
    torch.testing.assert_close(loss.detach(), ((soft - y.detach()) ** 2).sum(-1), atol=0.05, rtol=0)
    fy = bt.FenchelYoungLoss(seed_argmax, **kw, generator=gen(torch_device, 7))(
        theta.detach(), y.detach()
    )
    t = theta.detach() / 0.5
    closed = 0.5 * (torch.logsumexp(t, -1) - (t * y.detach()).sum(-1)) + 0.5 * 0.5772156649015329
    torch.testing.assert_close(fy, closed, atol=5 * 0.5 * math.pi / math.sqrt(6 * 4000), rtol=0)
    with pytest.raises(ValueError, match="value must be one of"):
        bt.FenchelYoungLoss(seed_argmax, value="tensorflow")


def test_fenchel_young_minimize_and_target_gradient(torch_device):
    theta = theta_on(torch_device, torch.float64)
    y = torch.zeros(2, 5, device=torch_device, dtype=torch.float64, requires_grad=True)
    loss_fn = bt.FenchelYoungLoss(lambda x: seed_argmax(-x), num_samples=100, sigma=0.5,
                                  maximize=False, generator=gen(torch_device))  # fmt: skip
    loss_fn(theta, y).mean().backward()
    torch.testing.assert_close(y.grad, theta.detach() / 2)  # d/dy <theta, y> averaged over 2
    assert torch.allclose(
        theta.grad.sum(-1), torch.full((2,), -0.5, dtype=torch.float64, device=torch_device)
    )


def test_tf_fenchel_young_ranks_through_the_module():
    def ranks(x):
        return torch.argsort(torch.argsort(x, dim=-1), dim=-1).float() + 1

    loss_fn = bt.FenchelYoungLoss(
        ranks, num_samples=10_000, sigma=0.1, batched=False, generator=gen("cpu")
    )
    theta = torch.tensor([1.0, 20.0, 7.3, 7.35])
    grads = []
    for y in ([1.0, 4, 3, 2], [1.0, 4, 2, 3]):
        t = theta.clone().requires_grad_(True)
        loss_fn(t, torch.tensor(y)).backward()
        grads.append(t.grad)
    assert torch.equal(grads[0][:2], torch.zeros(2))
    assert grads[1].norm() < grads[0].norm() and abs(float(grads[0].sum())) < 1e-5


def test_bad_input(torch_device):
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        bt.perturbed(seed_argmax, generator=0)
    with pytest.raises(ValueError, match="sigma must be a finite number > 0"):
        bt.perturbed(seed_argmax, sigma=0.0)
    with pytest.raises(ValueError, match="noise must be one of"):
        bt.perturbed(noise="laplace")
    with pytest.raises(TypeError, match="func must be callable"):
        bt.perturbed("argmax")
    front = bt.perturbed(seed_argmax, num_samples=10)
    with pytest.raises(TypeError, match="input_tensor must be a torch.Tensor, got list"):
        front(THETA_BATCH)
    with pytest.raises(ValueError, match="batched=True needs theta of rank >= 2"):
        front(torch.tensor([1.0, 2.0], device=torch_device))
    with pytest.raises(ValueError, match="NaN"):
        front(torch.tensor([[1.0, float("nan")]], device=torch_device))
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        bt.FenchelYoungLoss(seed_argmax, generator=np.random.default_rng(0))
    with pytest.raises(TypeError, match="y_true must be a torch.Tensor"):
        bt.FenchelYoungLoss(seed_argmax)(theta_on(torch_device, torch.float32), [1.0])


def test_unbatched_scalar_input_is_refused(torch_device):
    """A 0-d input, batched=False: the samples would reach func on its last axis (the port's
    argmax then mixed them: 0.01 for one value); refused as batched=True refuses rank 1."""
    front = bt.perturbed(seed_argmax, batched=False, num_samples=100, sigma=0.5)
    with pytest.raises(ValueError, match=r"batched=False needs theta of rank >= 1"):
        front(torch.tensor(0.3, device=torch_device, requires_grad=True))
    loss = bt.FenchelYoungLoss(seed_argmax, batched=False, num_samples=10)
    with pytest.raises(ValueError, match=r"batched=False needs theta of rank >= 1"):
        loss(torch.tensor(0.3, device=torch_device), torch.tensor(1.0, device=torch_device))
    with pytest.raises(ValueError, match=r"sigma=1e\+39 is too large"):
        bt.perturbed(seed_argmax, sigma=1e39)(theta_on(torch_device, torch.float32))
    one = front(torch.tensor([0.3], device=torch_device))  # one value: a rank-1 theta
    assert one.shape == (1,) and float(one) == 1.0


@pytest.mark.parametrize("shape", [(4,), (2, 3)])
@pytest.mark.parametrize("solver", [argmax_one_hot, hard_or])
def test_unbatched_shapes_keep_samples_off_the_event(torch_device, shape, solver):
    """batched=False on rank 1 and 2 with solvers reducing the last axis: the same value and
    gradient for every chunk size (samples mixed into the arg-max would change both), and
    the one-hot slices sum to 1."""
    results = []
    for chunk in (None, 1, 7):
        f = bt.perturbed(solver, batched=False, num_samples=50, sigma=0.5, chunk_size=chunk,
                         generator=gen(torch_device))  # fmt: skip
        theta = torch.linspace(-1, 1, math.prod(shape), device=torch_device).reshape(shape)
        theta.requires_grad_(True)
        y = f(theta)
        (y**2).sum().backward()
        results.append((y.detach(), theta.grad))
    assert results[0][0].shape == (shape if solver is argmax_one_hot else shape[:-1])
    if solver is argmax_one_hot:
        torch.testing.assert_close(
            results[0][0].sum(-1), torch.ones(shape[:-1], device=torch_device)
        )
    for y, g in results[1:]:
        torch.testing.assert_close(y, results[0][0])
        torch.testing.assert_close(g, results[0][1])


def test_the_ports_module_names(torch_device):
    """The names the port's tests use: ``sample_noise_with_gradients`` (shape, float32,
    ``grad nu``; ValueError naming the noises), and ``FenchelYoungLoss.perturbed``."""
    gen = torch.Generator(torch_device).manual_seed(0)
    for noise in bt.SUPPORTED_NOISES:
        z, g = bt.sample_noise_with_gradients(noise, (3, 2, 4), device=torch_device, generator=gen)
        assert z.shape == g.shape == (3, 2, 4) and z.dtype == torch.float32
        assert z.device.type == torch.device(torch_device).type
        expected = z if noise == "normal" else 1 - torch.exp(-z)
        torch.testing.assert_close(g, expected)
    with pytest.raises(ValueError, match="unknown noise is not supported"):
        bt.sample_noise_with_gradients("unknown", (3,))
    for shape in ((2.5,), "ab", (-1, 2), (True,)):
        with pytest.raises((TypeError, ValueError), match="shape must"):
            bt.sample_noise_with_gradients("normal", shape)
    loss_fn = bt.FenchelYoungLoss(
        seed_argmax, num_samples=2000, sigma=0.5, noise="gumbel", batched=False,
        generator=torch.Generator(torch_device).manual_seed(1),
    )  # fmt: skip
    theta = torch.tensor([-0.6, 1.9, -0.2], device=torch_device)
    y = loss_fn.perturbed(theta)
    # one-hot arg-max with Gumbel noise: softmax(theta / sigma); 2000 draws, sd <= 0.012
    torch.testing.assert_close(y, torch.softmax(theta / 0.5, -1), atol=0.06, rtol=0)
