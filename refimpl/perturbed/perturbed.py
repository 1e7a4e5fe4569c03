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

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from backends import as_rng, namespace_and_device, size
from backends.progress import progress_bar

from refimpl.perturbed._checks import (
    check_bool,
    check_func,
    check_positive_int,
    check_sampling,
    check_sigma,
    check_theta,
)
from refimpl.perturbed.noise import get_noise
from refimpl.perturbed.sampling import NoiseStream, resolve_sampling

__all__ = ["Perturbed", "perturbed"]

#: values of one chunk (samples x batch x max(input, output) size): about 1 MiB of float32,
#: so the dozen temporaries of a chunk stay in cache and in the allocator's free lists
CHUNK_VALUES = 2**18
#: runs with at least this many sampled values show a progress bar when progress=None
PROGRESS_VALUES = 2**28


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


class _Solver:
    """Calls ``func`` and checks what it returns: an array of the input's namespace and
    device, ``rows`` long, with the same trailing shape every call; cast to ``dtype``."""

    def __init__(self, func: Callable, args: tuple, kwargs: dict, xp: Any, dtype: Any) -> None:
        self.func, self.args, self.kwargs, self.xp, self.dtype = func, args, kwargs, xp, dtype
        self.out_shape: tuple[int, ...] | None = None

    def __call__(self, x: Any, rows: int) -> Any:
        y = self.func(x, *self.args, **self.kwargs)
        # exact Python scalars only: numpy scalars (np.float64 subclasses float) are arrays
        if y is None or type(y) in (bool, int, float, complex) or isinstance(y, list | tuple | str):
            raise TypeError(f"func must return an array, got {type(y).__name__}")
        try:
            namespace_and_device(y, x)
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"func must return an array of its input's library and device ({exc})"
            ) from None
        shape = tuple(y.shape)
        if len(shape) == 0 or shape[0] != rows:
            raise ValueError(
                f"func must return one result per row of its input (leading dimension {rows}), "
                f"got shape {shape}; it is called on samples x batch rows at once"
            )
        if self.out_shape is None:
            self.out_shape = shape[1:]
        elif shape[1:] != self.out_shape:
            raise ValueError(
                f"func returned results of shape {self.out_shape} per row, then {shape[1:]}: "
                "the output shape must not change between calls (chunks)"
            )
        xp = self.xp
        if xp.isdtype(y.dtype, "complex floating"):
            raise TypeError(f"func must return real values, got dtype {y.dtype}")
        if y.dtype != self.dtype:  # bool and integer outputs are cast, as are other floats
            y = xp.astype(y, self.dtype)
        return y


