"""Keyed random streams: block k of a Monte Carlo loop drawn directly, on any backend.

A sequential generator (numpy's PCG64, a ``torch.Generator``, cupy's generator) must draw
blocks 0, ..., k-1 before it can draw block k, so a worker of a cluster cannot compute
block k on its own. A *keyed* stream gives every block a generator of its own, seeded from
the key and the block's index alone::

    key = numpy.random.SeedSequence(2024)         # rng=key on any refimpl Monte Carlo call
    rng_k = block_rng(key, k, like=theta)         # the generator of block k, for theta's
                                                  # backend and device

Block k's generator is the backend's int-seeded generator (numpy ``default_rng``, torch
``Generator.manual_seed``, cupy ``default_rng``, ``jax.random.key``) seeded with the first
64-bit word of the child ``SeedSequence(key.entropy, spawn_key=(*key.spawn_key, k))``
(O'Neill's seed sequence hashes the key and the index, so nearby blocks get unrelated
seeds). Nothing depends on which process draws the block, or on how many blocks it draws.
A second index names a separate stream of the same key: ``child(key, SCRAMBLE)`` seeds the
Sobol scrambles of ``sampling="qmc"``, apart from the noise blocks ``child(key, NOISE, k)``.

Which ``rng=`` values are keyed: a ``numpy.random.SeedSequence`` (any backend). An int seed
stays what it always was, a sequential generator (for torch, the documented
``torch.Generator(device).manual_seed(seed)``, so documented random values are reproduced
digit for digit); ``rng=None`` with an executor becomes a fresh ``SeedSequence()``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from backends.base import Rng
from backends.rng import as_rng

__all__ = ["NOISE", "SCRAMBLE", "block_rng", "child", "is_keyed", "keyed", "seed_of"]

#: first index of a key's noise blocks, ``child(key, NOISE, k)``
NOISE = 0
#: the index of the stream seeding the Sobol scrambles (``sampling="qmc"``)
SCRAMBLE = 1


def is_keyed(rng: Any) -> bool:
    """Whether ``rng`` is a keyed stream (a ``numpy.random.SeedSequence``)."""
    return isinstance(rng, np.random.SeedSequence)


def keyed(rng: Any, *, what: str = "an executor") -> np.random.SeedSequence:
    """``rng`` as a key: a ``SeedSequence`` as it is, None as fresh entropy; anything else
    (an int seed, a generator) is sequential and cannot be split into blocks: ValueError."""
    if rng is None:
        return np.random.SeedSequence()
    if is_keyed(rng):
        return rng
    kind = "an int seed" if isinstance(rng, int | np.integer) else type(rng).__name__
    raise ValueError(
        f"{what} needs a keyed random stream, rng=numpy.random.SeedSequence(seed) (or None), "
        f"got {kind}: a sequential generator must draw every block before block k, so the "
        "blocks cannot be computed apart; an int seed keeps its meaning, the sequential "
        "generator the documented libraries seed (pass SeedSequence(seed) instead, with or "
        "without an executor, for results that do not depend on it)"
    )


def child(key: np.random.SeedSequence, *path: int) -> np.random.SeedSequence:
    """The descendant of ``key`` at ``path`` (``SeedSequence.spawn`` does the same, but
    only in order and with state; this names the child directly)."""
    return np.random.SeedSequence(
        key.entropy, spawn_key=(*key.spawn_key, *path), pool_size=key.pool_size
    )


def seed_of(key: np.random.SeedSequence) -> int:
    """The 64-bit int seed a key gives every backend's seeded generator."""
    return int(key.generate_state(1, np.uint64)[0])


def block_rng(
    key: np.random.SeedSequence,
    *path: int,
    like: Any = None,
    backend: Any = None,
    device: Any = None,
) -> Rng:
    """The generator of the stream ``child(key, *path)`` (for noise blocks,
    ``block_rng(key, NOISE, k, like=x)``), for ``like``'s backend and device (or the given
    ``backend``/``device``): the backend's int-seeded generator, seeded by ``seed_of``."""
    return as_rng(seed_of(child(key, *path)), like=like, backend=backend, device=device)
