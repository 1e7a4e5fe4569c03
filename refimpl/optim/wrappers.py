"""Stateful optimizers with the documented constructors, thin wrappers over the pure ones.

Arrays are immutable here, so ``step(grads)`` returns the new parameters and stores them
(``opt.params``) instead of writing into the caller's arrays::

    opt = L1qFrankWolfe([x], q=0.3, epsilon=1.8, param_ndim=None)
    (x,) = opt.step([grad])

``params`` is an array, a sequence of arrays, or a sequence of parameter-group dicts
(``{"params": ..., "epsilon": ..., ...}``) whose keys override the constructor's options
for that group (every option, ``epsilon`` included, can be set per group). ``step`` takes the
gradients in the same structure as the parameters (one per parameter, groups in order,
``None`` for "no gradient") and returns the parameters in that structure.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from backends import as_rng
from refimpl.optim.base import Optimizer, OptimizerState, as_list
from refimpl.optim.frank_wolfe import (
    frank_wolfe,
    l1_frank_wolfe,
    l1q_frank_wolfe,
    l2_frank_wolfe,
    linf_frank_wolfe,
)
from refimpl.optim.projected import l2_projected, linf_projected
from refimpl.validation import TINY


class StatefulOptimizer:
    """Holds parameter groups, their pure optimizers and states; ``step`` advances them."""

    _factory: Callable[..., Optimizer]

    def __init__(self, params: Any, **options: Any) -> None:
        self._structure = params
        self._single = not (isinstance(params, Sequence) and not isinstance(params, str))
        #: params given as parameter-group dicts: ``params``/``step`` use one list per group
        self._grouped = (
            not self._single and bool(params) and all(isinstance(g, Mapping) for g in params)
        )
        self.defaults = dict(options)
        self.param_groups: list[dict[str, Any]] = []
        self._opts: list[Optimizer] = []
        self._states: list[OptimizerState] = []
        for group in self._groups(params):
            self.add_param_group(group)

    @staticmethod
    def _groups(params: Any) -> list[dict[str, Any]]:
        items, single = as_list(params, "params")
        if not single and items and all(isinstance(g, Mapping) for g in items):
            return [dict(g) for g in items]
        if any(isinstance(g, Mapping) for g in items):
            raise TypeError("params must be arrays or parameter-group dicts, not a mix of both")
        return [{"params": params}]

    def add_param_group(self, group: Mapping[str, Any]) -> None:
        """Add a group; its keys override the defaults (validated like the constructor's)."""
        if "params" not in group:
            raise ValueError("a parameter group needs a 'params' entry")
        group = dict(group)
        plist, _ = as_list(group["params"], "params")
        unknown = set(group) - set(self.defaults) - {"params"}
        if unknown:
            raise TypeError(
                f"unknown option(s) {sorted(unknown)} in a parameter group; "
                f"accepted: {sorted(self.defaults)}"
            )
        options = {**self.defaults, **{k: v for k, v in group.items() if k != "params"}}
        opt = type(self)._factory(**options)
        state = opt.init(plist)
        self.param_groups.append({"params": plist, **options})
        self._opts.append(opt)
        self._states.append(state)

    @property
    def params(self) -> Any:
        """The current parameters, in the structure given to the constructor."""
        flat = [p for g in self.param_groups for p in g["params"]]
        if self._single:
            return flat[0]
        if self._grouped:
            return [list(g["params"]) for g in self.param_groups]
        return type(self._structure)(flat) if isinstance(self._structure, tuple) else flat

    @property
    def state(self) -> list[OptimizerState]:
        """One ``OptimizerState`` per group."""
        return list(self._states)

    def step(self, grads: Any) -> Any:
        """Update every parameter with its gradient; returns (and stores) the new ones."""
        if self._single:
            glist = [grads]
        else:
            glist, _ = as_list(grads, "grads")
            if (
                self._grouped
                and glist
                and all(isinstance(g, Sequence) and not _is_array(g) for g in glist)
            ):  # one sequence per group: the structure of ``self.params``
                if [len(g) for g in glist] != [len(g["params"]) for g in self.param_groups]:
                    raise ValueError(
                        "grads given per group must match the groups' sizes "
                        f"{[len(g['params']) for g in self.param_groups]}, got "
                        f"{[len(g) for g in glist]}"
                    )
                glist = [g for grp in glist for g in grp]
        n = sum(len(g["params"]) for g in self.param_groups)
        if len(glist) != n:
            raise ValueError(f"got {len(glist)} gradients for {n} parameters")
        start = 0
        for i, group in enumerate(self.param_groups):
            m = len(group["params"])
            new, self._states[i] = self._opts[i].update(
                glist[start : start + m], self._states[i], group["params"]
            )
            group["params"] = list(new)
            start += m
        return self.params

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.defaults.items() if k != "rng")
        return f"{type(self).__name__}({opts}; {len(self.param_groups)} group(s))"


