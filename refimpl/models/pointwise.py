r"""Elementwise nonlinearities :math:`y_i = f(x_i)`.

The Jacobian is diagonal, :math:`J = \operatorname{diag}(f'(x))`, so

.. math::  J v = f'(x) \odot v, \qquad J^\top u = f'(x) \odot u

and a linearization needs only :math:`f'(x)`, computed once.

Built in (each written to stay finite for every finite input):

==========  ==========================================  ===============================
name        :math:`f(x)`                                :math:`f'(x)`
==========  ==========================================  ===============================
softplus    :math:`\log(1 + e^x) = \max(x, 0) +          :math:`\sigma(x)`
            \log(1 + e^{-|x|})`
sigmoid     :math:`\sigma(x) = 1 / (1 + e^{-x})`         :math:`\sigma(x)(1 - \sigma(x))`
tanh        :math:`\tanh x`                              :math:`1 - \tanh^2 x`
relu        :math:`\max(x, 0)`                           :math:`[x > 0]` (0 at 0, as torch)
==========  ==========================================  ===============================
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from backends import namespace_and_device
from refimpl.models.base import Linearization, Model

__all__ = ["ACTIVATIONS", "Pointwise", "sigmoid", "softplus"]


def _xp(x: Any) -> Any:
    return namespace_and_device(x)[0]


def sigmoid(x: Any) -> Any:
    r""":math:`1/(1+e^{-x})` without overflow: with :math:`e = e^{-|x|}`, ``1/(1+e)`` for
    :math:`x \ge 0` and ``e/(1+e)`` otherwise."""
    xp = _xp(x)
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1 / (1 + e), e / (1 + e))


def softplus(x: Any) -> Any:
    r""":math:`\log(1+e^x)` as :math:`\max(x, 0) + \log(1 + e^{-|x|})` (never overflows)."""
    xp = _xp(x)
    return xp.maximum(x, xp.zeros_like(x)) + xp.log1p(xp.exp(-xp.abs(x)))


def _sigmoid_prime(x: Any) -> Any:
    s = sigmoid(x)
    return s * (1 - s)


def _tanh(x: Any) -> Any:
    return _xp(x).tanh(x)


def _tanh_prime(x: Any) -> Any:
    t = _xp(x).tanh(x)
    return 1 - t * t


def _relu(x: Any) -> Any:
    xp = _xp(x)
    return xp.maximum(x, xp.zeros_like(x))


def _relu_prime(x: Any) -> Any:
    xp = _xp(x)
    return xp.astype(x > 0, x.dtype)


#: name -> (f, f')
ACTIVATIONS: dict[str, tuple[Callable[[Any], Any], Callable[[Any], Any]]] = {
    "softplus": (softplus, sigmoid),
    "sigmoid": (sigmoid, _sigmoid_prime),
    "tanh": (_tanh, _tanh_prime),
    "relu": (_relu, _relu_prime),
}


class Pointwise(Model):
    """``y = f(x)`` elementwise; ``f`` a name from :data:`ACTIVATIONS`, or a callable with its
    derivative ``fprime`` (both map an array to an array of the same shape)."""

    def __init__(self, f: str | Callable[[Any], Any] = "softplus", fprime: Any = None) -> None:
        if isinstance(f, str):
            if f not in ACTIVATIONS:
                raise ValueError(f"f must be one of {sorted(ACTIVATIONS)} or a callable, got {f!r}")
            if fprime is not None:
                raise TypeError(f"fprime is given by the built-in {f!r}; pass fprime=None")
            self.name = f
            self.f, self.fprime = ACTIVATIONS[f]
        elif callable(f):
            if not callable(fprime):
                raise TypeError(
                    "a user-given f needs its derivative: Pointwise(f, fprime=...) with fprime "
                    f"callable, got {fprime!r}"
                )
            self.name = getattr(f, "__name__", "f")
            self.f, self.fprime = f, fprime
        else:
            raise TypeError(f"f must be a name or a callable, got {f!r} ({type(f).__name__})")

    def __repr__(self) -> str:
        return f"Pointwise({self.name})"

    def _apply(self, fn: Callable[[Any], Any], x: Any, what: str) -> Any:
        out = fn(x)
        if getattr(out, "shape", None) != x.shape or getattr(out, "dtype", None) != x.dtype:
            raise TypeError(
                f"{what} must return an array of the input's shape {tuple(x.shape)} and dtype "
                f"{x.dtype}, got {getattr(out, 'shape', type(out).__name__)} "
                f"{getattr(out, 'dtype', '')}"
            )
        return out

    def _forward(self, x: Any) -> Any:
        return self._apply(self.f, x, "f")

    def _linearize(self, x: Any) -> Linearization:
        d = self._apply(self.fprime, x, "fprime")
        return Linearization(x, self._forward(x), lambda v: d * v, lambda u: d * u)
