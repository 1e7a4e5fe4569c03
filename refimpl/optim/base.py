"""The optax-style interface shared by every optimizer in ``refimpl.optim``.

An optimizer is a pair of pure functions (optax's ``GradientTransformation`` shape)::

    opt = l1q_frank_wolfe(q=0.3, epsilon=1.8)
    state = opt.init(params)                               # params: an array or a sequence
    new_params, state = opt.update(grads, state, params)   # nothing is modified in place

``grads`` mirrors ``params``; a ``None`` gradient leaves its parameter (and its step count)
unchanged, as torch optimizers skip parameters whose ``.grad`` is None. The state is a
NamedTuple: per-parameter step counts as Python ints (the step size ``alpha`` is computed in
float64 on the host, as the documented library does), for randomised optimizers the
``Rng`` adapter that the draws advance, and the name of the optimizer that made it:
``update`` refuses another optimizer's state.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from backends import Rng
from refimpl.batching import row_ndim
from refimpl.validation import check_array, check_like

Params = Any  # an array or a sequence of arrays


class OptimizerState(NamedTuple):
    """``step[i]``: how many updates parameter ``i`` has received (the k of ``lr/(lr+k)``);
    ``rng``: the generator of the random draws (None when the optimizer draws nothing);
    ``made_by``: the name of the optimizer whose ``init`` made it (None: made by hand).
    ``update`` refuses a state made by another optimizer, and a randomised optimizer refuses
    a state without an ``Rng``: resuming from it would draw from an unrelated stream."""

    step: tuple[int, ...]
    rng: Rng | None = None
    made_by: str | None = None


class Optimizer(NamedTuple):
    """``init(params) -> state`` and ``update(grads, state, params) -> (new_params, state)``."""

    init: Callable[[Params], OptimizerState]
    update: Callable[[Any, OptimizerState, Params], tuple[Params, OptimizerState]]


def check_params(params: Params, param_ndim: int | None, *, name: str = "params") -> list:
    """The parameters as a list, each a floating array whose ``param_ndim`` is in range."""
    plist, _ = as_list(params, name)
    if not plist:
        raise ValueError(f"{name} is empty: give at least one array")
    for i, p in enumerate(plist):
        check_array(p, name=f"parameter {i}")
        row_ndim(param_ndim, p.ndim, name=f"param_ndim (parameter {i} has shape {tuple(p.shape)})")
    return plist


def check_state(state: Any, made_by: str, *, needs_rng: bool = False) -> None:
    """``state`` must be an ``OptimizerState`` made by the ``init`` of the optimizer named
    ``made_by`` (or by hand: ``state.made_by`` None), holding an ``Rng`` when ``needs_rng``."""
    if not isinstance(state, OptimizerState):
        raise TypeError(
            f"state must be the OptimizerState returned by init(params), got {state!r} "
            f"({type(state).__name__})"
        )
    if state.made_by is not None and state.made_by != made_by:
        raise ValueError(
            f"state was made by {state.made_by}'s init, not {made_by}'s; "
            "call init(params) of this optimizer"
        )
    if needs_rng and not isinstance(state.rng, Rng):
        raise ValueError(
            f"{made_by} draws from the state's rng (a backends.Rng), but state.rng is "
            f"{state.rng!r}; use the state returned by its init(params)"
        )


def pairs(
    grads: Any, state: OptimizerState, params: Params, *, made_by: str, needs_rng: bool = False
) -> tuple[list, list, bool]:
    """``(grads, params, single)`` as aligned lists after checking the state
    (:func:`check_state`), lengths, shapes, dtypes, namespaces and devices. ``single``:
    ``params`` was a lone array."""
    check_state(state, made_by, needs_rng=needs_rng)
    plist, single = as_list(params, "params")
    if single:
        glist = [grads]
    elif isinstance(grads, Sequence) and not isinstance(grads, str):
        glist = list(grads)
    else:
        raise TypeError(f"grads must be a sequence like params, got {type(grads).__name__}")
    if len(glist) != len(plist):
        raise ValueError(f"got {len(glist)} gradients for {len(plist)} parameters")
    if len(state.step) != len(plist):
        raise ValueError(
            f"the state was made for {len(state.step)} parameters, got {len(plist)}; "
            "call init(params) again"
        )
    for i, (g, p) in enumerate(zip(glist, plist)):
        if g is not None:
            check_array(p, name=f"parameter {i}")
            check_like(g, p, name=f"the gradient of parameter {i}", ref_name=f"parameter {i}")
            if tuple(g.shape) != tuple(p.shape):
                raise ValueError(
                    f"the gradient of parameter {i} has shape {tuple(g.shape)}, "
                    f"but the parameter has shape {tuple(p.shape)}"
                )
    return glist, plist, single


def as_list(arrays: Any, name: str) -> tuple[list, bool]:
    """``(list_of_arrays, was_single)``: a lone array or a sequence of arrays."""
    if isinstance(arrays, Sequence) and not isinstance(arrays, str):
        return list(arrays), False
    if arrays is None:
        raise TypeError(f"{name} must be an array or a sequence of arrays, got None")
    return [arrays], True


def pack(new: list, params: Params, single: bool) -> Params:
    """``new`` in the structure of ``params``."""
    if single:
        return new[0]
    return tuple(new) if isinstance(params, tuple) else list(new)
