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
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from backends import as_rng, namespace_and_device
from refimpl.attr.expand import expand_kwargs
from refimpl.attr.gradient import mirror
from refimpl.attr.moments import RunningMoments
from refimpl.attr.noise import noise_stream, relative_stdevs
from refimpl.attr.options import NoiseTunnelOptions
from refimpl.attr.tunnel_call import TunnelCall, check_rows, prepare_call, progress_bar_for
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

    def prepare_inputs(self, noisy: tuple[Any, ...]) -> tuple[Any, ...]:
        """The noisy inputs as the wrapped method receives them (unchanged here)."""
        return noisy

    def make_rng(self, rng: Any, like: Any) -> Any:
        """The ``Rng`` of a run from the ``rng=`` argument."""
        return as_rng(rng, like=like)

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
        rng : None, int, native generator or backends.Rng
            None: fresh entropy; the same seed gives the same result on a backend.
        relative : bool
            Read ``stdevs`` as noise levels relative to each example's range.
        progress : bool or None
            A progress bar over the chunks; None: one that appears only when the call runs
            longer than about 2 seconds.
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
        call = prepare_call(self, inputs, options, kwargs)
        with self.context():
            return self.run(call, rng)

    def run(self, call: TunnelCall, rng: Any) -> Any:
        """The noise tunnel on a validated call: chunk after chunk of samples, each sample's
        attribution added to the running moments in sample order."""
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

    def _chunk(self, call: TunnelCall, run: _Run, start: int, k: int) -> tuple[bool, Any]:
        """Samples ``start .. start + k - 1`` of every example: one call of the wrapped
        method, added to the moments. Returns (is the output a tuple, deltas (B, k) or None);
        every temporary of the chunk is released on return."""
        xs, xp, draws = call.inputs, run.xp, run.draws
        batch = xs[0].shape[0]
        zs = run.stream.take(k)
        noisy = tuple(  # x_b + sigma z_{b,j} at row b*k + j
            xp.reshape(x[:, None, ...] + (z if _is_one(s) else s * z), (batch * k, *x.shape[1:]))
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
        for m, a in zip(run.moments, attrs):
            a = check_rows(a, batch, k, "attribution")
            m.add(xp.reshape(a, (batch, k, *a.shape[1:])))
        return attr_tuple, delta

    @staticmethod
    def _baseline_indices(rng: Any, call: TunnelCall) -> dict[int, Any]:
        """Per baseline array ``i`` with ``K_i`` rows: indices ``(n, B)``, uniform in
        ``[0, K_i)``, drawn before any noise (a fixed call sequence)."""
        baselines = call.kwargs.get("baselines")
        bs = baselines if isinstance(baselines, tuple) else (baselines,)
        out = {}
        for i, b in enumerate(bs):
            if is_array(b) and b.ndim >= 1:
                shape = (call.options.nt_samples, call.inputs[0].shape[0])
                out[i] = rng.integers(0, b.shape[0], shape)
        return out


def _is_one(s: Any) -> bool:
    return isinstance(s, float) and s == 1.0


def _rows(xp: Any, idx: Any) -> Any:
    """Indices ``(k, B)`` (sample-major) as the ``B*k`` example-major row order."""
    return xp.reshape(xp.permute_dims(idx, (1, 0)), (-1,))
