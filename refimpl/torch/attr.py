"""captum-style attributions on ``torch.nn.Module`` (autograd), and the noise tunnel.

``Saliency``, ``InputXGradient`` and ``IntegratedGradients`` have captum 0.9's constructor
and ``attribute`` signatures (and its ``compute_convergence_delta``; ``attribute_future``
raises NotImplementedError, as captum's does for these four classes) and run ``refimpl.attr``'s algorithms with the gradient taken by
autograd on ``forward_func(*inputs, *additional_forward_args)`` (tuple inputs and extra
arguments work as in captum). ``NoiseTunnel`` wraps them, or captum's own attribution
objects, or anything with ``attribute(inputs, **kwargs)``.

Differences from ``refimpl.attr.NoiseTunnel``:

* everything runs under ``torch.no_grad()`` (the wrapped method enables grad where it
  needs it); noisy inputs get ``requires_grad_()`` for captum's gradient methods, as captum
  does, and the caller's tensors (and their ``.grad``) are never touched;
* ``rng=None`` draws from torch's default generator of the inputs' device, so
  ``torch.manual_seed`` makes a run reproducible (an int seed or a ``torch.Generator`` works
  too); ``rng=numpy.random.SeedSequence(seed)`` is a key, and ``executor=`` (for example
  a dask.distributed ``Client(...).get_executor()``) computes the keyed run's tasks there,
  bit-identical to ``executor=None`` (see :meth:`refimpl.attr.NoiseTunnel.attribute`);
* inputs must be torch tensors (a TypeError naming ``inputs`` otherwise), here and in the
  attribution methods;
* a bad ``target`` raises ``refimpl.attr.TargetError`` (a ValueError and an AssertionError,
  captum's type) or ``TargetTypeError`` (a TypeError and an AssertionError);
* ``captum_compatible=True`` draws the noise exactly as captum 0.9 does (per chunk and input,
  ``stdev * randn((B*k, ...))`` as float32 from the generator, rows ``b*k + j``), accumulates
  as captum does (chunk sums, ``E[a^2] - E[a]^2``), orders deltas chunk-major, and draws
  baselines with numpy's global RNG once for all full chunks: with the same torch seed the
  result is bit for bit captum's, for every ``nt_type`` and chunk size. Use it to check
  parity; it also reproduces captum's chunk dependence and its float32 VarGrad cancellation.
  Its ``rng`` must be None, an int seed, a ``torch.Generator`` or a ``backends.Rng`` holding
  one (captum draws with ``torch.randn``): another generator is a TypeError.
"""

from __future__ import annotations

import contextlib
import inspect
import numbers
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from backends.rng import Rng, as_rng
from backends.torch import default_generator
from refimpl import attr as _attr
from refimpl.attr import (
    NoiseTunnelOptions,
    TunnelCall,
    expand_kwargs,
    mirror,
    prepare_call,
    relative_stdevs,
    target_cotangent,
    target_scores,
)
from refimpl.torch.checks import check_values
from refimpl.torch.checks import kind as _kind
from refimpl.validation import check_bool, check_rng

__all__ = ["InputXGradient", "IntegratedGradients", "NoiseTunnel", "Saliency"]


def _check_tensors(inputs: Any, name: str = "inputs", *, values: bool = False) -> None:
    """``inputs``: a tensor or a tuple of tensors (autograd and torch's generators need
    them); a TypeError naming the argument otherwise. With ``values``, none may be on the
    meta device (the noise tunnel checks finiteness and scales: it reads values)."""
    if isinstance(inputs, tuple):
        for i, x in enumerate(inputs):
            if not isinstance(x, torch.Tensor):
                raise TypeError(f"{name}[{i}] must be a torch.Tensor, got {_kind(x)}")
            if values:
                check_values(x, f"{name}[{i}]")
    elif not isinstance(inputs, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor or a tuple of them, got {_kind(inputs)}")
    elif values:
        check_values(inputs, name)


def _output(out: Any, batch: int) -> torch.Tensor:
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"forward_func must return a tensor, got {type(out).__name__}")
    if out.ndim < 1 or out.shape[0] != batch:
        raise ValueError(
            f"forward_func must return one row per example (batch size {batch}), got shape "
            f"{tuple(out.shape)}"
        )
    return out


