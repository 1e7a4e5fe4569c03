"""The refimpl columns: this project on every backend of ``backends``.

One :class:`RefimplTarget` per backend (numpy, torch, torch:cuda, cupy, array_api_strict on
its non-default device, jax: whatever ``backends.registry.ADAPTERS`` lists; see
:func:`refimpl_targets`). On torch the column also checks the torch front end
(:class:`conformance.targets.torch.TorchFrontEnd`, ``refimpl.torch``) in the same cell.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from conformance.targets.base import (
    AdditiveRun,
    EigendistortionRun,
    NoiseTunnelRun,
    Target,
)


class RefimplTarget(Target):
    """``refimpl`` on one backend (and device) of ``backends``."""

    kind = "refimpl"

    def __init__(self, backend: str, device: Any = None, unavailable: str | None = None) -> None:
        super().__init__(backend)
        self.device_spec = device
        self._unavailable = unavailable
        self.draws_like_torch = backend == "torch"
        self.needs_gpu = backend == "cupy" or str(device).startswith("cuda")

    def default_label(self) -> str:
        """The backend, with the device where it is not the backend's default."""
        if self.name == "array_api_strict" or (self.name == "torch" and self.device_spec == "cpu"):
            return self.name
        return self.name if self.device_spec is None else f"{self.name}:{self.device_spec}"

    def unavailable(self) -> str | None:
        return self._unavailable

    @property
    def backend(self) -> Any:
        import backends

        return backends.get(self.name)

    @property
    def xp(self) -> Any:
        return self.backend.xp

    @property
    def device(self) -> Any:
        return self.backend.device(self.device_spec)

    def prepare(self) -> None:
        if self.name == "array_api_strict":
            import array_api_strict

            array_api_strict.set_array_api_strict_flags(
                api_version="2024.12", boolean_indexing=False, data_dependent_shapes=False
            )

    def implementations(self) -> list[Target]:
        if self.name == "torch":
            from conformance.targets.torch import TorchFrontEnd

            return [self, TorchFrontEnd(self.device)]
        return [self]

    def applies_to(self, case: Any) -> bool:
        return case.backends is None or self.name in case.backends

    def asarray(self, obj: Any, dtype: str | None = "float32") -> Any:
        return self.backend.asarray(obj, dtype=dtype, device=self.device)

    def to_numpy(self, x: Any) -> np.ndarray:
        return self.backend.to_numpy(x)

    def assert_native(self, native: Any, shape: tuple[int, ...], dtype: str = "float32") -> None:
        from backends import namespace_and_device

        assert tuple(native.shape) == shape, (
            f"delta shape {tuple(native.shape)}, documented {shape}"
        )
        xp, dev = namespace_and_device(native)
        assert xp is self.xp, f"delta lives in {xp.__name__}, not {self.xp.__name__}"
        assert dev == self.device, f"delta on {dev!r}, expected {self.device!r}"
        assert native.dtype == self.backend.dtype(dtype), f"delta dtype {native.dtype}"

    def _torch_rng_or(self, seed: int) -> Any:
        """The documented ``torch.Generator().manual_seed(seed)`` on torch, else the seed."""
        if self.draws_like_torch:
            import torch

            return torch.Generator().manual_seed(seed)
        return seed

    # seed 000
    def sample_ball(self, kind, x, *, epsilon, param_ndim):
        from refimpl.perturbations import samplers

        sampler = getattr(samplers, f"uniform_like_{kind}_n_ball")
        y = sampler(self.asarray(x), epsilon=epsilon, param_ndim=param_ndim)
        return self.to_numpy(y)

    def additive_perturbation(self, data, *, delta_ndim, seed, reduction, delta=None, init="l1"):
        from refimpl.perturbations import AdditivePerturbation, samplers

        x = self.asarray(data)
        sampler = getattr(samplers, f"uniform_like_{init}_n_ball")
        p = AdditivePerturbation(x, sampler, delta_ndim=delta_ndim, rng=self._torch_rng_or(seed))
        if delta is not None:
            p.delta = self.asarray(np.asarray(delta))
        pert = p(x)
        # d/dy sum(y**2) = 2y; d/dy mean(y**2) = 2y / y.size
        u = 2 * pert if reduction == "sum" else 2 * pert / np.asarray(data).size
        grad = p.vjp_delta(x, u)
        return AdditiveRun(*(self.to_numpy(a) for a in (p.delta, pert, grad)), p.delta)

    # seed 001
    def optimizer_steps(self, name, x0, grads, **hyper):
        import refimpl.optim as ro

        opt = getattr(ro, name)([self.asarray(x0)], **hyper)
        return [self.to_numpy(opt.step([self.asarray(g)])[0]) for g in grads]

    def frank_wolfe_step_size(self, lr, k):
        import refimpl.optim as ro

        return float(ro.fw_step_size(lr, k))

    def top_q_gradient(self, grad, q, *, param_ndim):
        import refimpl.optim as ro

        return self.to_numpy(ro.top_q_gradient(self.asarray(grad), q, param_ndim=param_ndim))

    # seed 002
    def solve(self, solver, theta):
        from conformance import seed_graph

        if solver == "shortest_path":
            return self.to_numpy(_refimpl_solver(solver)(seed_graph.weights(self.asarray(theta))))
        return self.to_numpy(_refimpl_solver(solver)(self.asarray(theta)))

    def perturbed(
        self, solver, theta, *, num_samples, sigma, noise, batched, seed, decorator=False
    ):
        from refimpl.perturbed import perturbed

        kw = dict(num_samples=num_samples, sigma=sigma, noise=noise, batched=batched, rng=seed)
        fn = _refimpl_solver(solver)
        if decorator:

            @perturbed(**kw)
            def p(x):
                return fn(x)

        else:
            p = perturbed(fn, **kw)
        return self.to_numpy(p(self.asarray(theta)))

    def perturbed_norm_grad(self, solver, theta, *, num_samples, sigma, noise, seed):
        from refimpl.perturbed import perturbed

        p = perturbed(
            _refimpl_solver(solver), num_samples=num_samples, sigma=sigma, noise=noise, rng=seed
        )
        t = self.asarray(theta)
        value = p(t)  # an int seed: the vjp below sees the same samples
        u = value / self.xp.linalg.vector_norm(value)
        return self.to_numpy(value), self.to_numpy(p.vjp(t, u))

    def perturbed_shortest_path(self, costs, *, num_samples, sigma, seeds):
        from conformance import seed_graph
        from refimpl.perturbed import perturbed, shortest_path

        weights = seed_graph.weights(self.asarray(costs))
        u = self.asarray(_unit_86())
        paths, grads = [], []
        for s in seeds:
            p = perturbed(shortest_path, num_samples=num_samples, sigma=sigma, batched=False, rng=s)
            value, dw = p.value_and_vjp(weights, u)
            paths.append(self.to_numpy(value))
            grads.append(self.to_numpy(seed_graph.weights_vjp(dw)))
        return paths, grads

    def perturbed_ascent(self, costs, *, steps, lr, num_samples, final_samples, sigma, seed):
        from conformance import seed_graph
        from refimpl.perturbed import perturbed, shortest_path

        u = self.asarray(_unit_86())
        rng = self.backend.rng(seed, device=self.device)  # one stream for the whole run
        p = perturbed(shortest_path, num_samples=num_samples, sigma=sigma, batched=False, rng=rng)
        c = self.asarray(costs)
        for _ in range(steps):
            c = c + lr * seed_graph.weights_vjp(p.vjp(seed_graph.weights(c), u))
        final = p.replace(num_samples=final_samples)(seed_graph.weights(c))
        return self.to_numpy(c), float(self.to_numpy(final)[8, 6])

    def perturbed_defaults(self):
        from refimpl.perturbed import argmax_one_hot, fenchel_young_loss, perturbed

        p = perturbed(argmax_one_hot)
        return {
            "num_samples": p.num_samples,
            "sigma": p.sigma,
            "noise": p.noise.name,
            "batched": p.batched,
            "fenchel_young_sigma": fenchel_young_loss(argmax_one_hot).perturbed.sigma,
        }

    # seed 003
    def noise_tunnel(self, method, model, **method_kw):
        from refimpl import attr as ra

        nt = ra.NoiseTunnel(getattr(ra, method)(model.refimpl(self.asarray), **method_kw))
        return NoiseTunnelRun(self.label, nt, lambda a: self.asarray(np.asarray(a)), self.to_numpy)

    # seed 004
    def eigendistortion(self, image, model, dtype="float64"):
        from refimpl.eigendistortion import Eigendistortion

        eig = Eigendistortion(self.asarray(image, dtype), model.refimpl(self, dtype))
        return EigendistortionRun(self.label, eig, self.to_numpy)


