r"""``make_perturbed_fun`` for JAX: optax's signature, the closed-form estimator of Berthet et
al. (2020) as a ``jax.custom_vjp``, traceable under ``jax.jit``, ``jax.grad`` and ``jax.vmap``.

For a function ``fun`` (an arg-max, a ranking, any solver: piecewise constant, no useful
derivative), noise :math:`Z \sim \mu \propto e^{-\nu}` and a scale :math:`\sigma > 0`,

.. math:: f_\sigma(x) = E\,[\,f(x + \sigma Z)\,], \qquad
          J f_\sigma(x) = \frac{1}{\sigma}\, E\,[\,(f(x + \sigma Z) - b)\, \nabla\nu(Z)^\top\,]

(Berthet et al. 2020, Prop. 3.1; any b independent of Z, since :math:`E[\nabla\nu(Z)] = 0`;
here :math:`b = f(x)` with ``use_baseline=True``, else 0). With N samples :math:`z_n` and
:math:`y_n = f(x + \sigma z_n)`:

* forward: :math:`\frac1N \sum_n y_n`;
* backward (the cotangent u of the output): :math:`\frac{1}{N\sigma} \sum_n
  \langle y_n - b, u\rangle\, \nabla\nu(z_n)`.

The noise is drawn from ``key`` exactly as ``optax.perturbations.make_perturbed_fun`` (optax
0.2.x) draws it: ``jax.random.split(key, num_samples)``, then per sample one
``jax.random.split(k_n, num_leaves)`` and ``noise.sample(leaf_key, leaf.shape, leaf.dtype)``
per leaf of ``inputs``. So on the same key the value is optax's, and the gradient is the one
optax obtains by differentiating its "magic box" (Foerster et al. 2018): the same estimator,
summed in another order (equal to rounding). optax differentiates the score
:math:`\nabla\nu` of :math:`z'_n = ((x + \sigma z_n) - x) / \sigma` (the noise the perturbed
input really carries); so does this module.

What differs from optax (``docs/differences.md``): the derivative is a ``custom_vjp``, so
reverse mode of first order only (no ``jax.jvp``/``jax.jacfwd``, no second derivatives,
which optax's magic box gives, as unbiased as the first); extra positional arguments
``*args`` reach ``fun`` and are not differentiated (optax 0.2.8 takes ``(key, inputs)``).

References: Q. Berthet et al., *Learning with Differentiable Perturbed Optimizers*,
NeurIPS 2020; the optax documentation of ``optax.perturbations``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["Gumbel", "Normal", "make_perturbed_fun"]


class Normal:
    r"""Standard normal noise (optax's ``Normal``): :math:`\nu(z) = z^2/2`,
    :math:`\nabla\nu(z) = z`; drawn with ``jax.random.normal``."""

    def sample(self, key: Any, sample_shape: tuple[int, ...] = (), dtype: Any = float) -> Any:
        return jax.random.normal(key, sample_shape, dtype)

    def log_prob(self, inputs: Any) -> Any:
        return -0.5 * inputs**2

    def grad_nu(self, z: Any) -> Any:
        r""":math:`\nabla\nu(z) = -\nabla \log\mu(z) = z`."""
        return z

    def __repr__(self) -> str:
        return "Normal()"


class Gumbel:
    r"""Standard Gumbel noise (optax's ``Gumbel``, the default): :math:`\nu(z) = z + e^{-z}`,
    :math:`\nabla\nu(z) = 1 - e^{-z}`; drawn with ``jax.random.gumbel``."""

    def sample(self, key: Any, sample_shape: tuple[int, ...] = (), dtype: Any = float) -> Any:
        return jax.random.gumbel(key, sample_shape, dtype)

    def log_prob(self, inputs: Any) -> Any:
        return -inputs - jnp.exp(-inputs)

    def grad_nu(self, z: Any) -> Any:
        r""":math:`\nabla\nu(z) = -\nabla \log\mu(z) = 1 - e^{-z}`."""
        return 1.0 - jnp.exp(-z)

    def __repr__(self) -> str:
        return "Gumbel()"


def _score(noise: Any, zs: list[Any]) -> list[Any]:
    r""":math:`\nabla\nu(z)` for every leaf: ``noise.grad_nu`` where the noise has it (this
    module's ``Normal`` and ``Gumbel``), else minus the gradient of the summed
    ``noise.log_prob`` (optax's protocol: ``Normal``, ``Gumbel`` or any law with
    ``sample`` and ``log_prob``), computed by ``jax.grad``."""
    grad_nu = getattr(noise, "grad_nu", None)
    if grad_nu is not None:
        return [grad_nu(z) for z in zs]
    grads = jax.grad(lambda t: sum(jnp.sum(noise.log_prob(z)) for z in t))(list(zs))
    return [-g for g in grads]


@jax.custom_jvp
def _first_order_only(grads: Any) -> Any:
    """The gradients, unchanged; differentiating them (a second derivative through the
    backward pass) raises: the estimator is of the first order, and autodiff of it would
    silently give 0 (the noise does not depend on the inputs)."""
    return grads


@_first_order_only.defjvp
def _first_order_only_jvp(primals: Any, tangents: Any) -> Any:
    raise TypeError(
        "refimpl.jax.make_perturbed_fun gives first-order reverse-mode derivatives only (a "
        "jax.custom_vjp with the closed-form estimator): a second derivative is not available; "
        "optax.perturbations.make_perturbed_fun estimates derivatives of any order"
    )


def _check_options(fun: Any, num_samples: Any, sigma: Any, noise: Any, use_baseline: Any) -> float:
    """Checks of ``make_perturbed_fun``'s options (when it is called); returns sigma as a
    float (it must be concrete: a traced sigma would leak into the custom derivative)."""
    if not callable(fun):
        raise TypeError(f"fun must be callable, got {fun!r} ({type(fun).__name__})")
    if isinstance(num_samples, bool) or not isinstance(num_samples, numbers.Integral):
        raise TypeError(f"num_samples must be an int >= 1, got {num_samples!r}")
    if num_samples < 1:
        raise ValueError(f"num_samples must be an int >= 1, got {num_samples!r}")
    if isinstance(sigma, jax.core.Tracer):
        raise TypeError(
            "sigma must be a concrete number, got a traced value: build the perturbed function "
            "outside jax.jit / jax.grad (sigma is not differentiated)"
        )
    try:
        if isinstance(sigma, bool) or np.ndim(sigma) != 0:
            raise TypeError
        s = float(sigma)
    except TypeError:
        raise TypeError(f"sigma must be a real number > 0, got {sigma!r}") from None
    if not (math.isfinite(s) and s > 0):
        raise ValueError(f"sigma must be a finite real number > 0, got {sigma!r}")
    for method in ("sample", "log_prob"):
        if not callable(getattr(noise, method, None)):
            raise TypeError(
                f"noise must have sample(key, shape, dtype) and log_prob(z) (like "
                f"refimpl.jax.Gumbel, refimpl.jax.Normal or optax's), got {noise!r}"
            )
    if not isinstance(use_baseline, bool | np.bool_):
        raise TypeError(f"use_baseline must be True or False, got {use_baseline!r}")
    return s


def _is_array(a: Any) -> bool:
    return isinstance(a, jax.Array | np.ndarray | np.generic)


def make_perturbed_fun(
    fun: Callable[..., Any],
    num_samples: int = 1000,
    sigma: float = 0.1,
    noise: Any = None,
    use_baseline: bool = True,
) -> Callable[..., Any]:
    r"""A differentiable Monte Carlo approximation of ``fun`` by perturbations, with the
    signature and the random draws of ``optax.perturbations.make_perturbed_fun``.

    Parameters
    ----------
    fun : callable
        ``fun(inputs, *args)``, from a pytree of floating arrays to a pytree of arrays,
        written for one input (it is ``jax.vmap``-ed over the samples). Integer and bool
        outputs are promoted as optax promotes them (to the noise's floating dtype).
    num_samples : int >= 1
        Monte Carlo samples N.
    sigma : float > 0
        Noise scale (a concrete number; not differentiated).
    noise : object with ``sample(key, shape, dtype)`` and ``log_prob(z)``
        :class:`Gumbel` (None: the default, as optax's), :class:`Normal`, optax's own
        ``Normal()``/``Gumbel()``, or any law with that protocol; the score
        :math:`\nabla\nu` is ``noise.grad_nu`` when it has one, else ``-grad(log_prob)``.
    use_baseline : bool
        Subtract :math:`b = f(x)` in the gradient estimate (one more call of ``fun``; the
        estimate stays unbiased and its variance stays bounded as sigma -> 0).

    Returns
    -------
    ``perturbed_fun(key, inputs, *args)``: the mean of ``fun(inputs + sigma z_n, *args)``
    over N samples drawn from the JAX key ``key``, a ``jax.custom_vjp`` whose reverse-mode
    derivative in ``inputs`` is the closed-form estimator of Berthet et al.; ``key`` and
    ``args`` are not differentiated (zero cotangents). Traceable: use it under ``jax.jit``,
    ``jax.grad``, ``jax.value_and_grad`` and ``jax.vmap`` (batch it with ``jax.vmap`` over
    split keys, as with optax).
    """
    noise = Gumbel() if noise is None else noise
    sigma = _check_options(fun, num_samples, sigma, noise, use_baseline)
    n = int(num_samples)

    def perturbed_fun(key: Any, inputs: Any, *args: Any) -> Any:
        leaves, treedef = jax.tree.flatten(inputs)
        if not leaves:
            raise ValueError("inputs must hold at least one array, got an empty pytree")
        xs = tuple(jnp.asarray(x) for x in leaves)
        for i, x in enumerate(xs):
            if not jnp.issubdtype(x.dtype, jnp.floating):
                where = "inputs" if treedef.num_leaves == 1 else f"inputs leaf {i}"
                raise TypeError(f"{where} must be a real floating array, got dtype {x.dtype}")
        # args: arrays become primal inputs of the custom_vjp (zero cotangent), the rest
        # (Python numbers, strings, callables) stays static, closed over
        arg_leaves, arg_def = jax.tree.flatten(args)
        dynamic = tuple(a for a in arg_leaves if _is_array(a))
        is_dyn = tuple(_is_array(a) for a in arg_leaves)

        def call(x_leaves: Any, dyn: tuple) -> Any:
            it = iter(dyn)
            full = [next(it) if d else a for a, d in zip(arg_leaves, is_dyn, strict=True)]
            return fun(
                jax.tree.unflatten(treedef, list(x_leaves)), *jax.tree.unflatten(arg_def, full)
            )

        def draw(k: Any, x_leaves: tuple) -> list[Any]:
            """One sample's noise, per leaf, as optax.tree.random_like draws it."""
            leaf_keys = jax.random.split(k, len(x_leaves))
            return [noise.sample(leaf_keys[i], x.shape, x.dtype) for i, x in enumerate(x_leaves)]

        def shifted(k: Any, x_leaves: tuple) -> list[Any]:
            return [x + sigma * z for x, z in zip(x_leaves, draw(k, x_leaves), strict=True)]

        def samples(k: Any, x_leaves: tuple, dyn: tuple) -> Any:
            """y_n = fun(x + sigma z_n), stacked on a leading axis of N, promoted like
            optax's ``box * fun(...)``."""
            keys = jax.random.split(k, n)
            ys = jax.vmap(lambda kn: call(shifted(kn, x_leaves), dyn))(keys)
            dtype = jnp.result_type(*(x.dtype for x in x_leaves))
            return jax.tree.map(lambda y: y.astype(jnp.result_type(dtype, y.dtype)), ys)

        @jax.custom_vjp
        def pert(k: Any, x_leaves: tuple, dyn: tuple) -> Any:
            return jax.tree.map(lambda y: jnp.mean(y, axis=0), samples(k, x_leaves, dyn))

        def pert_fwd(k: Any, x_leaves: tuple, dyn: tuple) -> tuple[Any, Any]:
            ys = samples(k, x_leaves, dyn)
            base = None
            if use_baseline:  # b = fun(x), promoted like the samples
                b = call(x_leaves, dyn)
                base = jax.tree.map(lambda bb, y: jnp.asarray(bb).astype(y.dtype), b, ys)
            value = jax.tree.map(lambda y: jnp.mean(y, axis=0), ys)
            return value, (k, x_leaves, dyn, ys, base)

        def pert_bwd(res: Any, ct: Any) -> tuple[Any, Any, Any]:
            k, x_leaves, dyn, ys, base = res
            # r_n = <y_n - b, u>, summed over the output's leaves: (N,)
            y_leaves, u_leaves = jax.tree.leaves(ys), jax.tree.leaves(ct)
            b_leaves = jax.tree.leaves(base) if base is not None else [None] * len(y_leaves)
            r = 0.0
            for y, u, b in zip(y_leaves, u_leaves, b_leaves, strict=True):
                d = y - b[None] if b is not None else y
                r = r + jnp.sum(jnp.reshape(d * u[None], (n, -1)), axis=1)

            def score(kn: Any) -> list[Any]:  # grad_nu(z'_n), z'_n = ((x + sigma z_n) - x) / sigma
                s = shifted(kn, x_leaves)
                return _score(noise, [(si - x) / sigma for si, x in zip(s, x_leaves, strict=True)])

            g = jax.vmap(score)(jax.random.split(k, n))  # per leaf (N, *x.shape)
            grads = tuple(
                (jnp.tensordot(r.astype(gi.dtype), gi, axes=1) / (n * sigma)).astype(x.dtype)
                for gi, x in zip(g, x_leaves, strict=True)
            )
            return None, _first_order_only(grads), tuple(None for _ in dyn)

        pert.defvjp(pert_fwd, pert_bwd)
        return pert(key, xs, dynamic)

    perturbed_fun.__name__ = f"perturbed_{getattr(fun, '__name__', 'fun')}"
    perturbed_fun.__doc__ = (
        f"{fun!r} perturbed by {noise!r} noise (sigma={sigma}, num_samples={n}, "
        f"use_baseline={bool(use_baseline)}): call it as perturbed_fun(key, inputs, *args)."
    )
    return perturbed_fun
