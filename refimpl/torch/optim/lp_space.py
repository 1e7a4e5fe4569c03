r"""Gradient transforms for Lp geometry (rai_toolbox's ``optim.lp_space``), each the pre-step
(and for the projected ones, post-step) transform of a ``ParamTransformingOptimizer``, computed
per row of the ``param_ndim`` view by ``refimpl.optim``:

======================================  ==============================  =======================
class                                   pre-step on the gradient G      post-step on P
======================================  ==============================  =======================
``SignedGradientOptim``                 ``sign(G)``                     --
``L1NormedGradientOptim``               ``G / max(||G||_1, eps)``       --
``L2NormedGradientOptim``               ``G / max(||G||_2, eps)``       --
``L2ProjectedOptim``                    as L2Normed                     onto the L2 ball
``LinfProjectedOptim``                  as Signed                       onto the Linf ball
``L1qNormedGradientOptim``              top-q, sign, L1 normalisation   --
======================================  ==============================  =======================

(``eps`` = ``div_by_zero_eps``, per group here.) Differences from rai_toolbox 0.2.1: ``sign(NaN)``
is NaN (torch's ``sign`` gives 0); a zero gradient stays zero in float16; norms neither
overflow nor underflow; ``epsilon`` is a required, validated option (``>= 0``): omitting it
(in the keyword and in ``defaults``) raises a TypeError that says what rai-toolbox did
instead (it silently used ``epsilon=0.001``, see :data:`RAI_EPSILON_DEFAULT`).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import torch
from torch.optim import SGD

from refimpl.optim import RENORM_MARGIN, l1q_gradient, sample_q
from refimpl.torch.optim.inplace import clamp_, normalize_, project_l2_, sign_
from refimpl.torch.optim.misc import TopQGradientOptimizer
from refimpl.torch.optim.optimizer import (
    ChainedParamTransformingOptimizer,
    ParamTransformingOptimizer,
    group_defaults,
)
from refimpl.validation import TINY, check_real

#: what rai-toolbox 0.2.1's ``L2ProjectedOptim``/``LinfProjectedOptim`` use when ``epsilon``
#: is omitted: their ``REQUIRED`` marker is ``torch.optim.SGD``'s default ``lr``, which
#: current torch sets to 0.001 (older torch made it a sentinel that raised)
RAI_EPSILON_DEFAULT = 0.001


class _Required:
    """The default of ``epsilon`` where it is required: its absence raises a TypeError
    that says what rai-toolbox defaulted to."""

    def __repr__(self) -> str:
        return "<required>"


REQUIRED: Any = _Required()


def _require_epsilon(cls: str, ball: str, epsilon: Any, defaults: dict[str, Any]) -> None:
    if epsilon is REQUIRED and "epsilon" not in defaults:
        raise TypeError(
            f"{cls}() missing the keyword argument 'epsilon', the radius of the {ball} ball "
            "that every parameter (row) is projected onto. rai-toolbox 0.2.1 defaulted to "
            f"epsilon={RAI_EPSILON_DEFAULT} when it was omitted (its REQUIRED marker is "
            "torch.optim.SGD's default lr under current torch), silently confining the "
            "parameters to that tiny ball; here the radius must be a choice. Pass "
            f"epsilon={RAI_EPSILON_DEFAULT} for rai's behaviour."
        )


__all__ = [
    "L1NormedGradientOptim",
    "L1qNormedGradientOptim",
    "L2NormedGradientOptim",
    "L2ProjectedOptim",
    "LinfProjectedOptim",
    "SignedGradientOptim",
]


class SignedGradientOptim(ParamTransformingOptimizer):
    """``G <- sign(G)`` before the inner step (FGSM-style steps with SGD).

    ``SignedGradientOptim(params, InnerOpt=SGD, *, grad_scale=1.0, grad_bias=0.0,
    defaults=None, param_ndim=None, **inner_opt_kwargs)``; ``sign(NaN) = NaN``.
    """

    def __init__(
        self,
        params: Any,
        InnerOpt: Any = SGD,
        *,
        grad_scale: float = 1.0,
        grad_bias: float = 0.0,
        defaults: dict[str, Any] | None = None,
        param_ndim: int | None = None,
        **inner_opt_kwargs: Any,
    ) -> None:
        super().__init__(
            params,
            InnerOpt,
            param_ndim=param_ndim,
            grad_scale=grad_scale,
            grad_bias=grad_bias,
            defaults=defaults,
            **inner_opt_kwargs,
        )

    def _pre_step_transform_(self, param: torch.Tensor, optim_group: dict[str, Any]) -> None:
        sign_(param.grad)


class _LpNormOptimizer(ParamTransformingOptimizer):
    """``G <- G / max(||G||_p, div_by_zero_eps)`` per row; ``p`` is the class's norm order."""

    _p: int
    _rai_missing = ("div_by_zero_eps",)

    def __init__(
        self,
        params: Any,
        InnerOpt: Any = SGD,
        *,
        param_ndim: int | None = -1,
        defaults: dict[str, Any] | None = None,
        grad_scale: float = 1.0,
        grad_bias: float = 0.0,
        div_by_zero_eps: float = TINY,
        **kwargs: Any,
    ) -> None:
        defaults = group_defaults(defaults)
        defaults.setdefault("div_by_zero_eps", div_by_zero_eps)
        super().__init__(
            params,
            InnerOpt,
            param_ndim=param_ndim,
            grad_scale=grad_scale,
            grad_bias=grad_bias,
            defaults=defaults,
            **kwargs,
        )

    @property
    def p(self) -> int:
        """The order of the norm (1 or 2)."""
        return self._p

    def _validate_options(self, group: dict[str, Any]) -> None:
        super()._validate_options(group)
        check_real("div_by_zero_eps", group["div_by_zero_eps"], low=0.0)

    def _applied_scalars(self) -> set[str]:
        return super()._applied_scalars() | {"div_by_zero_eps"}  # max(||G||, eps) in G's dtype

    def _pre_step_transform_(self, param: torch.Tensor, optim_group: dict[str, Any]) -> None:
        normalize_(param.grad, self._p, optim_group["div_by_zero_eps"])


