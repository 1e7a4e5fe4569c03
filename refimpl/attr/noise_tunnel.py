r"""The noise tunnel: SmoothGrad, SmoothGrad² and VarGrad around any attribution method.

For an attribution method :math:`A`, inputs :math:`x` and Gaussian noise
:math:`\epsilon_j \sim \mathcal N(0, \sigma^2 I)`, :math:`j = 1..n`:

.. math::

    \text{smoothgrad}(x) = \tfrac1n \sum_j A(x + \epsilon_j) \approx (A * \mathcal N_\sigma)(x),
    \qquad \text{smoothgrad\_sq}(x) = \tfrac1n \sum_j A(x + \epsilon_j)^2,

    \text{vargrad}(x) = \tfrac1n \sum_j \big(A(x + \epsilon_j) - \text{smoothgrad}(x)\big)^2 .

SmoothGrad is a Monte Carlo estimate of the attribution convolved with a Gaussian
(Smilkov et al. 2017, https://arxiv.org/abs/1706.03825); for saliency it is the gradient
of the Gaussian-smoothed model. The documented interface is captum 0.9's ``NoiseTunnel``;
what differs, and why, is in docs/noise_tunnel.md and docs/differences.md.

Algorithm (one pass over chunks of ``nt_samples_batch_size`` samples):

1. validate everything (before any noise is drawn or any model call is made:
   ``refimpl.attr.tunnel_call``);
2. if ``draw_baseline_from_distrib``, draw one baseline index per (sample, example);
3. per chunk of ``k`` samples: take their noise from the chunk-independent stream
   (``refimpl.attr.noise``, ``refimpl.streams``), form the ``B*k`` noisy rows ``x_b + sigma z_{b,j}``
   (row ``b*k + j``), expand the per-example keyword arguments to those rows
   (``refimpl.attr.expand``), call the wrapped method once, and add each sample's
   attribution to the running moments in sample order (``refimpl.attr.moments``);
4. return the statistic, shaped like the inputs, with the per-sample convergence deltas
   (shape ``(B*n,)``, example-major: ``reshape(B, n)``) when asked for.

A *keyed* run (``rng`` a ``numpy.random.SeedSequence``, or any ``executor``) splits the
samples into tasks of ``T`` consecutive samples, ``T`` fixed by the input sizes and ``n``
alone (``refimpl.attr.noise.task_samples``). Task ``t`` draws its baseline indices and
noise from its own generator ``block_rng(key, NOISE, t)`` (``backends.keys``), runs steps
2-3 on its samples and returns their moments; the driver folds the tasks' moments in task
order (``RunningMoments.merge``), here or on any executor (``refimpl.parallel.run_tasks``),
so the result is bit-identical whether the tasks ran here, on a thread pool or on a
dask.distributed cluster, whatever the number of workers.
"""

from __future__ import annotations

import contextlib
import functools
import math
from dataclasses import dataclass
from typing import Any

from backends import as_rng, namespace_and_device
from backends.keys import NOISE, block_rng
from refimpl.attr.expand import expand_kwargs
from refimpl.attr.gradient import mirror
from refimpl.attr.moments import RunningMoments
from refimpl.attr.noise import noise_stream, relative_stdevs, task_samples
from refimpl.attr.options import NoiseTunnelOptions
from refimpl.attr.tunnel_call import (
    TunnelCall,
    check_rows,
    prepare_call,
    progress_bar_for,
    run_key,
)
from refimpl.parallel import run_tasks
from refimpl.validation import is_array

__all__ = ["NoiseTunnel", "NoiseTunnelOptions", "TunnelCall"]


@dataclass
class _Run:
    """The state of one run: the noise scales, the baseline draws, the noise stream and the
    running moments (one per input)."""

    xp: Any
    sigmas: tuple[Any, ...]
    draws: dict[int, Any] | None
    stream: Any
    moments: list[RunningMoments]


@dataclass
class _Part:
    """What a task of a keyed run returns: the moments of its samples (one per input), its
    deltas ``(B, m)`` or None, and whether the wrapped method returned a tuple."""

    moments: list[RunningMoments]
    deltas: Any
    attr_tuple: bool