def _is_array(x: Any) -> bool:
    return hasattr(x, "shape") and hasattr(x, "dtype")


class FrankWolfe(StatefulOptimizer):
    """Stateful ``frank_wolfe``: gradients must hold the negative LMO direction."""

    _factory = staticmethod(frank_wolfe)

    def __init__(
        self,
        params: Any,
        *,
        lr: float = 2.0,
        lmo_scaling_factor: float = 1.0,
        use_default_lr_schedule: bool = True,
        div_by_zero_eps: float = TINY,
    ) -> None:
        super().__init__(
            params,
            lr=lr,
            lmo_scaling_factor=lmo_scaling_factor,
            use_default_lr_schedule=use_default_lr_schedule,
            div_by_zero_eps=div_by_zero_eps,
        )


class _LpFrankWolfe(StatefulOptimizer):
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
            epsilon=epsilon,
            lr=lr,
            use_default_lr_schedule=use_default_lr_schedule,
            param_ndim=param_ndim,
            div_by_zero_eps=div_by_zero_eps,
        )


class L1FrankWolfe(_LpFrankWolfe):
    """Stateful ``l1_frank_wolfe``."""

    _factory = staticmethod(l1_frank_wolfe)


class L2FrankWolfe(_LpFrankWolfe):
    """Stateful ``l2_frank_wolfe``."""

    _factory = staticmethod(l2_frank_wolfe)


class LinfFrankWolfe(_LpFrankWolfe):
    """Stateful ``linf_frank_wolfe``."""

    _factory = staticmethod(linf_frank_wolfe)


class L1qFrankWolfe(StatefulOptimizer):
    """Stateful ``l1q_frank_wolfe`` with the documented constructor (``rng`` in place of
    ``generator``: None, a seed, a numpy/torch generator or a ``backends.Rng``). One
    generator serves every group, drawing in group order, parameters in order."""

    _factory = staticmethod(l1q_frank_wolfe)

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
        rng: Any = None,
    ) -> None:
        first = _first_array(params)
        shared = as_rng(rng, like=first) if first is not None else rng
        super().__init__(
            params,
            q=q,
            epsilon=epsilon,
            dq=dq,
            lr=lr,
            use_default_lr_schedule=use_default_lr_schedule,
            param_ndim=param_ndim,
            div_by_zero_eps=div_by_zero_eps,
            rng=shared,
        )


def _first_array(params: Any) -> Any:
    """The first array in ``params`` (arrays, sequences, group dicts), or None."""
    if _is_array(params):
        return params
    nested = isinstance(params, Sequence) and not isinstance(params, str | bytes)
    for item in params if nested else ():
        if isinstance(item, Mapping):
            found = _first_array(item.get("params", ()))
        else:
            found = _first_array(item)
        if found is not None:
            return found
    return None


class L2ProjectedOptim(StatefulOptimizer):
    """Stateful ``l2_projected`` (normalised gradient step, then L2-ball projection)."""

    _factory = staticmethod(l2_projected)

    def __init__(
        self,
        params: Any,
        *,
        epsilon: float,
        lr: float,
        param_ndim: int | None = -1,
        div_by_zero_eps: float = TINY,
    ) -> None:
        super().__init__(
            params, epsilon=epsilon, lr=lr, param_ndim=param_ndim, div_by_zero_eps=div_by_zero_eps
        )


class LinfProjectedOptim(StatefulOptimizer):
    """Stateful ``linf_projected`` (signed gradient step, then clip to the Linf ball)."""

    _factory = staticmethod(linf_projected)

    def __init__(
        self, params: Any, *, epsilon: float, lr: float, param_ndim: int | None = None
    ) -> None:
        super().__init__(params, epsilon=epsilon, lr=lr, param_ndim=param_ndim)
