"""JAX front end over ``refimpl``: ``make_perturbed_fun`` with the signature and the random
draws of ``optax.perturbations.make_perturbed_fun``, whose derivative is the closed-form
estimator of Berthet et al. (2020) as a ``jax.custom_vjp`` (it works under ``jax.jit``,
``jax.grad`` and ``jax.vmap``), and the noises ``Normal`` and ``Gumbel``.

Importing this package imports jax; nothing else in ``refimpl`` or ``backends`` does so
eagerly. (``refimpl.perturbed`` runs on JAX arrays too, eagerly, through ``backends.jax``;
it is not traceable: under a JAX transformation use this front end.)
"""

from refimpl.jax.perturbed import Gumbel, Normal, make_perturbed_fun

__all__ = ["Gumbel", "Normal", "make_perturbed_fun"]
