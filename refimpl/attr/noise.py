r"""The noise of samples 0, 1, ..., n-1 of every input, whatever the chunk size.

Sample :math:`j` of example :math:`b` perturbs every input :math:`i` by
:math:`\sigma_i\, z^{(i)}_{b,j}` with :math:`z` i.i.d. standard normal, drawn in input
:math:`i`'s dtype on its device.

Reproducibility across chunk sizes: the generator is always called the same way. Noise is
drawn in *blocks* of ``block`` consecutive samples, one call per input in input order
(block 0: input 0, input 1, ...; block 1: ...), where ``block`` depends only on the number
of samples and the input sizes, never on ``nt_samples_batch_size``. A chunk of samples is
cut from the current block, or glued from consecutive ones. So for a fixed seed every chunk
size sees exactly the same noise, on every backend and device (torch's normal sampler is
stream-consistent only for calls of whole 16-value groups on the CPU, and not at all across
call sizes on CUDA; a fixed call sequence needs neither).

A block of input ``i`` has shape ``(B, block, *input.shape[1:])``: example-major, so a
chunk is already in the row order of the wrapped call (row ``b*k + j``).
"""

from __future__ import annotations

import math
from typing import Any

from backends import namespace_and_device

__all__ = ["BLOCK_VALUES", "NoiseStream", "relative_stdevs"]

#: values drawn per block (all inputs together): about 4 MiB of float32
BLOCK_VALUES = 2**20


class NoiseStream:
    """``take(k)``: the standard-normal noise of the next ``k`` samples, one array of shape
    ``(B, k, *x.shape[1:])`` per input ``x``, in ``x``'s dtype and on its device."""

    def __init__(self, rng: Any, xs: tuple[Any, ...], n_samples: int) -> None:
        self.rng, self.xs, self.n = rng, xs, n_samples
        per_sample = sum(math.prod(x.shape) for x in xs)
        self.block = max(1, min(n_samples, BLOCK_VALUES // max(1, per_sample)))
        self._drawn = 0  # samples drawn so far (whole blocks)
        self._blocks: tuple[Any, ...] = ()
        self._pos = self._len = 0

    def _draw_block(self) -> None:
        size = min(self.block, self.n - self._drawn)
        if size <= 0:
            raise RuntimeError("the noise stream is exhausted (more samples taken than drawn)")
        self._blocks = tuple(
            self.rng.normal((x.shape[0], size, *x.shape[1:]), dtype=x.dtype) for x in self.xs
        )
        self._drawn += size
        self._pos, self._len = 0, size

    def take(self, k: int) -> tuple[Any, ...]:
        parts: list[tuple[Any, ...]] = []
        while k > 0:
            if self._pos == self._len:
                self._draw_block()
            m = min(k, self._len - self._pos)
            parts.append(tuple(z[:, self._pos : self._pos + m, ...] for z in self._blocks))
            self._pos += m
            k -= m
        if len(parts) == 1:
            return parts[0]
        xp, _ = namespace_and_device(*self.xs)
        return tuple(xp.concat([p[i] for p in parts], axis=1) for i in range(len(self.xs)))


def relative_stdevs(xs: tuple[Any, ...], levels: tuple[float, ...]) -> tuple[Any, ...]:
    r"""Per-example noise scales :math:`\sigma_{i,b} = \text{level}_i\,(\max x^{(i)}_b -
    \min x^{(i)}_b)`, the SmoothGrad paper's "noise level" (Smilkov et al. 2017, section 3;
    PAIR saliency's ``stdev_spread``), over each example's own values. Shape
    ``(B, 1, 1, ...)`` to broadcast against a ``(B, k, ...)`` chunk."""
    xp, _ = namespace_and_device(*xs)
    out = []
    for x, level in zip(xs, levels):
        axes = tuple(range(1, x.ndim))
        span = xp.max(x, axis=axes) - xp.min(x, axis=axes) if axes else xp.zeros_like(x)
        out.append(xp.reshape(level * span, (x.shape[0],) + (1,) * x.ndim))
    return tuple(out)
