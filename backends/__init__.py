"""The adapter layer: every line that knows a specific array library lives here.

``refimpl`` asks this package for namespaces, devices, random numbers, the shims for
operations the array API standard lacks, and eigensolver dispatch (DESIGN.md, Layers).

Backend switch (for calls that receive only shapes)::

    import backends
    backends.available()                 # ['numpy', 'torch', 'array_api_strict', ...]
    backends.set_default("torch")        # process-wide
    with backends.use("torch", device="cuda"):
        ...                              # inside this block
    # or REFIMPL_BACKEND=torch in the environment, or backend="torch" on the call
"""

from backends._adapters import Backend, BackendUnavailableError
from backends._namespace import (
    backend_of,
    floating_dtype,
    namespace_and_device,
    size,
    xp_device,
)
from backends._switch import ENV_VAR, available, current, get, names, resolve, set_default, use
from backends.rng import Rng, as_rng

__all__ = [
    "ENV_VAR",
    "Backend",
    "BackendUnavailableError",
    "Rng",
    "as_rng",
    "available",
    "backend_of",
    "current",
    "floating_dtype",
    "get",
    "namespace_and_device",
    "names",
    "resolve",
    "set_default",
    "size",
    "use",
    "xp_device",
]
