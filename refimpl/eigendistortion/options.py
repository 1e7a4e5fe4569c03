"""The options of ``Eigendistortion.synthesize`` and what it produces."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from refimpl.parallel import check_executor
from refimpl.validation import check_bool, check_choice, check_int, check_real

__all__ = ["LANCZOS", "METHODS", "EigendistortionOptions", "EigendistortionResult"]

#: the eigensolvers (``synthesize(method=...)``)
METHODS = ("power", "exact", "randomized_svd", "eigsh")
#: routes of eigsh's top solve
LANCZOS = ("auto", "arpack", "krylov_schur")


@dataclass(frozen=True)
class EigendistortionOptions:
    """``method`` in :data:`METHODS`; ``k >= 1`` pairs per end of the spectrum (at most the
    number of pixels, checked by ``synthesize``); ``max_iter >= 1``; ``p, q >= 0`` (the
    randomized SVD's oversampling and power steps); ``stop_criterion > 0``; ``progress``;
    ``lanczos`` in :data:`LANCZOS`; ``warn_unconverged`` (a bool); ``executor`` (None or a
    ``concurrent.futures.Executor``: ``refimpl.parallel.check_executor``)."""

    method: str = "power"
    k: int = 1
    max_iter: int = 1000
    p: int = 5
    q: int = 2
    stop_criterion: float = 1e-7
    progress: bool = True
    lanczos: str = "auto"
    warn_unconverged: bool = True
    executor: Any = None

    def __post_init__(self) -> None:
        if not isinstance(self.method, str) or self.method not in METHODS:
            # plenoptic's wording, which its documentation and our conformance case quote
            raise ValueError(f"method must be in {list(METHODS)}, got {self.method!r}")
        checked = dict(
            k=check_int("k", self.k, low=1),
            max_iter=check_int("max_iter", self.max_iter, low=1),
            p=check_int("p", self.p, low=0),
            q=check_int("q", self.q, low=0),
            stop_criterion=check_real(
                "stop_criterion", self.stop_criterion, low=0.0, low_open=True
            ),
            progress=check_bool("progress", self.progress),
            lanczos=check_choice("lanczos", self.lanczos, LANCZOS),
            warn_unconverged=check_bool("warn_unconverged", self.warn_unconverged),
            executor=check_executor(self.executor),
        )
        for name, value in checked.items():
            object.__setattr__(self, name, value)


@dataclass(frozen=True)
class EigendistortionResult:
    """What :meth:`~refimpl.eigendistortion.Eigendistortion.synthesize` (or ``load``)
    produced: ``eigendistortions`` ``(n_dist, *image_shape)``, unit norm, in the order of
    ``eigenvalues`` ``(n_dist,)`` (decreasing, >= 0); ``eigenindex`` (int64, each pair's
    position in the full decreasing spectrum); ``convergence`` (per block: residuals,
    products, solver)."""

    method: str
    eigendistortions: Any
    eigenvalues: Any
    eigenindex: Any
    convergence: dict[str, Any] = field(default_factory=dict)

    def map(
        self, floats: Callable[[Any], Any], ints: Callable[[Any], Any]
    ) -> EigendistortionResult:
        """The same result with ``floats`` applied to the floating arrays and ``ints`` to the
        index (a move to another device, a cast)."""
        return EigendistortionResult(
            self.method,
            floats(self.eigendistortions),
            floats(self.eigenvalues),
            ints(self.eigenindex),
            self.convergence,
        )