class NoiseTunnel:
    """``NoiseTunnel(attribution_method)``: any object with ``attribute(inputs, **kwargs)``
    (optionally ``has_convergence_delta()`` and ``multiplies_by_inputs``), such as
    :class:`~refimpl.attr.Saliency`, :class:`~refimpl.attr.IntegratedGradients`, or one of
    captum's methods (with torch tensors)."""

    def __init__(self, attribution_method: Any) -> None:
        if not callable(getattr(attribution_method, "attribute", None)):
            raise TypeError(
                "attribution_method must have a method attribute(inputs, **kwargs); got "
                f"{type(attribution_method).__name__}"
            )
        self.attribution_method = attribution_method
        has_delta = getattr(attribution_method, "has_convergence_delta", None)
        self.is_delta_supported = bool(has_delta()) if callable(has_delta) else False
        self._multiply_by_inputs = bool(getattr(attribution_method, "multiplies_by_inputs", False))
        self.forward_func = getattr(attribution_method, "forward_func", None)

    @property
    def multiplies_by_inputs(self) -> bool:
        return self._multiply_by_inputs

    def has_convergence_delta(self) -> bool:
        return self.is_delta_supported

    def __repr__(self) -> str:
        return f"NoiseTunnel({self.attribution_method!r})"

    def attribute_future(self, *args: Any, **kwargs: Any) -> Any:
        """NotImplementedError, as captum 0.9's ``NoiseTunnel.attribute_future``."""
        raise NotImplementedError("attribute_future is not implemented for NoiseTunnel")

    # -- hooks for front ends (the torch one: no_grad, requires_grad, torch's generator) ---
    def context(self) -> Any:
        """The context every run happens in (none here)."""
        return contextlib.nullcontext()

    def bookkeeping(self) -> Any:
        """The context of the tunnel's own array operations (the noise, the noisy inputs,
        the running moments), apart from the wrapped method's (none here)."""
        return contextlib.nullcontext()

    def prepare_inputs(self, noisy: tuple[Any, ...]) -> tuple[Any, ...]:
        """The noisy inputs as the wrapped method receives them (unchanged here)."""
        return noisy

    def make_rng(self, rng: Any, like: Any) -> Any:
        """The ``Rng`` of a sequential run from the ``rng=`` argument."""
        return as_rng(rng, like=like)

    @staticmethod
    def run_key(rng: Any, executor: Any) -> Any:
        """The key of a keyed run (a ``numpy.random.SeedSequence``), or None for a
        sequential one; checks ``executor`` and refuses a sequential ``rng`` with one."""
        return run_key(rng, executor)

    # -- the documented call ---------------------------------------------------------------
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
        """SmoothGrad / SmoothGrad² / VarGrad of the wrapped method at ``inputs``.

        Parameters
        ----------
        inputs : array or tuple of arrays
            ``(B, ...)`` each; the result has the same form.
        nt_type : {"smoothgrad", "smoothgrad_sq", "vargrad"}
            The statistic of the noisy attributions: mean, mean of squares, or variance.
        nt_samples : int
            Samples per example, n >= 1.
        nt_samples_batch_size : int or None
            Samples per call of the wrapped method (``B * k`` rows); None: all at once. The
            result does not depend on it.
        stdevs : float or tuple of floats
            The noise standard deviation, one number for all inputs or one per input (ints
            and numpy scalars accepted); with ``relative=True`` a noise *level*: sigma =
            level * (max - min) of each example of each input. ``max|x| + 40 sigma`` must be
            finite in each input's dtype (40 bounds every normal draw), so that every noisy
            input is finite: sigma <= 8.5e36 for float32.
        draw_baseline_from_distrib : bool
            Each (example, sample) draws its baseline row uniformly from the ``baselines``
            array(s) given in kwargs.
        rng : None, int, numpy.random.SeedSequence, native generator or backends.Rng
            None: fresh entropy; the same seed gives the same result on a backend. A
            ``numpy.random.SeedSequence`` is a *key*: the samples are computed in tasks of a
            fixed size, each with its own generator derived from the key and the task's
            index (``backends.keys``), and the result is the same bit for bit with or
            without an ``executor``, whatever the number of workers. An int seed, a
            generator or an ``Rng`` are *sequential* (one stream for all samples, as
            always; an int seed on torch is ``torch.Generator().manual_seed(seed)``).
        relative : bool
            Read ``stdevs`` as noise levels relative to each example's range.
        progress : bool or None
            A progress bar over the chunks (over the tasks, in a keyed run); None: one that
            appears only when the call runs longer than about 2 seconds.
        executor : None or concurrent.futures.Executor
            Where the tasks of a keyed run are computed, for example a dask.distributed
            ``Client(...).get_executor()``; None: here. With an executor the run is keyed:
            ``rng=None`` becomes a fresh key, and a sequential ``rng`` (an int seed, a
            generator) is a ValueError (pass ``numpy.random.SeedSequence(seed)``). An
            executor in other processes receives each task pickled: the wrapped method with
            its model, the inputs and the keyword arguments.
        **kwargs
            Passed to the wrapped method, per-example ones expanded to the noisy rows
            (``target``, ``additional_forward_args``, ``baselines``, ``feature_mask``).

        Returns
        -------
        array, tuple of arrays, or (attributions, delta)
            The attributions, or ``(attributions, delta)`` when
            ``return_convergence_delta=True`` and the method has a convergence delta;
            ``delta`` has shape ``(B * nt_samples,)``, example-major
            (``reshape(B, nt_samples)``).
        """
        options = NoiseTunnelOptions(
            nt_type, nt_samples, nt_samples_batch_size, stdevs,
            draw_baseline_from_distrib, relative, progress,
        )  # fmt: skip
        key = self.run_key(rng, executor)
        call = prepare_call(self, inputs, options, kwargs)
        with self.context():
            return self.run(call, rng, key=key, executor=executor)

    def run(self, call: TunnelCall, rng: Any, *, key: Any = None, executor: Any = None) -> Any:
        """The noise tunnel on a validated call: keyed (``key``, from :meth:`run_key`) in
        tasks, or sequential, chunk after chunk of samples, each sample's attribution added
        to the running moments in sample order."""
        if key is not None:
            return self._run_keyed(call, key, executor)
        xs, n, o = call.inputs, call.options.nt_samples, call.options
        xp, _ = namespace_and_device(*xs)
        rng = self.make_rng(rng, xs[0])
        run = _Run(
            xp=xp,
            sigmas=relative_stdevs(xs, call.stdevs) if o.relative else call.stdevs,
            draws=self._baseline_indices(rng, call) if o.draw_baseline_from_distrib else None,
            stream=noise_stream(rng, xs, n),
            moments=[RunningMoments(o.nt_type) for _ in xs],
        )
        bar = progress_bar_for(call)
        deltas, attr_tuple, start = [], call.is_tuple, 0
        try:
            for k in o.chunks:
                attr_tuple, delta = self._chunk(call, run, start, k)
                if delta is not None:
                    deltas.append(delta)
                start += k
                bar.update(1)
        finally:
            bar.close()
        result = mirror(attr_tuple, tuple(m.result() for m in run.moments))
        if call.want_delta:
            return result, xp.reshape(xp.concat(deltas, axis=1), (xs[0].shape[0] * n,))
        return result

    def _run_keyed(self, call: TunnelCall, key: Any, executor: Any) -> Any:
        """Tasks of ``T`` samples (here, or on ``executor``), their moments folded in task
        order."""
        xs, o = call.inputs, call.options
        xp, _ = namespace_and_device(*xs)
        size = task_samples(xs, o.nt_samples)
        n_tasks = math.ceil(o.nt_samples / size)
        sigmas = relative_stdevs(xs, call.stdevs) if o.relative else call.stdevs
        task = functools.partial(_tunnel_task, self, call, sigmas, key, size)
        bar = progress_bar_for(call, tasks=n_tasks)
        moments, deltas, attr_tuple = None, [], call.is_tuple
        try:
            for part in run_tasks(task, n_tasks, executor, what="noise tunnel task"):
                if moments is None:
                    moments = part.moments
                else:
                    for m, p in zip(moments, part.moments):
                        m.merge(p)
                if part.deltas is not None:
                    deltas.append(part.deltas)
                attr_tuple = part.attr_tuple
                bar.update(1)
        finally:
            bar.close()
        result = mirror(attr_tuple, tuple(m.result() for m in moments))
        if call.want_delta:
            return result, xp.reshape(xp.concat(deltas, axis=1), (xs[0].shape[0] * o.nt_samples,))
        return result

    def _run_samples(self, call: TunnelCall, run: _Run, m: int) -> _Part:
        """Samples 0 .. m-1 of ``run``'s stream, chunk after chunk, into ``run.moments``."""
        deltas, attr_tuple, start = [], call.is_tuple, 0
        for k in call.options.chunks_of(m):
            attr_tuple, delta = self._chunk(call, run, start, k)
            if delta is not None:
                deltas.append(delta)
            start += k
        return _Part(run.moments, run.xp.concat(deltas, axis=1) if deltas else None, attr_tuple)

    def _chunk(self, call: TunnelCall, run: _Run, start: int, k: int) -> tuple[bool, Any]:
        """Samples ``start .. start + k - 1`` of every example: one call of the wrapped
        method, added to the moments. Returns (is the output a tuple, deltas (B, k) or None);
        every temporary of the chunk is released on return."""
        xs, xp, draws = call.inputs, run.xp, run.draws
        batch = xs[0].shape[0]
        rows = batch * k
        with self.bookkeeping():
            zs = run.stream.take(k)
            noisy = tuple(  # x_b + sigma z_{b,j} at row b*k + j
                xp.reshape(x[:, None, ...] + (z if _is_one(s) else s * z), (rows, *x.shape[1:]))
                for x, s, z in zip(xs, run.sigmas, zs)
            )
            del zs
        draw = None
        if draws is not None:
            draw = lambda i, _K: _rows(xp, draws[i][start : start + k, :])  # noqa: E731
        kw = expand_kwargs(call.kwargs, xs, k, draw=draw)
        noisy = self.prepare_inputs(noisy)
        out = self.attribution_method.attribute(noisy if call.is_tuple else noisy[0], **kw)
        del noisy
        delta = None
        if call.want_delta:
            out, delta = out
            delta = xp.reshape(check_rows(delta, batch, k, "delta"), (batch, k))
        attr_tuple = isinstance(out, tuple)
        attrs = out if attr_tuple else (out,)
        if len(attrs) != len(run.moments):
            raise ValueError(
                f"the attribution method returned {len(attrs)} array(s) for {len(xs)} "
                "input(s); NoiseTunnel needs one attribution per input"
            )
        with self.bookkeeping():
            for m, a in zip(run.moments, attrs):
                a = check_rows(a, batch, k, "attribution")
                m.add(xp.reshape(a, (batch, k, *a.shape[1:])))
        return attr_tuple, delta

    @staticmethod
    def _baseline_indices(rng: Any, call: TunnelCall, m: int | None = None) -> dict[int, Any]:
        """Per baseline array ``i`` with ``K_i`` rows: indices ``(m, B)`` (``m`` samples, by
        default all n), uniform in ``[0, K_i)``, drawn before any noise (a fixed call
        sequence)."""
        baselines = call.kwargs.get("baselines")
        bs = baselines if isinstance(baselines, tuple) else (baselines,)
        out = {}
        for i, b in enumerate(bs):
            if is_array(b) and b.ndim >= 1:
                shape = (call.options.nt_samples if m is None else m, call.inputs[0].shape[0])
                out[i] = rng.integers(0, b.shape[0], shape)
        return out


