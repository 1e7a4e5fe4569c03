"""Top-q sparsification and clamping (rai_toolbox's ``optim.misc``), as parameter-transforming
optimizers over ``refimpl.optim.transforms``.

* ``TopQGradientOptimizer``: keep the ``round((1 - q) D)`` largest ``|G_i|`` of each row
  (signed values), zero the rest; with ``dq > 0``, ``q`` is drawn per parameter and step from
  ``generator`` in ``[max(0, q - dq), min(1, q + dq)]`` (the documented draws, bit for bit).
* ``ClampedGradientOptimizer`` / ``ClampedParameterOptimizer``: clamp the gradient before, or
  the parameter after, the inner step to ``[clamp_min, clamp_max]``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.optim import SGD

from refimpl.optim import sample_q, top_q_gradient
from refimpl.torch.optim.inplace import clamp_
from refimpl.torch.optim.optimizer import ParamTransformingOptimizer, group_defaults
from refimpl.validation import check_real

__all__ = ["ClampedGradientOptimizer", "ClampedParameterOptimizer", "TopQGradientOptimizer"]


class TopQGradientOptimizer(ParamTransformingOptimizer):
    """Top-q gradient sparsification before the inner step.

    ``TopQGradientOptimizer(params, InnerOpt=SGD, *, q, dq=0.0, param_ndim=-1, defaults=None,
    generator=torch.default_generator, **inner_opt_kwargs)``; ``q`` and ``dq`` in [0, 1]
    (per group too). Ties at the cut-off keep the lowest indices (``torch.topk`` picks its own).
    """

    def __init__(
        self,
        params: Any,
        InnerOpt: Any = SGD,
        *,
        q: float,
        dq: float = 0.0,
        param_ndim: int | None = -1,
        defaults: dict[str, Any] | None = None,
        generator: torch.Generator = torch.default_generator,
        **inner_opt_kwargs: Any,
    ) -> None:
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
        self._generator = generator
        defaults = group_defaults(defaults)
        defaults.setdefault("q", q)
        defaults.setdefault("dq", dq)
        super().__init__(
            params, InnerOpt, defaults=defaults, param_ndim=param_ndim, **inner_opt_kwargs
        )

    @property
    def generator(self) -> torch.Generator:
        """The generator of the ``dq`` draws."""
        return self._generator

    def _validate_options(self, group: dict[str, Any]) -> None:
        super()._validate_options(group)
        check_real("q", group["q"], low=0.0, high=1.0)
        check_real("dq", group["dq"], low=0.0, high=1.0)

    def _pre_step_transform_(self, param: torch.Tensor, optim_group: dict[str, Any]) -> None:
        g = param.grad
        q = sample_q(optim_group["q"], optim_group["dq"], self._generator, like=g)
        g.copy_(top_q_gradient(g, q))


class _ClampedOptim(ParamTransformingOptimizer):
    def __init__(
        self,
        params: Any = None,
        InnerOpt: Any = SGD,
        *,
        clamp_min: float | None = None,
        clamp_max: float | None = None,
        defaults: dict[str, Any] | None = None,
        param_ndim: int | None = None,
        **inner_opt_kwargs: Any,
    ) -> None:
        defaults = group_defaults(defaults)
        defaults.setdefault("clamp_min", clamp_min)
        defaults.setdefault("clamp_max", clamp_max)
        super().__init__(
            params, InnerOpt, defaults=defaults, param_ndim=param_ndim, **inner_opt_kwargs
        )

    def _validate_options(self, group: dict[str, Any]) -> None:
        super()._validate_options(group)
        low, high = group["clamp_min"], group["clamp_max"]
        if low is None and high is None:
            raise ValueError("clamp_min or clamp_max (or both) must be given, got neither")
        for name, bound in (("clamp_min", low), ("clamp_max", high)):
            if bound is not None:
                check_real(name, bound, finite=False)
        if low is not None and high is not None and not low <= high:
            raise ValueError(f"clamp_min must satisfy clamp_min <= clamp_max={high!r}, got {low!r}")


class ClampedGradientOptimizer(_ClampedOptim):
    """``G <- clamp(G, clamp_min, clamp_max)`` before the inner step (NaN stays NaN).

    ``ClampedGradientOptimizer(params=None, InnerOpt=SGD, *, clamp_min=None, clamp_max=None,
    defaults=None, param_ndim=None, **inner_opt_kwargs)``.
    """

    def _pre_step_transform_(self, param: torch.Tensor, optim_group: dict[str, Any]) -> None:
        clamp_(param.grad, optim_group["clamp_min"], optim_group["clamp_max"])


class ClampedParameterOptimizer(_ClampedOptim):
    """``P <- clamp(P, clamp_min, clamp_max)`` after the inner step (every parameter).

    ``ClampedParameterOptimizer(params=None, InnerOpt=SGD, *, clamp_min=None, clamp_max=None,
    defaults=None, param_ndim=None, **inner_opt_kwargs)``.
    """

    def _post_step_transform_(self, param: torch.Tensor, optim_group: dict[str, Any]) -> None:
        clamp_(param, optim_group["clamp_min"], optim_group["clamp_max"])
