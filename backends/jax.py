"""The JAX backend: one module, as every backend is (adding it changed nothing in ``refimpl``).

* Namespace: ``jax.numpy``, which implements the array API standard (2024.12) itself.
  Importing it through this backend turns on ``jax_enable_x64``, so that float64 means
  float64 as on every other backend (JAX's default silently computes in float32).
* Devices: ``"cpu"``, ``"gpu"`` / ``"cuda"`` (optionally ``":i"``), an int index into
  ``jax.devices()`` (as the cupy adapter takes one; numpy integers too), or a ``jax.Device``.
  Arrays are created on the device asked for; refimpl keeps every result there.
* Random numbers: ``jax.random`` keys. An int seed ``s`` means ``jax.random.key(s)``; one
  key (``jax.random.key`` or a legacy ``jax.random.PRNGKey``, which holds the same data) may
  be passed as ``rng=`` directly; a batch of keys (``jax.random.split(key)``) is refused.
  JAX keys are values, not generators: the adapter turns a key into counter-based streams
  (value i of a stream comes from ``fold_in(key, i // 1024)``), so the same seed and the
  same sequence of calls give the same arrays, and drawing n then m values equals drawing
  n + m for every distribution: the block rule that makes refimpl's chunked Monte Carlo
  independent of the chunk size holds here too (exponential and Gumbel draws to within an
  ulp: XLA's vectorised ``log`` rounds an array's tail differently).
* XLA on CPU flushes subnormal numbers to zero and divides by multiplying with the
  reciprocal, so float32 values within a factor 1e38 of the overflow threshold lose what the
  other backends keep (``x / max|x|`` at 3e38 is 0 here): the one test that differs on
  jax (``tests/test_ops.py::test_float32_norms_near_overflow_and_underflow``) is marked as
  an expected failure with this reason.
* Arrays are immutable: refimpl updates arrays functionally (``array_api_extra.at``), which
  returns new arrays on JAX.
"""

from __future__ import annotations

import numbers
from typing import Any

import array_api_compat
import numpy as np

from backends.base import Backend, Rng, fresh_seed

__all__ = ["JaxBackend", "JaxRng", "is_jax_key"]


class JaxBackend(Backend):
    name = "jax"
    module = "jax"
    package = "jax"
    extra = "jax"

    def _make_namespace(self) -> Any:
        import jax

        jax.config.update("jax_enable_x64", True)
        import jax.numpy as jnp

        return jnp

    @property
    def default_device(self) -> Any:
        import jax

        self.xp  # noqa: B018  (x64 on before any array exists)
        return jax.devices()[0]

    def devices(self) -> list:
        import jax

        return list(jax.devices())

    def _device(self, spec: Any) -> Any:
        """A ``jax.Device`` from ``"cpu"``, ``"gpu"`` / ``"cuda"`` (optionally ``":i"``), an
        int index into ``jax.devices()`` (as cupy's adapter takes one), or a device itself."""
        import jax

        if isinstance(spec, jax.Device | jax.sharding.Sharding):
            return spec
        if isinstance(spec, str):
            kind, _, index = spec.partition(":")
            kind = {"cuda": "gpu"}.get(kind, kind)
            if not kind:  # jax.devices("") would quietly mean the default platform
                raise ValueError(f"device must name a platform ('cpu', 'gpu'), got {spec!r}")
            try:
                found = jax.devices(kind)
            except RuntimeError as exc:
                raise ValueError(f"JAX has no {kind!r} device here ({exc})") from None
            return _pick(found, _index(index, spec), spec, kind)
        if isinstance(spec, numbers.Integral) and not isinstance(spec, bool):
            return _pick(jax.devices(), int(spec), spec, "default")  # numpy integers too
        raise TypeError(
            "device must be a str ('cpu', 'gpu', 'gpu:0'), an int index into jax.devices() "
            f"or a jax.Device, got {spec!r} ({type(spec).__name__})"
        )

    def owns(self, xp: Any) -> bool:
        return array_api_compat.is_jax_namespace(xp)

    def asarray(self, obj: Any, dtype: Any = None, device: Any = None) -> Any:
        """``jax.numpy.asarray(obj, dtype, device)``; what JAX refuses is re-raised naming
        the argument (jax's own messages name neither ``obj`` nor ``dtype``)."""
        dt = None if dtype is None else self._checked_dtype(dtype)
        dev = self.device(device)
        try:
            return self.xp.asarray(obj, dtype=dt, device=dev)
        except (TypeError, ValueError) as exc:
            raise type(exc)(
                f"obj={obj!r:.60} cannot become a JAX array{f' of dtype {dt}' if dt else ''} "
                f"({exc})"
            ) from None

    def _checked_dtype(self, dtype: Any) -> Any:
        """The dtype of ``jax.numpy`` that ``dtype`` names; TypeError naming it otherwise."""
        try:
            found = self.dtype(dtype)
            np.dtype(found)  # jax's dtypes are numpy dtypes (bfloat16 through ml_dtypes)
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"dtype must be a dtype of jax.numpy or its name ('float32'), got {dtype!r} ({exc})"
            ) from None
        return found

    def to_numpy(self, x: Any) -> np.ndarray:
        return np.array(x, copy=True)

    generator_name = "JAX key"

    def is_generator(self, obj: Any) -> bool:
        return is_jax_key(obj)

    def wrap_generator(self, generator: Any, device: Any) -> Any:
        """An adapter for one key; a batch of keys (``jax.random.split(key)``) is refused:
        a stream is drawn from one key."""
        import jax

        batch = _key_batch_shape(generator)
        if batch:
            raise TypeError(
                f"rng must be one JAX key, got a batch of keys of shape {batch}; "
                "pass one of them (keys[0]) or a key from jax.random.key"
            )
        if not jax.dtypes.issubdtype(generator.dtype, jax.dtypes.prng_key):
            generator = jax.random.wrap_key_data(generator)  # PRNGKey(s): the data of key(s)
        return JaxRng(generator, self, device)

    def seeded_rng(self, seed: int | None, device: Any) -> Any:
        """``jax.random.key(seed)`` (None: a fresh seed). Seeds from 2**63 to 2**64 - 1, which
        ``jax.random.key`` refuses, become the key data ``[seed >> 32, seed & 0xFFFFFFFF]``:
        the layout ``key`` itself gives the smaller ones."""
        import jax

        seed = fresh_seed() if seed is None else seed
        if seed < 2**63:
            key = jax.random.key(seed)
        else:
            words = np.array([seed >> 32, seed & 0xFFFFFFFF], dtype=np.uint32)
            key = jax.random.wrap_key_data(words)
        return JaxRng(key, self, device)


