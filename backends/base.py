"""What every backend module builds on: the adapter and random-number interfaces.

A backend is one module of this package (``numpy``, ``torch``, ``cupy``, ``array_api_strict``,
``jax``) defining a :class:`Backend` subclass and, when its library has generators of its
own, an :class:`Rng` subclass. The registry (``backends.registry``) lists one instance of
each; adding a backend is adding one module and one line there.

Libraries are imported lazily, on first use of ``.xp``, so a missing optional library costs
nothing until somebody asks for it.

The random-number interface (the array API standard has none) is five draws, each taking a
shape, a floating dtype and a device::

    rng.uniform(shape, dtype=..., low=0.0, high=1.0)   # U[low, high)
    rng.normal(shape, dtype=..., loc=0.0, scale=1.0)
    rng.exponential(shape, dtype=..., scale=1.0)
    rng.gumbel(shape, dtype=..., loc=0.0, scale=1.0)
    rng.integers(low, high, shape)                    # int64 in [low, high)

A subclass provides the three primitive draws ``_uniform``, ``_normal01`` and ``_integers``;
exponential and Gumbel are derived from ``uniform`` here, so they inherit its stream rule
(see ``backends.rng`` for the reproducibility rules).
"""

from __future__ import annotations

import importlib
import math
import numbers
import operator
from typing import Any

import numpy as np

__all__ = ["SEED_MAX", "Backend", "BackendUnavailableError", "HostRng", "Rng", "fresh_seed"]

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


class BackendUnavailableError(ImportError):
    """The library behind a backend cannot be imported, or has no device to run on."""


