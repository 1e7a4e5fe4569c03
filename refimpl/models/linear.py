r"""A dense affine map on the last axis, and flattening of trailing axes.

``Linear``: :math:`y = W x + b` for :math:`W \in \mathbb{R}^{m \times n}` acting on the last
axis of ``x`` (``(..., n) -> (..., m)``):

.. math::  J v = W v, \qquad J^\top u = W^\top u.

``Flatten(ndim)``: merges the last ``ndim`` axes (C order), ``J`` is a reshape and
``J^T`` the inverse reshape.
"""

from __future__ import annotations

import math
from typing import Any

from refimpl.models.base import Linearization, Model
from refimpl.models.conv import same_weights_place
from refimpl.validation import check_array, check_finite, check_int, check_like

__all__ = ["Flatten", "Linear"]


class Linear(Model):
    """``y = x @ W.T + b`` on the last axis; ``weight`` (m, n), ``bias`` (m,) or None."""

    def __init__(self, weight: Any, bias: Any = None) -> None:
        xp, _ = check_array(weight, name="weight")
        if weight.ndim != 2:
            raise ValueError(f"weight must have shape (m, n), got {tuple(weight.shape)}")
        check_finite(weight, name="weight")
        if bias is not None:
            check_like(bias, weight, name="bias", ref_name="weight")
            if tuple(bias.shape) != (weight.shape[0],):
                raise ValueError(
                    f"bias must have shape ({weight.shape[0]},), got {tuple(bias.shape)}"
                )
            check_finite(bias, name="bias")
        self.xp, self.weight, self.bias = xp, weight, bias
        self._cast: dict[str, tuple[Any, Any]] = {}

    def __repr__(self) -> str:
        m, n = self.weight.shape
        return f"Linear({n} -> {m}{', bias' if self.bias is not None else ''})"

    def _check_input(self, x: Any) -> None:
        check_array(x, name="x")
        same_weights_place(x, self.weight, what="Linear")
        if x.ndim < 1 or x.shape[-1] != self.weight.shape[1]:
            raise ValueError(
                f"x must have shape (..., {self.weight.shape[1]}) (n = weight.shape[1]), "
                f"got {tuple(x.shape)}"
            )

    def _weights(self, dtype: Any) -> tuple[Any, Any]:
        key = str(dtype)
        if key not in self._cast:
            xp = self.xp
            cast = lambda a: a if a is None or a.dtype == dtype else xp.astype(a, dtype)  # noqa: E731
            self._cast[key] = (cast(self.weight), cast(self.bias))
        return self._cast[key]

    def _matvec(self, v: Any) -> Any:  # W v on the last axis
        w, _ = self._weights(v.dtype)
        return self.xp.matmul(v, self.xp.matrix_transpose(w))

    def _rmatvec(self, u: Any) -> Any:  # W^T u on the last axis
        w, _ = self._weights(u.dtype)
        return self.xp.matmul(u, w)

    def _forward(self, x: Any) -> Any:
        _, b = self._weights(x.dtype)
        y = self._matvec(x)
        return y if b is None else y + b

    def _linearize(self, x: Any) -> Linearization:
        return Linearization(x, self._forward(x), self._matvec, self._rmatvec)


class Flatten(Model):
    """Merge the last ``ndim`` axes into one (default 3: an image's (C, H, W)).

    ``ndim`` is any integral number >= 1 (numpy integers included). Axes of size 0 are fine:
    ``(0, 3, 4)`` with ``ndim=2`` gives the empty ``(0, 12)``, ``(2, 0, 4)`` gives ``(2, 0)``.
    """

    def __init__(self, ndim: int = 3) -> None:
        self.ndim = check_int("ndim", ndim, low=1)

    def __repr__(self) -> str:
        return f"Flatten(ndim={self.ndim})"

    def _check_input(self, x: Any) -> None:
        check_array(x, name="x")
        if x.ndim < self.ndim:
            raise ValueError(f"x must have at least {self.ndim} axes, got shape {tuple(x.shape)}")

    def _merge(self, xp: Any, a: Any) -> Any:
        """``a`` with its last ``ndim`` axes merged (their size spelled out: a reshape to
        ``(*lead, -1)`` is ambiguous when a leading axis has size 0)."""
        cut = a.ndim - self.ndim
        return xp.reshape(a, (*a.shape[:cut], math.prod(a.shape[cut:])))

    def _forward(self, x: Any) -> Any:
        xp, _ = check_array(x, name="x")
        return self._merge(xp, x)

    def _linearize(self, x: Any) -> Linearization:
        xp, _ = check_array(x, name="x")
        tail = tuple(x.shape[x.ndim - self.ndim :])

        def jvp(v: Any) -> Any:
            return self._merge(xp, v)

        def vjp(u: Any) -> Any:
            return xp.reshape(u, (*u.shape[:-1], *tail))

        return Linearization(x, self._forward(x), jvp, vjp)
