r"""Composition by the chain rule.

For :math:`f = f_L \circ \dots \circ f_1` with intermediate values
:math:`x_0 = x,\ x_\ell = f_\ell(x_{\ell-1})`:

.. math::

    J v = J_L \cdots J_1 v, \qquad J^\top u = J_1^\top \cdots J_L^\top u,
    \qquad J_\ell = \partial f_\ell (x_{\ell-1}).

``linearize(x)`` runs the forward pass once, keeping each layer's linearization; every product
after that only chains the cached layer products (forward for ``jvp``, backward for ``vjp``).
"""

from __future__ import annotations

from typing import Any

from refimpl.models.base import Linearization, Model, linearize

__all__ = ["Sequential"]


class Sequential(Model):
    """``Sequential(f1, f2, ...)``: ``y = ... f2(f1(x))``; the layers implement the protocol."""

    def __init__(self, *layers: Any) -> None:
        if not layers:
            raise ValueError("Sequential needs at least one layer")
        for i, layer in enumerate(layers):
            if not callable(layer):
                raise TypeError(f"layer {i} ({layer!r}) is not callable")
        self.layers = layers

    def __repr__(self) -> str:
        return "Sequential(" + ", ".join(repr(f) for f in self.layers) + ")"

    def _check_input(self, x: Any) -> None:
        pass  # the first layer checks

    def _forward(self, x: Any) -> Any:
        for layer in self.layers:
            x = layer(x)
        return x

    def _linearize(self, x: Any) -> Linearization:
        lins = []
        y = x
        for layer in self.layers:
            lin = linearize(layer, y)
            lins.append(lin)
            y = lin.y

        def jvp(v: Any) -> Any:
            for lin in lins:
                v = lin.jvp_fn(v)
            return v

        def vjp(u: Any) -> Any:
            for lin in reversed(lins):
                u = lin.vjp_fn(u)
            return u

        return Linearization(x, y, jvp, vjp)
