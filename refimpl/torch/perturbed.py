r"""torch front end of :mod:`refimpl.perturbed` with the documented signatures.

``perturbed(func=None, num_samples=1000, sigma=0.05, noise="normal", batched=True,
device=None)`` works like the TensorFlow original and its PyTorch port (function and
decorator, bare or with arguments), backed by a ``torch.autograd.Function`` whose backward
is the closed-form estimator of :mod:`refimpl.perturbed` (never autograd through ``func``)::

    from refimpl.torch import perturbed

    @perturbed(num_samples=10_000, sigma=0.5, noise="gumbel")
    def argmax(x):
        return torch.nn.functional.one_hot(x.argmax(-1), x.shape[-1]).float()

    y = argmax(theta)                  # theta: (batch, D), requires_grad
    (y ** 2).sum().backward()          # theta.grad: the estimator of J^T (2 y)

What differs from the port (each has a test):

* the noise is drawn on the input's device, in its dtype, from ``generator`` (default: the
  default generator of that device, so ``torch.manual_seed`` makes runs reproducible);
  ``device`` is accepted for compatibility and ignored;
* extra positional and keyword arguments reach ``func`` in forward and backward (the port's
  backward raises on any extra argument); they get no gradient;
* memory stays bounded: samples are processed in chunks; the backward uses the per-example
  Jacobian accumulated in forward when it is small (``JACOBIAN_VALUES`` entries in all,
  ``JACOBIAN_PER_EXAMPLE`` per example), else it replays the same noise from the saved
  generator state (a second pass over the samples);
* the baseline ``func(theta)`` is subtracted (unbiased, far less variance);
  ``baseline=False`` gives the port's estimator;
* integer and bool outputs are cast to the input's dtype (the port's ``mean`` fails on them).

``FenchelYoungLoss`` is an ``nn.Module`` with the port's signature; its value is the FY loss
up to a constant (see :mod:`refimpl.perturbed.fenchel_young`), not the port's
``sum((y_sigma - y)**2)`` (``value="port"`` gives that one); its gradient is the port's.

Coming from the port: the loss values are on another scale by design (the port prints a
squared distance, this the FY loss), while the FY gradients and the accuracy they train to
agree; ``perturbed``'s gradients differ by design too (the baseline is subtracted by
default: same expectation, less variance); ``baseline=False`` gives the port's estimator,
on other noise draws (drawn on the input's device, in blocks), so equal in distribution,
not digit for digit.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch
from torch.autograd.function import once_differentiable

from backends import as_rng
from backends.keys import is_keyed, keyed
from backends.torch import default_generator
from refimpl.perturbed import Gumbel, Normal, Perturbed, PerturbedOptions, fenchel_young_loss
from refimpl.torch.checks import check_tensor, check_values
from refimpl.validation import check_shape

__all__ = ["SUPPORTED_NOISES", "FenchelYoungLoss", "perturbed", "sample_noise_with_gradients"]

#: the port's names of its two noises (``perturbations._GUMBEL``, ``_NORMAL``)
_GUMBEL, _NORMAL = "gumbel", "normal"
SUPPORTED_NOISES = (_GUMBEL, _NORMAL)

#: the largest Jacobian (batch x out x in entries) kept from forward to backward
JACOBIAN_VALUES = 2**26
#: ... and the largest per example (out x in): accumulating it costs 2 out in flops per
#: sample, more than a second pass over the samples for cheap solvers (argmax 100 x 100 on
#: 256 examples: 7 s against 4 s per 2000 samples, one core)
JACOBIAN_PER_EXAMPLE = 8192


def _generator(generator: Any, x: torch.Tensor, executor: Any = None) -> Any:
    """``generator``; None: the default generator of ``x``'s device, or with an executor a
    fresh key (drawn once per call, so that backward replays forward's noise)."""
    if generator is not None:
        return generator
    return keyed(None) if executor is not None else default_generator(x.device)


def sample_noise_with_gradients(
    noise: str, shape: Any, *, device: Any = None, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The port's ``sample_noise_with_gradients(noise, shape)``: float32 noise :math:`Z` of
    ``shape`` and :math:`\nabla\nu(Z)` (:math:`Z` for normal noise, :math:`1 - e^{-Z}` for
    Gumbel noise), drawn by this project's samplers from ``generator`` (default: the default
    generator of ``device``, the CPU's by default). ValueError for another noise, as in the
    port."""
    if noise not in SUPPORTED_NOISES:
        raise ValueError(f"{noise} noise is not supported. Use one of [{SUPPORTED_NOISES}]")
    _check_generator(generator)
    device = torch.device("cpu") if device is None else torch.device(device)
    gen = generator if generator is not None else default_generator(device)
    law = Gumbel() if noise == _GUMBEL else Normal()
    return law.sample(
        as_rng(gen, backend="torch", device=device), check_shape("shape", shape), torch.float32
    )


def _check_generator(generator: Any, *, keys: bool = False) -> None:
    if (
        generator is None
        or isinstance(generator, torch.Generator)
        or (keys and is_keyed(generator))
    ):
        return
    also = ", a numpy.random.SeedSequence (a key, see backends.keys)" if keys else ""
    raise TypeError(
        f"generator must be a torch.Generator{also} or None, got {generator!r} "
        f"({type(generator).__name__})"
    )


def _check_tensor(x: Any, name: str = "input_tensor") -> None:
    """A tensor with values (not on the meta device): the estimators read them."""
    check_values(check_tensor(x, name), name)


def _replay(generator: torch.Generator, state: torch.Tensor) -> torch.Generator:
    """A new generator on the same device, in ``state``: the forward's noise again."""
    g = torch.Generator(device=generator.device)
    g.set_state(state)
    return g


class _PerturbedFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, theta, op, generator, args, kwargs):
        x = theta.detach()
        ctx.op, ctx.args, ctx.kwargs, ctx.generator = op, args, kwargs, generator
        ctx.state = None if is_keyed(generator) else generator.get_state()
        ctx.unbatched = not op.options.batched
        limits = (JACOBIAN_VALUES, JACOBIAN_PER_EXAMPLE)
        e = op.replace(rng=generator).estimate(
            x, args, kwargs, jacobian=ctx.needs_input_grad[0], jacobian_limit=limits
        )
        if e.jacobian is not None:
            ctx.save_for_backward(x, e.jacobian)
        else:
            ctx.save_for_backward(x)
        return e.value

    @staticmethod
    @once_differentiable
    def backward(ctx, dy):
        saved = ctx.saved_tensors
        x = saved[0]
        if len(saved) == 2:  # J^T dy per example: (batch, 1, out) @ (batch, out, in)
            jac = saved[1]
            batch = 1 if ctx.unbatched else x.shape[0]
            j = jac.reshape(batch, dy.numel() // batch, -1)
            grad = torch.matmul(dy.reshape(batch, 1, -1).to(j.dtype), j).reshape(x.shape)
        else:  # replay the forward's noise (a key draws it again) and run the estimator
            rng = ctx.generator if ctx.state is None else _replay(ctx.generator, ctx.state)
            op = ctx.op.replace(rng=rng)
            grad = op.vjp(x, dy.to(x.dtype), *ctx.args, **ctx.kwargs)
        return grad, None, None, None, None


def perturbed(
    func: Callable[..., Any] | None = None,
    num_samples: int = 1000,
    sigma: float = 0.05,
    noise: str = "normal",
    batched: bool = True,
    device: Any = None,
    *,
    generator: torch.Generator | None = None,
    chunk_size: int | None = None,
    sampling: str = "mc",
    baseline: bool = True,
    progress: bool | None = None,
    executor: Any = None,
) -> Any:
    """Turn ``func`` into a perturbed, differentiable function (the documented signature).

    Parameters as in :func:`refimpl.perturbed.perturbed`, plus ``device`` (accepted for
    compatibility with the port and ignored: noise follows the input) and ``generator``
    (a ``torch.Generator``; None: the default generator of the input's device, or a fresh
    key with an executor; a ``numpy.random.SeedSequence``: a key, whose results are
    bit-identical with and without ``executor``, a ``concurrent.futures.Executor`` such as
    dask's ``Client.get_executor()`` that runs forward's and backward's tasks). Returns the
    wrapped function, or a decorator when ``func`` is None. The wrapper takes
    ``(input_tensor, *args, **kwargs)``; ``args``/``kwargs`` are passed to ``func``.

    Coming from the port: the forward values are the port's estimator; the gradients differ
    by design, because ``baseline=True`` (the default) subtracts ``func(input_tensor)`` in
    the Jacobian estimator: the same expectation with far less variance (it no longer grows
    like ``1/sigma**2``). ``baseline=False`` gives the port's estimator (the noise is drawn
    differently, on the input's device in blocks, so the values agree in distribution, not
    digit for digit).
    """
    _check_generator(generator, keys=True)
    options = PerturbedOptions(
        num_samples, sigma, noise, batched, None, chunk_size, sampling, baseline, progress, executor
    )  # validated now, also at decoration time
    if executor is not None and generator is not None:
        keyed(generator, what="perturbed(..., executor=...)")  # a torch.Generator cannot split
    if func is None:
        return functools.partial(_wrap, options=options, generator=generator)
    return _wrap(func, options=options, generator=generator)


def _wrap(func: Callable[..., Any], *, options: PerturbedOptions, generator: Any) -> Any:
    op = Perturbed(func, options)

    @functools.wraps(func)
    def wrapper(input_tensor: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        _check_tensor(input_tensor)
        gen = _generator(generator, input_tensor, options.executor)
        return _PerturbedFunction.apply(input_tensor, op, gen, args, kwargs)

    wrapper.perturbed = op  # the refimpl object (jvp, vjp, jacobian on tensors)
    return wrapper


class _FenchelYoungFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, theta, y_true, loss, generator, args, kwargs):
        x, y = theta.detach(), y_true.detach()
        value, grad = loss.replace(rng=generator).value_and_grad(x, y, *args, **kwargs)
        ctx.save_for_backward(grad, x)
        ctx.maximize, ctx.port = loss.maximize, loss.value == "port"
        return value

    @staticmethod
    @once_differentiable
    def backward(ctx, dy):
        grad, x = ctx.saved_tensors
        dy = dy.reshape(dy.shape + (1,) * (grad.ndim - dy.ndim)).to(grad.dtype)
        grad_y = None
        if ctx.needs_input_grad[1] and ctx.port:  # d/dy sum((y_sigma - y)**2)
            grad_y = -2.0 * (grad if ctx.maximize else -grad) * dy
        elif ctx.needs_input_grad[1]:  # d/dy (F(theta) - <theta, y>) = -theta
            grad_y = (-x if ctx.maximize else x) * dy
        return dy * grad, grad_y, None, None, None, None


class FenchelYoungLoss(torch.nn.Module):
    r"""The Fenchel-Young loss of a perturbed solver, as an ``nn.Module``.

    Signature of the port (``func, num_samples=1000, sigma=0.01, noise="normal",
    batched=True, maximize=True, device=None``) plus keyword-only ``generator`` (also a
    ``numpy.random.SeedSequence`` key, as in :func:`perturbed`), ``executor``,
    ``chunk_size``, ``sampling``, ``value``. ``forward(input_tensor, y_true, *args,
    **kwargs)`` returns the per-example loss (shape ``(batch,)``; 0-d unbatched):
    :math:`\hat F_\sigma(\theta) - \langle\theta, y\rangle`, the FY loss
    :math:`F_\sigma(\theta) + \Omega(y) - \langle\theta, y\rangle` without the constant
    :math:`\Omega(y)` (for one-hot or other vertex targets :math:`\Omega(y) =
    -\sigma\langle y, E Z\rangle`: 0 with normal noise, :math:`-\sigma\gamma` with
    Gumbel noise, so the value is then the FY loss itself, or it plus :math:`\sigma\gamma
    \approx 0.577\sigma`).

    **Coming from the port.** The port (like the TensorFlow original) returns another
    quantity, :math:`\sum (y_\sigma(\theta) - y)^2` per example, so the numbers differ
    by more than a constant (e.g. 32.8 there against 13.3 here summed over a batch) while
    the gradients and the accuracy agree. ``value="port"`` returns the port's number, from
    the same samples. The gradient, for either value, is the port's:
    :math:`y_\sigma(\theta) - y` (``maximize=False``: the negative), the Monte Carlo mean
    of the solver's outputs (no baseline is involved; with ``value="port"`` the gradient
    with respect to ``y_true`` is that of the reported value, :math:`-2 (y_\sigma - y)`).
    Gradients that go through :func:`perturbed` instead differ from the port's by design:
    the baseline is subtracted by default (``baseline=False`` gives the port's estimator).
    """

    def __init__(
        self,
        func: Callable[..., Any] | None = None,
        num_samples: int = 1000,
        sigma: float = 0.01,
        noise: str = "normal",
        batched: bool = True,
        maximize: bool = True,
        device: Any = None,
        *,
        generator: torch.Generator | None = None,
        chunk_size: int | None = None,
        sampling: str = "mc",
        progress: bool | None = None,
        value: str = "fenchel_young",
        executor: Any = None,
    ) -> None:
        super().__init__()
        _check_generator(generator, keys=True)
        self.func = func
        self.generator, self.executor = generator, executor
        #: the perturbed solver itself, ``loss_fn.perturbed(theta)`` (as in the port)
        self.perturbed = perturbed(
            func,
            num_samples=num_samples,
            sigma=sigma,
            noise=noise,
            batched=batched,
            device=device,
            generator=generator,
            chunk_size=chunk_size,
            sampling=sampling,
            progress=progress,
            executor=executor,
        )
        self.loss = fenchel_young_loss(
            func,
            num_samples=num_samples,
            sigma=sigma,
            noise=noise,
            batched=batched,
            chunk_size=chunk_size,
            sampling=sampling,
            maximize=maximize,
            progress=progress,
            value=value,
            executor=executor,
        )

    def forward(
        self, input_tensor: torch.Tensor, y_true: torch.Tensor, *args: Any, **kwargs: Any
    ) -> torch.Tensor:
        _check_tensor(input_tensor)
        _check_tensor(y_true, "y_true")
        gen = _generator(self.generator, input_tensor, self.executor)
        return _FenchelYoungFunction.apply(input_tensor, y_true, self.loss, gen, args, kwargs)

    def extra_repr(self) -> str:
        p = self.loss.perturbed.options
        return (
            f"func={getattr(self.func, '__name__', self.func)}, num_samples={p.num_samples}, "
            f"sigma={p.sigma}, noise={p.noise.name!r}, batched={p.batched}, "
            f"maximize={self.loss.maximize}, value={self.loss.value!r}"
        )
