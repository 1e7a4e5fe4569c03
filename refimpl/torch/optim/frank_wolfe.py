r"""Frank-Wolfe on Lp balls (rai_toolbox's ``optim.frank_wolfe``): ``FrankWolfe`` and the four
ball-constrained optimizers, parameter-transforming optimizers whose pre-step writes the
negative LMO direction ``v`` into ``.grad`` and whose inner ``FrankWolfe`` steps
(``refimpl.optim.frank_wolfe``)::

    alpha = lr / (lr + k)        (default schedule; k = this parameter's step count)
    p    <- p * (1 - alpha) + v * (-(alpha * epsilon))

operation for operation as the documented library, so on float32/float64 gradients without
ties at the top-q cut-off the parameters (and ``.grad``) are bit-identical to rai_toolbox 0.2.1.

==================  =====================================  ==============================
class               v per row (refimpl.optim.lmo)           ``div_by_zero_eps`` guards
==================  =====================================  ==============================
``L1FrankWolfe``    ``sign(g_j) e_j``, ``j = argmax |g|``   the schedule's denominator
``L2FrankWolfe``    ``g / ||g||_2``                         the norm
``LinfFrankWolfe``  ``sign(g)``                             the schedule's denominator
``L1qFrankWolfe``   normalised signs of the top-q entries   the norm
==================  =====================================  ==============================

Differences (fixes, see the README): ``epsilon`` is a per-group option (the documented
library ignores that key and scales by ``lmo_scaling_factor``), validated (finite, ``>= 0``);
L1FrankWolfe works on rows of any dimension; ``lr = 0`` never divides by zero.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from refimpl.optim import FrankWolfeOptions, l1_direction, l1_direction_rows
from refimpl.torch.optim.lp_space import (
    L1qNormedGradientOptim,
    L2NormedGradientOptim,
    SignedGradientOptim,
)
from refimpl.torch.optim.optimizer import (
    CheckedOptimizer,
    ParamTransformingOptimizer,
    param_groups,
    snapshot,
    unchanged,
)
from refimpl.validation import TINY, check_callable, check_int

__all__ = ["FrankWolfe", "L1FrankWolfe", "L1qFrankWolfe", "L2FrankWolfe", "LinfFrankWolfe"]


class FrankWolfe(CheckedOptimizer):
    """The documented ``FrankWolfe``: ``p.grad`` must already hold the negative LMO direction.

    ``FrankWolfe(params, *, lr=2.0, lmo_scaling_factor=1.0, use_default_lr_schedule=True,
    div_by_zero_eps=tiny)``; ``p <- (1 - alpha) p - alpha * lmo_scaling_factor * p.grad`` with
    ``alpha = lr / max(div_by_zero_eps, lr + k)`` (``lr`` itself without the schedule, then
    ``lr <= 1``). Every option can be set per group; ``state[p]["step"]`` counts the updates.
    """

    #: the group option that scales the LMO
    _scale_key = "lmo_scaling_factor"
    #: the schedule's guard: None reads the group's ``div_by_zero_eps``
    _schedule_eps: float | None = None

    def __init__(
        self,
        params: Any,
        *,
        lr: float = 2.0,
        lmo_scaling_factor: float = 1.0,
        use_default_lr_schedule: bool = True,
        div_by_zero_eps: float = TINY,
    ) -> None:
        defaults: dict[str, Any] = dict(
            lr=lr, use_default_lr_schedule=use_default_lr_schedule, div_by_zero_eps=div_by_zero_eps
        )
        if self._scale_key == "lmo_scaling_factor":
            defaults["lmo_scaling_factor"] = lmo_scaling_factor
        super().__init__(param_groups(params), defaults)

    def _options(self, group: dict[str, Any]) -> FrankWolfeOptions:
        """The group's options, validated (``refimpl.optim.options``)."""
        return FrankWolfeOptions(
            epsilon=group[self._scale_key],
            lr=group["lr"],
            use_default_lr_schedule=group["use_default_lr_schedule"],
            div_by_zero_eps=group["div_by_zero_eps"],
            param_ndim=None,
            ball=self._scale_key == "epsilon",
        )

    def _step_options(self, g: int, group: dict[str, Any]) -> FrankWolfeOptions:
        """:meth:`_options` of group ``g``, made again only when the group changed since the
        last step (``refimpl.torch.optim.optimizer.unchanged``)."""
        cache = self.__dict__.setdefault("_options_cache", {})
        hit = cache.get(g)
        if hit is None or not unchanged(hit[0], group):
            hit = cache[g] = (snapshot(group), self._options(group))
        return hit[1]

    def _validate_options(self, group: dict[str, Any]) -> None:
        super()._validate_options(group)
        self._options(group)

    def _validate_state(self, state: dict[str, Any]) -> None:
        super()._validate_state(state)
        check_int("a saved Frank-Wolfe 'step'", state.get("step", 0), low=0)

    def _applied_scalars(self) -> set[str]:
        return super()._applied_scalars() | {self._scale_key}  # alpha * scale * v

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One Frank-Wolfe step for every parameter that has a gradient."""
        check_callable("closure", closure, optional=True)
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self._check_step()
        for g, group in enumerate(self.param_groups):
            options = self._step_options(g, group)
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                k = state.get("step", 0)
                alpha = options.step_size(k, guard=self._schedule_eps)
                self._update(p, group, alpha, group[self._scale_key])
                state["step"] = k + 1
        return loss

    def _update(self, p: torch.Tensor, group: dict[str, Any], alpha: float, scale: float) -> None:
        """``p <- p * (1 - alpha) + (-(alpha * scale)) * p.grad``, as the documented library
        rounds it."""
        w = (-(alpha * scale)) * p.grad
        p.mul_(1 - alpha)
        p.add_(w)


class _EpsilonFrankWolfe(FrankWolfe):
    """The inner optimizer of the ball-constrained classes: scaled by the group's ``epsilon``
    (rai_toolbox keeps it as ``lmo_scaling_factor``, and the schedule options on the
    optimizer, so its state dicts are translated when loaded)."""

    _scale_key = "epsilon"
    _display_name = "FrankWolfe"
    _rai_missing = ("use_default_lr_schedule", "div_by_zero_eps")
    _rai_renamed = {"lmo_scaling_factor": "epsilon"}


class _EpsilonFrankWolfeTinySchedule(_EpsilonFrankWolfe):
    """... whose ``div_by_zero_eps`` guards a norm, so the schedule keeps float32's tiny."""

    _schedule_eps = TINY