def _lead(arr: Any, shape: tuple[int, ...], *, name: str, expected: str) -> int | None:
    """None if ``arr.shape == shape``, k if ``arr.shape == (k, *shape)``, else ValueError."""
    got = tuple(arr.shape)
    if got == shape:
        return None
    if len(got) == len(shape) + 1 and got[1:] == shape:
        return got[0]
    raise ValueError(
        f"{name} must have the shape of {expected} {shape} (optionally with one leading "
        f"batch dimension), got {got}"
    )


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
            namespace_and_device(u, theta)
            k = self.sums.k_u = _lead(u, value_shape, name="u", expected="p(theta)")
            ub = xp.reshape(xp.astype(u, theta.dtype), (k or 1, b, d_out))
            self.cotangents = xp.permute_dims(ub, (1, 2, 0))
            self.sums.vjp = zeros((b, k or 1, d_in))
        if v is not None:  # v: theta.shape or (k, *theta.shape) -> (B, d_in, k)
            namespace_and_device(v, theta)
            k = self.sums.k_v = _lead(v, tuple(theta.shape), name="v", expected="theta")
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
      unbatched).

    Randomness: ``rng`` as everywhere in refimpl. An int seed draws the same noise on every
    call (common random numbers: ``jvp`` and ``vjp`` are then exact adjoints and finite
    differences are tight); a generator advances from call to call; None is fresh each time.
    Use :meth:`replace` for a copy with other options (e.g. another ``rng``).
    """

    def __init__(
        self,
        func: Callable[..., Any],
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
    ) -> None:
        check_func(func)
        self.func = func
        self.num_samples = check_positive_int(num_samples, name="num_samples")
        self.sigma = check_sigma(sigma)
        self.noise = get_noise(noise)
        self.batched = check_bool(batched, name="batched")
        self.rng = _check_rng(rng)
        self.chunk_size = (
            None if chunk_size is None else check_positive_int(chunk_size, name="chunk_size")
        )
        self.sampling = check_sampling(sampling)
        self.baseline = check_bool(baseline, name="baseline")
        if progress is not None:
            check_bool(progress, name="progress")
        self.progress = progress
        functools.update_wrapper(self, func, updated=())

    # -- options -------------------------------------------------------------------------
    def options(self) -> dict[str, Any]:
        return dict(
            num_samples=self.num_samples,
            sigma=self.sigma,
            noise=self.noise,
            batched=self.batched,
            rng=self.rng,
            chunk_size=self.chunk_size,
            sampling=self.sampling,
            baseline=self.baseline,
            progress=self.progress,
        )

    def replace(self, **changes: Any) -> Perturbed:
        """A copy with some options changed (validated like the constructor's)."""
        unknown = sorted(set(changes) - set(self.options()))
        if unknown:
            raise TypeError(f"unknown option(s) {unknown}; choose from {sorted(self.options())}")
        return Perturbed(self.func, **{**self.options(), **changes})

    # -- the protocol ---------------------------------------------------------------------
    def __call__(self, theta: Any, *args: Any, **kwargs: Any) -> Any:
        """The Monte Carlo mean :math:`\\frac1N \\sum_n \\mathrm{func}(\\theta + \\sigma z_n)`."""
        return self._finish(theta, self._pass(theta, args, kwargs), value=True)[0]

    def jvp(self, theta: Any, v: Any, *args: Any, **kwargs: Any) -> Any:
        """:math:`\\hat J v` (``v`` shaped like ``theta``, or ``(k, *theta.shape)``)."""
        return self._finish(theta, self._pass(theta, args, kwargs, v=v), jvp=True)[0]

    def vjp(self, theta: Any, u: Any, *args: Any, **kwargs: Any) -> Any:
        """:math:`\\hat J^\\top u` (``u`` shaped like ``p(theta)``, or with a leading k)."""
        return self._finish(theta, self._pass(theta, args, kwargs, u=u), vjp=True)[0]

    def value_and_vjp(self, theta: Any, u: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
        """``(p(theta), p.vjp(theta, u))`` from one pass over the samples."""
        sums = self._pass(theta, args, kwargs, u=u)
        return self._finish(theta, sums, value=True, vjp=True)

    def jacobian(self, theta: Any, *args: Any, **kwargs: Any) -> Any:
        """The Jacobian estimate, ``(batch, *out, *event)`` (unbatched ``(*out, *theta.shape)``)."""
        return self._finish(theta, self._pass(theta, args, kwargs, jacobian=True), jac=True)[0]

    def value_and_jacobian(self, theta: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
        """``(p(theta), p.jacobian(theta))`` from one pass over the samples."""
        sums = self._pass(theta, args, kwargs, jacobian=True)
        return self._finish(theta, sums, value=True, jac=True)

    # -- the pass over the samples ----------------------------------------------------------
    def _pass(
        self,
        theta: Any,
        args: tuple,
        kwargs: dict,
        *,
        u: Any = None,
        v: Any = None,
        jacobian: bool = False,
        inner: bool = False,
        jacobian_limit: tuple[int, int] | None = None,
    ) -> _Sums:
        """One pass over the samples, accumulating what is asked for. With ``jacobian`` and
        ``jacobian_limit = (total, per_example)``, the Jacobian is accumulated only if it
        has at most that many entries (else ``sums.jacobian`` stays None)."""
        xp, _ = check_theta(theta, batched=self.batched)
        if size(theta) == 0:
            raise ValueError(f"theta must not be empty, got shape {tuple(theta.shape)}")
        tb = theta if self.batched else xp.reshape(theta, (1, *theta.shape))
        batch, event = tb.shape[0], tuple(tb.shape[1:])
        rng = as_rng(self.rng, like=theta)
        sampling = resolve_sampling(self.sampling, math.prod(event))
        stream = NoiseStream(
            self.noise, sampling, rng, (batch, *event), theta.dtype, self.num_samples
        )
        solver = _Solver(self.func, args, kwargs, xp, theta.dtype)
        base = None
        if self.baseline and (u is not None or v is not None or jacobian):
            base = solver(tb, batch)  # the unperturbed solution b = y*(theta)
        wanted = dict(u=u, v=v, jacobian=jacobian, inner=inner, limit=jacobian_limit)

        sums, done = None, 0
        chunk = self._chunk(stream, batch, math.prod(event), solver.out_shape)
        bar = self._bar(batch * math.prod(event))
        while done < self.num_samples:
            c = min(chunk, self.num_samples - done)
            z, g = stream.take(c)  # (c, batch, *event)
            x = tb[None, ...] + self.sigma * z
            y = solver(xp.reshape(x, (c * batch, *event)), c * batch)
            if sums is None:  # the first chunk tells the output shape
                sums = _Accumulator(xp, theta, self.batched, solver.out_shape, base, **wanted)
                chunk = self._chunk(stream, batch, math.prod(event), solver.out_shape)
            sums.add(y, g, x)
            done += c
            bar.update(c)
        bar.close()
        return sums.sums

    def _bar(self, values_per_sample: int) -> Any:
        show = self.progress
        if show is None:
            show = self.num_samples * values_per_sample >= PROGRESS_VALUES
        name = getattr(self.func, "__name__", "func")
        return progress_bar(self.num_samples, enabled=show, desc=f"perturbed {name}", unit="sample")

    def _chunk(
        self, stream: NoiseStream, batch: int, d_in: int, out_shape: tuple[int, ...] | None
    ) -> int:
        """Samples per call of func: ``chunk_size``, or about CHUNK_VALUES values of the
        larger of input and output, in whole noise blocks when that is at least one."""
        if self.chunk_size is not None:
            return self.chunk_size
        d_out = d_in if out_shape is None else math.prod(out_shape)
        return stream.aligned(max(1, CHUNK_VALUES // (batch * max(d_in, d_out, 1))))

    # -- from sums to results -------------------------------------------------------------
    def _finish(
        self,
        theta: Any,
        sums: _Sums,
        *,
        value: bool = False,
        vjp: bool = False,
        jvp: bool = False,
        jac: bool = False,
    ) -> tuple[Any, ...]:
        xp, _ = namespace_and_device(theta)
        n, sigma = self.num_samples, self.sigma
        out_shape = sums.out_shape
        batch = theta.shape[0] if self.batched else 1
        event = tuple(theta.shape[1:]) if self.batched else tuple(theta.shape)
        lead = (batch,) if self.batched else ()
        results = []
        if value:
            results.append(xp.reshape(sums.value / n, (*lead, *out_shape)))
        if vjp:  # (batch, k, d_in) -> (k, batch, *event)
            g = xp.permute_dims(sums.vjp / (n * sigma), (1, 0, 2))
            k = sums.k_u
            results.append(xp.reshape(g, (*(() if k is None else (k,)), *lead, *event)))
        if jvp:  # (batch, d_out, k) -> (k, batch, *out)
            t = xp.permute_dims(sums.jvp / (n * sigma), (2, 0, 1))
            k = sums.k_v
            results.append(xp.reshape(t, (*(() if k is None else (k,)), *lead, *out_shape)))
        if jac:
            results.append(xp.reshape(sums.jacobian / (n * sigma), (*lead, *out_shape, *event)))
        return tuple(results)

    def __repr__(self) -> str:
        name = getattr(self.func, "__name__", repr(self.func))
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options().items() if k != "noise")
        return f"perturbed({name}, noise={self.noise.name!r}, {opts})"


def _check_rng(rng: Any) -> Any:
    if isinstance(rng, bool):
        raise TypeError("rng must be None, an int seed, a generator or a backends.Rng, got a bool")
    if isinstance(rng, int) and rng < 0:
        raise ValueError(f"rng seed must be a non-negative integer, got {rng}")
    return rng


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
        Noise scale.
    noise : "normal" (default, as documented) or "gumbel"
        The perturbation law (see :mod:`refimpl.perturbed.noise`).
    batched : bool
        True: ``theta`` is ``(batch, *event)`` (rank >= 2) and examples get independent
        noise; False: ``theta`` is one example.
    rng : None | int | generator | backends.Rng
        Randomness (see :class:`Perturbed` for what each kind means across calls).
    chunk_size : int | None
        Samples per call of ``func``; None sizes chunks from a memory budget (about 2^22
        values). Results do not depend on it for a fixed seed.
    sampling : "mc" | "antithetic" | "qmc"
        Plain Monte Carlo; antithetic pairs (z, -z) or (U, 1 - U); randomised scrambled Sobol
        points (at most 21201 coordinates per example, else a warning and "mc").
    baseline : bool
        Subtract :math:`y^*(\theta)` in the derivative estimates (unbiased; default True).
    progress : bool | None
        A tqdm bar over the samples; None shows one for long runs only.

    Returns
    -------
    :class:`Perturbed`, or a decorator making one when ``func`` is None.
    """
    options = dict(
        num_samples=num_samples,
        sigma=sigma,
        noise=noise,
        batched=batched,
        rng=rng,
        chunk_size=chunk_size,
        sampling=sampling,
        baseline=baseline,
        progress=progress,
    )
    if func is None:
        Perturbed(_identity, **options)  # validate the options now, at decoration time
        return functools.partial(perturbed, **options)
    return Perturbed(func, **options)


def _identity(x: Any) -> Any:
    return x
