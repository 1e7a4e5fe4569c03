"""Conformance cases: one documented example, checked on one target (a column).

A case names its source (seed file and section), the component it checks, how it checks
(:class:`Check`), and a function ``run(ctx)`` that raises ``AssertionError`` when the
target disagrees with the document, :class:`SkipCase` when the target cannot run it, and
returns normally when it conforms.

Case modules live in ``conformance/cases/`` and call :func:`register`; every module there
is imported by :func:`all_cases`.
"""

from __future__ import annotations

import fnmatch
import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np


class SkipCase(Exception):
    """Raised by a case that cannot run on a target (with the reason)."""


@dataclass(frozen=True)
class Check:
    """How a case decides.

    kind: ``exact`` (identical digits), ``tolerance`` (``|a - e| <= atol + rtol |e|``),
    ``statistical`` (a bound that fails a conforming target with probability at most
    ``false_failure_prob``), or ``erratum`` (the document and the documented library
    disagree; ``explanation`` says how, and the case checks the library's behaviour).
    """

    kind: str
    rtol: float = 0.0
    atol: float = 0.0
    false_failure_prob: float | None = None
    explanation: str = ""

    def __post_init__(self) -> None:
        if self.kind not in ("exact", "tolerance", "statistical", "erratum"):
            raise ValueError(f"unknown check kind {self.kind!r}")
        if self.kind == "statistical" and not (
            self.false_failure_prob is not None and 0 < self.false_failure_prob < 1
        ):
            raise ValueError("a statistical check needs 0 < false_failure_prob < 1")
        if self.kind == "erratum" and not self.explanation:
            raise ValueError("an erratum needs an explanation")

    def describe(self) -> str:
        if self.kind == "exact":
            return "exact"
        if self.kind == "tolerance":
            return f"tolerance rtol={self.rtol:g} atol={self.atol:g}"
        if self.kind == "statistical":
            return f"statistical, false-failure probability <= {self.false_failure_prob:g}"
        return f"ERRATUM: {self.explanation}"


def exact() -> Check:
    return Check("exact")


def tolerance(rtol: float = 1e-6, atol: float = 0.0) -> Check:
    return Check("tolerance", rtol=rtol, atol=atol)


def statistical(false_failure_prob: float) -> Check:
    return Check("statistical", false_failure_prob=false_failure_prob)


def erratum(explanation: str, rtol: float = 0.0, atol: float = 0.0) -> Check:
    return Check("erratum", rtol=rtol, atol=atol, explanation=explanation)


@dataclass
class Context:
    """What a case's ``run`` receives: the target (a column, see :mod:`conformance.targets`)
    plus helpers bound to it."""

    case: Case
    target: Any  # conformance.targets.Target

    def implementations(self, *ops: str) -> list[Any]:
        """The implementations of the column (the target and its companions, e.g. the torch
        front end) that provide every operation in ``ops``; a :class:`SkipCase` naming the
        target and the operation when none does."""
        impls = self.target.implementations()
        found = [t for t in impls if all(t.supports(op) for op in ops)]
        if not found:
            missing = next(op for op in ops if not self.target.supports(op))
            raise self.target.not_supported(missing)
        return found

    @property
    def name(self) -> str:
        return self.target.name

    @property
    def is_original(self) -> bool:
        return self.target.kind == "original"

    # -- this project's array API on the column's backend (refimpl columns only) ----------
    def _refimpl_only(self, what: str) -> None:
        if self.target.kind != "refimpl":
            raise self.target.not_supported(what, "the case runs refimpl on the column's backend")

    @property
    def backend(self):
        self._refimpl_only("a refimpl backend")
        return self.target.backend

    @property
    def xp(self):
        return self.backend.xp

    @property
    def device(self):
        self._refimpl_only("a refimpl device")
        return self.target.device

    def asarray(self, obj: Any, dtype: Any = None) -> Any:
        self._refimpl_only("a refimpl array")
        return self.target.asarray(obj, dtype=dtype)

    def to_numpy(self, x: Any) -> np.ndarray:
        return self.target.to_numpy(x)

    def skip(self, reason: str) -> None:
        raise SkipCase(reason)

    def assert_close(self, actual: Any, expected: Any, what: str = "value", **tol: float) -> None:
        """Compare with the case's check: identical for ``exact``, else within its tolerance
        (``rtol``/``atol`` keywords override it)."""
        a = self.to_numpy(actual) if not isinstance(actual, np.ndarray | float | int) else actual
        a = np.asarray(a, dtype=np.float64)
        e = np.asarray(expected, dtype=np.float64)
        if a.shape != e.shape:
            raise AssertionError(f"{what}: shape {a.shape}, documented {e.shape}")
        rtol = tol.get("rtol", self.case.check.rtol)
        atol = tol.get("atol", self.case.check.atol)
        if self.case.check.kind == "exact" and not tol:
            ok = np.array_equal(a, e)
        else:
            ok = np.allclose(a, e, rtol=rtol, atol=atol, equal_nan=False)
        if not ok:
            raise AssertionError(
                f"{what}: got {np.array2string(a, precision=6)}, "
                f"documented {np.array2string(e, precision=6)} (rtol={rtol:g}, atol={atol:g})"
            )