class L1NormedGradientOptim(_LpNormOptimizer):
    """``G <- G / max(||G||_1, div_by_zero_eps)`` per row before the inner step."""

    _p = 1


class L2NormedGradientOptim(_LpNormOptimizer):
    """``G <- G / max(||G||_2, div_by_zero_eps)`` per row before the inner step."""

    _p = 2


class L2ProjectedOptim(L2NormedGradientOptim):
    """L2-normalised gradient, inner step, then each row projected onto the L2 ball of radius
    ``epsilon`` (``torch.renorm``'s arithmetic: ``refimpl.optim.project_l2_ball(...,
    margin=1e-7)``), every parameter, also those without a gradient.

    ``L2ProjectedOptim(params, InnerOpt=SGD, *, epsilon, param_ndim=-1, grad_scale=1.0,
    grad_bias=0.0, defaults=None, div_by_zero_eps=tiny, **inner_opt_kwargs)``; ``epsilon``
    (per group too) must be finite and ``>= 0`` (0: the parameters are zeroed).
    """

    def __init__(
        self,
        params: Any,
        InnerOpt: Any = SGD,
        *,
        epsilon: float = REQUIRED,
        param_ndim: int | None = -1,
        grad_scale: float = 1.0,
        grad_bias: float = 0.0,
        defaults: dict[str, Any] | None = None,
        div_by_zero_eps: float = TINY,
        **inner_opt_kwargs: Any,
    ) -> None:
        defaults = group_defaults(defaults)
        _require_epsilon("L2ProjectedOptim", "L2", epsilon, defaults)
        defaults.setdefault("epsilon", epsilon)
        super().__init__(
            params,
            InnerOpt,
            defaults=defaults,
            param_ndim=param_ndim,
            grad_scale=grad_scale,
            grad_bias=grad_bias,
            div_by_zero_eps=div_by_zero_eps,
            **inner_opt_kwargs,
        )

    def _validate_options(self, group: dict[str, Any]) -> None:
        super()._validate_options(group)
        check_real("epsilon", group["epsilon"], low=0.0)

    def _post_step_transform_(self, param: torch.Tensor, optim_group: dict[str, Any]) -> None:
        project_l2_(param, optim_group["epsilon"], RENORM_MARGIN)


