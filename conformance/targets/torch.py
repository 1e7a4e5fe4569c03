"""The torch front end ``refimpl.torch`` as a target, and the torch API it shares with
rai_toolbox.

:class:`TorchFrontEnd` runs the documented torch code with the import changed; it is a
companion of the torch columns (``RefimplTarget.implementations``), checked in the same
cell. :class:`_TorchAPI` holds the operations written against rai_toolbox's torch API, which
the front end mirrors; :class:`conformance.targets.rai_toolbox.RaiToolbox` uses them too.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from conformance.targets.base import (
    AdditiveRun,
    EigendistortionRun,
    NoiseTunnelRun,
    Target,
)
from conformance.targets.refimpl import RefimplTarget


def _torch_np(t: Any) -> np.ndarray:
    return t.detach().cpu().numpy().copy()  # a copy: a CPU tensor's numpy() shares memory


class _TorchAPI(Target):
    """Operations through the torch API of rai_toolbox (the front end mirrors it)."""

    torch_device: Any = "cpu"
    draws_like_torch = True

    def _perturbations(self) -> Any:
        raise NotImplementedError

    def _optim(self) -> Any:
        raise NotImplementedError

    def asarray(self, obj: Any, dtype: str = "float32") -> Any:
        import torch

        return torch.as_tensor(np.asarray(obj), dtype=getattr(torch, dtype)).to(self.torch_device)

    def to_numpy(self, x: Any) -> np.ndarray:
        return _torch_np(x)

    def sample_ball(self, kind, x, *, epsilon, param_ndim):
        t = self.asarray(x)
        getattr(self._perturbations(), f"uniform_like_{kind}_n_ball_")(
            t, epsilon=epsilon, param_ndim=param_ndim
        )
        return _torch_np(t)

    def additive_perturbation(self, data, *, delta_ndim, seed, reduction, delta=None, init="l1"):
        import torch

        mod = self._perturbations()
        x = self.asarray(data)
        g = torch.Generator().manual_seed(seed)
        init_fn = getattr(mod, f"uniform_like_{init}_n_ball_")
        p = mod.AdditivePerturbation(
            data_or_shape=x, delta_ndim=delta_ndim, init_fn=init_fn, generator=g
        )
        if delta is not None:
            with torch.no_grad():
                p.delta.copy_(self.asarray(delta))
        pert = p(x)
        loss = (pert**2).sum() if reduction == "sum" else (pert**2).mean()
        loss.backward()
        return AdditiveRun(*(_torch_np(t) for t in (p.delta, pert, p.delta.grad)), p.delta)

    def optimizer_steps(self, name, x0, grads, **hyper):
        import torch

        x = torch.tensor(x0, requires_grad=True, device=self.torch_device)
        opt = getattr(self._optim(), name)([x], **hyper)
        out = []
        for g in grads:
            x.grad = torch.tensor(g, device=self.torch_device)
            opt.step()
            out.append(_torch_np(x))
        return out


class TorchFrontEnd(_TorchAPI):
    """``refimpl.torch``: the documented torch code with the import changed (a companion
    of the torch columns)."""

    kind = "refimpl"

    def __init__(self, device: Any) -> None:
        super().__init__("refimpl.torch")
        self.torch_device = device

    def _perturbations(self) -> Any:
        import refimpl.torch as bt

        return bt

    def _optim(self) -> Any:
        import refimpl.torch.optim as bo

        return bo

    def assert_native(self, native: Any, shape: tuple[int, ...], dtype: str = "float32") -> None:
        RefimplTarget("torch", self.torch_device).assert_native(native, shape, dtype)

    # seed 002: the front end running the README's own torch code
    def _gen(self, seed: int) -> Any:
        import torch

        return torch.Generator(device=self.torch_device).manual_seed(seed)

    def perturbed(
        self, solver, theta, *, num_samples, sigma, noise, batched, seed, decorator=False
    ):
        import torch

        import refimpl.torch as bt

        fn = _seed_torch_solver(solver)
        opts = dict(num_samples=num_samples, sigma=sigma, noise=noise, batched=batched)
        opts.update(device=self.torch_device, generator=self._gen(seed))
        if decorator:

            @bt.perturbed(**opts)
            def front(x, axis=-1):
                return fn(x, axis)

        else:
            front = bt.perturbed(fn, **opts)
        return _torch_np(front(torch.tensor(theta, device=self.torch_device)))

    def perturbed_norm_grad(self, solver, theta, *, num_samples, sigma, noise, seed):
        import torch

        import refimpl.torch as bt

        front = bt.perturbed(
            _seed_torch_solver(solver), num_samples=num_samples, sigma=sigma, noise=noise,
            batched=True, device=self.torch_device, generator=self._gen(seed),
        )  # fmt: skip
        theta_batch = torch.tensor(theta, device=self.torch_device, requires_grad=True)
        output = front(theta_batch)
        square_norm = torch.linalg.norm(output)
        square_norm.backward(torch.ones_like(square_norm))
        return _torch_np(output), _torch_np(theta_batch.grad)

    def perturbed_shortest_path(self, costs, *, num_samples, sigma, seeds):
        import torch

        import refimpl.torch as bt
        from conformance import seed_graph
        from refimpl.perturbed import shortest_path

        paths, grads = [], []
        for s in seeds:
            final_edges_costs = torch.tensor(costs, device=self.torch_device, requires_grad=True)
            weights = seed_graph.weights(final_edges_costs)

            @bt.perturbed(num_samples=num_samples, sigma=sigma, batched=False,
                          device=self.torch_device, generator=self._gen(s))  # fmt: skip
            def perturbed_shortest_path(weights):
                return shortest_path(weights)

            pert_paths = perturbed_shortest_path(weights)
            i_to_j_weight = pert_paths[..., 8, 6]
            i_to_j_weight.backward(torch.ones_like(i_to_j_weight))
            paths.append(_torch_np(pert_paths))
            grads.append(_torch_np(final_edges_costs.grad))
        return paths, grads

    def perturbed_ascent(self, costs, *, steps, lr, num_samples, final_samples, sigma, seed):
        import torch

        import refimpl.torch as bt
        from conformance import seed_graph
        from refimpl.perturbed import shortest_path

        gen = self._gen(seed)
        pert_path = bt.perturbed(shortest_path, num_samples=num_samples, sigma=sigma,
                                 batched=False, generator=gen)  # fmt: skip
        final_edges_costs = torch.tensor(costs, device=self.torch_device, requires_grad=True)
        opt = torch.optim.SGD([final_edges_costs], lr=lr, maximize=True)
        for _ in range(steps):
            opt.zero_grad()
            pert_path(seed_graph.weights(final_edges_costs))[8, 6].backward()
            opt.step()
        check = bt.perturbed(shortest_path, num_samples=final_samples, sigma=sigma,
                             batched=False, generator=gen)  # fmt: skip
        with torch.no_grad():
            final = float(check(seed_graph.weights(final_edges_costs))[8, 6])
        return _torch_np(final_edges_costs), final

    def perturbed_defaults(self):
        import refimpl.torch as bt
        from refimpl.perturbed import argmax_one_hot

        op = bt.perturbed(argmax_one_hot).perturbed
        fy = bt.FenchelYoungLoss(argmax_one_hot)
        return {
            "num_samples": op.num_samples,
            "sigma": op.sigma,
            "noise": op.noise.name,
            "batched": op.batched,
            "fenchel_young_sigma": fy.loss.perturbed.sigma,
            "fenchel_young_maximize": fy.loss.maximize,
        }

    # seed 003
    def _front_nt(self, method: str, model: Any, compat: bool, **kw: Any) -> NoiseTunnelRun:
        import torch

        import refimpl.torch.attr as bta

        m = model.torch()
        if isinstance(m, torch.nn.Module):
            m = m.to(self.torch_device)
        nt = bta.NoiseTunnel(getattr(bta, method)(m, **kw), captum_compatible=compat)
        label = "refimpl.torch (captum_compatible)" if compat else "refimpl.torch front end"
        return NoiseTunnelRun(label, nt, self.asarray, _torch_np, compat, native_torch=True)

    def noise_tunnel(self, method, model, **method_kw):
        return self._front_nt(method, model, False, **method_kw)

    def captum_noise_tunnel(self, method, model):
        return self._front_nt(method, model, True)

    # seed 004
    def eigendistortion(self, image, model, dtype="float64"):
        import torch

        from refimpl.torch import Eigendistortion

        x = torch.as_tensor(image, dtype=getattr(torch, dtype), device=self.torch_device)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the 1-D images' "not 4d" note
            eig = Eigendistortion(x, model.torch(self.torch_device, getattr(torch, dtype)))
        return EigendistortionRun(self.label, eig, _torch_np)


def _seed_torch_solver(solver: str) -> Callable:
    """The README's torch ``argmax`` and ``hard_or`` (seed 002), verbatim."""
    import torch
    import torch.nn.functional as F

    def argmax(x, axis=-1):
        return F.one_hot(torch.argmax(x, dim=axis), list(x.shape)[axis]).float()

    def hard_or(x):
        s = ((torch.sign(x) + 1) / 2.0).type(torch.bool)
        result = torch.any(s, dim=-1)
        return result.type(torch.float) * 2.0 - 1

    if solver == "hard_or":
        return lambda x, axis=-1: hard_or(x)
    return argmax
