"""Targets: the columns of the conformance table.

A target is one implementation of the documented methods. It supplies the *operations* the
cases need (sample a ball, build a perturbation, step an optimizer, run a perturbed function
with its gradient, run a noise tunnel, ...); a case states the documented example and its
check, and calls those operations on every implementation of the column. An operation a
target does not define raises :class:`NotSupported` (a :class:`SkipCase`), so the cell is
SKIP with the target and the operation named.

Shipped targets
    :class:`RefimplTarget` -- this project on one backend (numpy, torch, torch:cuda, cupy,
    array_api_strict on its non-default device, jax: whatever ``backends._adapters.ADAPTERS``
    lists). On torch the column also checks the torch front end (:class:`TorchFrontEnd`,
    ``backends.torch``) in the same cell.
    :class:`RaiToolbox`, :class:`Captum`, :class:`Plenoptic`, :class:`Optax` -- the
    documented libraries themselves, each a column when installed.

Your own implementation (a port) is a subclass of :class:`Target` that overrides the
operations it has; register it with :func:`conformance.register_target` (see
``examples/my_port``). Every operation takes and returns numpy arrays unless it says
otherwise.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from conformance.registry import SkipCase


class NotSupported(SkipCase):
    """Raised by an operation a target cannot express: the cell is SKIP with this reason."""

    def __init__(self, target: str, op: str, why: str = "") -> None:
        super().__init__(f"{target} does not provide {op}" + (f": {why}" if why else ""))
        self.target, self.op = target, op


@dataclass
class AdditiveRun:
    """One run of the additive-perturbation example: numpy copies and the native delta."""

    delta: np.ndarray
    pert: np.ndarray
    grad: np.ndarray
    native: Any = None


#: every operation a case may call, in the order of the seeds (the port's checklist)
OPERATIONS = (
    # seed 000: rai_toolbox perturbations
    "sample_ball",
    "additive_perturbation",
    # seed 001: rai_toolbox optimizers
    "optimizer_steps",
    "frank_wolfe_step_size",
    "top_q_gradient",
    # seed 002: perturbed optimizers
    "solve",
    "perturbed",
    "perturbed_norm_grad",
    "perturbed_shortest_path",
    "perturbed_ascent",
    "perturbed_defaults",
    # seed 003: captum's NoiseTunnel
    "noise_tunnel",
    "captum_noise_tunnel",
    # seed 004: plenoptic's Eigendistortion
    "eigendistortion",
)


class Target:
    """A column: one implementation of the documented methods.

    Subclass it and override the operations your implementation has; the others raise
    :class:`NotSupported`. ``name`` is the column label (``numpy``, ``torch:cuda``,
    ``rai_toolbox``, ``my_port``); ``kind`` is ``"refimpl"``, ``"original"`` or ``"port"``.
    """

    kind: str = "port"
    #: the draws of ``torch.Generator().manual_seed(s)`` (the seeds' printed random values)
    draws_like_torch: bool = False

    #: distributions whose versions the report lists for this target
    packages: tuple[str, ...] = ()
    #: why the target lacks an operation (op name -> reason), for the SKIP message
    why_not: dict[str, str] = {}

    def __init__(self, name: str = "") -> None:
        self.name = name or type(self).__name__

    @property
    def label(self) -> str:
        """The column label (and the implementation's name in failure messages)."""
        return self.name

    # -- plumbing -------------------------------------------------------------------------
    def unavailable(self) -> str | None:
        """Why the target cannot run on this machine (None: it can); its cells are SKIP."""
        return None

    def prepare(self) -> None:
        """Called before each case runs on the target (e.g. to set global flags)."""

    def implementations(self) -> list[Target]:
        """The implementations one cell checks (the target itself, plus companions)."""
        return [self]

    def supports(self, op: str) -> bool:
        """Whether the target overrides the operation ``op`` (and does not list it in
        ``why_not``)."""
        return op not in self.why_not and getattr(type(self), op) is not getattr(Target, op)

    def applies_to(self, case: Any) -> bool:
        """Whether the case has a cell in this column (a port: every case meant for all
        implementations; cases pinned to some columns are left out)."""
        return case.backends is None

    def asarray(self, obj: Any, dtype: str = "float32") -> Any:
        """``obj`` as the target's native array."""
        return np.asarray(obj, dtype=dtype)

    def to_numpy(self, x: Any) -> np.ndarray:
        if hasattr(x, "detach"):
            return x.detach().cpu().numpy().copy()
        return np.array(x)

    def assert_native(self, native: Any, shape: tuple[int, ...], dtype: str = "float32") -> None:
        """The native array has the shape and dtype (a target adds device, namespace, ...)."""
        assert tuple(native.shape) == shape, f"{self.label}: shape {tuple(native.shape)}, {shape}"
        got = self.to_numpy(native).dtype
        assert got == np.dtype(dtype), f"{self.label}: dtype {got}, expected {dtype}"

    def not_supported(self, op: str, why: str = "") -> NotSupported:
        return NotSupported(self.label, op, why or self.why_not.get(op, ""))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.label}>"

    # -- seed 000: perturbations (rai_toolbox.perturbations) --------------------------------
    def sample_ball(
        self, kind: str, x: np.ndarray, *, epsilon: float, param_ndim: int | None
    ) -> np.ndarray:
        """A draw like ``uniform_like_{kind}_n_ball_(x, epsilon, param_ndim)``; ``kind`` is
        ``l1``, ``l2`` or ``linf``; float32."""
        raise self.not_supported("sample_ball")

    def additive_perturbation(
        self,
        data: np.ndarray,
        *,
        delta_ndim: int | None,
        seed: int,
        reduction: str,
        delta: Any = None,
        init: str = "l1",
    ) -> AdditiveRun:
        """``AdditivePerturbation(data, init_fn=uniform_like_{init}_n_ball, delta_ndim)``
        seeded with ``seed``; ``delta`` (documented values) replaces the draw when given.
        Returns delta, ``pert(data)`` and the gradient of ``(pert(data)**2).sum()`` (or
        ``.mean()``, ``reduction``) with respect to delta; float32."""
        raise self.not_supported("additive_perturbation")

    # -- seed 001: optimizers (rai_toolbox.optim) ------------------------------------------
    def optimizer_steps(
        self, name: str, x0: Sequence, grads: Sequence, **hyper: Any
    ) -> list[np.ndarray]:
        """The iterates of ``name(params=[x], **hyper)`` (e.g. ``L1qFrankWolfe``) after each
        step with the gradient ``grads[k]`` (float32)."""
        raise self.not_supported("optimizer_steps")

    def frank_wolfe_step_size(self, lr: float, k: int) -> float:
        """The Frank-Wolfe step size at step ``k`` (documented: ``lr / (lr + k)``)."""
        raise self.not_supported("frank_wolfe_step_size")

    def top_q_gradient(self, grad: Sequence, q: float, *, param_ndim: int | None) -> np.ndarray:
        """The gradient ``TopQGradientOptimizer(q=q, param_ndim)`` steps with (float32)."""
        raise self.not_supported("top_q_gradient")

    # -- seed 002: perturbed optimizers ----------------------------------------------------
    def solve(self, solver: str, theta: Sequence) -> np.ndarray:
        """The unperturbed solver: ``argmax`` (one-hot), ``hard_or``, or ``shortest_path``
        (``theta`` = the four final-edge costs of the seed's graph)."""
        raise self.not_supported("solve")

    def perturbed(
        self,
        solver: str,
        theta: Sequence,
        *,
        num_samples: int,
        sigma: float,
        noise: str,
        batched: bool,
        seed: int,
        decorator: bool = False,
    ) -> np.ndarray:
        """The perturbed solver's value at ``theta`` (``decorator``: built with the
        ``@perturbed(...)`` form)."""
        raise self.not_supported("perturbed")

    def perturbed_norm_grad(
        self, solver: str, theta: Sequence, *, num_samples: int, sigma: float, noise: str, seed: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """(value, gradient of ``||value||_F``) of the batched perturbed solver."""
        raise self.not_supported("perturbed_norm_grad")

    def perturbed_shortest_path(
        self, costs: Sequence, *, num_samples: int, sigma: float, seeds: Sequence[int]
    ) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Per seed: the perturbed path matrix of the seed's graph (normal noise) and the
        gradient of its entry [8, 6] with respect to the four costs."""
        raise self.not_supported("perturbed_shortest_path")

    def perturbed_ascent(
        self,
        costs: Sequence,
        *,
        steps: int,
        lr: float,
        num_samples: int,
        final_samples: int,
        sigma: float,
        seed: int,
    ) -> tuple[np.ndarray, float]:
        """``steps`` plain gradient-ascent steps on P[8, 6] of the perturbed shortest path;
        returns the final costs and P[8, 6] from ``final_samples`` samples."""
        raise self.not_supported("perturbed_ascent")

    def perturbed_defaults(self) -> dict[str, Any]:
        """The defaults of ``perturbed(func)``: num_samples, sigma, noise, batched and
        ``fenchel_young_sigma``."""
        raise self.not_supported("perturbed_defaults")

    # -- seed 003: NoiseTunnel (captum.attr) -----------------------------------------------
    def noise_tunnel(self, method: str, model: Any, **method_kw: Any) -> NoiseTunnelRun:
        """``NoiseTunnel(method(model, **method_kw))`` (``method``: ``Saliency`` or
        ``IntegratedGradients``; ``model`` a spec with ``.refimpl(asarray)`` and
        ``.torch()`` builders)."""
        raise self.not_supported("noise_tunnel")

    def captum_noise_tunnel(self, method: str, model: Any) -> NoiseTunnelRun:
        """A noise tunnel with captum 0.9's released behaviour (per-chunk noise, ...)."""
        raise self.not_supported("captum_noise_tunnel")

    # -- seed 004: Eigendistortion (plenoptic) ---------------------------------------------
    def eigendistortion(
        self, image: np.ndarray, model: Any, dtype: str = "float64"
    ) -> EigendistortionRun:
        """``Eigendistortion(image, model)`` (``model`` a spec with ``.refimpl(target,
        dtype)``, ``.torch(device, dtype)`` and ``.plenoptic(dtype)`` builders); the object
        has plenoptic's API (``synthesize``, ``eigenvalues``, ``eigendistortions``, ...)."""
        raise self.not_supported("eigendistortion")


@dataclass
class NoiseTunnelRun:
    """A noise tunnel on one implementation: ``attribute(x, seed, **kw)``; ``nt`` is the
    native object. ``per_chunk_noise``: draws like captum (per chunk, seeded through
    ``torch.manual_seed``); ``wrappable``: its ``attribution_method`` may be replaced by a
    wrapper (captum checks its type); ``native_torch``: inputs are torch tensors."""

    label: str
    nt: Any
    asarray: Callable[[Any], Any]
    to_numpy: Callable[[Any], np.ndarray]
    per_chunk_noise: bool = False
    native_torch: bool = False
    wrappable: bool = True

    @property
    def attribution_method(self) -> Any:
        return self.nt.attribution_method

    @attribution_method.setter
    def attribution_method(self, method: Any) -> None:
        self.nt.attribution_method = method

    def attribute(self, x: Any, seed: int, **kw: Any) -> Any:
        if self.per_chunk_noise:
            import torch

            torch.manual_seed(seed)
            return self.nt.attribute(x, **kw)
        return self.nt.attribute(x, rng=seed, **kw)


@dataclass
class EigendistortionRun:
    """An Eigendistortion on one implementation: ``eig`` the native object; ``plenoptic``:
    plenoptic's own API (seeded through ``po.set_seed``, prints progress), else this
    project's (``rng=``, ``progress=``)."""

    label: str
    eig: Any
    to_numpy: Callable[[Any], np.ndarray]
    plenoptic: bool = False


# ==========================================================================================
# this project on one backend
# ==========================================================================================
class RefimplTarget(Target):
    """``refimpl`` on one backend (and device) of ``backends``."""

    kind = "refimpl"

    def __init__(self, backend: str, device: Any = None, unavailable: str | None = None) -> None:
        super().__init__(backend)
        self.device_spec = device
        self._unavailable = unavailable
        self.draws_like_torch = backend == "torch"

    @property
    def label(self) -> str:
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
        from refimpl.perturbed import seed_graph

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
        from refimpl.perturbed import perturbed, seed_graph, shortest_path

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
        from refimpl.perturbed import perturbed, seed_graph, shortest_path

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


# ==========================================================================================
# torch APIs: the documented code (rai_toolbox, captum) and this project's front end
# ==========================================================================================
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
    """``backends.torch``: the documented torch code with the import changed (a companion
    of the torch columns)."""

    kind = "refimpl"

    def __init__(self, device: Any) -> None:
        super().__init__("backends.torch")
        self.torch_device = device

    def _perturbations(self) -> Any:
        import backends.torch as bt

        return bt

    def _optim(self) -> Any:
        import backends.torch.optim as bo

        return bo

    def assert_native(self, native: Any, shape: tuple[int, ...], dtype: str = "float32") -> None:
        RefimplTarget("torch", self.torch_device).assert_native(native, shape, dtype)

    # seed 002: the front end running the seed's own torch code
    def _gen(self, seed: int) -> Any:
        import torch

        return torch.Generator(device=self.torch_device).manual_seed(seed)

    def perturbed(
        self, solver, theta, *, num_samples, sigma, noise, batched, seed, decorator=False
    ):
        import torch

        import backends.torch as bt

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

        import backends.torch as bt

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

        import backends.torch as bt
        from refimpl.perturbed import seed_graph, shortest_path

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

        import backends.torch as bt
        from refimpl.perturbed import seed_graph, shortest_path

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
        import backends.torch as bt
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

        import backends.torch.attr as bta

        m = model.torch()
        if isinstance(m, torch.nn.Module):
            m = m.to(self.torch_device)
        nt = bta.NoiseTunnel(getattr(bta, method)(m, **kw), captum_compatible=compat)
        label = "backends.torch (captum_compatible)" if compat else "backends.torch front end"
        return NoiseTunnelRun(label, nt, self.asarray, _torch_np, compat, native_torch=True)

    def noise_tunnel(self, method, model, **method_kw):
        return self._front_nt(method, model, False, **method_kw)

    def captum_noise_tunnel(self, method, model):
        return self._front_nt(method, model, True)

    # seed 004
    def eigendistortion(self, image, model, dtype="float64"):
        import torch

        from backends.torch import Eigendistortion

        x = torch.as_tensor(image, dtype=getattr(torch, dtype), device=self.torch_device)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the 1-D images' "not 4d" note
            eig = Eigendistortion(x, model.torch(self.torch_device, getattr(torch, dtype)))
        return EigendistortionRun(self.label, eig, _torch_np)


def _seed_torch_solver(solver: str) -> Callable:
    """The seed's torch ``argmax`` and ``hard_or``, verbatim."""
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


# ==========================================================================================
# the documented libraries
# ==========================================================================================
class OriginalTarget(Target):
    """A documented library itself; a column when it is installed."""

    kind = "original"
    module = ""

    def __init__(self) -> None:
        super().__init__(self.module)

    def unavailable(self) -> str | None:
        if importlib.util.find_spec(self.module) is None:
            return f"{self.module} is not installed (pip install 'refimpl[bench]')"
        return None

    def applies_to(self, case: Any) -> bool:
        return self.name in case.originals


class RaiToolbox(_TorchAPI, OriginalTarget):
    """rai-toolbox: ``rai_toolbox.perturbations`` and ``rai_toolbox.optim``."""

    module = "rai_toolbox"

    def __init__(self) -> None:
        OriginalTarget.__init__(self)

    def _perturbations(self) -> Any:
        import rai_toolbox.perturbations as rp

        return rp

    def _optim(self) -> Any:
        import rai_toolbox.optim as ro

        warnings.filterwarnings("ignore", message="TypedStorage is deprecated")
        return ro

    def assert_native(self, native: Any, shape: tuple[int, ...], dtype: str = "float32") -> None:
        import torch

        assert tuple(native.shape) == shape, (
            f"delta shape {tuple(native.shape)}, documented {shape}"
        )
        assert native.dtype == getattr(torch, dtype) and native.requires_grad

    def top_q_gradient(self, grad, q, *, param_ndim):
        import torch

        x = torch.ones(np.asarray(grad).shape, requires_grad=True)
        opt = self._optim().TopQGradientOptimizer(params=[x], lr=1.0, q=q, param_ndim=param_ndim)
        x.backward(gradient=torch.tensor(grad))
        opt.step()
        return _torch_np(x.grad)


class Captum(OriginalTarget):
    """captum: ``captum.attr.NoiseTunnel`` around its attribution methods."""

    module = "captum"

    def asarray(self, obj: Any, dtype: str = "float32") -> Any:
        import torch

        return torch.tensor(np.asarray(obj), dtype=getattr(torch, dtype))

    def _nt(self, method: str, model: Any, **kw: Any) -> NoiseTunnelRun:
        import captum.attr as ca

        warnings.filterwarnings("ignore", module="captum")
        nt = ca.NoiseTunnel(getattr(ca, method)(model.torch(), **kw))
        return NoiseTunnelRun(
            "captum", nt, self.asarray, _torch_np, True, native_torch=True, wrappable=False
        )

    def noise_tunnel(self, method, model, **method_kw):
        return self._nt(method, model, **method_kw)

    def captum_noise_tunnel(self, method, model):
        return self._nt(method, model)


class Plenoptic(OriginalTarget):
    """plenoptic: ``plenoptic.Eigendistortion`` on its own models."""

    module = "plenoptic"

    def eigendistortion(self, image, model, dtype="float64"):
        import plenoptic as po
        import torch

        dt = getattr(torch, dtype)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            eig = po.Eigendistortion(torch.as_tensor(image, dtype=dt), model.plenoptic(dt))
        return EigendistortionRun("plenoptic", eig, _torch_np, plenoptic=True)


class Optax(OriginalTarget):
    """optax: ``optax.perturbations.make_perturbed_fun`` (jax on CPU), batched with
    ``jax.vmap`` over split keys (optax has no batch notion)."""

    module = "optax"
    why_not = {
        "solve": "the unperturbed solver is user code in optax",
        "perturbed_defaults": "optax documents other defaults (sigma 0.1, Gumbel noise, no "
        "batch axis)",
    }

    @staticmethod
    def _jax() -> tuple[Any, Any, Any]:
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
        import jax
        import jax.numpy as jnp
        from optax import perturbations as op

        return jax, jnp, op

    def _make(self, fun: Callable, num_samples: int, sigma: float, noise: str) -> Callable:
        """``make_perturbed_fun``; optax renames ``sigma`` to ``scale`` after 0.2.8."""
        _, _, op = self._jax()
        params = inspect.signature(op.make_perturbed_fun).parameters
        name = "scale" if "scale" in params else "sigma"
        nz = {"gumbel": op.Gumbel, "normal": op.Normal}[noise]()
        return op.make_perturbed_fun(fun, num_samples=num_samples, noise=nz, **{name: sigma})

    def _solver(self, solver: str) -> Callable:
        jax, jnp, _ = self._jax()
        if solver == "argmax":
            return lambda x: jax.nn.one_hot(jnp.argmax(x, axis=-1), x.shape[-1])
        if solver == "hard_or":
            return lambda x: jnp.any(x >= 0, axis=-1).astype(x.dtype) * 2.0 - 1.0
        from refimpl.perturbed import shortest_path

        return shortest_path

    def _batched(self, f: Callable, key: Any, theta: Any) -> Any:
        jax, _, _ = self._jax()
        return jax.vmap(f)(jax.random.split(key, theta.shape[0]), theta)

    def perturbed(
        self, solver, theta, *, num_samples, sigma, noise, batched, seed, decorator=False
    ):
        if decorator:
            raise self.not_supported(
                "perturbed(decorator=True)",
                "optax has no decorator form (make_perturbed_fun(fun, ...) returns f(key, x))",
            )
        jax, jnp, _ = self._jax()
        f = self._make(self._solver(solver), num_samples, sigma, noise)
        t, key = jnp.asarray(theta, dtype=jnp.float32), jax.random.key(seed)
        return np.asarray(self._batched(f, key, t) if batched else f(key, t))

    def perturbed_norm_grad(self, solver, theta, *, num_samples, sigma, noise, seed):
        jax, jnp, _ = self._jax()
        f = self._make(self._solver(solver), num_samples, sigma, noise)
        t, key = jnp.asarray(theta, dtype=jnp.float32), jax.random.key(seed)
        value = self._batched(f, key, t)
        grad = jax.grad(lambda s: jnp.linalg.norm(self._batched(f, key, s)))(t)
        return np.asarray(value), np.asarray(grad)

    def perturbed_shortest_path(self, costs, *, num_samples, sigma, seeds):
        jax, jnp, _ = self._jax()
        from refimpl.perturbed import seed_graph

        f = self._make(self._solver("shortest_path"), num_samples, sigma, "normal")

        def weight_86(c, key):
            paths = f(key, seed_graph.weights(c))
            return paths[8, 6], paths

        # value and gradient from one call on the same key, compiled once for all seeds
        step = jax.jit(jax.value_and_grad(weight_86, has_aux=True))
        c = jnp.asarray(costs, dtype=jnp.float32)
        paths, grads = [], []
        for s in seeds:
            (_, value), grad = step(c, jax.random.key(s))
            paths.append(np.asarray(value))
            grads.append(np.asarray(grad))
        return paths, grads

    def perturbed_ascent(self, costs, *, steps, lr, num_samples, final_samples, sigma, seed):
        jax, jnp, _ = self._jax()
        from refimpl.perturbed import seed_graph

        def pert(n):
            return self._make(self._solver("shortest_path"), n, sigma, "normal")

        step = jax.jit(jax.grad(lambda c, k: pert(num_samples)(k, seed_graph.weights(c))[8, 6]))
        c, key = jnp.asarray(costs, dtype=jnp.float32), jax.random.key(seed)
        for _ in range(steps):
            key, sub = jax.random.split(key)
            c = c + lr * step(c, sub)
        final = pert(final_samples)(key, seed_graph.weights(c))[8, 6]
        return np.asarray(c), float(final)


#: the documented libraries, by column name
ORIGINALS: dict[str, type[OriginalTarget]] = {
    "rai_toolbox": RaiToolbox,
    "captum": Captum,
    "plenoptic": Plenoptic,
    "optax": Optax,
}


# ==========================================================================================
# the registry of targets
# ==========================================================================================
_FACTORIES: dict[str, Callable[[], Target]] = {}


def register_target(name: str, factory: Callable[[], Target]) -> None:
    """Make ``factory()`` (a :class:`Target`) selectable as ``--target name``; it is not a
    default column. A plugin module (``--plugin``, or an entry point in the group
    ``refimpl.conformance``) calls this when imported."""
    if not isinstance(name, str) or not name or "," in name:
        raise ValueError(f"target name must be a non-empty string without commas, got {name!r}")
    if name in {t.label for t in builtin_targets()}:
        raise ValueError(f"target name {name!r} is taken by a built-in column")
    if not callable(factory):
        raise TypeError(f"factory for target {name!r} must be callable, got {factory!r}")
    _FACTORIES[name] = factory


def registered_targets() -> list[Target]:
    """The targets registered by plugins, in registration order."""
    out = []
    for name, factory in _FACTORIES.items():
        t = factory()
        if not isinstance(t, Target):
            raise TypeError(f"the factory of target {name!r} returned {t!r}, not a Target")
        t.name = name if t.kind == "port" else t.name
        out.append(t)
    return out


def refimpl_targets() -> list[Target]:
    """One :class:`RefimplTarget` per backend of ``backends._adapters.ADAPTERS`` (torch twice:
    cpu and cuda; array_api_strict on its non-default device)."""
    from backends._adapters import ADAPTERS

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


def original_targets() -> list[Target]:
    return [cls() for cls in ORIGINALS.values()]


def builtin_targets() -> list[Target]:
    """The default columns: refimpl on every backend, then every documented library."""
    return refimpl_targets() + original_targets()
