r"""Perturbed optimizers: Monte Carlo smoothing of a solver and its closed-form Jacobian.

Berthet, Blondel, Teboul, Cuturi, Vert & Bach (2020), *Learning with Differentiable
Perturbed Optimizers*, NeurIPS. For a solver :math:`y^*` (piecewise constant: its Jacobian
is zero almost everywhere), noise :math:`Z \sim \mu \propto e^{-\nu}` and a scale
:math:`\sigma > 0`, the perturbed solver

.. math:: y_\sigma(\theta) = E\,[\,y^*(\theta + \sigma Z)\,]

is smooth, and its Jacobian needs no derivative of :math:`y^*` (Prop. 3.1; integrate by
parts against the density):

.. math:: J_\theta\, y_\sigma(\theta)
          = \frac{1}{\sigma}\, E\,[\,(y^*(\theta + \sigma Z) - b)\, \nabla\nu(Z)^\top\,],

for any baseline :math:`b` independent of Z, because :math:`E[\nabla\nu(Z)] = 0`. Here
:math:`b = y^*(\theta)` (one extra solver call per example; ``baseline=True``), which removes
the :math:`1/\sigma^2` growth of the variance as :math:`\sigma \to 0`. With N samples
:math:`z_n` and :math:`y_n = y^*(\theta + \sigma z_n)` the estimates are

.. math::
    \hat y = \frac1N \sum_n y_n, \qquad
    \widehat{J v} = \frac{1}{N\sigma} \sum_n (y_n - b)\,\langle \nabla\nu(z_n), v\rangle,
    \qquad
    \widehat{J^\top u} = \frac{1}{N\sigma} \sum_n \langle y_n - b, u\rangle\, \nabla\nu(z_n),

per batch element (no cross-example terms). The same samples give all three, so ``jvp``
and ``vjp`` of one seed are exact adjoints.

Memory: ``func`` is called on one leading axis of ``chunk * batch`` rows (sample-major), and
only sums over samples are kept, so the peak does not grow with ``num_samples``. The noise
is drawn in blocks that do not depend on the chunk size (``refimpl.perturbed.sampling``):
for a fixed seed, every chunk size gives the same samples.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from backends import as_rng, namespace_and_device
from backends.keys import NOISE, SCRAMBLE, block_rng, is_keyed, keyed
from backends.progress import progress_bar
from backends.threads import one_thread_per_op
from refimpl.parallel import run_tasks
from refimpl.perturbed.checked_solver import CheckedSolver
from refimpl.perturbed.options import PerturbedOptions
from refimpl.perturbed.sampling import block_size, noise_stream, resolve_sampling, task_size
from refimpl.validation import (
    check_array,
    check_bool,
    check_callable,
    check_finite,
    check_int,
    check_noise_scale,
    check_same_place,
    leading_batch,
)

__all__ = ["Estimates", "Perturbed", "PerturbedOptions", "perturbed"]

#: values of one chunk (samples x batch x max(input, output) size): about 1 MiB of float32,
#: so the dozen temporaries of a chunk stay in cache and in the allocator's free lists
CHUNK_VALUES = 2**18
_OPTION_NAMES = tuple(f.name for f in dataclasses.fields(PerturbedOptions))


@dataclass(frozen=True)
class Estimates:
    r"""What one pass over the N samples estimated (None: not asked for), shaped for the
    caller (``batch`` is absent when unbatched; ``k``: a leading tangent/cotangent batch):

    * ``value``: :math:`\hat y_\sigma(\theta)`, ``(batch, *out)``;
    * ``jvp``: :math:`\widehat{J v}`, ``([k,] batch, *out)``;
    * ``vjp``: :math:`\widehat{J^\top u}`, ``([k,] batch, *event)``;
    * ``jacobian``: :math:`\hat J`, ``(batch, *out, *event)``;
    * ``f_sigma``: :math:`\hat F_\sigma(\theta) = \frac1N \sum_n \langle y_n, \theta +
      \sigma z_n\rangle` per example, ``(batch,)`` (also ``(1,)`` unbatched), for the
      Fenchel-Young loss.
    """

    value: Any = None
    jvp: Any = None
    vjp: Any = None
    jacobian: Any = None
    f_sigma: Any = None


@dataclass
class _Sums:
    """What one pass over the samples accumulated (None: not asked for)."""

    value: Any = None
    vjp: Any = None
    jvp: Any = None
    jacobian: Any = None
    inner: Any = None  # sum_n <y_n, theta + sigma z_n> per example (Fenchel-Young)
    out_shape: tuple[int, ...] = ()  # func's result shape per row
    k_u: int | None = None  # leading cotangent batch of u (None: none)
    k_v: int | None = None  # leading tangent batch of v


class _Accumulator:
    r"""Sums over the samples, per example, of what the estimates need:

    * ``value``: :math:`\sum_n y_n`;
    * ``vjp``: :math:`\sum_n \langle y_n - b, u\rangle \nabla\nu(z_n)` (a k-batch of u);
    * ``jvp``: :math:`\sum_n (y_n - b) \langle \nabla\nu(z_n), v\rangle` (a k-batch of v);
    * ``jacobian``: :math:`\sum_n (y_n - b) \nabla\nu(z_n)^\top`;
    * ``inner``: :math:`\sum_n \langle y_n, \theta + \sigma z_n\rangle` (Fenchel-Young).

    Layout: samples c, examples B, flattened input d_in and output d_out; the products are
    batched over examples, ``(B, d_out, c) @ (B, c, d_in)``.
    """

    def __init__(self, xp, theta, batched, out_shape, base, *, u, v, jacobian, inner, limit):
        self.xp, self.out_shape = xp, tuple(out_shape)
        self.batch = theta.shape[0] if batched else 1
        event = tuple(theta.shape[1:]) if batched else tuple(theta.shape)
        self.event, self.d_in, self.d_out = event, math.prod(event), math.prod(out_shape)
        value_shape = ((theta.shape[0],) if batched else ()) + self.out_shape
        b, d_in, d_out = self.batch, self.d_in, self.d_out
        zeros = functools.partial(xp.zeros, dtype=theta.dtype, device=theta.device)
        self.base = None if base is None else xp.reshape(base, (1, b, d_out))
        if jacobian and limit is not None:
            jacobian = b * d_out * d_in <= limit[0] and d_out * d_in <= limit[1]
        self.sums = _Sums(value=zeros((b, d_out)), out_shape=self.out_shape)
        self.cotangents = self.tangents = None
        if u is not None:  # u: value_shape or (k, *value_shape) -> (B, d_out, k)
            k = self.sums.k_u = leading_batch(u, value_shape, name="u", expected="p(theta)")
            ub = xp.reshape(xp.astype(u, theta.dtype), (k or 1, b, d_out))
            self.cotangents = xp.permute_dims(ub, (1, 2, 0))
            self.sums.vjp = zeros((b, k or 1, d_in))
        if v is not None:  # v: theta.shape or (k, *theta.shape) -> (B, d_in, k)
            k = self.sums.k_v = leading_batch(v, tuple(theta.shape), name="v", expected="theta")
            vb = xp.reshape(xp.astype(v, theta.dtype), (k or 1, b, d_in))
            self.tangents = xp.permute_dims(vb, (1, 2, 0))
            self.sums.jvp = zeros((b, d_out, k or 1))
        if jacobian:
            self.sums.jacobian = zeros((b, d_out, d_in))
        if inner:
            if self.out_shape != event:
                raise ValueError(
                    "the Fenchel-Young loss needs func to return arrays shaped like its "
                    f"input {event}, got {self.out_shape}"
                )
            self.sums.inner = zeros((b,))

    def add(self, y: Any, g: Any, x: Any) -> None:
        """Add one chunk: y = func(x) (rows c * B), g = grad_nu(z), x = theta + sigma z."""
        xp, sums, b = self.xp, self.sums, self.batch
        y = xp.reshape(y, (-1, b, self.d_out))  # (c, B, d_out)
        sums.value = sums.value + xp.sum(y, axis=0)
        if sums.vjp is not None or sums.jvp is not None or sums.jacobian is not None:
            r = y - self.base if self.base is not None else y
            rb = xp.permute_dims(r, (1, 0, 2))  # (B, c, d_out)
            gb = xp.permute_dims(xp.reshape(g, (-1, b, self.d_in)), (1, 0, 2))  # (B, c, d_in)
            if sums.vjp is not None:  # sum_n <y_n - b, u> grad_nu(z_n)
                s = xp.matmul(rb, self.cotangents)  # (B, c, k)
                sums.vjp = sums.vjp + xp.matmul(xp.matrix_transpose(s), gb)
            if sums.jvp is not None:  # sum_n (y_n - b) <grad_nu(z_n), v>
                t = xp.matmul(gb, self.tangents)  # (B, c, k)
                sums.jvp = sums.jvp + xp.matmul(xp.matrix_transpose(rb), t)
            if sums.jacobian is not None:  # sum_n (y_n - b) grad_nu(z_n)^T
                sums.jacobian = sums.jacobian + xp.matmul(xp.matrix_transpose(rb), gb)
        if sums.inner is not None:  # sum_n <y_n, theta + sigma z_n>
            xb = xp.reshape(x, (-1, b, self.d_in))
            sums.inner = sums.inner + xp.sum(y * xb, axis=(0, 2))


class Perturbed:
    r"""A perturbed solver :math:`\theta \mapsto E[\mathrm{func}(\theta + \sigma Z)]` with its
    closed-form derivatives. Build it with :func:`perturbed`.

    Calls (extra ``*args, **kwargs`` go to ``func`` unchanged; they are not differentiated):

    * ``p(theta)``: the Monte Carlo mean, shape ``(batch, *out)`` (``(*out)`` unbatched);
    * ``p.jvp(theta, v)``: :math:`J v`, ``v`` shaped like ``theta`` (or ``(k, *theta.shape)``);
    * ``p.vjp(theta, u)``: :math:`J^\top u`, ``u`` shaped like ``p(theta)`` (or with a leading
      ``k``);
    * ``p.value_and_vjp(theta, u)``: both from one pass over the samples;
    * ``p.jacobian(theta)`` / ``p.value_and_jacobian(theta)``: the per-example Jacobian
      estimate, shape ``(batch, *out, *theta.shape[1:])`` (``(*out, *theta.shape)``
      unbatched);
    * ``p.estimate(theta, ...)``: any of them (and :math:`\hat F_\sigma`) from one pass.

    ``theta`` is ``(batch, *event)`` (rank >= 2) batched, one example of rank >= 1
    unbatched; ``func`` always receives ``(rows, *event)``.

    ``p.options`` holds the validated :class:`PerturbedOptions`. Randomness: an int seed
    draws the same noise on every call (common random numbers: ``jvp`` and ``vjp`` are then
    exact adjoints and finite differences are tight); a generator advances from call to
    call; None is fresh each time. :meth:`replace` makes a copy with other options.
    """

    def __init__(self, func: Callable[..., Any], options: PerturbedOptions) -> None:
        self.func = check_callable("func", func)
        if not isinstance(options, PerturbedOptions):
            raise TypeError(f"options must be a PerturbedOptions, got {type(options).__name__}")
        self.options = options
        functools.update_wrapper(self, func, updated=())

    def __getattr__(self, name: str) -> Any:
        """``p.sigma``, ``p.num_samples``, ...: the options' fields, read-only."""
        options = self.__dict__.get("options")
        if options is not None and name in _OPTION_NAMES:
            return getattr(options, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def replace(self, **changes: Any) -> Perturbed:
        """A copy with some options changed (validated like the constructor's)."""
        unknown = sorted(set(changes) - set(_OPTION_NAMES))
        if unknown:
            raise TypeError(f"unknown option(s) {unknown}; choose from {sorted(_OPTION_NAMES)}")
        return Perturbed(self.func, dataclasses.replace(self.options, **changes))

    # -- the protocol ---------------------------------------------------------------------
    def __call__(self, theta: Any, *args: Any, **kwargs: Any) -> Any:
        r"""The Monte Carlo mean :math:`\frac1N \sum_n \mathrm{func}(\theta + \sigma z_n)`."""
        return self.estimate(theta, args, kwargs).value

    def jvp(self, theta: Any, v: Any, *args: Any, **kwargs: Any) -> Any:
        r""":math:`\hat J v` (``v`` shaped like ``theta``, or ``(k, *theta.shape)``)."""
        return self.estimate(theta, args, kwargs, v=_given(v, "v")).jvp

    def vjp(self, theta: Any, u: Any, *args: Any, **kwargs: Any) -> Any:
        r""":math:`\hat J^\top u` (``u`` shaped like ``p(theta)``, or with a leading k)."""
        return self.estimate(theta, args, kwargs, u=_given(u, "u")).vjp

    def value_and_vjp(self, theta: Any, u: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
        """``(p(theta), p.vjp(theta, u))`` from one pass over the samples."""
        e = self.estimate(theta, args, kwargs, u=_given(u, "u"))
        return e.value, e.vjp

    def jacobian(self, theta: Any, *args: Any, **kwargs: Any) -> Any:
        """The Jacobian estimate, ``(batch, *out, *event)`` (unbatched ``(*out, *theta.shape)``)."""
        return self.estimate(theta, args, kwargs, jacobian=True).jacobian

    def value_and_jacobian(self, theta: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
        """``(p(theta), p.jacobian(theta))`` from one pass over the samples."""
        e = self.estimate(theta, args, kwargs, jacobian=True)
        return e.value, e.jacobian

    # -- the pass over the samples ----------------------------------------------------------
    def estimate(
        self,
        theta: Any,
        args: tuple = (),
        kwargs: dict | None = None,
        *,
        u: Any = None,
        v: Any = None,
        jacobian: bool = False,
        f_sigma: bool = False,
        jacobian_limit: tuple[int, int] | None = None,
    ) -> Estimates:
        r"""One pass over the N samples (``func(theta + sigma z_n, *args, **kwargs)``),
        estimating the value and what is asked for: ``jvp`` with the tangent ``v``, ``vjp``
        with the cotangent ``u``, the ``jacobian``, :math:`\hat F_\sigma` (``f_sigma``).
        With ``jacobian_limit = (total, per_example)`` the Jacobian is estimated only if it
        has at most that many entries (else it is None).

        Everything is checked before the first sample is drawn: theta, the noise scale
        (``max|theta| + 40 sigma`` finite in theta's dtype), ``u`` and ``v`` (real floating
        arrays of theta's library and device; ``v`` shaped like theta), and ``u``'s shape as
        soon as func's output shape is known (after the baseline call, else the first chunk).
        """
        _refuse_jax_tracers(theta, u, v)
        _check_estimate_args(args, kwargs, jacobian, f_sigma, jacobian_limit)
        o = self.options
        xp, tb = self._check_theta(theta)
        check_noise_scale("sigma", o.sigma, theta, x_name="theta")
        _check_directions(theta, u, v)
        batch, event = tb.shape[0], tuple(tb.shape[1:])
        solver = CheckedSolver(self.func, args, kwargs or {}, xp, theta.dtype)
        base = None
        if o.baseline and (u is not None or v is not None or jacobian):
            base = solver(tb, batch)  # the unperturbed solution b = y*(theta)
        wanted = dict(u=u, v=v, jacobian=jacobian, inner=f_sigma, limit=jacobian_limit)
        acc = None  # built, and u's shape checked, as soon as func's output shape is known
        if solver.out_shape is not None:
            acc = _Accumulator(xp, theta, o.batched, solver.out_shape, base, **wanted)
        sampling = resolve_sampling(o.sampling, math.prod(event))
        if o.executor is not None or is_keyed(o.rng):
            key = keyed(o.rng, what="perturbed(..., executor=...)")
            tasks = _SampleTasks(self.func, args, kwargs or {}, theta, tb, o, sampling, key, base)
            return self._estimates(xp, theta, tasks.run(wanted, self._bar()))
        rng = as_rng(o.rng, like=theta)
        stream = noise_stream(o.noise, sampling, rng, (batch, *event), theta.dtype, o.num_samples)

        make = functools.partial(_Accumulator, xp, theta, o.batched, base=base, **wanted)
        bar = self._bar()
        try:
            acc = _chunk_loop(tb, stream, o.num_samples, o, solver, make, acc, bar)
        finally:
            bar.close()
        return self._estimates(xp, theta, acc.sums)

    def _estimates(self, xp: Any, theta: Any, sums: _Sums) -> Estimates:
        """The sums divided by N (and by sigma for the derivatives), in the caller's shapes."""
        n, sigma, batched = self.options.num_samples, self.options.sigma, self.options.batched
        out_shape = sums.out_shape
        event = tuple(theta.shape[1:]) if batched else tuple(theta.shape)
        lead = (theta.shape[0],) if batched else ()
        jvp = vjp = jac = None
        if sums.vjp is not None:  # (batch, k, d_in) -> (k, batch, *event)
            g = xp.permute_dims(sums.vjp / (n * sigma), (1, 0, 2))
            k = () if sums.k_u is None else (sums.k_u,)
            vjp = xp.reshape(g, (*k, *lead, *event))
        if sums.jvp is not None:  # (batch, d_out, k) -> (k, batch, *out)
            t = xp.permute_dims(sums.jvp / (n * sigma), (2, 0, 1))
            k = () if sums.k_v is None else (sums.k_v,)
            jvp = xp.reshape(t, (*k, *lead, *out_shape))
        if sums.jacobian is not None:
            jac = xp.reshape(sums.jacobian / (n * sigma), (*lead, *out_shape, *event))
        return Estimates(
            value=xp.reshape(sums.value / n, (*lead, *out_shape)),
            jvp=jvp,
            vjp=vjp,
            jacobian=jac,
            f_sigma=None if sums.inner is None else sums.inner / n,
        )

    def _check_theta(self, theta: Any) -> tuple[Any, Any]:
        """``(xp, theta as (batch, *event))`` after checking it: a finite real floating
        array, not empty, with an event of rank >= 1 (theta of rank >= 2 batched, >= 1
        unbatched): func receives ``(rows, *event)``, so with a 0-d event the samples would
        sit on func's last axis and a solver reducing it would mix them."""
        xp, _ = check_array(theta, name="theta")
        if self.options.batched and theta.ndim < 2:
            raise ValueError(
                f"batched=True needs theta of rank >= 2 (batch, ...), got shape "
                f"{tuple(theta.shape)}; pass batched=False for a single example"
            )
        if not self.options.batched and theta.ndim < 1:
            raise ValueError(
                "batched=False needs theta of rank >= 1, got shape (): func receives (rows, "
                "*theta.shape), so the samples would sit on func's last axis; pass theta[None] "
                "for one value"
            )
        check_finite(theta, name="theta")
        if math.prod(theta.shape) == 0:
            raise ValueError(f"theta must not be empty, got shape {tuple(theta.shape)}")
        return xp, theta if self.options.batched else xp.reshape(theta, (1, *theta.shape))

    def _bar(self) -> Any:
        """A bar over the samples: with ``progress=None`` it appears only once the call has
        run ``backends.progress.DELAY`` (2) seconds, True shows it at once, False never."""
        name = getattr(self.func, "__name__", "func")
        n = self.options.num_samples
        return progress_bar(
            n, enabled=self.options.progress, desc=f"perturbed {name}", unit="sample"
        )

    def __repr__(self) -> str:
        name = getattr(self.func, "__name__", repr(self.func))
        o = self.options
        opts = ", ".join(
            f"{f.name}={getattr(o, f.name)!r}" for f in dataclasses.fields(o) if f.name != "noise"
        )
        return f"perturbed({name}, noise={o.noise.name!r}, {opts})"


@dataclass
class _SampleTasks:
    r"""The N samples of a keyed stream, as tasks of ``task_size`` samples.

    Task k holds samples :math:`[kT, \min((k+1)T, N))`, draws its noise from its own
    generator, ``block_rng(key, NOISE, k)`` (``backends.keys``), and returns its partial
    sums; the driver folds them in task order. The tasks' boundaries depend on the problem
    alone, so the sums, and the estimates, are bit-identical whether the tasks run here or
    on any executor, with any number of workers.
    """

    func: Callable[..., Any]
    args: tuple
    kwargs: dict
    theta: Any  # as the caller gave it (its shape shapes the estimates)
    tb: Any  # (batch, *event)
    options: PerturbedOptions
    sampling: str
    key: Any
    base: Any  # y*(theta), or None

    def run(self, wanted: dict, bar: Any) -> _Sums:
        o = self.options
        per_sample = math.prod(self.tb.shape)
        size = task_size(per_sample, o.num_samples)
        n_tasks = -(-o.num_samples // size)
        block = block_size(per_sample, o.num_samples)
        task = functools.partial(
            _task_sums, dataclasses.replace(self, options=o.without_executor()), wanted, size, block
        )
        total = None
        try:
            for k, sums in enumerate(run_tasks(task, n_tasks, o.executor, what="sample task")):
                total = sums if total is None else _fold(total, sums)
                bar.update(min(size, o.num_samples - k * size))
        finally:
            bar.close()
        return total


def _task_sums(tasks: _SampleTasks, wanted: dict, size: int, block: int, k: int) -> _Sums:
    """The partial sums of task ``k`` (its ``size`` samples, or what remains of N, drawn in
    noise blocks of ``block`` samples), computed in chunks as the sequential loop does."""
    o, tb = tasks.options, tasks.tb
    xp, _ = namespace_and_device(tb)
    batch, event = tb.shape[0], tuple(tb.shape[1:])
    n = min(size, o.num_samples - k * size)
    noise = dict(
        total=n + n % 2,  # whole antithetic pairs
        start=k * size,
        scramble=block_rng(tasks.key, SCRAMBLE, like=tb) if tasks.sampling == "qmc" else None,
        block=block,
    )
    rng = block_rng(tasks.key, NOISE, k, like=tb)
    stream = noise_stream(
        o.noise, tasks.sampling, rng, (batch, *event), tb.dtype, o.num_samples, **noise
    )
    solver = CheckedSolver(tasks.func, tasks.args, tasks.kwargs, xp, tb.dtype)
    make = functools.partial(_Accumulator, xp, tasks.theta, o.batched, base=tasks.base, **wanted)
    return _chunk_loop(tb, stream, n, o, solver, make).sums


def _chunk_loop(
    tb: Any,
    stream: Any,
    n: int,
    o: PerturbedOptions,
    solver: CheckedSolver,
    make: Callable[..., _Accumulator],
    acc: _Accumulator | None = None,
    bar: Any = None,
) -> _Accumulator:
    """The next ``n`` samples of ``stream``, in chunks: ``func(theta + sigma z)`` for each
    chunk, added to ``acc`` (made by ``make(out_shape)`` once func's output shape is known)."""
    xp, _ = namespace_and_device(tb)
    batch, event = tb.shape[0], tuple(tb.shape[1:])
    chunk = _chunk_size(o.chunk_size, stream, batch, math.prod(event), solver.out_shape)
    done = 0
    with one_thread_per_op(tb):
        while done < n:
            c = min(chunk, n - done)
            z, g = stream.take(c)  # (c, batch, *event)
            x = tb[None, ...] + o.sigma * z
            y = solver(xp.reshape(x, (c * batch, *event)), c * batch)
            if acc is None:  # without a baseline call, the first chunk tells the out shape
                acc = make(solver.out_shape)
                chunk = _chunk_size(o.chunk_size, stream, batch, math.prod(event), solver.out_shape)
            acc.add(y, g, x)
            done += c
            if bar is not None:
                bar.update(c)
    return acc


def _fold(total: _Sums, part: _Sums) -> _Sums:
    """``total + part``, field by field (the sums that were asked for)."""
    names = ("value", "vjp", "jvp", "jacobian", "inner")
    sums = {
        n: None if getattr(total, n) is None else getattr(total, n) + getattr(part, n)
        for n in names
    }
    return dataclasses.replace(total, **sums)


def _refuse_jax_tracers(*arrays: Any) -> None:
    """A TypeError for traced JAX values (``jax.grad``, ``jax.jit``, ``jax.vmap``): the
    estimator runs eagerly (chunk loop, checks of values), and ``jax.grad`` would
    differentiate the solver (zero almost everywhere), not the estimator. Recognised by
    class, without importing jax (the algorithms import no array library)."""
    for a in arrays:
        if any(c.__name__ == "Tracer" and c.__module__.startswith("jax") for c in type(a).__mro__):
            raise TypeError(
                "refimpl.perturbed runs eagerly and cannot be traced by jax.grad, jax.jit or "
                f"jax.vmap (got a {type(a).__name__}); under JAX transformations use the JAX "
                "front end refimpl.jax.make_perturbed_fun (optax's signature, a jax.custom_vjp "
                "with the closed-form estimator)"
            )


def _chunk_size(
    chunk_size: int | None, stream: Any, batch: int, d_in: int, out_shape: tuple[int, ...] | None
) -> int:
    """Samples per call of func: ``chunk_size``, or about CHUNK_VALUES values of the larger
    of input and output, in whole noise blocks when that is at least one."""
    if chunk_size is not None:
        return chunk_size
    d_out = d_in if out_shape is None else math.prod(out_shape)
    return stream.aligned(max(1, CHUNK_VALUES // (batch * max(d_in, d_out, 1))))


def _given(direction: Any, name: str) -> Any:
    """``direction`` when it is not None (a missing tangent or cotangent of ``jvp``/``vjp``;
    ``estimate`` reads None as "not asked for")."""
    if direction is None:
        raise TypeError(f"{name} must be an array, got NoneType")
    return direction


def _check_estimate_args(
    args: Any, kwargs: Any, jacobian: Any, f_sigma: Any, jacobian_limit: Any
) -> None:
    """``estimate``'s own arguments: ``args`` a tuple, ``kwargs`` a mapping or None, the two
    flags True or False, ``jacobian_limit`` None or two ints >= 0."""
    if not isinstance(args, tuple):
        raise TypeError(
            f"args must be the tuple of func's extra positional arguments, got {args!r} "
            f"({type(args).__name__})"
        )
    if kwargs is not None and not isinstance(kwargs, Mapping):
        raise TypeError(
            f"kwargs must be a mapping of func's extra keyword arguments or None, got "
            f"{kwargs!r} ({type(kwargs).__name__})"
        )
    check_bool("jacobian", jacobian)
    check_bool("f_sigma", f_sigma)
    if jacobian_limit is not None:
        if not isinstance(jacobian_limit, tuple | list) or len(jacobian_limit) != 2:
            raise TypeError(
                "jacobian_limit must be None or two ints (total, per_example), got "
                f"{jacobian_limit!r}"
            )
        for i, limit in enumerate(jacobian_limit):
            check_int(f"jacobian_limit[{i}]", limit, low=0)


def _check_directions(theta: Any, u: Any, v: Any) -> None:
    """``u`` and ``v`` (when given): real floating arrays of theta's library and device (a
    complex one would lose its imaginary part); ``v`` shaped like theta (``u``'s shape needs
    func's output shape: the accumulator checks it)."""
    for name, d in (("u", u), ("v", v)):
        if d is not None:
            check_array(d, name=name)
            check_same_place(d, theta, name=name, ref_name="theta")
    if v is not None:
        leading_batch(v, tuple(theta.shape), name="v", expected="theta")


def perturbed(
    func: Callable[..., Any] | None = None,
    *,
    num_samples: int = 1000,
    sigma: float = 0.05,
    noise: Any = "normal",
    batched: bool = True,
    rng: Any = None,
    chunk_size: int | None = None,
    sampling: str = "mc",
    baseline: bool = True,
    progress: bool | None = None,
    executor: Any = None,
) -> Any:
    r"""Turn a solver into a perturbed, differentiable one (Berthet et al. 2020).

    Usable as a function, ``perturbed(argmax, sigma=0.5)``, and as a decorator, bare
    (``@perturbed``) or with options (``@perturbed(num_samples=10_000, noise="gumbel")``).

    Parameters
    ----------
    func : callable
        The solver, vectorised over the leading axis: it receives ``(rows, *event)`` arrays
        (``rows`` = samples x batch, sample-major) and returns ``(rows, *out)``. ``out`` may
        differ from ``event`` (a path matrix, a scalar per example); integer and bool
        results are cast to ``theta``'s floating dtype.
    num_samples : int >= 1
        Monte Carlo samples N per call.
    sigma : float > 0
        Noise scale. At each call ``max|theta| + 40 sigma`` must not exceed the largest
        finite value of theta's dtype (40 bounds every noise draw), so that every perturbed
        theta is finite: sigma <= 8.5e36 for float32, about 1637 for float16.
    noise : "normal" (default, as documented) or "gumbel"
        The perturbation law (see :mod:`refimpl.perturbed.noise`).
    batched : bool
        True: ``theta`` is ``(batch, *event)`` (rank >= 2) and examples get independent
        noise; False: ``theta`` is one example.
    rng : None | int | native generator | backends.Rng
        Randomness (see :class:`Perturbed` for what each kind means across calls).
    chunk_size : int | None
        Samples per call of ``func``; None sizes chunks from a memory budget (about 2^18
        values). Results do not depend on it for a fixed seed.
    sampling : "mc" | "antithetic" | "qmc"
        Plain Monte Carlo; antithetic pairs (z, -z) or (U, 1 - U); randomised scrambled Sobol
        points (at most 21201 coordinates per example, else a warning and "mc").
    baseline : bool
        Subtract :math:`y^*(\theta)` in the derivative estimates (unbiased; default True).
    progress : bool | None
        A tqdm bar over the samples; None shows one only once a call has run 2 seconds.
    executor : None | concurrent.futures.Executor
        Where the samples' tasks run: None here; an executor (a thread pool, dask's
        ``Client.get_executor()``) runs them there. With an executor, or with ``rng`` a
        ``numpy.random.SeedSequence`` (a *key*, :mod:`backends.keys`), the samples come in
        tasks whose noise is drawn from the key and the task's index alone, and whose
        partial sums are added in task order: the results are bit-identical with and
        without an executor, whatever the number of workers. An int seed or a generator is
        sequential and cannot be split: with an executor it is a ValueError; None becomes a
        fresh key.

    Returns
    -------
    :class:`Perturbed`, or a decorator making one when ``func`` is None.
    """
    options = PerturbedOptions(
        num_samples, sigma, noise, batched, rng, chunk_size, sampling, baseline, progress, executor
    )  # validated now, also at decoration time
    if func is None:
        return functools.partial(_decorate, options=options)
    return Perturbed(func, options)


def _decorate(func: Callable[..., Any], *, options: PerturbedOptions) -> Perturbed:
    return Perturbed(func, options)
