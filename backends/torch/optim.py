"""``torch.optim.Optimizer`` front ends over ``refimpl.optim`` with the documented signatures.

Drop-in replacements for ``rai_toolbox.optim``'s Frank-Wolfe family and projected
optimizers: same constructors, per-group options (``param_groups``, ``add_param_group``),
``closure``, ``generator=``, and ``state_dict``/``load_state_dict``. The search directions
come from ``refimpl.optim`` (the same code that runs on numpy and array_api_strict); the
update is applied in place with the documented library's arithmetic, so on float32/float64
inputs without ties at the top-q cut-off the parameters are bit-identical to
``rai_toolbox`` 0.2.1 step after step (tested over 50 steps, ``dq > 0`` included: the
same generator draws the same ``q`` and ends in the same state).

Differences (fixes, see the README): ``epsilon`` can be set per parameter group (the
documented library silently ignores that key), ``epsilon`` must be a finite number > 0,
every group (also those added later) is validated, L1FrankWolfe works on rows of any
dimension, a zero gradient never turns float16 parameters into NaN, ``lr = 0`` never
divides by zero, and NaN gradients propagate instead of being silently zeroed.

Speed: top-q selects with ``backends.ops.kth_largest`` (an O(D) ``numpy.partition`` on a
zero-copy view of CPU tensors, ``torch.kthvalue`` on other devices) instead of ``torch.topk``, and ``L1FrankWolfe``
updates its single non-zero LMO entry per row with ``scatter_add_``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch.optim import SGD, Optimizer

from refimpl.batching import row_ndim, to_rows
from refimpl.optim._checks import TINY, check_param_ndim, check_real
from refimpl.optim.frank_wolfe import check_fw_options, check_q, fw_step_size
from refimpl.optim.lmo import (
    l1_direction,
    l1_direction_rows,
    l1q_direction,
    l2_direction,
    linf_direction,
)
from refimpl.optim.projected import RENORM_MARGIN
from refimpl.optim.projections import project_l2_ball
from refimpl.optim.transforms import sample_q

__all__ = [
    "FrankWolfe",
    "L1FrankWolfe",
    "L1qFrankWolfe",
    "L2FrankWolfe",
    "L2ProjectedOptim",
    "LinfFrankWolfe",
    "LinfProjectedOptim",
]


def _check_group_params(group: dict, param_ndim: Any) -> None:
    for i, p in enumerate(group["params"]):
        if not torch.is_floating_point(p):
            raise TypeError(f"parameter {i} must have a floating dtype, got {p.dtype}")
        row_ndim(param_ndim, p.ndim, name=f"param_ndim (parameter {i} has shape {tuple(p.shape)})")


def _params_list(params: Any) -> Any:
    if isinstance(params, torch.Tensor):
        raise TypeError(
            "params must be an iterable of tensors or of parameter-group dicts, got a Tensor"
        )
    return params


class _FrankWolfeBase(Optimizer):
    """Frank-Wolfe with per-parameter step counts ``state[p]["step"]`` (Python ints).

    ``x <- x * (1 - alpha) + v * (-(alpha * epsilon))`` in place, ``alpha = lr/(lr + k)``
    (``refimpl.optim.frank_wolfe``); ``v`` from ``_direction``.
    """

    #: where ``div_by_zero_eps`` goes: "schedule" or "norm"
    _eps_role = "schedule"

    def __init__(self, params: Any, defaults: dict[str, Any]) -> None:
        super().__init__(_params_list(params), defaults)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        merged = {**self.defaults, **param_group}
        params = param_group["params"]
        plist = [params] if isinstance(params, torch.Tensor) else list(params)
        self._validate({**merged, "params": plist})
        super().add_param_group(param_group)

    def _validate(self, group: dict[str, Any]) -> None:
        check_fw_options(
            epsilon=group["epsilon"],
            lr=group["lr"],
            use_default_lr_schedule=group["use_default_lr_schedule"],
            div_by_zero_eps=group["div_by_zero_eps"],
        )
        _check_group_params(group, check_param_ndim(group.get("param_ndim")))

    def _direction(self, grad: torch.Tensor, group: dict[str, Any]) -> torch.Tensor:
        raise NotImplementedError

    def _update(self, p: torch.Tensor, group: dict[str, Any], alpha: float) -> None:
        w = self._direction(p.grad, group)
        w = w.mul_(-(alpha * group["epsilon"]))  # w is ours: scale in place
        p.mul_(1 - alpha)
        p.add_(w)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One Frank-Wolfe step for every parameter that has a gradient."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            sched_eps = group["div_by_zero_eps"] if self._eps_role == "schedule" else TINY
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                k = state.get("step", 0)
                alpha = fw_step_size(
                    group["lr"],
                    k,
                    use_default_lr_schedule=group["use_default_lr_schedule"],
                    div_by_zero_eps=sched_eps,
                )
                self._update(p, group, alpha)
                state["step"] = k + 1
        return loss


class FrankWolfe(_FrankWolfeBase):
    """The documented ``FrankWolfe``: ``p.grad`` must already hold the negative LMO.

    ``FrankWolfe(params, *, lr=2.0, lmo_scaling_factor=1.0, use_default_lr_schedule=True,
    div_by_zero_eps=tiny)``; ``p <- (1 - alpha) p - alpha * lmo_scaling_factor * p.grad``.
    """

    def __init__(
        self,
        params: Iterable[Any],
        *,
        lr: float = 2.0,
        lmo_scaling_factor: float = 1.0,
        use_default_lr_schedule: bool = True,
        div_by_zero_eps: float = TINY,
    ) -> None:
        defaults = dict(
            lr=lr,
            lmo_scaling_factor=lmo_scaling_factor,
            use_default_lr_schedule=use_default_lr_schedule,
            div_by_zero_eps=div_by_zero_eps,
        )
        super().__init__(params, defaults)

    def _validate(self, group: dict[str, Any]) -> None:
        check_real("lmo_scaling_factor", group["lmo_scaling_factor"])
        check_fw_options(
            epsilon=1.0,
            lr=group["lr"],
            use_default_lr_schedule=group["use_default_lr_schedule"],
            div_by_zero_eps=group["div_by_zero_eps"],
        )

    def _update(self, p: torch.Tensor, group: dict[str, Any], alpha: float) -> None:
        w = (-(alpha * group["lmo_scaling_factor"])) * p.grad
        p.mul_(1 - alpha)
        p.add_(w)


class _LpFrankWolfe(_FrankWolfeBase):
    def __init__(
        self,
        params: Iterable[Any],
        *,
        epsilon: float,
        lr: float = 2.0,
        use_default_lr_schedule: bool = True,
        param_ndim: int | None = -1,
        div_by_zero_eps: float = TINY,
    ) -> None:
        defaults = dict(
            epsilon=epsilon,
            lr=lr,
            use_default_lr_schedule=use_default_lr_schedule,
            param_ndim=param_ndim,
            div_by_zero_eps=div_by_zero_eps,
        )
        super().__init__(params, defaults)


class L1FrankWolfe(_LpFrankWolfe):
    """Frank-Wolfe on the L1 ball of radius ``epsilon``: ``s = -epsilon sign(g_j) e_j`` per
    row of the ``param_ndim`` view, ``j = argmax |g|`` (rows of any dimension)."""

    def _direction(self, grad: torch.Tensor, group: dict[str, Any]) -> torch.Tensor:
        return l1_direction(grad, param_ndim=group["param_ndim"])

    def _update(self, p: torch.Tensor, group: dict[str, Any], alpha: float) -> None:
        rows = to_rows(p.grad, group["param_ndim"])
        try:
            view = p.view(rows.shape)
        except RuntimeError:  # not viewable: dense update
            return super()._update(p, group, alpha)
        j, sgn = l1_direction_rows(rows)
        p.mul_(1 - alpha)
        # the LMO has one non-zero per row: add it there (adding the others' zeros is a no-op)
        view.scatter_add_(1, j, sgn.mul_(-(alpha * group["epsilon"])))


class L2FrankWolfe(_LpFrankWolfe):
    """Frank-Wolfe on the L2 ball: ``s = -epsilon g / max(||g||_2, div_by_zero_eps)``."""

    _eps_role = "norm"

    def _direction(self, grad: torch.Tensor, group: dict[str, Any]) -> torch.Tensor:
        return l2_direction(
            grad, param_ndim=group["param_ndim"], div_by_zero_eps=group["div_by_zero_eps"]
        )


class LinfFrankWolfe(_LpFrankWolfe):
    """Frank-Wolfe on the Linf ball: ``s = -epsilon sign(g)``."""

    def _direction(self, grad: torch.Tensor, group: dict[str, Any]) -> torch.Tensor:
        return linf_direction(grad)


class L1qFrankWolfe(_FrankWolfeBase):
    """Frank-Wolfe with the sparsified L1q LMO (Roberts & Tsiligkaridis 2021).

    ``L1qFrankWolfe(params, *, q, epsilon, dq=0.0, lr=2.0, use_default_lr_schedule=True,
    param_ndim=-1, div_by_zero_eps=tiny, generator=torch.default_generator)``. Keeps the
    ``round((1 - q) D)`` largest ``|g|`` per row (tie rule: lowest index among entries equal
    to the cut-off; NaN counts as largest), takes their signs and L1-normalises. With
    ``dq > 0``, one ``torch.rand(1, generator=generator)`` per parameter (with a gradient)
    and step draws ``q`` in ``[max(0, q - dq), min(1, q + dq)]``.
    """

    _eps_role = "norm"

    def __init__(
        self,
        params: Iterable[Any],
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
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
        self.generator = generator
        defaults = dict(
            q=q,
            dq=dq,
            epsilon=epsilon,
            lr=lr,
            use_default_lr_schedule=use_default_lr_schedule,
            param_ndim=param_ndim,
            div_by_zero_eps=div_by_zero_eps,
        )
        super().__init__(params, defaults)

    def _validate(self, group: dict[str, Any]) -> None:
        check_q(group["q"], group["dq"])
        super()._validate(group)

    def _direction(self, grad: torch.Tensor, group: dict[str, Any]) -> torch.Tensor:
        from backends import as_rng

        q, dq = group["q"], group["dq"]
        if dq > 0.0:
            q = sample_q(q, dq, as_rng(self.generator, like=grad), like=grad)
        return l1q_direction(
            grad,
            q,
            param_ndim=group["param_ndim"],
            div_by_zero_eps=group["div_by_zero_eps"],
        )


class _ProjectedOptim(Optimizer):
    """Normalised-gradient step with a torch inner optimizer, then a projection.

    The documented ``ParamTransformingOptimizer`` pattern: the gradient is transformed in
    place (``refimpl.optim`` direction, then ``grad_scale``/``grad_bias``), ``InnerOpt``
    steps, and every parameter is projected back into the ball. The inner optimizer shares
    ``param_groups`` and ``state``; ``state_dict``/``load_state_dict`` go through it.
    """

    def __init__(
        self,
        params: Any,
        InnerOpt: Any,
        defaults: dict[str, Any],
        inner_opt_kwargs: dict[str, Any],
    ) -> None:
        super().__init__(_params_list(params), defaults)
        if isinstance(InnerOpt, Optimizer):
            raise TypeError("InnerOpt must be an Optimizer class (or a partial of one)")
        self.inner_opt = InnerOpt(self.param_groups, **inner_opt_kwargs)
        self._share()

    def _share(self) -> None:
        self.param_groups = self.inner_opt.param_groups
        self.state = self.inner_opt.state

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        params = param_group["params"]
        plist = [params] if isinstance(params, torch.Tensor) else list(params)
        merged = {**self.defaults, **param_group, "params": plist}
        self._validate(merged)
        if hasattr(self, "inner_opt"):
            for key, value in self.defaults.items():
                param_group.setdefault(key, value)
            self.inner_opt.add_param_group(param_group)
        else:
            super().add_param_group(param_group)

    def _validate(self, group: dict[str, Any]) -> None:
        check_real("epsilon", group["epsilon"], low=0.0, low_open=True)
        check_real("grad_scale", group["grad_scale"])
        check_real("grad_bias", group["grad_bias"])
        _check_group_params(group, check_param_ndim(group["param_ndim"]))

    def state_dict(self) -> dict[str, Any]:
        return self.inner_opt.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.inner_opt.load_state_dict(state_dict)
        self._share()

    def _direction(self, grad: torch.Tensor, group: dict[str, Any]) -> torch.Tensor:
        raise NotImplementedError

    def _project(self, p: torch.Tensor, group: dict[str, Any]) -> None:
        raise NotImplementedError

    @torch.no_grad()
    def _pre_step(self) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                d = self._direction(p.grad, group)
                if group["grad_scale"] != 1.0:
                    d = d * group["grad_scale"]
                if group["grad_bias"] != 0.0:
                    d = d + group["grad_bias"]
                p.grad.copy_(d)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        if closure is not None:

            def inner_closure() -> Any:
                with torch.enable_grad():
                    loss = closure()
                self._pre_step()
                return loss

            loss = self.inner_opt.step(inner_closure)
        else:
            self._pre_step()
            loss = self.inner_opt.step()
        for group in self.param_groups:
            for p in group["params"]:
                self._project(p, group)
        return loss


class L2ProjectedOptim(_ProjectedOptim):
    """``L2ProjectedOptim(params, InnerOpt=SGD, *, epsilon, param_ndim=-1, grad_scale=1.0,
    grad_bias=0.0, defaults=None, div_by_zero_eps=tiny, **inner_opt_kwargs)``: L2-normalised
    gradient, ``InnerOpt`` step, then ``torch.renorm``-style projection onto the L2 ball
    (``refimpl.optim.project_l2_ball(..., margin=1e-7)``)."""

    def __init__(
        self,
        params: Any,
        InnerOpt: Any = SGD,
        *,
        epsilon: float,
        param_ndim: int | None = -1,
        grad_scale: float = 1.0,
        grad_bias: float = 0.0,
        defaults: dict[str, Any] | None = None,
        div_by_zero_eps: float = TINY,
        **inner_opt_kwargs: Any,
    ) -> None:
        d = dict(defaults or {})
        for key, value in dict(
            epsilon=epsilon,
            param_ndim=param_ndim,
            grad_scale=grad_scale,
            grad_bias=grad_bias,
            div_by_zero_eps=div_by_zero_eps,
        ).items():
            d.setdefault(key, value)
        super().__init__(params, InnerOpt, d, inner_opt_kwargs)

    def _validate(self, group: dict[str, Any]) -> None:
        super()._validate(group)
        check_real("div_by_zero_eps", group["div_by_zero_eps"], low=0.0)

    def _direction(self, grad: torch.Tensor, group: dict[str, Any]) -> torch.Tensor:
        return l2_direction(
            grad, param_ndim=group["param_ndim"], div_by_zero_eps=group["div_by_zero_eps"]
        )

    def _project(self, p: torch.Tensor, group: dict[str, Any]) -> None:
        p.copy_(
            project_l2_ball(p.detach(), group["epsilon"], group["param_ndim"], margin=RENORM_MARGIN)
        )


class LinfProjectedOptim(_ProjectedOptim):
    """``LinfProjectedOptim(params, InnerOpt=SGD, *, epsilon, param_ndim=None,
    grad_scale=1.0, grad_bias=0.0, defaults=None, **inner_opt_kwargs)``: signed gradient,
    ``InnerOpt`` step, then clip to ``[-epsilon, epsilon]``."""

    def __init__(
        self,
        params: Any,
        InnerOpt: Any = SGD,
        *,
        epsilon: float,
        param_ndim: int | None = None,
        grad_scale: float = 1.0,
        grad_bias: float = 0.0,
        defaults: dict[str, Any] | None = None,
        **inner_opt_kwargs: Any,
    ) -> None:
        d = dict(defaults or {})
        for key, value in dict(
            epsilon=epsilon, param_ndim=param_ndim, grad_scale=grad_scale, grad_bias=grad_bias
        ).items():
            d.setdefault(key, value)
        super().__init__(params, InnerOpt, d, inner_opt_kwargs)

    def _direction(self, grad: torch.Tensor, group: dict[str, Any]) -> torch.Tensor:
        return linf_direction(grad)

    def _project(self, p: torch.Tensor, group: dict[str, Any]) -> None:
        eps = group["epsilon"]
        p.clamp_(-eps, eps)
