"""The conformance suite: every documented example (shared/seeds) as a case, run on every
available backend and, where installed, on the documented library itself.

``python -m conformance [--backend ...] [--case PATTERN] [--json PATH] [--list]``
"""

from conformance.registry import (
    Case,
    Check,
    Context,
    SkipCase,
    Target,
    all_cases,
    case,
    erratum,
    exact,
    register,
    statistical,
    tolerance,
)

__all__ = [
    "Case",
    "Check",
    "Context",
    "SkipCase",
    "Target",
    "all_cases",
    "case",
    "erratum",
    "exact",
    "register",
    "statistical",
    "tolerance",
]
