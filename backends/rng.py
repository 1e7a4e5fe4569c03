"""Random numbers for every backend: ``as_rng`` and the reproducibility rules.

The array API standard has no random numbers, so every draw in ``refimpl`` goes through an
:class:`Rng` adapter (interface in ``backends.base``)::

    rng.uniform(shape, dtype=..., low=0.0, high=1.0)   # U[low, high)
    rng.normal(shape, dtype=..., loc=0.0, scale=1.0)
    rng.exponential(shape, dtype=..., scale=1.0)
    rng.gumbel(shape, dtype=..., loc=0.0, scale=1.0)
    rng.integers(low, high, shape)                    # int64 in [low, high)

Every random function of ``refimpl`` takes ``rng=``, turned into an adapter by
:func:`as_rng`: ``None`` (fresh entropy), an ``int`` seed, a native generator
(``numpy.random.Generator``, ``torch.Generator``, cupy's ``Generator``, a JAX key) or an
``Rng``.

Native generators per backend
    numpy and array_api_strict draw with ``numpy.random.Generator`` (strict then receives a
    copy on its device); torch with a ``torch.Generator`` (an int seed ``s`` means
    ``torch.Generator(device).manual_seed(s)``, exactly what the documented torch libraries
    use, so their documented random values are reproduced digit for digit); cupy with
    ``cupy.random.default_rng``; JAX with counter-based streams of a key (``backends.jax``).
    Draws happen on the generator's device and are then moved to the requested device
    (torch generators are device-bound).

Guarantees (tested in ``tests/test_rng.py``)
    * same seed, backend, device, dtype, shapes and call order -> bitwise-identical arrays;
    * block rule for chunked Monte Carlo: ``uniform``, ``exponential``, ``gumbel`` and
      ``integers`` are stream-consistent on every backend: drawing n then m values equals
      drawing n + m. ``normal`` is stream-consistent on numpy and strict; torch's CPU normal
      transforms uniforms in blocks of 16 and redraws the tail block, so on torch it is
      stream-consistent only when every call draws a multiple of 16 values (at least 16).
      Monte Carlo loops therefore draw their noise in blocks of a fixed number of samples,
      independent of the memory chunk size (``refimpl.noise.NoiseStream``).

Derived distributions (computed from ``uniform`` draws, so they inherit its stream rule)
    exponential: ``E = -scale * log1p(-U)``, U capped below 1, so E is finite.
    gumbel: U is first mapped into ``[tiny, 1 - eps)`` of its dtype (as
    ``torch.distributions.Gumbel`` does), then ``G = loc - scale * log(-log(U))``. Both
    logarithms are then finite, so a Gumbel draw is never +-inf.
"""

from __future__ import annotations

from typing import Any

from backends.base import SEED_MAX, Backend, HostRng, Rng, fresh_seed
from backends.namespace import namespace_and_device
from backends.registry import backend_of, generator_owner, resolve

__all__ = ["SEED_MAX", "HostRng", "Rng", "as_rng", "fresh_seed"]


def as_rng(
    rng: Any = None,
    *,
    backend: Backend | str | None = None,
    device: Any = None,
    like: Any = None,
) -> Rng:
    """An ``Rng`` drawing for ``backend`` on ``device`` (or for the array ``like``).

    ``rng`` may be None (fresh entropy), an int seed, a native generator, or an ``Rng``
    (re-bound to the target, sharing its stream). Without ``backend``/``like`` the current
    backend of the switch is used. A native generator of another library than the target's
    is a TypeError; ``backend`` or ``device`` given with ``like`` must be ``like``'s
    (ValueError), never silently ignored.
    """
    if like is not None:
        xp, like_device = _namespace_of_like(like)
        adapter = backend_of(xp)
        _check_agrees(adapter, like_device, backend, device)
        device = like_device
    else:
        adapter, device = resolve(backend, device)
    owner = generator_owner(rng)
    if owner is not None and owner.name != adapter.name:
        raise TypeError(
            f"rng is a {owner.generator_name} but the arrays belong to {adapter.name!r}; "
            "pass an int seed or a generator of that library"
        )
    return adapter.rng(rng, device)


def _check_agrees(adapter: Backend, like_device: Any, backend: Any, device: Any) -> None:
    """``backend`` and ``device``, when given with ``like``, must be ``like``'s (a ValueError
    rather than one of them silently ignored)."""
    if backend is not None and resolve(backend)[0].name != adapter.name:
        raise ValueError(
            f"backend={backend!r} disagrees with like, an array of {adapter.name!r}; "
            "pass one of them"
        )
    if device is not None and adapter.device(device) != like_device:
        raise ValueError(
            f"device={device!r} disagrees with like, which lives on {like_device!r}; "
            "pass one of them"
        )


def _namespace_of_like(like: Any) -> tuple[Any, Any]:
    """``(xp, device)`` of the array ``like``; a TypeError naming it for anything else."""
    if not isinstance(like, bool | int | float | complex):
        try:
            return namespace_and_device(like)
        except TypeError:
            pass
    raise TypeError(
        "like must be an array (its library and device choose the generator), got "
        f"{like!r} ({type(like).__name__})"
    )