def _tunnel_task(
    tunnel: NoiseTunnel, call: TunnelCall, sigmas: tuple[Any, ...], key: Any, size: int, t: int
) -> _Part:
    """Task ``t`` of a keyed run: samples ``t*size`` ... (``size`` of them, fewer in the last
    task) of every example, with baseline indices and noise from the task's own generator
    ``block_rng(key, NOISE, t)``, in chunks of ``nt_samples_batch_size``.

    A module-level function: ``functools.partial(_tunnel_task, tunnel, call, sigmas, key,
    size)`` pickles (the tunnel carries the wrapped method and its model), so any process
    can run any task."""
    xs, o = call.inputs, call.options
    m = min(size, o.nt_samples - t * size)
    rng = block_rng(key, NOISE, t, like=xs[0])
    xp, _ = namespace_and_device(*xs)
    with tunnel.context():
        run = _Run(
            xp=xp,
            sigmas=sigmas,
            draws=tunnel._baseline_indices(rng, call, m) if o.draw_baseline_from_distrib else None,
            stream=noise_stream(rng, xs, m),
            moments=[RunningMoments(o.nt_type) for _ in xs],
        )
        return tunnel._run_samples(call, run, m)


def _is_one(s: Any) -> bool:
    return isinstance(s, float) and s == 1.0


def _rows(xp: Any, idx: Any) -> Any:
    """Indices ``(k, B)`` (sample-major) as the ``B*k`` example-major row order."""
    return xp.reshape(xp.permute_dims(idx, (1, 0)), (-1,))