class _VertexFrankWolfe(_EpsilonFrankWolfe):
    """The inner optimizer of ``L1FrankWolfe``, whose LMO has one non-zero per row: the
    pre-step leaves each row's vertex in ``vertices`` (keyed by the gradient's address), and the
    update adds it there alone. Same rounding as the dense update (up to the sign of zero),
    two passes fewer; any other gradient (scaled, biased, or not viewable) takes the dense one."""

    def __init__(self, params: Any, **kwargs: Any) -> None:
        self.vertices: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Size]] = {}
        super().__init__(params, **kwargs)

    def _update(self, p: torch.Tensor, group: dict[str, Any], alpha: float, scale: float) -> None:
        hit = self.vertices.pop(p.grad.data_ptr(), None)
        plain = group.get("grad_scale", 1.0) == 1.0 and group.get("grad_bias", 0.0) == 0.0
        rows = p.view(hit[2]) if hit is not None and plain and p.is_contiguous() else None
        if rows is None:
            super()._update(p, group, alpha, scale)
            return
        j, sign, _ = hit
        p.mul_(1 - alpha)
        rows.scatter_add_(1, j, sign.mul_(-(alpha * scale)))


def _fw_options(epsilon: float, lr: float, use_default_lr_schedule: bool) -> dict[str, Any]:
    return dict(
        defaults={"epsilon": epsilon}, lr=lr, use_default_lr_schedule=use_default_lr_schedule
    )


