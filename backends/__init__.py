"""The adapter layer: every line that knows a specific array library lives here.

``refimpl`` asks this package for namespaces, devices, random numbers, the shims for
operations the array API standard lacks, and eigensolver dispatch; this package never
imports ``refimpl``.

======================  ==============================================================
module                  what it holds
======================  ==============================================================
``base``                the ``Backend`` and ``Rng`` interfaces every backend builds on
``numpy``, ``torch``,   one module per array library (and ``cupy``, ``array_api_strict``,
                        ``jax``): namespace, devices, conversions, random numbers
``registry``            the list of backends and the switch (``use``, ``set_default``)
``namespace``           namespace and device of the arrays a function receives
``rng``                 ``as_rng`` and the reproducibility rules
``ops``, ``fft``        shims for operations the standard lacks, with native fast paths
``linalg``              the bridge to scipy's host solvers (``LinearOperator``, ``eigsh``)
``qmc``                 scrambled Sobol points (scipy)
``progress``            progress bars (tqdm)
======================  ==============================================================

Backend switch (for calls that receive only shapes)::

    import backends
    backends.available()                 # ['numpy', 'torch', 'array_api_strict', ...]
    backends.set_default("torch")        # process-wide
    with backends.use("torch", device="cuda"):
        ...                              # inside this block
    # or REFIMPL_BACKEND=torch in the environment, or backend="torch" on the call
"""

from backends.base import Backend, BackendUnavailableError, Rng
from backends.namespace import floating_dtype, namespace_and_device, size, xp_device
from backends.registry import (
    ENV_VAR,
    available,
    backend_of,
    current,
    get,
    names,
    resolve,
    set_default,
    use,
)
from backends.rng import as_rng

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
