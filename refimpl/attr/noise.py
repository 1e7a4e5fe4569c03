r"""The noise of samples 0, 1, ..., n-1 of every input, whatever the chunk size.

Sample :math:`j` of example :math:`b` perturbs every input :math:`i` by
:math:`\sigma_i\, z^{(i)}_{b,j}` with :math:`z` i.i.d. standard normal, drawn in input
:math:`i`'s dtype on its device.

Reproducibility across chunk sizes (``refimpl.streams``): noise is drawn in *blocks* of
``block`` consecutive samples, one call per input in input order (block 0: input 0, input 1,
...; block 1: ...), where ``block`` depends only on the number of samples and the input
sizes, never on ``nt_samples_batch_size``; the last block holds what remains. A chunk of
samples is cut from the current block, or glued from consecutive ones, so for a fixed seed
every chunk size sees exactly the same noise, on every backend and device.

A block of input ``i`` has shape ``(B, block, *input.shape[1:])``: example-major, so a
chunk is already in the row order of the wrapped call (row ``b*k + j``).

With a keyed ``rng`` (``backends.keys``) the samples are also split into *tasks* of
:func:`task_samples` consecutive samples, a number that depends only on the input sizes
and ``n`` (about :data:`TASK_VALUES` noise values per task), never on the executor, the
number of workers or the chunk size. Task ``t`` draws its noise from its own generator,
``block_rng(key, NOISE, t)``, through a stream of its own (:func:`noise_stream` over the
task's samples), so any process can compute it alone.
"""

from __future__ import annotations

import math
from typing import Any

from backends import namespace_and_device
from refimpl.streams import BlockStream

__all__ = ["BLOCK_VALUES", "TASK_VALUES", "noise_stream", "relative_stdevs", "task_samples"]

#: values drawn per block (all inputs together): about 4 MiB of float32
BLOCK_VALUES = 2**20
#: noise values per task of a keyed run (all inputs together): about 16 MiB of float32
TASK_VALUES = 2**22


def _values_per_sample(xs: tuple[Any, ...]) -> int:
    """Noise values one sample draws: one per value of every input (all examples)."""
    return sum(math.prod(x.shape) for x in xs)


def task_samples(xs: tuple[Any, ...], n_samples: int) -> int:
    """Samples per task of a keyed run: about :data:`TASK_VALUES` noise values, at least
    one sample, at most ``n_samples``."""
    return max(1, min(n_samples, TASK_VALUES // max(1, _values_per_sample(xs))))


def noise_stream(rng: Any, xs: tuple[Any, ...], n_samples: int) -> BlockStream:
    """The stream whose ``take(k)`` returns the standard-normal noise of the next ``k``
    samples: one array of shape ``(B, k, *x.shape[1:])`` per input ``x``, in ``x``'s dtype
    and on its device."""
    per_sample = _values_per_sample(xs)

    def draw(size: int) -> tuple[Any, ...]:
        return tuple(rng.normal((x.shape[0], size, *x.shape[1:]), dtype=x.dtype) for x in xs)

    block = max(1, min(n_samples, BLOCK_VALUES // max(1, per_sample)))
    return BlockStream(draw, block, axis=1, total=n_samples)


def relative_stdevs(xs: tuple[Any, ...], levels: tuple[float, ...]) -> tuple[Any, ...]:
    r"""Per-example noise scales :math:`\sigma_{i,b} = \text{level}_i\,(\max x^{(i)}_b -
    \min x^{(i)}_b)`, the SmoothGrad paper's "noise level" (Smilkov et al. 2017, section 3;
    PAIR saliency's ``stdev_spread``), over each example's own values (0 for an example of
    one value or none). Shape ``(B, 1, 1, ...)`` to broadcast against a ``(B, k, ...)``
    chunk."""
    xp, dev = namespace_and_device(*xs)
    out = []
    for x, level in zip(xs, levels):
        axes = tuple(range(1, x.ndim))
        if axes and math.prod(x.shape[1:]):
            span = xp.max(x, axis=axes) - xp.min(x, axis=axes)
        else:  # one value, or none, per example: no range
            span = xp.zeros((x.shape[0],), dtype=x.dtype, device=dev)
        out.append(xp.reshape(level * span, (x.shape[0],) + (1,) * x.ndim))
    return tuple(out)
