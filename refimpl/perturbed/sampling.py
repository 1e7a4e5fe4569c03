"""The noise of samples 0, 1, ..., N-1 in a fixed order, whatever the chunk size.

The noise is drawn in *blocks* of ``block_size(...)`` samples, exactly one generator call
each, whose size depends only on the problem (values per sample and N), never on the chunk
size (``refimpl.streams``): for a fixed seed every ``chunk_size`` sees the same noise.

Sample n of the stream has shape ``sample_shape`` (batch, *event): noise is i.i.d. over
samples, batch elements and coordinates (for ``antithetic``, samples 2k and 2k+1 are a pair,
so blocks hold an even number of samples; for ``qmc``, each batch element follows its own
scrambled Sobol sequence of dimension ``prod(event)``).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

from backends import qmc
from refimpl.perturbed.noise import Noise
from refimpl.streams import BlockStream

#: values drawn per call to the generator (about 1 MiB of float32: small enough to be
#: recycled by the allocator instead of page-faulted in afresh, large enough to amortise
#: the per-call overhead); the default chunk of ``Perturbed`` is one block
BLOCK_VALUES = 2**18
#: noise values per task of a keyed stream (128 MiB of float32 drawn block by block: a
#: task long enough that scheduling it costs little, short enough to balance workers)
TASK_VALUES = 2**25


def block_size(values_per_sample: int, num_samples: int) -> int:
    """Samples per noise block: an even number holding about ``BLOCK_VALUES`` values, at most
    ``num_samples`` rounded up to even."""
    per = max(1, values_per_sample)
    block = max(2, (BLOCK_VALUES // per) // 2 * 2)
    return min(block, num_samples + num_samples % 2)


def resolve_sampling(sampling: str, event_size: int) -> str:
    """``sampling``, or ``"mc"`` with a warning where Sobol points do not exist."""
    if sampling == "qmc" and event_size > qmc.MAX_DIM:
        warnings.warn(
            f"sampling='qmc' needs at most {qmc.MAX_DIM} coordinates per example (the largest "
            f"Sobol dimension of scipy.stats.qmc), got {event_size}; falling back to "
            "sampling='mc' (plain Monte Carlo)",
            UserWarning,
            stacklevel=4,
        )
        return "mc"
    return sampling


def task_size(values_per_sample: int, num_samples: int) -> int:
    """Samples per task of a keyed stream: whole noise blocks holding about ``TASK_VALUES``
    values (at least one block), at most ``num_samples`` rounded up to even. It depends on
    the problem alone, never on the chunk size, the executor or the number of workers."""
    block = block_size(values_per_sample, num_samples)
    task = max(1, TASK_VALUES // (max(1, values_per_sample) * block)) * block
    return min(task, num_samples + num_samples % 2)


def noise_stream(
    noise: Noise,
    sampling: str,
    rng: Any,
    sample_shape: tuple[int, ...],
    dtype: Any,
    num_samples: int,
    *,
    scramble: Any = None,
    start: int = 0,
    total: int | None = None,
    block: int | None = None,
) -> BlockStream:
    """The stream whose ``take(n)`` returns ``(z, grad_nu(z))`` for the next ``n`` samples,
    shape ``(n, *sample_shape)``, in ``dtype`` on ``rng``'s device. Every block is exactly
    ``block_size(...)`` samples, one draw each (JAX keys, for one, give other values for one
    call of 2n than for two calls of n).

    A task of a keyed stream passes its own ``rng``, the ``total`` samples it draws, and for
    ``"qmc"`` the generator of the shared Sobol ``scramble`` and its first point ``start``;
    the driver also sends the ``block`` size it decided, so workers need not agree on it."""
    sample_shape = tuple(sample_shape)
    if sampling == "qmc":
        batch, event = sample_shape[0], math.prod(sample_shape[1:])
        sobol = qmc.sobol(max(1, event), batch, rng if scramble is None else scramble)
        sobol.fast_forward(start)

        def draw(size: int) -> tuple[Any, Any]:
            return noise.from_sobol(sobol, (size, *sample_shape), dtype)
    else:
        sampler = noise.sample if sampling == "mc" else noise.antithetic

        def draw(size: int) -> tuple[Any, Any]:
            return sampler(rng, (size, *sample_shape), dtype)

    block = block_size(math.prod(sample_shape), num_samples) if block is None else block
    return BlockStream(draw, block, total=total)
