"""Targets: the columns of the conformance table.

A target is one implementation of the documented methods. It supplies the *operations* the
cases need; a case states the documented example and its check, and calls those operations
on every implementation of the column. An operation a target does not define raises
:class:`NotSupported` (a :class:`SkipCase`), so the cell is SKIP with the target and the
operation named.

Modules
    ``base`` -- the port contract, to read first: :class:`Target` and its operations (their
    docstrings are the contract), :class:`NotSupported` (SKIP), the result types,
    :func:`register_target` and the registry of target factories, the entry points of the
    group ``refimpl.conformance``, and :class:`OriginalTarget`.
    ``refimpl`` -- :class:`RefimplTarget`: this project on one backend (numpy, torch,
    torch:cuda, cupy, array_api_strict on its non-default device, jax: whatever
    ``backends.registry.ADAPTERS`` lists).
    ``torch`` -- :class:`TorchFrontEnd`: the torch front end ``refimpl.torch``, checked in the
    same cell as the torch columns.
    ``jax_front_end`` -- :class:`JaxFrontEnd`: the JAX front end ``refimpl.jax``, a column
    (``refimpl.jax``, opt-in) running the optax column's cases with the import changed.
    ``rai_toolbox``, ``captum``, ``plenoptic``, ``optax`` -- :class:`RaiToolbox`,
    :class:`Captum`, :class:`Plenoptic`, :class:`Optax`: the documented libraries
    themselves, each a column when installed.

Your own implementation (a port) is a subclass of :class:`Target` that overrides the
operations it has; register it with :func:`conformance.register_target` (see
``examples/my_port``). Every operation takes and returns numpy arrays unless it says
otherwise. Nothing here imports an optional library (torch, jax, captum, ...) until an
operation runs.
"""

from __future__ import annotations

from conformance.targets.base import (
    ALIASES,
    ENTRY_POINT_GROUP,
    GROUPS,
    OPERATIONS,
    AdditiveRun,
    EigendistortionRun,
    NoiseTunnelRun,
    NotSupported,
    OriginalTarget,
    PluginError,
    Target,
    build_target,
    import_plugin,
    load_entry_points,
    register_target,
    registered_names,
    registered_targets,
)
from conformance.targets.captum import Captum
from conformance.targets.jax_front_end import JaxFrontEnd
from conformance.targets.optax import Optax
from conformance.targets.plenoptic import Plenoptic
from conformance.targets.rai_toolbox import RaiToolbox
from conformance.targets.refimpl import RefimplTarget, refimpl_targets
from conformance.targets.torch import TorchFrontEnd

#: the documented libraries, by column name
ORIGINALS: dict[str, type[OriginalTarget]] = {
    "rai_toolbox": RaiToolbox,
    "captum": Captum,
    "plenoptic": Plenoptic,
    "optax": Optax,
}


def original_targets() -> list[Target]:
    return [cls() for cls in ORIGINALS.values()]


def front_end_targets() -> list[Target]:
    """The front ends that are columns of their own (``refimpl.jax``; ``refimpl.torch`` is a
    companion of the torch columns instead)."""
    return [JaxFrontEnd()]


def builtin_targets() -> list[Target]:
    """The built-in columns: refimpl on every backend, the front-end columns, then every
    documented library."""
    return refimpl_targets() + front_end_targets() + original_targets()


__all__ = [
    "ALIASES",
    "ENTRY_POINT_GROUP",
    "GROUPS",
    "OPERATIONS",
    "ORIGINALS",
    "AdditiveRun",
    "Captum",
    "EigendistortionRun",
    "JaxFrontEnd",
    "NoiseTunnelRun",
    "NotSupported",
    "Optax",
    "OriginalTarget",
    "Plenoptic",
    "PluginError",
    "RaiToolbox",
    "RefimplTarget",
    "Target",
    "TorchFrontEnd",
    "build_target",
    "builtin_targets",
    "front_end_targets",
    "import_plugin",
    "load_entry_points",
    "original_targets",
    "refimpl_targets",
    "register_target",
    "registered_names",
    "registered_targets",
]
