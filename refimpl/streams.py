"""Monte Carlo noise that does not depend on how the samples are chunked.

Monte Carlo loops consume samples in chunks sized by memory (``chunk_size``,
``nt_samples_batch_size``), but a generator's output can depend on how it is called: torch's
normal sampler transforms uniforms in groups of 16 on the CPU and in another pattern on CUDA,
and a JAX key gives other values for one call of 2n than for two calls of n. So the noise is
drawn in *blocks* of a fixed number of samples, exactly one generator call each, where the
block size depends only on the problem, never on the chunk size; a chunk is cut from the
current block, or glued from several. The generator then sees the same sequence of calls
for every chunk size, and a fixed seed gives the same samples on every backend.

Used by the perturbed optimizers (``refimpl.perturbed.sampling``) and the noise tunnel
(``refimpl.attr.noise``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from backends import namespace_and_device

__all__ = ["BlockStream"]


class BlockStream:
    """``take(k)``: the next ``k`` samples, as the tuple of arrays ``draw`` returns, each cut
    along ``axis`` (the samples' axis).

    ``draw(size)`` draws one block of ``size`` samples with one call per array. Every block
    has ``block`` samples, except that with a ``total`` the last one holds what remains.
    """

    def __init__(
        self,
        draw: Callable[[int], tuple[Any, ...]],
        block: int,
        *,
        axis: int = 0,
        total: int | None = None,
    ) -> None:
        self.draw, self.block, self.axis, self.total = draw, block, axis, total
        self._drawn = 0  # samples drawn so far
        self._arrays: tuple[Any, ...] = ()
        self._pos = self._len = 0

    def _next_block(self) -> None:
        size = self.block if self.total is None else min(self.block, self.total - self._drawn)
        if size <= 0:
            raise RuntimeError("the noise stream is exhausted (more samples taken than drawn)")
        self._arrays = self.draw(size)
        self._drawn += size
        self._pos, self._len = 0, size

    def _cut(self, a: Any, start: int, stop: int) -> Any:
        return a[(slice(None),) * self.axis + (slice(start, stop), ...)]

    def take(self, k: int) -> tuple[Any, ...]:
        parts: list[tuple[Any, ...]] = []
        while k > 0:
            if self._pos == self._len:
                self._next_block()
            m = min(k, self._len - self._pos)
            parts.append(tuple(self._cut(a, self._pos, self._pos + m) for a in self._arrays))
            self._pos += m
            k -= m
        if len(parts) == 1:
            return parts[0]
        xp, _ = namespace_and_device(parts[0][0])
        return tuple(xp.concat([p[i] for p in parts], axis=self.axis) for i in range(len(parts[0])))

    def aligned(self, chunk: int) -> int:
        """``chunk`` rounded down to whole blocks when it holds at least one (a chunk of one
        block is one slice of one draw; more are glued)."""
        return chunk if chunk < self.block else chunk // self.block * self.block
