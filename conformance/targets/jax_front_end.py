"""The JAX front end ``refimpl.jax`` as a column: the optax column's code (seed 002) with the
import changed, ``optax.perturbations.make_perturbed_fun`` -> ``refimpl.jax``.

It runs the cases of the optax column (those listing ``optax`` in ``originals``), with the
same solvers, keys, ``jax.vmap`` batching, ``jax.grad`` and ``jax.jit``; only jax is needed
(not optax). Opt-in like the jax column (``conformance.runner.OPT_IN``): XLA compiles slowly,
so it runs when named, ``--target refimpl.jax`` (or ``--target refimpl``).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from typing import Any

from conformance.targets.optax import Optax


class JaxFrontEnd(Optax):
    """``refimpl.jax.make_perturbed_fun`` (jax on CPU), batched with ``jax.vmap`` over split
    keys, exactly as the optax column runs optax."""

    kind = "refimpl"
    module = "jax"
    packages = ("jax", "jaxlib")
    why_not = {
        "solve": "the unperturbed solver is user code, as in optax",
        "perturbed_defaults": "the front end has optax's defaults (sigma 0.1, Gumbel noise, no "
        "batch axis)",
    }

    def __init__(self) -> None:
        super().__init__()
        self.name = "refimpl.jax"

    def unavailable(self) -> str | None:
        if importlib.util.find_spec("jax") is None:
            return "jax is not installed (pip install 'refimpl[jax]')"
        return None

    def applies_to(self, case: Any) -> bool:
        return "optax" in case.originals

    @staticmethod
    def _jax() -> tuple[Any, Any, Any]:
        """jax and jax.numpy (jax on CPU unless JAX_PLATFORMS says otherwise); no optax."""
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
        import jax
        import jax.numpy as jnp

        return jax, jnp, None

    def _make(self, fun: Callable, num_samples: int, sigma: float, noise: str) -> Callable:
        self._jax()
        import refimpl.jax as rj

        nz = {"gumbel": rj.Gumbel, "normal": rj.Normal}[noise]()
        return rj.make_perturbed_fun(fun, num_samples=num_samples, sigma=sigma, noise=nz)

    def perturbed(
        self, solver, theta, *, num_samples, sigma, noise, batched, seed, decorator=False
    ):
        if decorator:
            raise self.not_supported(
                "perturbed(decorator=True)",
                "make_perturbed_fun has no decorator form, as in optax (it returns f(key, x))",
            )
        return super().perturbed(
            solver, theta, num_samples=num_samples, sigma=sigma, noise=noise,
            batched=batched, seed=seed,
        )  # fmt: skip
