r"""Gradient attributions: saliency and input x gradient (explicit derivatives, no autograd).

For a model :math:`f` and the target score :math:`s(x) = f(x)_t` of each example
(``refimpl.attr.targets``):

* **Saliency** (Simonyan et al. 2014, https://arxiv.org/abs/1312.6034):
  :math:`|\nabla_x s(x)|` (``abs=True``, captum's default) or the signed gradient
  :math:`\nabla_x s(x)` (``abs=False``, what SmoothGrad averages in its paper).
* **InputXGradient** (Shrikumar et al. 2016, https://arxiv.org/abs/1605.01713):
  :math:`x \odot \nabla_x s(x)`.

The gradient is one vector-Jacobian product, :math:`\nabla_x s = J(x)^\top e_t`, so any
model of the derivative protocol works: ``refimpl.models`` on every backend, or
``refimpl.torch.as_model(module)`` on torch. Inputs are one array or a tuple of arrays
(then the model takes the tuple, see :func:`refimpl.attr.targets.target_gradients`);
the result has the same form.
"""

from __future__ import annotations

import inspect
from typing import Any

from backends import namespace_and_device
from refimpl.attr.baselines import convergence_delta
from refimpl.attr.inputs import as_args_tuple, as_input_tuple
from refimpl.attr.targets import forward_scores, target_gradients
from refimpl.models.base import Model
from refimpl.validation import check_bool

__all__ = ["Attribution", "InputXGradient", "Saliency"]


def mirror(is_tuple: bool, arrays: tuple[Any, ...]) -> Any:
    """A tuple for tuple inputs, else the single array."""
    return tuple(arrays) if is_tuple else arrays[0]


class Attribution:
    """Base of the attribution methods: ``attribute(inputs, **kwargs)``, and the two flags
    that :class:`~refimpl.attr.NoiseTunnel` reads (``has_convergence_delta()``,
    ``multiplies_by_inputs``).

    The derivatives come from two methods that a front end may replace (the torch one uses
    autograd): ``gradients(xs, target, args)`` (the gradient of each example's target score
    with respect to every input) and ``scores(xs, target, args)`` (the scores themselves).
    """

    multiplies_by_inputs: bool = False

    def __init__(self, forward_func: Any) -> None:
        if not callable(forward_func):
            raise TypeError(
                f"forward_func must be a model (a callable with the derivative protocol), got "
                f"{type(forward_func).__name__}"
            )
        self.forward_func = forward_func

    def has_convergence_delta(self) -> bool:
        return False

    def compute_convergence_delta(
        self,
        attributions: Any,
        start_point: Any,
        end_point: Any,
        target: Any = None,
        additional_forward_args: Any = None,
    ) -> Any:
        r"""captum's completeness delta, per example: :math:`\sum_i a_i - (s(x) - s(x'))`
        with ``x`` the ``end_point`` (inputs), ``x'`` the ``start_point`` (baselines: None,
        a number, an array, or a tuple of them) and ``s`` the target score; zero for exact
        integrated gradients. ``attribute(..., return_convergence_delta=True)`` returns the
        same numbers bit for bit."""
        return convergence_delta(
            self, attributions, start_point, end_point, target, additional_forward_args
        )

    def attribute_future(self, *args: Any, **kwargs: Any) -> Any:
        """NotImplementedError, as in captum 0.9 for Saliency, InputXGradient,
        IntegratedGradients and NoiseTunnel (captum implements it only for perturbation
        methods whose forward function returns a ``torch.futures.Future``)."""
        raise NotImplementedError(f"attribute_future is not implemented for {type(self).__name__}")

    def check_forward_args(self, args: tuple[Any, ...]) -> None:
        """TypeError, before any work, when the model cannot take the extra arguments
        ``args``: the refimpl models map one array to its output (``linearize(x)``) and take
        no ``additional_forward_args``; a model of several arguments implements
        ``model(x, *args)`` and ``model.vjp(x, u, *args)`` (or ``model.linearize(x, *args)``).
        """
        if args and not _takes_extra_args(self.forward_func, len(args)):
            raise TypeError(
                f"additional_forward_args were given ({len(args)}), but "
                f"{type(self.forward_func).__name__} takes none: refimpl models take no "
                "additional_forward_args (a model of several arguments implements "
                "model(x, *args) and model.vjp(x, u, *args); the torch front end's "
                "forward_func takes them)"
            )

    def forward_args(self, additional_forward_args: Any) -> tuple[Any, ...]:
        """``additional_forward_args`` as a tuple, checked by :meth:`check_forward_args`."""
        args = as_args_tuple(additional_forward_args)
        self.check_forward_args(args)
        return args

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.forward_func!r})"

    def gradients(self, xs: tuple[Any, ...], target: Any, args: tuple[Any, ...]) -> tuple:
        return target_gradients(self.forward_func, xs, target, args)[0]

    def scores(self, xs: tuple[Any, ...], target: Any, args: tuple[Any, ...]) -> Any:
        return forward_scores(self.forward_func, xs, target, args)


class Saliency(Attribution):
    """``Saliency(model, abs=True).attribute(inputs, target=None, abs=None,
    additional_forward_args=None)``: the gradient of the target score (its absolute value
    when ``abs``; ``abs=None`` uses the constructor's choice)."""

    def __init__(self, forward_func: Any, abs: bool = True) -> None:
        super().__init__(forward_func)
        self.abs = check_bool("abs", abs)

    def attribute(
        self,
        inputs: Any,
        target: Any = None,
        abs: bool | None = None,
        additional_forward_args: Any = None,
    ) -> Any:
        is_tuple, xs = as_input_tuple(inputs)
        use_abs = self.abs if abs is None else check_bool("abs", abs)
        grads = self.gradients(xs, target, self.forward_args(additional_forward_args))
        if use_abs:
            xp, _ = namespace_and_device(*grads)
            grads = tuple(xp.abs(g) for g in grads)
        return mirror(is_tuple, grads)


class InputXGradient(Attribution):
    r"""``InputXGradient(model).attribute(inputs, target=None, additional_forward_args=None)``:
    :math:`x \odot \nabla_x s(x)`."""

    multiplies_by_inputs = True

    def attribute(
        self, inputs: Any, target: Any = None, additional_forward_args: Any = None
    ) -> Any:
        is_tuple, xs = as_input_tuple(inputs)
        grads = self.gradients(xs, target, self.forward_args(additional_forward_args))
        return mirror(is_tuple, tuple(x * g for x, g in zip(xs, grads)))


def _takes_extra_args(model: Any, n: int) -> bool:
    """Whether ``model`` can take ``n`` extra forward arguments: never for the refimpl models
    (their ``linearize(x, *args)`` refuses any); otherwise as the signature of the method
    that ``target_gradients`` calls (``linearize``, else ``vjp``) allows."""
    if isinstance(model, Model):
        return False
    if callable(getattr(model, "linearize", None)):
        return _accepts(model.linearize, 1 + n)
    if callable(getattr(model, "vjp", None)):
        return _accepts(model.vjp, 2 + n)
    return True  # target_gradients says what such a model lacks


def _accepts(fn: Any, n_args: int) -> bool:
    """Whether ``fn`` can be called with ``n_args`` positional arguments (True when its
    signature cannot be read)."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return True
    try:
        signature.bind(*([None] * n_args))
    except TypeError:
        return False
    return True