class Backend:
    """Base adapter. Subclasses set ``name``, ``module`` and ``package``."""

    name: str = ""
    #: the import name of the array library
    module: str = ""
    #: what to ``pip install`` when the library is missing
    package: str = ""
    #: the extra of ``pyproject.toml`` that installs it (None: a core dependency)
    extra: str | None = None

    def __init__(self) -> None:
        self._xp: Any = None

    # -- availability -----------------------------------------------------------------
    def _import(self) -> Any:
        try:
            return importlib.import_module(self.module)
        except ImportError as exc:
            via = f" (or the extra refimpl[{self.extra}])" if self.extra else ""
            raise BackendUnavailableError(
                f"backend {self.name!r} needs the package {self.package!r}, which is not "
                f"installed: pip install {self.package!r}{via}"
            ) from exc

    def unavailable_reason(self) -> str | None:
        """None when usable, else a sentence saying why not."""
        try:
            self._import()
        except BackendUnavailableError as exc:
            return str(exc)
        return None

    def is_available(self) -> bool:
        return self.unavailable_reason() is None

    def require(self) -> Backend:
        reason = self.unavailable_reason()
        if reason is not None:
            raise BackendUnavailableError(reason)
        return self

    # -- namespace and devices --------------------------------------------------------
    @property
    def xp(self) -> Any:
        if self._xp is None:
            self.require()
            self._xp = self._make_namespace()
        return self._xp

    def _make_namespace(self) -> Any:
        raise NotImplementedError

    @property
    def default_device(self) -> Any:
        return self.xp.__array_namespace_info__().default_device()

    def devices(self) -> list:
        return list(self.xp.__array_namespace_info__().devices())

    def device(self, spec: Any = None) -> Any:
        """Turn a device spec (None, a string, or a device object) into a device object."""
        if spec is None:
            return self.default_device
        try:
            return self._device(spec)
        except RuntimeError as exc:  # torch's parser of device strings raises RuntimeError
            raise ValueError(
                f"device {spec!r} is not a device of backend {self.name!r} ({exc})"
            ) from None

    def _device(self, spec: Any) -> Any:
        return spec

    def owns(self, xp: Any) -> bool:
        """Whether ``xp`` (a namespace) is this backend's."""
        raise NotImplementedError

    # -- dtypes and arrays ------------------------------------------------------------
    def dtype(self, spec: Any) -> Any:
        """The namespace's dtype for a name (``"float32"``), a numpy dtype, or a dtype."""
        if isinstance(spec, str) or isinstance(spec, np.dtype) or spec in (float, int):
            name = np.dtype(spec).name
            try:
                return getattr(self.xp, name)
            except AttributeError:
                raise ValueError(f"backend {self.name!r} has no dtype {name!r}") from None
        return spec

    def dtype_name(self, dtype: Any) -> str:
        for name in (
            "float16",
            "bfloat16",
            "float32",
            "float64",
            "int8",
            "int16",
            "int32",
            "int64",
        ):
            candidate = getattr(self.xp, name, None)
            if candidate is not None and dtype == candidate:
                return name
        for name in ("uint8", "uint16", "uint32", "uint64", "bool", "complex64", "complex128"):
            candidate = getattr(self.xp, name, None)
            if candidate is not None and dtype == candidate:
                return name
        return str(dtype).rsplit(".", 1)[-1]

    def asarray(self, obj: Any, dtype: Any = None, device: Any = None) -> Any:
        """Array of this backend from a nested sequence, a scalar or a numpy array."""
        dt = None if dtype is None else self.dtype(dtype)
        dev = self.device(device)
        if isinstance(obj, np.ndarray | np.generic):
            obj = self._from_numpy(np.asarray(obj))
        return self.xp.asarray(obj, dtype=dt, device=dev)

    def _from_numpy(self, a: np.ndarray) -> Any:
        return a

    def to_numpy(self, x: Any) -> np.ndarray:
        """A numpy copy of ``x`` (tests and reporting only: it synchronises with the device)."""
        raise NotImplementedError

    # -- random numbers: each library's own generators --------------------------------
    #: how errors name this library's generator
    generator_name: str = "generator"

    def is_generator(self, obj: Any) -> bool:
        """Whether ``obj`` is a native generator of this library (never imports it)."""
        return False

    def wrap_generator(self, generator: Any, device: Any) -> Rng:
        """An ``Rng`` drawing with this library's native ``generator``."""
        raise NotImplementedError

    def seeded_rng(self, seed: int | None, device: Any) -> Rng:
        """An ``Rng`` for an int seed (None: fresh entropy). Default: numpy's generator on
        the host, copied to the device (numpy itself, array_api_strict)."""
        return HostRng(np.random.default_rng(seed), self, device)

    def rng(self, rng: Any = None, device: Any = None) -> Rng:
        """An ``Rng`` drawing for this backend on ``device`` from ``rng``: None (fresh
        entropy), an int seed in ``[0, 2**64 - 1]``, a ``numpy.random.SeedSequence`` (a key,
        see ``backends.keys``), a ``numpy.random.Generator``, this
        library's native generator, or an ``Rng`` (re-bound here, sharing its stream).
        ``backends.as_rng`` is the front door: it also picks the backend."""
        dev = self.device(device)
        if isinstance(rng, Rng):
            return rng.bind(self, dev)
        if isinstance(rng, np.random.Generator):
            return HostRng(rng, self, dev)
        if isinstance(rng, np.random.SeedSequence):  # a key (backends.keys): its first word
            return self.seeded_rng(int(rng.generate_state(1, np.uint64)[0]), dev)
        if self.is_generator(rng):
            return self.wrap_generator(rng, dev)
        if rng is None:
            return self.seeded_rng(None, dev)
        if isinstance(rng, int | np.integer) and not isinstance(rng, bool):
            if not 0 <= int(rng) <= SEED_MAX:
                raise ValueError(
                    f"rng seed must be a non-negative integer <= 2**64 - 1, got {int(rng)} (as "
                    "an int seed, rng must fit the 64 bits every backend's generator accepts)"
                )
            return self.seeded_rng(int(rng), dev)
        raise TypeError(
            "rng must be None, an int seed, a native generator (numpy, torch, cupy, or a JAX "
            f"key) or a backends.Rng; got {type(rng).__name__}"
        )

    def __repr__(self) -> str:
        return f"<backend {self.name}>"


def fresh_seed() -> int:
    """A seed from the operating system's entropy (for ``rng=None``)."""
    return int(np.random.SeedSequence().generate_state(1, np.uint64)[0] & (2**63 - 1))


def _number(name: str, value: Any, *, nonnegative: bool = False) -> float:
    # the adapter layer's own argument check (it may not import refimpl.validation)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
    v = float(value)
    if not math.isfinite(v) or (nonnegative and v < 0):
        raise ValueError(f"{name} must be a finite number{' >= 0' * nonnegative}, got {value!r}")
    return v


