"""Randomised quasi-Monte Carlo points: scrambled Sobol sequences (``scipy.stats.qmc``).

``refimpl`` has no scipy, so its ``sampling="qmc"`` option asks this module for points::

    stream = sobol(dim=5, copies=2, rng=rng)      # rng: a backends.Rng (seeds the scrambles)
    u = stream.uniform(1024, dtype=xp.float32)    # (1024, 2, 5) in (0, 1), on rng's device
    z = stream.normal(1024, dtype=xp.float32)     # the same kind of points through Phi^{-1}

Each of the ``copies`` sequences (one per batch element) is an independently scrambled
Sobol sequence of dimension ``dim`` (Owen, 1995, "Randomly permuted (t,m,s)-nets and
(t,s)-sequences"; scipy uses linear matrix scrambling plus a digital shift), so every point
is marginally uniform on the cube and estimators stay unbiased. Successive calls continue
the sequences: drawing n then m points equals drawing n + m (the chunking rule of
``backends.rng``). Balance is best when the total is a power of two; scipy's warning about
other totals is silenced here, since unbiasedness does not depend on it.

Values: scipy returns multiples of 2^-30; half a lattice step is added, so every coordinate
is ``(k + 1/2) 2^-30``: never 0 or 1, and the inverse normal CDF stays finite (|z| < 6.2).
Points are made on the host (numpy) and copied to the target device (host to device only).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

#: the largest dimension scipy's Sobol generator supports (its direction numbers)
MAX_DIM = 21201
_BITS = 30


class SobolStream:
    """``copies`` independent scrambled Sobol sequences of dimension ``dim``."""

    def __init__(self, dim: int, copies: int, rng: Any) -> None:
        from scipy.stats import qmc

        if not 1 <= dim <= MAX_DIM:
            raise ValueError(f"dim must be in [1, {MAX_DIM}] for Sobol points, got {dim}")
        if copies < 1:
            raise ValueError(f"copies must be >= 1, got {copies}")
        self.dim, self.copies, self.rng = int(dim), int(copies), rng
        seed = int(rng.backend.to_numpy(rng.integers(0, 2**62, (1,)))[0])
        children = np.random.SeedSequence(seed).spawn(self.copies)
        self._engines = [
            qmc.Sobol(self.dim, scramble=True, bits=_BITS, rng=np.random.default_rng(s))
            for s in children
        ]

    def fast_forward(self, n: int) -> SobolStream:
        """Skip the next ``n`` points (exactly: Sobol points are computed from their index), so
        that a worker can start a task at point ``n``. Returns the stream."""
        if n > 0:  # scipy's fast_forward(0) fails
            for engine in self._engines:
                engine.fast_forward(int(n))
        return self

    def _points(self, n: int) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The balance properties of Sobol")
            pts = np.stack([e.random(n) for e in self._engines], axis=1)  # (n, copies, dim)
        return pts + 2.0 ** -(_BITS + 1)

    def _out(self, a: np.ndarray, dtype: Any) -> Any:
        backend = self.rng.backend
        name = backend.dtype_name(backend.dtype(dtype))
        return backend.asarray(a.astype(name), dtype=name, device=self.rng.device)

    def uniform(self, n: int, *, dtype: Any) -> Any:
        """The next ``n`` points, shape ``(n, copies, dim)``, in (0, 1)."""
        return self._out(self._points(int(n)), dtype)

    def normal(self, n: int, *, dtype: Any) -> Any:
        """The next ``n`` points mapped through the inverse normal CDF (computed in float64)."""
        from scipy.special import ndtri

        return self._out(ndtri(self._points(int(n))), dtype)


def sobol(dim: int, copies: int, rng: Any) -> SobolStream:
    """A :class:`SobolStream` whose scrambles are seeded from ``rng`` (a ``backends.Rng``),
    producing arrays of ``rng``'s backend on ``rng``'s device."""
    return SobolStream(dim, copies, rng)
