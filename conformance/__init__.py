"""The conformance suite: every documented example (shared/seeds) as a case, run on every
target: this project on every available backend, the documented libraries where installed,
and any implementation registered with :func:`register_target` (see docs/conformance.md).

``python -m conformance [--target ...] [--backend ...] [--plugin MODULE] [--case PATTERN]
[--json PATH] [--report PATH.md|PATH.html] [--list]``
"""

from conformance.registry import (
    Case,
    Check,
    Context,
    SkipCase,
    all_cases,
    case,
    erratum,
    exact,
    register,
    statistical,
    tolerance,
)
from conformance.targets import (
    AdditiveRun,
    NoiseTunnelRun,
    NotSupported,
    RefimplTarget,
    Target,
    register_target,
)

__all__ = [
    "AdditiveRun",
    "Case",
    "Check",
    "Context",
    "NoiseTunnelRun",
    "NotSupported",
    "RefimplTarget",
    "SkipCase",
    "Target",
    "all_cases",
    "case",
    "erratum",
    "exact",
    "register",
    "register_target",
    "statistical",
    "tolerance",
]