class L1FrankWolfe(ParamTransformingOptimizer):
    """Frank-Wolfe on the L1 ball of radius ``epsilon``: ``v = sign(g_j) e_j``,
    ``j = argmax |g|`` per row of the ``param_ndim`` view (rows of any dimension).

    ``L1FrankWolfe(params, *, epsilon, lr=2.0, use_default_lr_schedule=True, param_ndim=-1,
    div_by_zero_eps=tiny)``.
    """

    def __init__(
        self,
        params: Any,
        *,
        epsilon: float,
        lr: float = 2.0,
        use_default_lr_schedule: bool = True,
        param_ndim: int | None = -1,
        div_by_zero_eps: float = TINY,
    ) -> None:
        super().__init__(
            params,
            InnerOpt=_VertexFrankWolfe,
            param_ndim=param_ndim,
            div_by_zero_eps=div_by_zero_eps,
            **_fw_options(epsilon, lr, use_default_lr_schedule),
        )

    def _apply_pre_step_transform_(self) -> None:
        self.inner_opt.vertices.clear()
        super()._apply_pre_step_transform_()

    def _pre_step_transform_(self, param: torch.Tensor, optim_group: dict[str, Any]) -> None:
        g = param.grad
        if g.numel() == 0:  # empty rows: nothing to write
            return
        if not g.is_contiguous():
            g.copy_(l1_direction(g))
            return
        rows = g.view(g.shape[0], -1)
        j, sign = l1_direction_rows(rows)
        # the LMO has one non-zero per row: zero the rows and write the vertices (no dense v)
        rows.zero_()
        rows.scatter_(1, j, sign)
        self.inner_opt.vertices[rows.data_ptr()] = (j, sign, rows.shape)


class L2FrankWolfe(L2NormedGradientOptim):
    """Frank-Wolfe on the L2 ball: ``v = g / max(||g||_2, div_by_zero_eps)`` per row.

    ``L2FrankWolfe(params, *, epsilon, lr=2.0, use_default_lr_schedule=True, param_ndim=-1,
    div_by_zero_eps=tiny)``.
    """

    def __init__(
        self,
        params: Any,
        *,
        epsilon: float,
        lr: float = 2.0,
        use_default_lr_schedule: bool = True,
        param_ndim: int | None = -1,
        div_by_zero_eps: float = TINY,
    ) -> None:
        super().__init__(
            params,
            InnerOpt=_EpsilonFrankWolfeTinySchedule,
            param_ndim=param_ndim,
            div_by_zero_eps=div_by_zero_eps,
            **_fw_options(epsilon, lr, use_default_lr_schedule),
        )


class LinfFrankWolfe(SignedGradientOptim):
    """Frank-Wolfe on the Linf ball: ``v = sign(g)``.

    ``LinfFrankWolfe(params, *, epsilon, lr=2.0, use_default_lr_schedule=True, param_ndim=-1,
    div_by_zero_eps=tiny)`` (``param_ndim`` is only validated: the LMO is element-wise).
    """

    def __init__(
        self,
        params: Any,
        *,
        epsilon: float,
        lr: float = 2.0,
        use_default_lr_schedule: bool = True,
        param_ndim: int | None = -1,
        div_by_zero_eps: float = TINY,
    ) -> None:
        super().__init__(
            params,
            InnerOpt=_EpsilonFrankWolfe,
            param_ndim=param_ndim,
            div_by_zero_eps=div_by_zero_eps,
            **_fw_options(epsilon, lr, use_default_lr_schedule),
        )


class L1qFrankWolfe(L1qNormedGradientOptim):
    """Frank-Wolfe with the sparsified L1q LMO (Roberts & Tsiligkaridis 2021).

    ``L1qFrankWolfe(params, *, q, epsilon, dq=0.0, lr=2.0, use_default_lr_schedule=True,
    param_ndim=-1, div_by_zero_eps=tiny, generator=torch.default_generator)``: keeps the
    ``round((1 - q) D)`` largest ``|g|`` per row (ties: lowest index; NaN counts as largest),
    takes their signs and L1-normalises. With ``dq > 0``, one ``torch.rand(1,
    generator=generator)`` per parameter (with a gradient) and step draws ``q`` in
    ``[max(0, q - dq), min(1, q + dq)]``.
    """

    def __init__(
        self,
        params: Any,
        *,
        q: float,
        epsilon: float,
        dq: float = 0.0,
        lr: float = 2.0,
        use_default_lr_schedule: bool = True,
        param_ndim: int | None = -1,
        div_by_zero_eps: float = TINY,
        generator: torch.Generator = torch.default_generator,
    ) -> None:
        options = _fw_options(epsilon, lr, use_default_lr_schedule)
        super().__init__(
            params,
            InnerOpt=_EpsilonFrankWolfeTinySchedule,
            q=q,
            dq=dq,
            param_ndim=param_ndim,
            div_by_zero_eps=div_by_zero_eps,
            generator=generator,
            **options,
        )