def _refimpl_solver(solver: str) -> Callable:
    from refimpl import perturbed as rp

    return {"argmax": rp.argmax_one_hot, "hard_or": rp.hard_or, "shortest_path": rp.shortest_path}[
        solver
    ]


def _unit_86() -> np.ndarray:
    """The cotangent that picks entry [8, 6] of a 9 x 9 path matrix."""
    return np.eye(81, dtype=np.float32)[8 * 9 + 6].reshape(9, 9)


def refimpl_targets() -> list[Target]:
    """One :class:`RefimplTarget` per backend of ``backends.registry.ADAPTERS`` (torch twice:
    cpu and cuda; array_api_strict on its non-default device)."""
    from backends.registry import ADAPTERS

    out: list[Target] = []
    for name, adapter in ADAPTERS.items():
        reason = adapter.unavailable_reason()
        if name == "array_api_strict":
            out.append(RefimplTarget(name, "device1", reason))
        elif name == "torch":
            out.append(RefimplTarget(name, "cpu", reason))
            cuda = reason
            if cuda is None:
                import torch

                if not torch.cuda.is_available():
                    cuda = "torch sees no CUDA device"
            out.append(RefimplTarget(name, "cuda", cuda))
        else:
            out.append(RefimplTarget(name, None, reason))
    return out
