r"""The derivative protocol (docs/design.md, "One protocol for everything differentiable").

A differentiable model :math:`f: \mathbb{R}^n \to \mathbb{R}^m` offers

* ``f(x)``: the forward pass :math:`y = f(x)`;
* ``f.jvp(x, v)``: the Jacobian-vector product :math:`J(x)\, v` (``v`` shaped like ``x``);
* ``f.vjp(x, u)``: the vector-Jacobian product :math:`J(x)^\top u` (``u`` shaped like ``y``);

where a tangent ``v`` (cotangent ``u``) may carry one leading batch axis of ``k`` vectors:
``v.shape == (k, *x.shape)`` gives ``(k, *y.shape)``, one batched call instead of ``k``.

``f.linearize(x)`` returns a :class:`Linearization`: the output ``y`` and the two products at
that point, with everything they need computed once (the forward pass is never repeated per
product). Products through ``jvp``/``vjp`` on the model re-linearize at every call; products
through a linearization do not.

The models of this package act on the *trailing* axes of their input (a ``Conv2d`` on the
last three, ``(C, H, W)``; a ``Linear`` on the last one) and treat every leading axis as a
batch, so a tangent batch is just one more leading axis and needs no special code.

Empty arrays: a leading (batch) axis of size 0 gives the empty result of the output's shape,
for the output and both products. The axes a model acts on must fit it (``Conv2d`` refuses
an image with ``H = 0`` or ``W = 0`` with ValueError, as torch does); ``Flatten`` and
``Linear`` take zero-size trailing axes too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from backends import namespace_and_device
from refimpl.validation import check_array, check_like, is_array, leading_batch

__all__ = ["Linearization", "Model", "linearize"]


class Linearization:
    """A model linearized at ``x``: ``y = f(x)``, ``jvp(v) = J v`` and ``vjp(u) = J^T u``.

    ``jvp`` and ``vjp`` check their argument (namespace, device, dtype, shape with an optional
    leading batch axis) and then call the unchecked ``jvp_fn``/``vjp_fn`` that a model builds;
    composite models chain the unchecked ones.
    """

    def __init__(
        self, x: Any, y: Any, jvp_fn: Callable[[Any], Any], vjp_fn: Callable[[Any], Any]
    ) -> None:
        self.x, self.y = x, y
        self.jvp_fn, self.vjp_fn = jvp_fn, vjp_fn

    @property
    def in_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape)

    @property
    def out_shape(self) -> tuple[int, ...]:
        return tuple(self.y.shape)

    def jvp(self, v: Any) -> Any:
        """:math:`J v`; ``v`` shaped like ``x`` or ``(k, *x.shape)``."""
        check_like(v, self.x, name="v (the tangent)", ref_name="x")
        leading_batch(v, self.in_shape, name="v (the tangent)", expected="x")
        return self.jvp_fn(v)

    def vjp(self, u: Any) -> Any:
        r""":math:`J^\top u`; ``u`` shaped like ``y`` or ``(k, *y.shape)``."""
        check_like(u, self.y, name="u (the cotangent)", ref_name="the model output")
        leading_batch(u, self.out_shape, name="u (the cotangent)", expected="the model output")
        return self.vjp_fn(u)


class Model:
    """Base class of the explicit-derivative models: subclasses implement ``_linearize``
    (and may override ``_forward`` with a cheaper pass that caches nothing).

    A model takes ``x`` only: extra positional arguments (captum's
    ``additional_forward_args``, passed on by ``refimpl.attr``) raise a TypeError naming the
    model before any work.
    """

    def __call__(self, x: Any, *args: Any) -> Any:
        self._refuse_extra_args(args)
        self._check_input(x)
        return self._forward(x)

    def linearize(self, x: Any, *args: Any) -> Linearization:
        """The model at ``x``: output and products, computed once, reused by every product."""
        self._refuse_extra_args(args)
        self._check_input(x)
        return self._linearize(x)

    def jvp(self, x: Any, v: Any) -> Any:
        """:math:`J(x) v` (``v`` shaped like ``x``, or ``(k, *x.shape)``)."""
        return self.linearize(x).jvp(v)

    def vjp(self, x: Any, u: Any) -> Any:
        r""":math:`J(x)^\top u` (``u`` shaped like ``f(x)``, or ``(k, *f(x).shape)``)."""
        return self.linearize(x).vjp(u)

    def _refuse_extra_args(self, args: tuple[Any, ...]) -> None:
        if args:
            raise TypeError(
                f"{self!r} takes no additional forward arguments (refimpl models take no "
                "additional_forward_args): it is called as model(x), model.linearize(x), "
                f"model.jvp(x, v) and model.vjp(x, u); got {len(args)} more argument(s) after x"
            )

    # -- for subclasses -------------------------------------------------------------------
    def _check_input(self, x: Any) -> None:
        check_array(x, name="x")

    def _forward(self, x: Any) -> Any:
        return self._linearize(x).y

    def _linearize(self, x: Any) -> Linearization:
        raise NotImplementedError


def linearize(model: Any, x: Any, *args: Any) -> Linearization:
    """A :class:`Linearization` of any object implementing the protocol.

    Uses ``model.linearize(x, *args)`` when it exists; otherwise (a user's class with only
    ``__call__``, ``jvp`` and ``vjp``) evaluates ``y = model(x, *args)`` once and forwards the
    products to ``model.jvp(x, ., *args)`` and ``model.vjp(x, ., *args)``. ``args`` are extra
    forward arguments (captum's ``additional_forward_args``); the models of this package take
    none and raise TypeError.
    """
    if isinstance(model, Model) or callable(getattr(model, "linearize", None)):
        return model.linearize(x, *args)
    missing = [] if callable(model) else ["__call__"]
    missing += [a for a in ("jvp", "vjp") if not callable(getattr(model, a, None))]
    if missing:
        raise TypeError(
            "model must implement the derivative protocol: model(x), model.jvp(x, v) and "
            f"model.vjp(x, u); {type(model).__name__} lacks " + ", ".join(missing)
        )
    check_array(x, name="x")
    y = model(x, *args)
    try:
        if not is_array(y):
            raise TypeError("not an array")
        namespace_and_device(x, y)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"model(x) must return an array of x's library and device, got {type(y).__name__} "
            f"({exc})"
        ) from None
    return Linearization(x, y, lambda v: model.jvp(x, v, *args), lambda u: model.vjp(x, u, *args))