def _index(text: str, spec: str) -> int:
    """The device index after the colon of ``spec`` (0 when there is none)."""
    if not text:
        return 0
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"the device index must be an int (as in 'gpu:0'), got {spec!r}") from None


def _pick(found: list, i: int, spec: Any, kind: str) -> Any:
    """``found[i]``, or a ValueError naming ``spec`` when ``i`` is out of range."""
    if not 0 <= i < len(found):
        raise ValueError(f"JAX has {len(found)} {kind} device(s); {spec!r} is out of range")
    return found[i]


def is_jax_key(obj: Any) -> bool:
    """Whether ``obj`` is a JAX PRNG key, or a batch of them: a typed key (``jax.random.key``)
    or a legacy raw threefry key (``jax.random.PRNGKey``: a uint32 array of shape (2,);
    a batch of them has the shape (..., 2))."""
    return _key_batch_shape(obj) is not None


def _key_batch_shape(obj: Any) -> tuple[int, ...] | None:
    """None when ``obj`` is no key; else the shape of its batch of keys (``()``: one key)."""
    t = type(obj)
    if not t.__module__.startswith("jax"):
        return None
    import jax

    dtype = getattr(obj, "dtype", None)
    shape = tuple(getattr(obj, "shape", ()))
    if jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        return shape
    if dtype == np.uint32 and shape[-1:] == (2,):
        return shape[:-1]
    return None


#: values per block of a stream (see :class:`_Streams`)
BLOCK = 1024


class _Streams:
    """Counter-based streams: value ``i`` of the stream ``kind`` is entry ``i % BLOCK`` of
    ``draw(fold_in(fold_in(key, kind), i // BLOCK))``. A draw of n values takes positions
    ``[pos, pos + n)`` and advances ``pos``, so drawing n then m values equals drawing n + m
    (the block rule of ``backends.rng``, for ``normal`` too). Adapters bound to other
    devices share the object, hence the stream."""

    KINDS = {"uniform": 0, "normal": 1, "integers": 2}

    def __init__(self, key: Any) -> None:
        self.key = key
        self.position = dict.fromkeys(self.KINDS, 0)

    def take(self, kind: str, n: int, draw: Any) -> Any:
        import jax
        import jax.numpy as jnp

        pos = self.position[kind]
        self.position[kind] = pos + n
        first, last = pos // BLOCK, (pos + max(n, 1) - 1) // BLOCK
        kind_key = jax.random.fold_in(self.key, self.KINDS[kind])
        keys = jax.vmap(jax.random.fold_in, (None, 0))(kind_key, jnp.arange(first, last + 1))
        values = jnp.reshape(jax.vmap(draw)(keys), (-1,))
        return values[pos - first * BLOCK : pos - first * BLOCK + n]


class JaxRng(Rng):
    """``jax.random`` behind the ``Rng`` interface: counter-based streams of one key."""

    def __init__(
        self, generator: Any, backend: Backend, device: Any, streams: _Streams | None = None
    ) -> None:
        super().__init__(generator, backend, device)  # ``generator``: the key, as given
        self.streams = streams if streams is not None else _Streams(generator)

    def bind(self, backend: Backend, device: Any) -> Rng:
        if backend.name != "jax":
            raise TypeError(f"a JAX key cannot draw for the backend {backend.name!r}")
        return JaxRng(self.generator, backend, device, self.streams)

    def _take(self, kind: str, shape: tuple[int, ...], draw: Any, name: str, device: Any) -> Any:
        import jax

        n = 1
        for d in shape:
            n *= d
        flat = self.streams.take(kind, n, draw)
        out = self.xp.reshape(flat, shape)
        if out.dtype != getattr(self.xp, name):
            out = self.xp.astype(out, getattr(self.xp, name))
        return jax.device_put(out, device)

    def _uniform(self, shape, name, low, high, device):
        """Drawn in float64 for float64, else in float32 and rounded to ``name``."""
        import jax

        dt = self.xp.float64 if name == "float64" else self.xp.float32
        u = self._take("uniform", shape, lambda k: jax.random.uniform(k, (BLOCK,), dt), name, None)
        if (low, high) != (0.0, 1.0):
            u = self.xp.astype(u, dt) * (high - low) + low
            u = self.xp.astype(u, getattr(self.xp, name))
        return jax.device_put(u, device)

    def _normal01(self, shape, name, device):
        import jax

        dt = self.xp.float64 if name == "float64" else self.xp.float32
        return self._take(
            "normal", shape, lambda k: jax.random.normal(k, (BLOCK,), dt), name, device
        )

    def _integers(self, low, high, shape, device):
        import jax

        def draw(k):
            return jax.random.randint(k, (BLOCK,), low, high, dtype=self.xp.int64)

        return self._take("integers", shape, draw, "int64", device)
