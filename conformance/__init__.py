"""The conformance suite: every documented example of the five seed documents (two
rai-toolbox 0.2.1 pages, the README of the PyTorch perturbations port, captum 0.9.0's
``NoiseTunnel``, plenoptic 2.1.1's ``Eigendistortion``) as a case, run on every target: this
project on every available backend, the documented libraries where installed, and any
implementation registered with :func:`register_target`. The guide is
docs/conformance_suite.md; a port author reads ``conformance/targets/base.py`` first.

``python -m conformance [--target ...] [--backend ...] [--plugin MODULE] [--case PATTERN]
[--json PATH] [--report PATH.md|PATH.html] [--list] [--quiet]``
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
