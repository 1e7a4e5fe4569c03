"""Random numbers for every backend behind one small interface.

The array API standard has no random numbers, so every draw in ``refimpl`` goes through an
``Rng`` adapter::

    rng.uniform(shape, dtype=..., low=0.0, high=1.0)   # U[low, high)
    rng.normal(shape, dtype=..., loc=0.0, scale=1.0)
    rng.exponential(shape, dtype=..., scale=1.0)
    rng.gumbel(shape, dtype=..., loc=0.0, scale=1.0)
    rng.integers(low, high, shape)                    # int64 in [low, high)

Every random function of ``refimpl`` takes ``rng=``, turned into an adapter by
:func:`as_rng`: ``None`` (fresh entropy), an ``int`` seed, a native generator
(``numpy.random.Generator``, ``torch.Generator``, cupy's ``Generator``) or an ``Rng``.

Native generators per backend
    numpy and array_api_strict draw with ``numpy.random.Generator`` (strict then receives a
    copy on its device); torch with a ``torch.Generator`` (an int seed ``s`` means
    ``torch.Generator(device).manual_seed(s)``, exactly what the documented torch libraries
    use, so their documented random values are reproduced digit for digit); cupy with
    ``cupy.random.default_rng``. Draws happen on the generator's device and are then moved to
    the requested device (torch generators are device-bound).

Guarantees (tested in ``tests/test_rng.py``)
    * same seed, backend, device, dtype, shapes and call order -> bitwise-identical arrays;
    * block rule for chunked Monte Carlo: ``uniform``, ``exponential``, ``gumbel`` and
      ``integers`` are stream-consistent on every backend: drawing n then m values equals
      drawing n + m. ``normal`` is stream-consistent on numpy and strict; torch's CPU normal
      transforms uniforms in blocks of 16 and redraws the tail block, so on torch it is
      stream-consistent only when every call draws a multiple of 16 values (at least 16).
      Monte Carlo loops therefore draw their noise in sample-major order with a fixed number
      of samples per call, independent of the memory chunk size.

Derived distributions (computed from ``uniform`` draws, so they inherit its stream rule)
    exponential: ``E = -scale * log1p(-U)``, U capped below 1, so E is finite.
    gumbel: U is first mapped into ``[tiny, 1 - eps)`` of its dtype (as
    ``torch.distributions.Gumbel`` does), then ``G = loc - scale * log(-log(U))``. Both
    logarithms are then finite, so a Gumbel draw is never +-inf.
"""

from __future__ import annotations

import math
import numbers
import operator
from typing import Any

import numpy as np

from backends._adapters import Backend

_FLOATS = ("float16", "bfloat16", "float32", "float64")
#: the largest finite value of each floating dtype
_MAX = {
    "float16": 65504.0,
    "bfloat16": 3.3895313892515355e38,
    "float32": 3.4028234663852886e38,
    "float64": 1.7976931348623157e308,
}
#: int seeds: what every backend accepts (torch.Generator.manual_seed stops at 2**64 - 1)
SEED_MAX = 2**64 - 1


