"""The options of the Frank-Wolfe optimizers, validated once, when they are built."""

from __future__ import annotations

from dataclasses import dataclass

from refimpl.validation import TINY, check_bool, check_param_ndim, check_real

__all__ = ["FrankWolfeOptions"]


@dataclass(frozen=True)
class FrankWolfeOptions:
    r"""What every Frank-Wolfe optimizer of ``refimpl.optim`` shares.

    ``epsilon``: the ball's radius (the LMO's scale, ``lmo_scaling_factor`` for the plain
    ``frank_wolfe``), a finite number (``>= 0`` for a ball); ``lr >= 0`` (``<= 1`` without the
    schedule); ``use_default_lr_schedule``: :math:`\alpha_k = lr / (lr + k)` or
    :math:`\alpha_k = lr`; ``div_by_zero_eps >= 0``; ``param_ndim``: an int or None (its range
    is checked per parameter).
    """

    epsilon: float = 1.0
    lr: float = 2.0
    use_default_lr_schedule: bool = True
    div_by_zero_eps: float = TINY
    param_ndim: int | None = -1
    #: False for ``frank_wolfe``'s ``lmo_scaling_factor``, which may be negative
    ball: bool = True

    def __post_init__(self) -> None:
        name = "epsilon" if self.ball else "lmo_scaling_factor"
        eps = check_real(name, self.epsilon, low=0.0 if self.ball else None)
        sched = check_bool("use_default_lr_schedule", self.use_default_lr_schedule)
        object.__setattr__(self, "epsilon", eps)
        object.__setattr__(
            self, "lr", check_real("lr", self.lr, low=0.0, high=None if sched else 1.0)
        )
        object.__setattr__(
            self, "div_by_zero_eps", check_real("div_by_zero_eps", self.div_by_zero_eps, low=0.0)
        )
        object.__setattr__(self, "param_ndim", check_param_ndim(self.param_ndim))

    def step_size(self, k: int, *, guard: float | None = None) -> float:
        r""":math:`\alpha_k = lr / \max(\text{guard}, lr + k)` with the schedule, else ``lr``;
        ``guard`` defaults to ``div_by_zero_eps``. ``lr = 0`` gives 0 (the documented library
        raises ZeroDivisionError when the guard is 0 too). ``k``: updates so far."""
        if not self.use_default_lr_schedule:
            return self.lr
        if self.lr == 0.0:
            return 0.0
        return self.lr / max(self.div_by_zero_eps if guard is None else guard, self.lr + k)
