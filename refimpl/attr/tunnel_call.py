"""One call of ``NoiseTunnel.attribute``, validated before any noise is drawn or any model
call is made: the inputs, the options, one noise scale per input (``max|x| + 40 sigma``
finite in the input's dtype: ``refimpl.validation.check_noise_scale``), and the keyword
arguments of the wrapped method (its per-example ones checked by expanding them once, its
``additional_forward_args`` by the method's ``check_forward_args`` when it has one)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from backends import namespace_and_device
from backends.keys import is_keyed, keyed
from backends.progress import progress_bar
from refimpl.attr.expand import expand_kwargs
from refimpl.attr.inputs import as_args_tuple, as_input_tuple
from refimpl.attr.noise import relative_stdevs
from refimpl.attr.options import NoiseTunnelOptions
from refimpl.parallel import check_executor
from refimpl.validation import check_bool, check_noise_scale, is_array

__all__ = ["TunnelCall", "check_rows", "prepare_call", "progress_bar_for", "run_key"]


@dataclass(frozen=True)
class TunnelCall:
    """``inputs`` (``is_tuple``: they came as a tuple), the validated ``options``, ``stdevs``
    (one per input), ``want_delta`` (return the convergence deltas) and the ``kwargs`` of the
    wrapped method."""

    is_tuple: bool
    inputs: tuple[Any, ...]
    options: NoiseTunnelOptions
    stdevs: tuple[float, ...]
    want_delta: bool
    kwargs: dict[str, Any]


def prepare_call(
    tunnel: Any, inputs: Any, options: NoiseTunnelOptions, kwargs: dict[str, Any]
) -> TunnelCall:
    """Every argument of a call of ``tunnel.attribute`` checked (``kwargs`` loses a
    ``return_convergence_delta=False`` the wrapped method would not accept)."""
    is_tuple, xs = as_input_tuple(inputs)
    want_delta = check_bool(
        "return_convergence_delta", kwargs.get("return_convergence_delta", False)
    )
    if want_delta and not tunnel.is_delta_supported:
        raise TypeError(
            f"return_convergence_delta=True, but {type(tunnel.attribution_method).__name__} "
            "has no convergence delta (has_convergence_delta() is False or missing)"
        )
    if not tunnel.is_delta_supported:
        kwargs.pop("return_convergence_delta", None)  # an explicit False is harmless
    call = TunnelCall(is_tuple, xs, options, options.stdevs_for(len(xs)), want_delta, kwargs)
    _check_scales(call)
    check_args = getattr(tunnel.attribution_method, "check_forward_args", None)
    if callable(check_args):
        check_args(as_args_tuple(kwargs.get("additional_forward_args")))
    xp, dev = namespace_and_device(*xs)
    bs = options.chunks[0]
    rows = xs[0].shape[0] * bs
    dummy = None
    if options.draw_baseline_from_distrib:
        dummy = lambda i, K: xp.zeros((rows,), dtype=xp.int64, device=dev)  # noqa: E731
    expand_kwargs(kwargs, xs, bs, draw=dummy)  # fails now on bad targets, baselines, ...
    return call


def _check_scales(call: TunnelCall) -> None:
    """Every input's noise scale keeps ``x + sigma z`` finite in its dtype (with
    ``relative``, sigma is the level times each example's range: the largest is checked)."""
    xs, relative = call.inputs, call.options.relative
    scales = relative_stdevs(xs, call.stdevs) if relative else call.stdevs
    for i, (x, s) in enumerate(zip(xs, scales)):
        index = f"[{i}]" if isinstance(call.options.stdevs, tuple) else ""
        name = f"stdevs{index} * (max - min)" if relative else f"stdevs{index}"
        if is_array(s):
            xp, _ = namespace_and_device(s)
            s = float(xp.max(s)) if math.prod(s.shape) else 0.0
        check_noise_scale(name, s, x, x_name=f"inputs[{i}]" if call.is_tuple else "inputs")


def run_key(rng: Any, executor: Any) -> Any:
    """The key of a keyed run, or None for a sequential one (today's single stream).

    Keyed: ``rng`` a ``numpy.random.SeedSequence``, or any ``executor`` (then ``rng=None``
    is a fresh key, and a sequential ``rng``, an int seed or a generator, a ValueError).
    ``executor`` must be None or a ``concurrent.futures.Executor`` (TypeError)."""
    check_executor(executor)
    if executor is None and not is_keyed(rng):
        return None
    return keyed(rng, what="NoiseTunnel.attribute with an executor")


def check_rows(a: Any, batch: int, k: int, what: str) -> Any:
    """``a``, an output of the wrapped method, must have one row per noisy input row."""
    if not hasattr(a, "shape") or a.ndim < 1 or a.shape[0] != batch * k:
        shape = tuple(a.shape) if hasattr(a, "shape") else type(a).__name__
        raise ValueError(
            f"the attribution method returned a {what} of shape {shape} for {batch * k} rows "
            f"({batch} examples x {k} samples); NoiseTunnel needs one row per noisy input row"
        )
    return a


def progress_bar_for(call: TunnelCall, tasks: int | None = None) -> Any:
    """A bar over the chunks of ``call`` (over its ``tasks`` in a keyed run): with
    ``progress=None`` it appears only once the call has run ``backends.progress.DELAY`` (2)
    seconds, True shows it at once, False never."""
    return progress_bar(
        total=len(call.options.chunks) if tasks is None else tasks,
        enabled=call.options.progress,
        desc="noise tunnel",
        unit="chunk" if tasks is None else "task",
    )