def _ints(name: str, values: Any) -> tuple[int, ...]:
    """Ints (an int is one), refusing bools and floats rather than truncating them."""
    items = values if isinstance(values, tuple | list) else (values,)
    if any(isinstance(v, bool) for v in items):
        raise TypeError(f"{name} must contain ints, got {values!r}")
    try:
        return tuple(operator.index(v) for v in items)
    except TypeError:
        raise TypeError(f"{name} must contain ints, got {values!r}") from None


#: bounds every standard draw in every dtype: the normal's inverse CDF at float64's smallest
#: normal number is -37.5; the largest exponential and Gumbel draws, -log(eps), are 36.04
#: (the same bound as refimpl.validation.check_noise_scale)
_Z_MAX = 40.0


def _check_spread(law: str, loc: float, scale: float, name: str) -> None:
    """ValueError unless ``|loc| + 40 scale`` is finite in the dtype ``name``: every draw
    ``loc + scale * z`` then is (``|z| <= 40``)."""
    top = _MAX[name]
    if abs(loc) + _Z_MAX * scale > top:
        raise ValueError(
            f"{law} draws loc + scale * z with |z| <= {_Z_MAX:g}: |loc| + {_Z_MAX:g} * scale must "
            f"not exceed the largest finite value of {name} ({top:g}), got loc={loc:g}, "
            f"scale={scale:g}"
        )


def _shape(shape: Any) -> tuple[int, ...]:
    dims = _ints("shape", shape)
    if any(s < 0 for s in dims):
        raise ValueError(f"shape must have non-negative sizes, got {dims}")
    return dims


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
        low, high = _number("low", low), _number("high", high)
        if not (low < high):
            raise ValueError(f"uniform needs low < high, got low={low}, high={high}")
        top = _MAX[name]
        if max(-low, high) > top:
            raise ValueError(
                f"uniform's low and high must be finite in {name} (largest finite value "
                f"{top:g}): the interval [{low:g}, {high:g}) does not fit"
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
        loc, scale = _number("loc", loc), _number("scale", scale, nonnegative=True)
        _check_spread("normal", loc, scale, name)
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
        scale = _number("scale", scale, nonnegative=True)
        _check_spread("exponential", 0.0, scale, self._float_name(dtype))
        u = self.uniform(shape, dtype=dtype, device=device)
        one = xp.ones((), dtype=u.dtype, device=self._dev(device))
        u = xp.minimum(u, xp.nextafter(one, xp.zeros_like(one)))
        e = -xp.log1p(-u)
        return e * scale if scale != 1.0 else e

    def gumbel(
        self, shape: Any, *, dtype: Any, loc: float = 0.0, scale: float = 1.0, device: Any = None
    ) -> Any:
        """Gumbel(loc, scale), never infinite: U is mapped into [tiny, 1 - eps) first (as
        ``torch.distributions.Gumbel`` does), then ``G = loc - scale * log(-log(U))``."""
        xp = self.xp
        loc, scale = _number("loc", loc), _number("scale", scale, nonnegative=True)
        _check_spread("gumbel", loc, scale, self._float_name(dtype))
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
        """int64 integers in ``[low, high)``; both bounds must be int64 values."""
        (low,), (high,) = _ints("low", low), _ints("high", high)
        if not (-(2**63) <= low and high <= 2**63 - 1):
            raise ValueError(
                "integers draws int64 values: low and high must be in [-2**63, 2**63 - 1], "
                f"got low={low}, high={high}"
            )
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
                raise TypeError(
                    f"dtype must be a real floating dtype of backend {self.backend.name!r}, "
                    "got 'bfloat16' (it has no bfloat16)"
                )
        else:
            try:
                dt = self.backend.dtype(dtype)
            except (TypeError, ValueError):  # a name numpy does not know, or no such dtype
                dt = None
        name = None if dt is None else self.backend.dtype_name(dt)
        if name not in _FLOATS:
            raise TypeError(
                f"dtype must be a real floating dtype ({', '.join(_FLOATS)}), got {dtype!r}"
            )
        return name

    def bind(self, backend: Backend, device: Any) -> Rng:
        """The same stream drawing for ``backend`` on ``device`` (shares the generator)."""
        return type(self)(self.generator, backend, device)

    def _uniform(self, shape: tuple[int, ...], name: str, low: float, high: float, device: Any):
        raise NotImplementedError

    def _normal01(self, shape: tuple[int, ...], name: str, device: Any) -> Any:
        raise NotImplementedError

    def _integers(self, low: int, high: int, shape: tuple[int, ...], device: Any) -> Any:
        raise NotImplementedError

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
