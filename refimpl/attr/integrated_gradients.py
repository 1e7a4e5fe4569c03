r"""Integrated gradients (Sundararajan, Taly & Yan 2017, https://arxiv.org/abs/1703.01365).

For an input :math:`x`, a baseline :math:`x'` and the target score :math:`s`,

.. math::

    \mathrm{IG}(x) = (x - x') \odot \int_0^1 \nabla s\big(x' + \alpha (x - x')\big)\, d\alpha
    \approx (x - x') \odot \sum_{s} w_s\, \nabla s\big(x' + \alpha_s (x - x')\big)

with the nodes and weights of a quadrature rule (``refimpl.attr.quadrature``). With
``multiply_by_inputs=False`` the factor :math:`(x - x')` is left out (captum's "local" IG).

Completeness: :math:`\sum_i \mathrm{IG}_i(x) = s(x) - s(x')` exactly for the integral, so
the *convergence delta* :math:`\sum_i \mathrm{IG}_i - (s(x) - s(x'))` (per example, over
every input) measures the quadrature error.

The path points of all steps go through the model as one batch of ``n_steps * B`` rows,
step-major (row ``s*B + b``, as captum), or in batches of ``internal_batch_size`` rows;
each batch costs one vector-Jacobian product of the derivative protocol. Each batch's
weighted gradient sum is multiplied by :math:`(x - x')` before the batches are added, as
captum does, so the result has captum's rounding for every ``internal_batch_size``.
"""

from __future__ import annotations

from typing import Any

from backends import namespace_and_device
from refimpl.attr.baselines import as_baselines, completeness_delta
from refimpl.attr.expand import expand_args, expand_target
from refimpl.attr.gradient import Attribution, mirror
from refimpl.attr.inputs import as_args_tuple, as_input_tuple
from refimpl.attr.quadrature import METHODS, quadrature
from refimpl.validation import check_bool, check_int

__all__ = ["IntegratedGradients"]


class IntegratedGradients(Attribution):
    """``IntegratedGradients(model, multiply_by_inputs=True, *, n_steps=50,
    method="gausslegendre").attribute(inputs, baselines=None, target=None,
    additional_forward_args=None, n_steps=None, method=None, internal_batch_size=None,
    return_convergence_delta=False)``; ``n_steps``/``method`` of the call override the
    constructor's. ``baselines``: None (zeros), a number, or an array of the input's shape or
    of shape ``(1, *input.shape[1:])``, one per input; real (a complex baseline is a
    TypeError); a numpy scalar or a 0-d array is a number, which must be finite and fit the
    inputs' dtype (ValueError); the entries of a baseline array propagate as the inputs' do.
    No examples (``B = 0``): empty attributions and deltas."""

    def __init__(
        self,
        forward_func: Any,
        multiply_by_inputs: bool = True,
        *,
        n_steps: int = 50,
        method: str = "gausslegendre",
    ) -> None:
        super().__init__(forward_func)
        self._multiply_by_inputs = check_bool("multiply_by_inputs", multiply_by_inputs)
        quadrature(method, n_steps)  # validates both
        self.n_steps, self.method = n_steps, method

    @property
    def multiplies_by_inputs(self) -> bool:
        return self._multiply_by_inputs

    def has_convergence_delta(self) -> bool:
        return True

    def attribute(
        self,
        inputs: Any,
        baselines: Any = None,
        target: Any = None,
        additional_forward_args: Any = None,
        n_steps: int | None = None,
        method: str | None = None,
        internal_batch_size: int | None = None,
        return_convergence_delta: bool = False,
    ) -> Any:
        is_tuple, xs = as_input_tuple(inputs)
        xp, dev = namespace_and_device(*xs)
        batch = xs[0].shape[0]
        args = self.forward_args(additional_forward_args)
        check_bool("return_convergence_delta", return_convergence_delta)
        if method is not None and method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
        alphas, weights = quadrature(
            self.method if method is None else method, self.n_steps if n_steps is None else n_steps
        )
        n = len(alphas)
        per_call = n
        if internal_batch_size is not None:
            rows = check_int("internal_batch_size", internal_batch_size, low=1)
            per_call = max(1, rows // batch) if batch else n  # no examples: one empty call
        base = as_baselines(baselines, xs)
        diffs = tuple(x - b for x, b in zip(xs, base))

        totals: list[Any] = [None] * len(xs)
        for s0 in range(0, n, per_call):
            m = min(per_call, n - s0)
            paths = []
            for b, d in zip(base, diffs):  # x' + alpha_s (x - x'), rows s*B + b
                a = xp.asarray(alphas[s0 : s0 + m], dtype=d.dtype, device=dev)
                a = xp.reshape(a, (m,) + (1,) * d.ndim)
                paths.append(xp.reshape(b[None, ...] + a * d[None, ...], (m * batch, *d.shape[1:])))
            tgt = expand_target(target, batch, m, tile=True, ref=xs[0])
            extra = as_args_tuple(
                expand_args(args, batch, m, tile=True, ref=xs[0]) if args else None
            )
            grads = self.gradients(tuple(paths), tgt, extra)
            for i, g in enumerate(grads):  # sum_s w_s grad_s, times (x - x') per batch
                w = xp.asarray(weights[s0 : s0 + m], dtype=g.dtype, device=dev)
                g = xp.reshape(g, (m, batch, *g.shape[1:]))
                part = xp.sum(xp.reshape(w, (m,) + (1,) * (g.ndim - 1)) * g, axis=0)
                if self._multiply_by_inputs:  # in each batch of steps, as captum: same digits
                    part = part * diffs[i]
                totals[i] = part if totals[i] is None else totals[i] + part

        attrs = tuple(totals)
        if not return_convergence_delta:
            return mirror(is_tuple, attrs)
        # completeness error: sum_i IG_i - (s(x) - s(x')), as compute_convergence_delta
        return mirror(is_tuple, attrs), completeness_delta(self, attrs, base, xs, target, args)