class LinfProjectedOptim(SignedGradientOptim):
    """Signed gradient, inner step, then a clip to ``[-epsilon, epsilon]`` (PGD steps).

    ``LinfProjectedOptim(params, InnerOpt=SGD, *, epsilon, param_ndim=None, grad_scale=1.0,
    grad_bias=0.0, defaults=None, **inner_opt_kwargs)``; ``epsilon >= 0``, and one beyond the
    parameter's dtype clips at its largest finite value (no overflow in float16).
    """

    def __init__(
        self,
        params: Any,
        InnerOpt: Any = SGD,
        *,
        epsilon: float = REQUIRED,
        param_ndim: int | None = None,
        grad_scale: float = 1.0,
        grad_bias: float = 0.0,
        defaults: dict[str, Any] | None = None,
        **inner_opt_kwargs: Any,
    ) -> None:
        defaults = group_defaults(defaults)
        _require_epsilon("LinfProjectedOptim", "Linf", epsilon, defaults)
        defaults.setdefault("epsilon", epsilon)
        super().__init__(
            params,
            InnerOpt,
            defaults=defaults,
            param_ndim=param_ndim,
            grad_scale=grad_scale,
            grad_bias=grad_bias,
            **inner_opt_kwargs,
        )

    def _validate_options(self, group: dict[str, Any]) -> None:
        super()._validate_options(group)
        check_real("epsilon", group["epsilon"], low=0.0)

    def _post_step_transform_(self, param: torch.Tensor, optim_group: dict[str, Any]) -> None:
        epsilon = optim_group["epsilon"]
        clamp_(param, -epsilon, epsilon)  # the Linf ball is a box


class L1qNormedGradientOptim(ChainedParamTransformingOptimizer):
    """The chain TopQ -> Signed -> L1Normed (Roberts & Tsiligkaridis 2021): keep the
    ``round((1 - q) D)`` largest ``|G_i|`` per row, take their signs, L1-normalise.

    ``L1qNormedGradientOptim(params, InnerOpt=SGD, *, q, dq=0.0, param_ndim=-1,
    grad_scale=1.0, grad_bias=0.0, defaults=None, div_by_zero_eps=tiny,
    generator=torch.default_generator, **inner_opt_kwargs)``. The three transforms run as one
    (``refimpl.optim.l1q_gradient``, equal to the chain); with ``dq > 0`` each parameter's
    ``q`` is drawn per step from ``generator`` as the documented library does. Tie rule at the
    top-q cut-off: lowest index (``refimpl.optim.transforms``).
    """

    def __init__(
        self,
        params: Any,
        InnerOpt: Any = SGD,
        *,
        q: float,
        dq: float = 0.0,
        param_ndim: int | None = -1,
        grad_scale: float = 1.0,
        grad_bias: float = 0.0,
        defaults: dict[str, Any] | None = None,
        div_by_zero_eps: float = TINY,
        generator: torch.Generator = torch.default_generator,
        **inner_opt_kwargs: Any,
    ) -> None:
        defaults = group_defaults(defaults)
        defaults.setdefault("div_by_zero_eps", div_by_zero_eps)  # before InnerOpt's defaults
        super().__init__(
            partial(TopQGradientOptimizer, q=q, dq=dq, generator=generator),
            SignedGradientOptim,
            partial(L1NormedGradientOptim, div_by_zero_eps=div_by_zero_eps),
            params=params,
            InnerOpt=InnerOpt,
            defaults=defaults,
            param_ndim=param_ndim,
            grad_scale=grad_scale,
            grad_bias=grad_bias,
            **inner_opt_kwargs,
        )

    @property
    def generator(self) -> torch.Generator:
        """The generator of the ``dq`` draws."""
        return self._chain[0].generator

    def _pre_step_transform_(self, param: torch.Tensor, optim_group: dict[str, Any]) -> None:
        g = param.grad
        q = sample_q(optim_group["q"], optim_group["dq"], self.generator, like=g)
        eps = optim_group["div_by_zero_eps"]
        g.copy_(l1q_gradient(g, q, div_by_zero_eps=eps))