def _accepts(fn: Any, n_args: int) -> bool:
    """Whether ``fn`` (a module's ``forward``, or the callable itself) can be called with
    ``n_args`` positional arguments (True when its signature cannot be read)."""
    target = fn.forward if isinstance(fn, torch.nn.Module) else fn
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):
        return True
    try:
        signature.bind(*([None] * n_args))
    except TypeError:
        return False
    return True


class _Autograd:
    """Derivatives of ``forward_func(*inputs, *args)`` by reverse-mode autograd."""

    forward_func: Any

    def check_forward_args(self, args: tuple) -> None:
        """Nothing to check here: :meth:`check_call` knows the number of inputs."""

    def check_call(self, inputs: Any, additional_forward_args: Any) -> None:
        """Before any work: ``inputs`` are tensors, and ``forward_func`` can take them and
        the ``additional_forward_args`` (captum: the model's TypeError from its first
        call, naming neither)."""
        _check_tensors(inputs)
        n = len(inputs) if isinstance(inputs, tuple) else 1
        args = additional_forward_args
        extra = () if args is None else args if isinstance(args, tuple) else (args,)
        if not _accepts(self.forward_func, n + len(extra)):
            raise TypeError(
                f"forward_func cannot be called with the {n} input(s) and the {len(extra)} "
                f"additional_forward_args given: forward_func(*inputs, "
                "*additional_forward_args) must match its signature"
            )

    def gradients(self, xs: tuple, target: Any, args: tuple) -> tuple:
        with torch.enable_grad():
            leaves = tuple(x.detach().requires_grad_(True) for x in xs)
            out = _output(self.forward_func(*leaves, *args), xs[0].shape[0])
            u = target_cotangent(out.detach(), target)
            grads = torch.autograd.grad(out, leaves, grad_outputs=u, allow_unused=True)
        return tuple(torch.zeros_like(x) if g is None else g.detach() for x, g in zip(xs, grads))

    def scores(self, xs: tuple, target: Any, args: tuple) -> torch.Tensor:
        with torch.no_grad():
            out = _output(self.forward_func(*xs, *args), xs[0].shape[0])
            return target_scores(out, target_cotangent(out, target))

    def compute_convergence_delta(
        self,
        attributions: Any,
        start_point: Any,
        end_point: Any,
        target: Any = None,
        additional_forward_args: Any = None,
    ) -> torch.Tensor:
        """captum's ``compute_convergence_delta``: per example, the sum of the attributions
        minus ``F(end_point) - F(start_point)`` of the target score, without a graph
        (``attribute(..., return_convergence_delta=True)`` gives the same digits)."""
        _check_tensors(attributions, "attributions")
        _check_tensors(end_point, "end_point")
        self.check_call(end_point, additional_forward_args)
        with torch.no_grad():
            return super().compute_convergence_delta(  # type: ignore[misc]
                attributions, start_point, end_point, target, additional_forward_args
            )


class Saliency(_Autograd, _attr.Saliency):
    """captum's ``Saliency(forward_func).attribute(inputs, target=None, abs=True,
    additional_forward_args=None)``."""

    def attribute(
        self,
        inputs: Any,
        target: Any = None,
        abs: bool | None = None,
        additional_forward_args: Any = None,
    ) -> Any:
        self.check_call(inputs, additional_forward_args)
        with torch.no_grad():
            return super().attribute(inputs, target, abs, additional_forward_args)


class InputXGradient(_Autograd, _attr.InputXGradient):
    """captum's ``InputXGradient(forward_func).attribute(inputs, target=None,
    additional_forward_args=None)``."""

    def attribute(
        self, inputs: Any, target: Any = None, additional_forward_args: Any = None
    ) -> Any:
        self.check_call(inputs, additional_forward_args)
        with torch.no_grad():
            return super().attribute(inputs, target, additional_forward_args)