@dataclass(frozen=True)
class Case:
    id: str
    source: str  # seed file and section
    component: str  # what it checks, e.g. "refimpl.perturbations.AdditivePerturbation"
    check: Check
    run: Callable[[Context], Any]
    description: str = ""
    #: original libraries this case also runs on (by column name, e.g. "rai_toolbox")
    originals: tuple[str, ...] = field(default_factory=tuple)
    #: restrict the backend columns (None: every backend)
    backends: tuple[str, ...] | None = None

    def applies_to(self, target: Any) -> bool:
        """Whether the case has a cell in the column ``target`` (the target decides: a
        documented library runs the cases listing it in ``originals``)."""
        return target.applies_to(self)


_REGISTRY: dict[str, Case] = {}


def register(case: Case) -> Case:
    """Add ``case`` to the suite; a ValueError naming the module that registered its id
    first when the id is taken (a plugin cannot replace a built-in case)."""
    if case.id in _REGISTRY:
        first = getattr(_REGISTRY[case.id].run, "__module__", None) or "?"
        raise ValueError(
            f"conformance case {case.id!r} is already registered (by {first}); choose another id"
        )
    _REGISTRY[case.id] = case
    return case


def case(
    id: str, *, source: str, component: str, check: Check, description: str = "", **kw: Any
) -> Callable[[Callable[[Context], Any]], Callable[[Context], Any]]:
    """Decorator form of :func:`register`."""

    def deco(fn: Callable[[Context], Any]) -> Callable[[Context], Any]:
        register(
            Case(
                id=id,
                source=source,
                component=component,
                check=check,
                run=fn,
                description=description or _first_paragraph(fn.__doc__),
                **kw,
            )
        )
        return fn

    return deco


def _first_paragraph(doc: str | None) -> str:
    return " ".join((doc or "").strip().split("\n\n")[0].split())


def load_builtin_cases() -> None:
    """Import every module of ``conformance.cases`` (each registers its cases). The runner
    does this before it imports plugins, so a plugin case whose id is taken is refused when
    the plugin is imported."""
    import conformance.cases as pkg

    for mod in pkgutil.iter_modules(pkg.__path__):
        importlib.import_module(f"{pkg.__name__}.{mod.name}")


def all_cases(pattern: str | None = None) -> list[Case]:
    """Every registered case (importing ``conformance.cases.*``), optionally filtered by a
    glob ``pattern`` on the id."""
    load_builtin_cases()
    return filter_cases(sorted(_REGISTRY.values(), key=lambda c: c.id), pattern)


def filter_cases(cases: list[Case], pattern: str | None) -> list[Case]:
    """Cases whose id matches one of the comma-separated globs (a bare word: substring)."""
    if not pattern:
        return list(cases)
    pats = [p if any(ch in p for ch in "*?[") else f"*{p}*" for p in pattern.split(",")]
    return [c for c in cases if any(fnmatch.fnmatch(c.id, p) for p in pats)]