def _finite(name: str, value: Any, *, low: float | None = None) -> float:
    """``float(value)`` for a finite real number (``>= low`` when given), else an error
    naming the argument."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
    v = float(value)
    if not math.isfinite(v) or (low is not None and v < low):
        bound = f" >= {low:g}" if low is not None else ""
        raise ValueError(f"{name} must be a finite number{bound}, got {value!r}")
    return v


def _int(name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int, got {value!r} ({type(value).__name__})") from None


class Rng:
    """Base adapter: subclasses provide ``_uniform``, ``_normal01`` and ``_integers``."""

    def __init__(self, generator: Any, backend: Backend, device: Any) -> None:
        self.generator = generator
        self.backend = backend
        self.device = device

    @property
    def xp(self) -> Any:
        return self.backend.xp

    # -- public draws -----------------------------------------------------------------
    def uniform(
        self, shape: Any, *, dtype: Any, low: float = 0.0, high: float = 1.0, device: Any = None
    ) -> Any:
        """Uniform on ``[low, high)``, rounded to ``dtype``: as with torch's ``uniform_``, the
        rounding can give ``high`` itself (float16 draws, or scaled float32 ones, near the
        top). The derived distributions below guard against that.

        ``low`` and ``high`` must be finite in ``dtype``. When ``high - low`` exceeds the
        dtype's range (``low = -1e308, high = 1e308`` in float64), the draw ``u`` on [0, 1)
        is mapped as ``low (1 - u) + high u``, which cannot overflow; otherwise it is the
        native ``low + (high - low) u`` (torch: ``uniform_(low, high)``)."""
        name = self._float_name(dtype)
        low, high = _finite("low", low), _finite("high", high)
        if not (low < high):
            raise ValueError(f"uniform needs low < high, got low={low}, high={high}")
        top = _MAX[name]
        if max(-low, high) > top:
            raise ValueError(
                f"uniform's interval [{low:g}, {high:g}) does not fit in {name} "
                f"(largest finite value {top:g})"
            )
        shape, dev = _shape(shape), self._dev(device)
        if high - low <= top:
            return self._uniform(shape, name, low, high, dev)
        u = self._uniform(shape, name, 0.0, 1.0, dev)
        return (1.0 - u) * low + u * high

    def normal(
        self, shape: Any, *, dtype: Any, loc: float = 0.0, scale: float = 1.0, device: Any = None
    ) -> Any:
        """Normal with mean ``loc`` and standard deviation ``scale >= 0``."""
        name = self._float_name(dtype)
        loc, scale = _finite("loc", loc), _finite("scale", scale, low=0.0)
        z = self._normal01(_shape(shape), name, self._dev(device))
        if scale != 1.0:
            z = z * scale
        if loc != 0.0:
            z = z + loc
        return z

    def exponential(self, shape: Any, *, dtype: Any, scale: float = 1.0, device: Any = None) -> Any:
        """Exponential with mean ``scale``: ``E = -scale * log1p(-U)``, U ~ U[0, 1) capped at
        the largest value below 1 of the dtype, so E is always finite."""
        xp = self.xp
        scale = _finite("scale", scale, low=0.0)
        u = self.uniform(shape, dtype=dtype, device=device)
        one = xp.ones((), dtype=u.dtype, device=self._dev(device))
        u = xp.minimum(u, xp.nextafter(one, xp.zeros_like(one)))
        e = -xp.log1p(-u)
        return e * scale if scale != 1.0 else e

    def gumbel(
        self, shape: Any, *, dtype: Any, loc: float = 0.0, scale: float = 1.0, device: Any = None
    ) -> Any:
        """Gumbel(loc, scale), never infinite: U is clamped into [tiny, 1 - eps) first."""
        xp = self.xp
        loc, scale = _finite("loc", loc), _finite("scale", scale, low=0.0)
        u = self.uniform(shape, dtype=dtype, device=device)
        info = xp.finfo(u.dtype)
        dev = self._dev(device)
        lo = xp.asarray(float(info.smallest_normal), dtype=u.dtype, device=dev)
        hi = xp.asarray(1.0 - float(info.eps), dtype=u.dtype, device=dev)
        u = lo + u * (hi - lo)
        g = -xp.log(-xp.log(u))
        if scale != 1.0:
            g = g * scale
        if loc != 0.0:
            g = g + loc
        return g

    def integers(self, low: int, high: int, shape: Any, *, device: Any = None) -> Any:
        """int64 integers in ``[low, high)``."""
        low, high = _int("low", low), _int("high", high)
        if not (low < high):
            raise ValueError(f"integers needs low < high, got low={low}, high={high}")
        return self._integers(low, high, _shape(shape), self._dev(device))

    # -- helpers ----------------------------------------------------------------------
    def _dev(self, device: Any) -> Any:
        return self.device if device is None else self.backend.device(device)

    def _float_name(self, dtype: Any) -> str:
        if dtype is None:
            raise TypeError("dtype is required: pass the floating dtype of the arrays involved")
        if isinstance(dtype, str) and dtype == "bfloat16":  # not a numpy dtype name
            dt = getattr(self.xp, "bfloat16", None)
            if dt is None:
                raise TypeError(f"backend {self.backend.name!r} has no bfloat16")
        else:
            dt = self.backend.dtype(dtype)
        name = self.backend.dtype_name(dt)
        if name not in _FLOATS:
            raise TypeError(
                f"dtype must be a real floating dtype ({', '.join(_FLOATS)}), got {dtype}"
            )
        return name

    def bind(self, backend: Backend, device: Any) -> Rng:
        """The same stream drawing for ``backend`` on ``device`` (shares the generator)."""
        return type(self)(self.generator, backend, device)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.backend.name} on {self.device}>"


class HostRng(Rng):
    """numpy ``Generator`` on the host; results copied to the target backend and device.

    Native for numpy; for array_api_strict (which has no RNG) and for any backend given a
    ``numpy.random.Generator``.
    """

    def bind(self, backend: Backend, device: Any) -> Rng:
        return HostRng(self.generator, backend, device)

    def _to(self, a: np.ndarray, name: str, device: Any) -> Any:
        if name == "bfloat16":  # numpy has no bfloat16: the float32 draw is cast on the target
            return self.backend.asarray(a, dtype=self.backend.xp.bfloat16, device=device)
        a = a.astype(name, copy=False)
        return self.backend.asarray(a, dtype=name, device=device)

    def _uniform(self, shape, name, low, high, device):
        """Drawn in float64 for float64, else in float32 and rounded to ``name``."""
        draw = "float64" if name == "float64" else "float32"
        u = self.generator.random(shape, dtype=draw)
        if (low, high) != (0.0, 1.0):
            u = u * np.asarray(high - low, dtype=draw) + np.asarray(low, dtype=draw)
        return self._to(u, name, device)

    def _normal01(self, shape, name, device):
        draw = "float64" if name == "float64" else "float32"
        return self._to(self.generator.standard_normal(shape, dtype=draw), name, device)

    def _integers(self, low, high, shape, device):
        a = self.generator.integers(low, high, size=shape, dtype=np.int64)
        return self.backend.asarray(a, dtype="int64", device=device)


class TorchRng(Rng):
    """``torch.Generator``: the same calls, shapes and order as torch code would make.

    ``uniform(low, high)`` is ``Tensor.uniform_(low, high, generator=g)`` and ``normal`` is
    one ``torch.randn`` call on the whole shape (bit-identical to ``normal_`` on that block).
    Draws happen on ``g.device`` and are then moved to the target device.
    """

    def bind(self, backend: Backend, device: Any) -> Rng:
        if backend.name != "torch":
            raise TypeError(f"a torch.Generator cannot draw for the backend {backend.name!r}")
        return TorchRng(self.generator, backend, device)

    def _torch_dtype(self, name):
        import torch

        return getattr(torch, name)

    def _uniform(self, shape, name, low, high, device):
        import torch

        g = self.generator
        u = torch.empty(shape, dtype=self._torch_dtype(name), device=g.device)
        u.uniform_(low, high, generator=g)
        return u.to(device)

    def _normal01(self, shape, name, device):
        import torch

        g = self.generator
        z = torch.randn(shape, generator=g, dtype=self._torch_dtype(name), device=g.device)
        return z.to(device)

    def _integers(self, low, high, shape, device):
        import torch

        g = self.generator
        i = torch.randint(low, high, shape, generator=g, dtype=torch.int64, device=g.device)
        return i.to(device)


class CupyRng(Rng):
    """cupy ``Generator`` (untested here: needs a GPU)."""

    def bind(self, backend: Backend, device: Any) -> Rng:
        if backend.name != "cupy":
            raise TypeError(f"a cupy Generator cannot draw for the backend {backend.name!r}")
        return CupyRng(self.generator, backend, device)

    def _uniform(self, shape, name, low, high, device):
        import cupy

        draw = "float64" if name == "float64" else "float32"
        with device:
            u = self.generator.random(shape, dtype=draw)
            if (low, high) != (0.0, 1.0):
                u = u * cupy.asarray(high - low, dtype=draw) + cupy.asarray(low, dtype=draw)
            return u.astype(name, copy=False)

    def _normal01(self, shape, name, device):
        draw = "float64" if name == "float64" else "float32"
        with device:
            return self.generator.standard_normal(shape, dtype=draw).astype(name, copy=False)

    def _integers(self, low, high, shape, device):
        import cupy

        with device:
            return self.generator.integers(low, high, size=shape, dtype=cupy.int64)


def _shape(shape: Any) -> tuple[int, ...]:
    """A tuple of non-negative ints (an int is a 1-d shape); floats are refused, not
    truncated."""
    if not isinstance(shape, tuple | list):
        shape = (shape,)
    dims = []
    for s in shape:
        if isinstance(s, bool):
            raise TypeError(f"shape must contain ints, got {shape!r}")
        try:
            dims.append(operator.index(s))
        except TypeError:
            raise TypeError(f"shape must contain ints, got {shape!r}") from None
    if any(s < 0 for s in dims):
        raise ValueError(f"shape must have non-negative sizes, got {tuple(dims)}")
    return tuple(dims)


def fresh_seed() -> int:
    return int(np.random.SeedSequence().generate_state(1, np.uint64)[0] & (2**63 - 1))


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
    backend of the switch is used.
    """
    from backends._namespace import backend_of, namespace_and_device
    from backends._switch import resolve

    if like is not None:
        xp, device = namespace_and_device(like)
        adapter = backend_of(xp)
    else:
        adapter, device = resolve(backend, device)

    if isinstance(rng, Rng):
        return rng.bind(adapter, device)
    if isinstance(rng, np.random.Generator):
        return HostRng(rng, adapter, device)
    owner = _generator_owner(rng)
    if owner is not None:
        if owner.name != adapter.name:
            raise TypeError(
                f"rng is a {owner.generator_name} but the arrays belong to {adapter.name!r}; "
                "pass an int seed or a generator of that library"
            )
        return adapter.wrap_generator(rng, device)
    if rng is None:
        seed = None
    elif isinstance(rng, int | np.integer) and not isinstance(rng, bool):
        seed = int(rng)
        if not 0 <= seed <= SEED_MAX:
            raise ValueError(
                f"rng seed must be a non-negative integer <= 2**64 - 1, got {seed} (as an int "
                "seed, rng must fit the 64 bits every backend's generator accepts)"
            )
    else:
        raise TypeError(
            "rng must be None, an int seed, a native generator (numpy, torch, cupy, or a JAX "
            f"key) or a backends.rng.Rng; got {type(rng).__name__}"
        )
    return adapter.seeded_rng(seed, device)


def _generator_owner(obj: Any) -> Backend | None:
    """The backend whose library made the generator ``obj`` (None: not a native generator)."""
    from backends._adapters import ADAPTERS

    for adapter in ADAPTERS.values():
        if adapter.is_generator(obj):
            return adapter
    return None
