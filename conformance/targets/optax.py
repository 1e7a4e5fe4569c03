"""The optax column: ``optax.perturbations.make_perturbed_fun`` (seed 002), jax on CPU."""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from typing import Any

import numpy as np

from conformance.targets.base import OriginalTarget


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
        from conformance import seed_graph

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
        from conformance import seed_graph

        def pert(n):
            return self._make(self._solver("shortest_path"), n, sigma, "normal")

        step = jax.jit(jax.grad(lambda c, k: pert(num_samples)(k, seed_graph.weights(c))[8, 6]))
        c, key = jnp.asarray(costs, dtype=jnp.float32), jax.random.key(seed)
        for _ in range(steps):
            key, sub = jax.random.split(key)
            c = c + lr * step(c, sub)
        final = pert(final_samples)(key, seed_graph.weights(c))[8, 6]
        return np.asarray(c), float(final)