class IntegratedGradients(_Autograd, _attr.IntegratedGradients):
    """captum's ``IntegratedGradients(forward_func, multiply_by_inputs=True).attribute(inputs,
    baselines=None, target=None, additional_forward_args=None, n_steps=50,
    method="gausslegendre", internal_batch_size=None, return_convergence_delta=False)``."""

    def attribute(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        bound = inspect.signature(_attr.IntegratedGradients.attribute).bind(
            self, inputs, *args, **kwargs
        )
        self.check_call(inputs, bound.arguments.get("additional_forward_args"))
        with torch.no_grad():
            return super().attribute(inputs, *args, **kwargs)


@contextlib.contextmanager
def _one_intra_op_thread() -> Iterator[None]:
    """torch's intra-op thread count lowered to 1 for the block, then restored.

    torch spreads every operation on more than 32768 values over its intra-op threads. The
    noise tunnel's own operations (noise, noisy inputs, one running-moment update per
    sample) are memory-bound adds and products of a few MB, done before the threads have
    synchronised; on a busy machine each synchronisation waits for a descheduled thread
    (measured at load 18 on 2 cores: 23 ms for one 2-thread add of 1.5 MB, 0.2 ms on one
    thread). They run on one thread, the model on all. Elementwise results do not depend on
    the thread count. The count is process-wide state that a thread starting to use torch
    would inherit, so it is lowered only while this is the only Python thread.
    """
    threads = torch.get_num_threads()
    if threads == 1 or threading.active_count() > 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _is_captum_gradient_method(method: Any) -> bool:
    return any(
        c.__name__ == "GradientAttribution" and c.__module__.startswith("captum")
        for c in type(method).__mro__
    )


class NoiseTunnel(_attr.NoiseTunnel):
    """``NoiseTunnel(attribution_method, *, captum_compatible=False)``; ``attribute`` as
    :class:`refimpl.attr.NoiseTunnel` (``rng=None``: torch's default generator)."""

    def __init__(self, attribution_method: Any, *, captum_compatible: bool = False) -> None:
        super().__init__(attribution_method)
        self.captum_compatible = check_bool("captum_compatible", captum_compatible)
        self.is_gradient_method = _is_captum_gradient_method(attribution_method)

    def context(self) -> Any:
        return torch.no_grad()

    def bookkeeping(self) -> Any:
        return _one_intra_op_thread()

    def prepare_inputs(self, noisy: tuple) -> tuple:
        if self.is_gradient_method:
            return tuple(t.requires_grad_() for t in noisy)
        return noisy

    def make_rng(self, rng: Any, like: Any) -> Rng:
        if rng is None:
            rng = default_generator(like.device)
        return as_rng(rng, like=like)

    def attribute(
        self,
        inputs: Any,
        nt_type: str = "smoothgrad",
        nt_samples: int = 5,
        nt_samples_batch_size: int | None = None,
        stdevs: Any = 1.0,
        draw_baseline_from_distrib: bool = False,
        *,
        rng: Any = None,
        relative: bool = False,
        progress: bool | None = None,
        executor: Any = None,
        **kwargs: Any,
    ) -> Any:
        options = NoiseTunnelOptions(
            nt_type, nt_samples, nt_samples_batch_size, stdevs,
            draw_baseline_from_distrib, relative, progress,
        )  # fmt: skip
        _check_tensors(inputs, values=True)
        if self.captum_compatible and executor is not None:
            raise ValueError(
                "captum_compatible=True draws captum's noise from one sequential torch "
                "generator, chunk after chunk, so executor must be None (use "
                "captum_compatible=False with rng=numpy.random.SeedSequence(seed) to run on "
                "an executor)"
            )
        key = None if self.captum_compatible else self.run_key(rng, executor)
        with torch.no_grad():  # the checks too: no graph from the caller's tensors
            call = prepare_call(self, inputs, options, kwargs)
            if self.captum_compatible:
                return self._run_captum(call, self._generator(rng, call.inputs[0]))
            return self.run(call, rng, key=key, executor=executor)

    # -- captum 0.9's noise, accumulation and delta order ----------------------------------
    def _generator(self, rng: Any, like: torch.Tensor) -> torch.Generator:
        """The torch generator captum's ``torch.randn`` draws from: ``rng`` None (the
        default generator of the inputs' device), an int seed (a seeded generator), a
        ``torch.Generator`` or a ``backends.Rng`` holding one; TypeError otherwise."""
        if rng is None:
            return default_generator(like.device)
        if isinstance(rng, torch.Generator):
            return rng
        if isinstance(rng, Rng) and isinstance(rng.generator, torch.Generator):
            return rng.generator
        if isinstance(rng, numbers.Integral) and not isinstance(rng, bool):
            return as_rng(check_rng(rng), like=like).generator  # a seeded torch.Generator
        raise TypeError(
            "captum_compatible=True draws its noise with torch.randn, as captum does, so rng "
            "must be None, an int seed, a torch.Generator or a backends.Rng holding one; got "
            f"{_kind(rng)} (use captum_compatible=False for other generators)"
        )

    def _run_captum(self, call: TunnelCall, g: torch.Generator) -> Any:
        o = call.options
        xs, n, kwargs, nt_type = call.inputs, o.nt_samples, call.kwargs, o.nt_type
        batch = xs[0].shape[0]
        sigmas = relative_stdevs(xs, call.stdevs) if o.relative else call.stdevs
        sums: list[Any] = [None] * len(xs)
        sqs: list[Any] = [None] * len(xs)
        deltas: list[torch.Tensor] = []
        attr_tuple = call.is_tuple

        def draw(rows: int) -> Any:
            if not o.draw_baseline_from_distrib:
                return None
            return lambda i, k_base: torch.as_tensor(  # numpy's global RNG, as captum
                np.random.choice(k_base, rows).tolist(), device=xs[0].device
            )

        def noisy_inputs(k: int) -> tuple:
            out = []
            for x, s in zip(xs, sigmas):
                z = torch.randn(
                    (batch * k, *x.shape[1:]), generator=g, dtype=torch.float32, device=x.device
                )
                scale = s if isinstance(s, float) else s[:, 0].repeat_interleave(k, dim=0)
                t = x.repeat_interleave(k, dim=0) + scale * z
                out.append(t if t.dtype == x.dtype else t.to(x.dtype))  # captum: float32 for halves
            return self.prepare_inputs(tuple(out))

        def one_chunk(noisy: tuple, k: int, kw: dict) -> None:
            nonlocal attr_tuple
            out = self.attribution_method.attribute(noisy if call.is_tuple else noisy[0], **kw)
            if call.want_delta:
                out, delta = out
                deltas.append(delta)
            attr_tuple = isinstance(out, tuple)
            attrs = out if attr_tuple else (out,)
            for i, a in enumerate(attrs):
                a = a.reshape(batch, k, *a.shape[1:])
                if nt_type != "smoothgrad_sq":  # captum computes both; the result is the same
                    s1 = a.sum(dim=1)
                    sums[i] = s1 if sums[i] is None else sums[i] + s1
                if nt_type != "smoothgrad":
                    s2 = torch.sum(a**2, dim=1)
                    sqs[i] = s2 if sqs[i] is None else sqs[i] + s2

        bs = o.chunks[0]
        n_full, rem = n // bs, n % bs
        kw_full = expand_kwargs(kwargs, xs, bs, draw=draw(batch * bs))  # once, as captum
        for _ in range(n_full):
            one_chunk(noisy_inputs(bs), bs, kw_full)
        if rem:
            noisy = noisy_inputs(rem)  # noise first, then the remainder's kwargs (as captum)
            one_chunk(noisy, rem, expand_kwargs(kwargs, xs, rem, draw=draw(batch * rem)))
        mean = tuple(s * 1 / n for s in sums if s is not None)  # (sum * 1) / n, as captum
        mean_sq = tuple(s * 1 / n for s in sqs if s is not None)
        if nt_type == "smoothgrad":
            result = mean
        elif nt_type == "smoothgrad_sq":
            result = mean_sq
        else:
            result = tuple(e2 - e * e for e, e2 in zip(mean, mean_sq))
        result = mirror(attr_tuple, result)
        if call.want_delta:
            return result, torch.cat(deltas, dim=0)  # chunk-major, as captum
        return result
