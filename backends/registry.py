"""The registry of backends and the switch: which library a function that receives only
shapes should use.

``ADAPTERS`` holds one instance per backend module. Precedence of the switch, strongest
first: an explicit ``backend=`` argument, the innermost ``with use(...)`` block,
``set_default(...)``, the ``REFIMPL_BACKEND`` environment variable, and finally numpy.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Iterator
from typing import Any

import array_api_compat

from backends.array_api_strict import StrictBackend
from backends.base import Backend
from backends.cupy import CupyBackend
from backends.jax import JaxBackend
from backends.numpy import NumpyBackend
from backends.torch import TorchBackend

__all__ = [
    "ADAPTERS",
    "ALIASES",
    "ENV_VAR",
    "available",
    "backend_of",
    "current",
    "generator_owner",
    "get",
    "names",
    "resolve",
    "set_default",
    "use",
]

ADAPTERS: dict[str, Backend] = {
    b.name: b
    for b in (NumpyBackend(), TorchBackend(), CupyBackend(), StrictBackend(), JaxBackend())
}
ALIASES = {"strict": "array_api_strict", "array-api-strict": "array_api_strict", "np": "numpy"}
ENV_VAR = "REFIMPL_BACKEND"

_default: str | None = None
_default_device: Any = None
_context: contextvars.ContextVar[tuple[str, Any] | None] = contextvars.ContextVar(
    "refimpl_backend", default=None
)


def names() -> list[str]:
    """Every backend this package knows, available or not."""
    return list(ADAPTERS)


def _canonical(name: str) -> str:
    if not isinstance(name, str):
        raise TypeError(f"backend name must be a string, got {type(name).__name__}")
    key = ALIASES.get(name, name)
    if key not in ADAPTERS:
        raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(sorted(ADAPTERS))}")
    return key


def get(name: str | Backend) -> Backend:
    """The adapter called ``name``. Unknown name: ValueError. Missing library: an ImportError
    (``BackendUnavailableError``) naming the package to install."""
    if isinstance(name, Backend):
        return name.require()
    return ADAPTERS[_canonical(name)].require()


def available() -> list[str]:
    """Names of the usable backends: importable and, for cupy, with a GPU present."""
    return [n for n, b in ADAPTERS.items() if b.is_available()]


def backend_of(xp_or_array: Any) -> Backend:
    """The adapter that owns a namespace or an array."""
    xp = xp_or_array
    if not hasattr(xp, "__array_namespace_info__"):
        xp = array_api_compat.array_namespace(xp_or_array)
    for adapter in ADAPTERS.values():
        if adapter.owns(xp):
            return adapter
    raise TypeError(f"no backend adapter for the namespace {getattr(xp, '__name__', xp)!r}")


def generator_owner(obj: Any) -> Backend | None:
    """The backend whose library made the generator ``obj`` (None: not a native generator)."""
    for adapter in ADAPTERS.values():
        if adapter.is_generator(obj):
            return adapter
    return None


def set_default(name: str | None, device: Any = None) -> None:
    """Make ``name`` the backend of shape-only calls for the whole process (None: reset)."""
    global _default, _default_device
    if name is None:
        _default, _default_device = None, None
        return
    adapter = get(name)
    if device is not None:
        adapter.device(device)
    _default, _default_device = adapter.name, device


@contextlib.contextmanager
def use(name: str, device: Any = None) -> Iterator[Backend]:
    """``with backends.use("torch", device="cuda"):`` switches shape-only calls inside."""
    adapter = get(name)
    if device is not None:
        adapter.device(device)
    token = _context.set((adapter.name, device))
    try:
        yield adapter
    finally:
        _context.reset(token)


def current() -> tuple[Backend, Any]:
    """The (adapter, device) that a shape-only call made now would use."""
    return resolve(None, None)


def resolve(backend: str | Backend | None = None, device: Any = None) -> tuple[Backend, Any]:
    """(adapter, device object) from an explicit choice, falling back to the switch."""
    if backend is not None:
        adapter = get(backend)
        return adapter, adapter.device(device)
    ctx = _context.get()
    if ctx is not None:
        name, ctx_device = ctx
    elif _default is not None:
        name, ctx_device = _default, _default_device
    else:
        name, ctx_device = os.environ.get(ENV_VAR) or "numpy", None
        if name not in ADAPTERS and name not in ALIASES:
            raise ValueError(
                f"environment variable {ENV_VAR}={name!r} names no backend; "
                f"choose one of {', '.join(sorted(ADAPTERS))}"
            )
    adapter = get(name)
    return adapter, adapter.device(device if device is not None else ctx_device)
