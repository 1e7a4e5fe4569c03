r"""The Fenchel-Young loss of a perturbed optimizer (Berthet et al. 2020, section 4).

For a solver :math:`y^*(\theta) = \arg\max_{y \in C} \langle y, \theta\rangle` and noise Z,

.. math::
    F_\sigma(\theta) = E\,[\max_{y \in C} \langle y, \theta + \sigma Z\rangle]
                     = E\,[\langle y^*(\theta + \sigma Z), \theta + \sigma Z\rangle],
    \qquad \nabla F_\sigma(\theta) = y_\sigma(\theta),

and the Fenchel-Young loss of a target y is
:math:`L(\theta; y) = F_\sigma(\theta) + \Omega(y) - \langle \theta, y\rangle \ge 0`, with
:math:`\Omega = F_\sigma^*`, so

.. math:: \nabla_\theta L(\theta; y) = y_\sigma(\theta) - y .

Both :math:`F_\sigma` and :math:`y_\sigma` come from the same N samples. :math:`\Omega(y)`
does not depend on :math:`\theta` and has no general closed form, so the reported value is
:math:`\hat F_\sigma(\theta) - \langle\theta, y\rangle`: the FY loss up to that constant
(what jaxopt and optax report too). Example: argmax one-hot with Gumbel noise,
:math:`F_\sigma = \sigma\,\mathrm{logsumexp}(\theta/\sigma) + \sigma\gamma`, so the value is
:math:`\sigma` times the softmax cross-entropy of :math:`\theta/\sigma`, plus
:math:`\sigma\gamma`.

Which constant is left out. For a target y that is a vertex of C (a one-hot vector, a
permutation's ranks, a path's edges) :math:`\Omega(y) = -\sigma\langle y, E[Z]\rangle`
(push :math:`\theta` deep into y's normal cone), so the value reported here is the FY loss
itself for normal noise (:math:`E[Z] = 0`) and the FY loss plus :math:`\sigma\gamma` for
Gumbel noise and a one-hot y (:math:`E[Z_i] = \gamma`, Euler's constant).

The TensorFlow original and its PyTorch port report another quantity altogether,
:math:`\sum (y_\sigma(\theta) - y)^2` per example ("a meaningful forward pass for
convenience only"): no constant turns one into the other (on one-hot targets theirs lies in
[0, 2] per example, this one is unbounded), and theirs is not the function their gradient
differentiates. ``value="port"`` reports theirs, from the same samples. The gradient is the
same for both values, and the same as theirs: :math:`y_\sigma(\theta) - y` (no variance
reduction is involved: :math:`y_\sigma` is a plain Monte Carlo mean).

``maximize=False`` (the solver minimises): :math:`L = \langle\theta, y\rangle - \hat
F^{\min}_\sigma(\theta)` with :math:`F^{\min}_\sigma = E[\min_y \langle y, \theta + \sigma
Z\rangle]`, gradient :math:`y - y_\sigma(\theta)`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from backends import namespace_and_device
from refimpl.perturbed.perturbed import Perturbed, PerturbedOptions
from refimpl.validation import check_array, check_bool, check_choice, check_same_place, is_array

__all__ = ["FenchelYoungLoss", "fenchel_young_loss"]

#: what ``loss(theta, y)`` reports: the FY loss up to Omega(y), or the references' value
VALUES = ("fenchel_young", "port")


class FenchelYoungLoss:
    r"""``loss(theta, y)``: per-example values (shape ``(batch,)``; 0-d unbatched);
    ``loss.value_and_grad(theta, y)`` adds the gradient ``y_sigma(theta) - y`` (shaped like
    theta). Extra ``*args, **kwargs`` go to ``func``. ``value``: ``"fenchel_young"``
    (:math:`\hat F_\sigma(\theta) - \langle\theta, y\rangle`) or ``"port"``
    (:math:`\sum (y_\sigma(\theta) - y)^2`, the TensorFlow original's and the PyTorch
    port's value); the gradient does not depend on it."""

    def __init__(self, perturbed: Perturbed, maximize: bool, value: str = "fenchel_young") -> None:
        self.perturbed, self.maximize = perturbed, check_bool("maximize", maximize)
        self.value = check_choice("value", value, VALUES)

    def replace(self, **changes: Any) -> FenchelYoungLoss:
        """A copy with some options of the perturbed solver changed (e.g. ``rng``)."""
        maximize = changes.pop("maximize", self.maximize)
        value = changes.pop("value", self.value)
        return FenchelYoungLoss(self.perturbed.replace(**changes), maximize, value)

    def value_and_grad(self, theta: Any, y: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
        batched = self.perturbed.options.batched
        _check_target(theta, y)  # before the pass over the samples
        port = self.value == "port"
        e = self.perturbed.estimate(theta, args, kwargs, f_sigma=not port)
        xp, _ = namespace_and_device(theta, y)
        y = xp.astype(y, theta.dtype)
        batch = theta.shape[0] if batched else 1
        grad = e.value - y if self.maximize else y - e.value
        if port:  # the references' sum((y_sigma - y)**2), per example
            rows = xp.reshape(grad * grad, (batch, math.prod(theta.shape) // batch))
            value = xp.sum(rows, axis=1)
        else:
            rows = xp.reshape(theta * y, (batch, math.prod(theta.shape) // batch))
            linear = xp.sum(rows, axis=1)
            value = e.f_sigma - linear if self.maximize else linear - e.f_sigma
        return (value if batched else value[0]), grad

    def __call__(self, theta: Any, y: Any, *args: Any, **kwargs: Any) -> Any:
        return self.value_and_grad(theta, y, *args, **kwargs)[0]

    def grad(self, theta: Any, y: Any, *args: Any, **kwargs: Any) -> Any:
        return self.value_and_grad(theta, y, *args, **kwargs)[1]

    def __repr__(self) -> str:
        return (
            f"fenchel_young_loss({self.perturbed!r}, maximize={self.maximize}, "
            f"value={self.value!r})"
        )


def _check_target(theta: Any, y: Any) -> None:
    """``y``: a real array (floating, integer or bool; cast to theta's dtype) of theta's
    library, device and shape. Complex targets are refused: casting would drop the
    imaginary part."""
    xp, _ = check_array(theta, name="theta")
    if not is_array(y):
        raise TypeError(f"y must be an array, got {type(y).__name__}")
    check_same_place(y, theta, name="y", ref_name="theta")
    if xp.isdtype(y.dtype, "complex floating"):
        raise TypeError(
            f"y must be real (a floating, integer or bool dtype), got {y.dtype}; the loss is "
            "defined on real targets"
        )
    if tuple(y.shape) != tuple(theta.shape):
        raise ValueError(
            f"y must have the shape of theta {tuple(theta.shape)}, got {tuple(y.shape)}"
        )


def fenchel_young_loss(
    func: Callable[..., Any],
    *,
    num_samples: int = 1000,
    sigma: float = 0.01,
    noise: Any = "normal",
    batched: bool = True,
    rng: Any = None,
    chunk_size: int | None = None,
    sampling: str = "mc",
    maximize: bool = True,
    progress: bool | None = None,
    value: str = "fenchel_young",
    executor: Any = None,
) -> FenchelYoungLoss:
    r"""The Fenchel-Young loss of the perturbed ``func`` (defaults as documented: sigma 0.01,
    normal noise).

    ``func`` must be the arg-max of a linear objective, returning arrays shaped like its
    input (one-hot argmax, ranks, top-k, ...). A :class:`Perturbed` may be passed instead:
    its solver is used with the options given here. ``rng`` and ``executor`` work as in
    :func:`refimpl.perturbed.perturbed` (a ``numpy.random.SeedSequence`` key and any
    executor give the same bits as one process).

    Returns
    -------
    FenchelYoungLoss
        ``loss(theta, y)`` is :math:`\hat F_\sigma(\theta) - \langle\theta, y\rangle` per
        example (the FY loss up to the constant :math:`\Omega(y)`: 0 for vertex targets and
        normal noise, :math:`-\sigma\gamma` for one-hot targets and Gumbel noise);
        ``loss.value_and_grad(theta, y)`` also returns :math:`y_\sigma(\theta) - y`.
        ``value="port"`` reports :math:`\sum (y_\sigma - y)^2` per example instead, the value
        the references print (the TensorFlow original and its PyTorch port); the gradient is
        the same.
    """
    if isinstance(func, Perturbed):
        func = func.func
    options = PerturbedOptions(
        num_samples, sigma, noise, batched, rng, chunk_size, sampling, False, progress, executor
    )
    return FenchelYoungLoss(Perturbed(func, options), maximize, value)
